/*
 * test_fork_signal: fork() from a signal handler in a single-threaded
 * process, while the interrupted code is inside soma (glibc's
 * tst-mallocfork2).  fork is async-signal-safe, so this is legal; soma's
 * pthread_atfork handler must then not try to take a lock that the very
 * thread it runs on already holds (the interrupted slow path), or the
 * process hangs.  Like glibc, soma skips its fork locks while the process
 * is single-threaded.  With SOMA_BACKGROUND_PURGE=1 (test_fork_signal_purge)
 * soma's purge thread runs throughout, so the program is single-threaded
 * only as far as it knows: the fork must still take none of soma's locks,
 * and must find the purge thread holding none (base/wake.h's gate).
 *
 * A one-shot timer sends SIGALRM at a different moment of every round; the
 * handler forks and the child exits at once.  The main loop keeps taking soma's slow paths (pools filled past
 * capacity and emptied, so pools move between the heap and its arenas under
 * the heap lock) until the signal has come, so that every round forks once
 * inside that loop: a round of a fixed length ended before its timer on a
 * fast build, and the next round's timer replaced it (100,000 rounds gave
 * as few as 97 forks).  200 forks; CTest's timeout catches a hang.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "soma.h"
#include "test.h"
#include "purge.h"

static volatile sig_atomic_t forks, failed, fired;

static void on_alarm(int sig)
{
    (void)sig;
    fired = 1;
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    if (pid < 0)
        failed = 1;
    else
        forks++;
}

int main(void)
{
    test_begin("test_fork_signal");
    struct sigaction sa = {0};
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    /* test_fork_signal_purge: the purge thread runs through every fork
     * (the process is then multi-threaded, and only the gate of
     * base/wake.h keeps the handler's fork from waiting on a lock). */
    int purge = test_env_ull("SOMA_BACKGROUND_PURGE", 0) != 0;
    if (purge)
        CHECK(purge_thread_start((long)test_env_ull("SOMA_ARENA_DECAY_MS", 0)));

    /* One signal per round, at a different moment of it each time: a
     * repeating timer would starve the main loop once a fork takes longer
     * than the interval (it does under the sanitizers). */
    void *blocks[200];
    unsigned long rounds = 0;
    while (forks < 200 && !failed && rounds < 100000) {
        struct itimerval once = {{0, 0}, {0, 20 + (long)(rounds * 37 % 300)}};
        fired = 0;
        setitimer(ITIMER_REAL, &once, NULL);
        /* (two seconds at most: a signal lost ends the round, not the test) */
        uint64_t until = test_now_ms() + 2000;
        for (long rep = 0; !fired; rep++) {
            if (rep % 1000 == 999 && test_now_ms() >= until)
                break;
            for (int i = 0; i < 200; i++) /* 512-byte blocks: 31 a pool, 7 pools */
                blocks[i] = soma_malloc(512);
            for (int i = 0; i < 200; i++)
                soma_free(blocks[i]);
        }
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        rounds++;
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    while (waitpid(-1, NULL, 0) > 0)
        ;
    test_note("%d forks from the signal handler over %lu allocation rounds", (int)forks, rounds);
    CHECK(!failed);
    CHECK_GE((long)forks, 200);
    if (purge)
        CHECK_EQ(purge_threads(), 1);
    return test_summary();
}
