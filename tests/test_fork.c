/*
 * test_fork: soma must stay usable in the child of a fork() made while
 * another thread is inside soma.
 *
 * A thread allocates and frees in a loop while the main thread forks; each
 * child allocates and frees once and exits.  If the heap's lock (or any of
 * soma's other locks) was held by the looping thread at the instant of the
 * fork, the child inherits it locked, with no thread left to unlock it, and
 * hangs on its first soma_malloc.  glibc's malloc (and jemalloc, mimalloc,
 * tcmalloc) take their locks around fork with pthread_atfork for this reason.
 *
 * The children arm alarm(1), so a hung child is killed by SIGALRM and
 * counted; the test stops at the first one.  SOMA_FORK_TRIES (default 40)
 * sets the number of forks.
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

static atomic_int stop;

static void *churn(void *arg)
{
    (void)arg;
    void *keep[64] = {0};
    unsigned i = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        /* Small requests only (the heap lock; under a sanitizer the
         * system allocator's own fork handling would hide the problem), and
         * now and then a snapshot. */
        soma_free(keep[i % 64]);
        keep[i % 64] = soma_malloc(1 + (i * 37) % 512);
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

int main(void)
{
    test_begin("test_fork");
    unsigned long long tries = test_env_ull("SOMA_FORK_TRIES", 40);
    pthread_t t;
    if (!CHECK_EQ(pthread_create(&t, NULL, churn, NULL), 0))
        return test_summary();
    usleep(10000); /* let it get going */

    unsigned long long ok = 0, hung = 0, other = 0, done = 0;
    for (; done < tries && hung == 0; done++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            alarm(1);
            void *p = soma_malloc(64);
            void *q = soma_malloc(5000);
            soma_free(p);
            soma_free(q);
            _exit(p != NULL && q != NULL ? 0 : 3);
        }
        if (!CHECK(pid > 0))
            break;
        int st = 0;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
            ok++;
        else if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM)
            hung++;
        else
            other++;
        usleep(1000);
    }
    atomic_store(&stop, 1);
    pthread_join(t, NULL);

    test_note("%llu forks: %llu children fine, %llu hung in soma, %llu failed otherwise", done, ok,
              hung, other);
    if (!CHECK_EQ(hung, 0))
        test_note("  a child forked while another thread held soma's lock hangs on its first "
                  "soma_malloc (no pthread_atfork handlers)");
    CHECK_EQ(other, 0);
    return test_summary();
}
