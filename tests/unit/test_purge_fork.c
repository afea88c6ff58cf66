/*
 * test_purge_fork.c: fork while the purge thread is busy (issue 15).  CTest
 * sets SOMA_ARENA_DECAY_MS=5 and SOMA_BACKGROUND_PURGE=1.
 *
 * The parent keeps its purge thread at work: two threads churn blocks of
 * many classes, and before each fork the main thread fills a few arenas
 * and frees all but one block per arena, so a few hundred pools fall due
 * within milliseconds, and forks in the middle of their purge.  Each child
 * (alarm(10): a hang is a failure):
 *   - has a purge thread of its own, exactly one (/proc/self/task/.../comm
 *     is "soma-purge"): the parent's did not come along, and the fork
 *     started a new one;
 *   - finds its heap consistent (soma__check_heap) and the parent's kept
 *     blocks intact;
 *   - allocates a few arenas' worth, frees all but one block per arena,
 *     and, without calling soma again, sees with mincore that its own
 *     purge thread gave back every pool it emptied;
 *   - checks its heap again, frees everything, and exits 0, which the
 *     parent's waitpid must see.
 * Then a child forked by a thread that is not the main one, whose threads
 * (the forking one and one it starts) all end with pthread_exit: the purge
 * thread is then the process's last, and it must end too, so that the
 * child exits (status 0) within 5 seconds rather than never.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/wait.h>

/* ThreadSanitizer refuses, by default, a thread started in the child of a
 * process with threads (die_after_fork); soma starts its purge thread
 * there, which is what this test is about. */
#define TEST_TSAN_OPTIONS ":die_after_fork=0"
#include "malloc/malloc.h"
#include "test.h"
#include "purge.h"

enum { FORKS = 16, CHURNERS = 2, BATCH = 12000, PARENT_SIZE = 128 };

static atomic_int stop;
static unsigned char *kept[64];
static size_t nkept;

static void *churn(void *arg)
{
    unsigned i = (unsigned)(uintptr_t)arg * 7919;
    void *slot[256] = {0};
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        soma_free(slot[i % 256]);
        slot[i % 256] = soma_malloc(i % 512 == 0 ? 50000 : 1 + (i * 37) % 4000);
        i++;
    }
    for (int k = 0; k < 256; k++)
        soma_free(slot[k]);
    return NULL;
}

/* BATCH blocks of `size`; all freed but the first one in each arena (and
 * the first of all), which go to keep[] (up to max) or are freed last by
 * the caller.  The pools emptied go to emptied[] (up to max_pools).
 * Returns how many were kept. */
static size_t fill_and_empty(size_t size, unsigned char **keep, size_t max, uintptr_t *emptied,
                             size_t *nemptied, size_t max_pools)
{
    static unsigned char *b[BATCH];
    size_t n = 0;
    for (size_t i = 0; i < BATCH; i++) {
        b[i] = soma_malloc(size);
        if (b[i] == NULL)
            return n;
        memset(b[i], (int)(size & 0xff) | 1, size);
    }
    uintptr_t arena = 0, pool = 0;
    int pool_kept = 0;
    for (size_t i = 0; i < BATCH; i++) {
        uintptr_t a = (uintptr_t)b[i] & ~(uintptr_t)(SOMA_ARENA_SIZE - 1);
        uintptr_t p = (uintptr_t)b[i] & ~(uintptr_t)SOMA_POOL_MASK;
        if (p != pool) {
            if (pool != 0 && !pool_kept && emptied != NULL && *nemptied < max_pools)
                emptied[(*nemptied)++] = pool;
            pool = p;
            pool_kept = 0;
        }
        if ((i == 0 || a != arena) && n < max) {
            arena = a;
            pool_kept = 1;
            keep[n++] = b[i];
        } else {
            soma_free(b[i]);
        }
    }
    if (!pool_kept && emptied != NULL && *nemptied < max_pools)
        emptied[(*nemptied)++] = pool;
    return n;
}

static int heap_ok(const char *when)
{
    char why[256];
    if (soma__check_heap(soma__heap_current(), why, sizeof why) == 0)
        return 1;
    fprintf(stderr, "child %d: %s: %s\n", (int)getpid(), when, why);
    return 0;
}

/* The child's work; its exit status says what went wrong. */
static int child(void)
{
    alarm(20); /* (purge_thread_start may wait 15 s) */
    /* The child wants a thread of its own, started as the parent's was. */
    if (!purge_thread_start(soma__options.decay_ms) || purge_threads() != 1)
        return 2; /* none, or the parent's too */
    if (!heap_ok("after the fork"))
        return 3;
    for (size_t i = 0; i < nkept; i++)
        for (size_t k = 0; k < PARENT_SIZE; k++)
            if (kept[i][k] != (PARENT_SIZE | 1))
                return 4;
    /* Its own pools to give back, 160-byte blocks (a class the parent's
     * main thread does not use). */
    static uintptr_t emptied[1024];
    size_t nemptied = 0;
    unsigned char *mine[64];
    size_t nmine = fill_and_empty(160, mine, 64, emptied, &nemptied, 1024);
    if (nemptied < 50)
        return 5;
    /* No call into soma now: its purge thread alone gives them back. */
    uint64_t start = test_now_ms();
    size_t left;
    do {
        test_sleep_ms(5);
        left = 0;
        for (size_t i = 0; i < nemptied; i++)
            left += test_resident_pages(emptied[i], SOMA_POOL_SIZE) > 0;
    } while (left > 0 && test_now_ms() - start < 5000);
    if (left > 0) {
        fprintf(stderr, "child %d: %zu of %zu pools still resident\n", (int)getpid(), left,
                nemptied);
        return 6;
    }
    for (size_t i = 0; i < nmine; i++)
        for (size_t k = 0; k < 160; k++)
            if (mine[i][k] != (160 | 1))
                return 4;
    if (!heap_ok("after its purge"))
        return 3;
    for (size_t i = 0; i < nmine; i++)
        soma_free(mine[i]);
    soma_stats st;
    soma_stats_get(&st);
    if (st.total != st.arena_bytes || st.returned.pool_bytes != st.returned.pools * SOMA_POOL_SIZE)
        return 7;
    return heap_ok("at the end") ? 0 : 3;
}

/* ---- a child whose threads all end with pthread_exit ---- */

static void *child_worker(void *arg)
{
    (void)arg;
    void *p[512];
    for (int i = 0; i < 512; i++)
        p[i] = soma_malloc(200); /* something to expire: the thread works */
    for (int i = 0; i < 512; i++)
        soma_free(p[i]);
    pthread_exit(NULL);
}

static void *forker(void *arg)
{
    uint64_t *took_ms = arg;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(30); /* the parent gives up sooner; this only ends an orphan */
        pthread_t t;
        if (pthread_create(&t, NULL, child_worker, NULL) != 0)
            _exit(9);
        pthread_exit(NULL); /* the forking thread, the child's first */
    }
    if (pid < 0) {
        *took_ms = UINT64_MAX;
        return NULL;
    }
    uint64_t start = test_now_ms();
    int st = 0;
    pid_t got;
    while ((got = waitpid(pid, &st, WNOHANG)) == 0 && test_now_ms() - start < 10000)
        test_sleep_ms(10);
    *took_ms = test_now_ms() - start;
    if (got == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        test_note("  the child of a thread still runs after 10 s: killed");
        *took_ms = UINT64_MAX;
    } else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        test_note("  the child of a thread: %s %d", WIFEXITED(st) ? "exit status" : "signal",
                  WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
        *took_ms = UINT64_MAX;
    }
    return NULL;
}

int main(void)
{
    test_begin("test_purge_fork");
    if (!CHECK(soma__options.decay_ms > 0 && soma__options.decay_ms <= 20) ||
        !CHECK_EQ(soma__options.purge_thread, 1))
        return test_summary(); /* CTest sets the environment */
    CHECK(purge_thread_start(soma__options.decay_ms));
    CHECK_EQ(purge_threads(), 1);

    pthread_t t[CHURNERS];
    for (size_t k = 0; k < CHURNERS; k++)
        CHECK_EQ(pthread_create(&t[k], NULL, churn, (void *)k), 0);

    nkept = fill_and_empty(PARENT_SIZE, kept, 64, NULL, NULL, 0);
    unsigned ok = 0, failed = 0;
    for (int f = 0; f < FORKS; f++) {
        /* Fresh work for the purge thread: a few hundred pools due in
         * milliseconds, forked in the middle of. */
        unsigned char *more[64];
        size_t nmore = fill_and_empty(PARENT_SIZE, more, 64, NULL, NULL, 0);
        test_sleep_ms(soma__options.decay_ms + (f % 3));
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0)
            _exit(child());
        for (size_t i = 0; i < nmore; i++)
            soma_free(more[i]);
        if (!CHECK(pid > 0))
            break;
        int st = 0;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
            ok++;
        } else if (failed++ < 5) {
            test_note("  child %d: %s %d", f, WIFEXITED(st) ? "exit status" : "signal",
                      WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
        }
    }
    test_note("%d forks during purges: %u children fine, %u not", FORKS, ok, failed);
    CHECK_EQ(ok, FORKS);

    /* The child of a thread, whose threads all pthread_exit. */
    uint64_t took_ms = 0;
    pthread_t f;
    if (CHECK_EQ(pthread_create(&f, NULL, forker, &took_ms), 0))
        pthread_join(f, NULL);
    test_note("the child of a thread ended %llu ms after its fork",
              (unsigned long long)took_ms);
    CHECK_LT(took_ms, 5000);

    atomic_store(&stop, 1);
    for (size_t k = 0; k < CHURNERS; k++)
        pthread_join(t[k], NULL);
    for (size_t i = 0; i < nkept; i++)
        soma_free(kept[i]);
    CHECK_EQ(purge_threads(), 1); /* the parent's own is still there */
    return test_summary();
}
