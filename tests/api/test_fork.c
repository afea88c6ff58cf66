/*
 * test_fork: soma must stay usable in the child of a fork() made while
 * other threads are inside soma (the checklist's "fork while 4 threads
 * hammer malloc; 300 iterations").
 *
 * Four threads allocate and free in a loop (and take snapshots now and then)
 * while the main thread forks.  If one of soma's locks was held by a looping
 * thread at the instant of the fork, the child inherits it locked, with no
 * thread left to unlock it, and hangs; glibc's malloc (and jemalloc,
 * mimalloc, tcmalloc) take their locks around fork with pthread_atfork for
 * this reason.  Each child then:
 *   - frees the block each looping thread left in `gifts` (blocks of heaps
 *     whose threads do not exist in the child: they must go back to those
 *     heaps, now orphans, without a crash);
 *   - allocates and frees 64 blocks of every class and a large one, checking
 *     their contents;
 *   - takes a snapshot: it must not hang, and its totals must add up;
 * and exits 0.  alarm(5) turns a hang into SIGALRM, counted; the test stops
 * at the first one.  SOMA_FORK_TRIES (default 300) and SOMA_FORK_THREADS
 * (default 4) change the run.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#include "soma.h"
#include "test.h"

#define MAX_THREADS 16

static atomic_int stop;
static atomic_int ready;
static void *gifts[MAX_THREADS];

static void *churn(void *arg)
{
    size_t id = (size_t)arg;
    gifts[id] = soma_malloc(16 + 48 * id);
    memset(gifts[id], 0x5a, 16 + 48 * id);
    atomic_fetch_add(&ready, 1);
    void *keep[64] = {0};
    unsigned i = (unsigned)id * 7919;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        /* Small requests mostly (the heap locks; under a sanitizer the
         * system allocator's own fork handling would hide a problem), a
         * large one now and then, and a snapshot (the walkers' locks). */
        soma_free(keep[i % 64]);
        keep[i % 64] = soma_malloc(i % 1024 == 0 ? 4000 : 1 + (i * 37) % 512);
        if (i % 4096 == 0) {
            soma_stats st;
            soma_stats_get(&st);
        }
        i++;
    }
    for (unsigned k = 0; k < 64; k++)
        soma_free(keep[k]);
    return NULL;
}

/* The child's work; its exit status says what went wrong. */
static int child(size_t nthreads)
{
    alarm(5);
    for (size_t t = 0; t < nthreads; t++) {
        for (size_t k = 0; k < 16 + 48 * t; k++)
            if (((unsigned char *)gifts[t])[k] != 0x5a)
                return 4;
        soma_free(gifts[t]);
    }
    static unsigned char *blocks[SOMA_NUM_CLASSES][64];
    for (unsigned c = 0; c < SOMA_NUM_CLASSES; c++)
        for (unsigned k = 0; k < 64; k++) {
            size_t n = (c + 1) * 16;
            if ((blocks[c][k] = soma_malloc(n)) == NULL)
                return 3;
            memset(blocks[c][k], (int)(c * 64 + k), n);
        }
    void *big = soma_malloc(100000);
    if (big == NULL)
        return 3;
    for (unsigned c = 0; c < SOMA_NUM_CLASSES; c++)
        for (unsigned k = 0; k < 64; k++) {
            for (size_t b = 0; b < (c + 1) * 16; b++)
                if (blocks[c][k][b] != (unsigned char)(c * 64 + k))
                    return 4;
            soma_free(blocks[c][k]);
        }
    soma_free(big);
    soma_stats st;
    soma_stats_get(&st);
    if (st.total != st.arenas_current * st.arena_size)
        return 5;
    return 0;
}

int main(void)
{
    test_begin("test_fork");
    unsigned long long tries = test_env_ull("SOMA_FORK_TRIES", 300);
    size_t nthreads = (size_t)test_env_ull("SOMA_FORK_THREADS", 4);
    if (nthreads < 1 || nthreads > MAX_THREADS)
        nthreads = 4;
    pthread_t t[MAX_THREADS];
    for (size_t k = 0; k < nthreads; k++)
        if (!CHECK_EQ(pthread_create(&t[k], NULL, churn, (void *)k), 0))
            return test_summary();
    while ((size_t)atomic_load(&ready) < nthreads)
        usleep(1000);

    unsigned long long ok = 0, hung = 0, other = 0, done = 0;
    for (; done < tries && hung == 0; done++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0)
            _exit(child(nthreads));
        if (!CHECK(pid > 0))
            break;
        int st = 0;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
            ok++;
        } else if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM) {
            hung++;
        } else {
            if (other++ < 5)
                test_note("  child %llu: %s %d", done, WIFEXITED(st) ? "exit status" : "signal",
                          WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
        }
    }
    atomic_store(&stop, 1);
    for (size_t k = 0; k < nthreads; k++)
        pthread_join(t[k], NULL);
    for (size_t k = 0; k < nthreads; k++)
        soma_free(gifts[k]);

    test_note("%llu forks with %zu threads allocating: %llu children fine, %llu hung in soma, "
              "%llu failed otherwise",
              done, nthreads, ok, hung, other);
    if (!CHECK_EQ(hung, 0))
        test_note("  a child forked while another thread held one of soma's locks hangs on it "
                  "(no pthread_atfork handlers?)");
    CHECK_EQ(other, 0);
    CHECK_EQ(ok, tries);
    return test_summary();
}
