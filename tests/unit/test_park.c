/*
 * test_park.c: parked pools (src/pool/pool.c), with SOMA_ARENA_DECAY_MS=200 (set
 * by CTest).
 *
 *   - a pool that empties while it is the only pool of its class stays on
 *     its class list, empty, and the next allocation of the class takes a
 *     block from it without a new arena or pool;
 *   - a parked pool unused for the decay time goes back to its arena at the
 *     next sweep (a fresh pool taken for another class), and the arena
 *     then decays away like any empty arena;
 *   - a parked pool gives way when a full pool of its class gets a block
 *     back: it returns to its arena and the other pool serves the class
 *     (a parked pool is only ever alone on its list);
 *   - a thread's parked pools go back when it exits: its arenas are given
 *     back;
 *   - a forked child marks every class of another thread's heap as maybe
 *     parked (that thread may have been between a park and its mark):
 *     the heap check, which fails on a parked pool whose class is not
 *     marked, passes in the child on a heap whose mark the parent wiped;
 *   - the heap's full consistency check holds at every step.
 */
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include "malloc/malloc.h"
#include "test.h"

static void check_heap(const char *when)
{
    char why[256];
    if (!CHECK_EQ(soma__check_heap(soma__heap_current(), why, sizeof why), 0))
        test_note("  %s: %s", when, why);
}

static void *thread_parks(void *arg)
{
    (void)arg;
    soma_free(soma_malloc(700)); /* a medium class: a medium arena, parked */
    soma_free(soma_malloc(200));
    return NULL;
}

/* A thread that parks a pool of class 100 bytes, says so, and waits. */
static pthread_barrier_t parked_then, may_end;
static heap_t *waiting_heap;
static void *thread_parks_and_waits(void *arg)
{
    (void)arg;
    soma_free(soma_malloc(100));
    waiting_heap = soma__heap_current();
    pthread_barrier_wait(&parked_then);
    pthread_barrier_wait(&may_end);
    return NULL;
}

static void fork_marks_all(void)
{
    pthread_barrier_init(&parked_then, NULL, 2);
    pthread_barrier_init(&may_end, NULL, 2);
    pthread_t t;
    pthread_create(&t, NULL, thread_parks_and_waits, NULL);
    pthread_barrier_wait(&parked_then);
    unsigned c = soma__sizeclass_small(100);
    heap_t *h = waiting_heap;
    char why[256];
    CHECK(h->usedpools[c] != NULL && soma__pool_count(h->usedpools[c]) == 0); /* parked */
    CHECK_EQ(soma__check_heap(h, why, sizeof why), 0);
    h->parked_mark[c] = 0; /* as if the fork came between its park and its mark */
    CHECK(soma__check_heap(h, why, sizeof why) != 0); /* the check sees it */
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        _exit(h->parked_mark[c] == 1 && soma__check_heap(h, why, sizeof why) == 0 ? 0 : 1);
    int st = -1;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    h->parked_mark[c] = 1; /* the parent's heap whole again */
    pthread_barrier_wait(&may_end);
    pthread_join(t, NULL);
}

int main(void)
{
    test_begin("test_park");
    if (!CHECK_EQ(soma__options.decay_ms, 200))
        return test_summary(); /* CTest sets SOMA_ARENA_DECAY_MS=200 */
    soma_stats st0, st;
    soma_stats_get(&st0);

    unsigned c = soma__sizeclass_small(100);
    void *p = soma_malloc(100);
    pool_t *pool = soma__pool_of(p);
    heap_t *heap = soma__heap_current();
    soma_free(p);
    CHECK_PTR_EQ(heap->usedpools[c], pool); /* parked: still on its list */
    CHECK_EQ(soma__pool_count(pool), 0);
    check_heap("parking");
    soma_stats_get(&st);
    CHECK_EQ(st.classes[c].num_pools, st0.classes[c].num_pools); /* empty: unused */

    /* Reused in place, as long as the class keeps coming back. */
    size_t arenas = st.arenas_allocated_total;
    for (int i = 0; i < 1000; i++) {
        void *q = soma_malloc(100);
        CHECK_PTR_EQ(soma__pool_of(q), pool);
        soma_free(q);
    }
    CHECK_PTR_EQ(heap->usedpools[c], pool);
    soma_stats_get(&st);
    CHECK_EQ(st.arenas_allocated_total, arenas);
    check_heap("reuse");

    /* A full pool of the class gets a block back while the class's other
     * pool is parked: the parked one gives way. */
    {
        unsigned c2 = soma__sizeclass_small(160);
        size_t cap = soma__sizeclass_capacity(c2);
        void **full = malloc((cap + 1) * sizeof *full);
        for (size_t i = 0; i <= cap; i++)
            full[i] = soma_malloc(160); /* one full pool, and one block in a second */
        pool_t *first = soma__pool_of(full[0]), *second = soma__pool_of(full[cap]);
        CHECK(first != second);
        soma_free(full[cap]); /* the second pool empties alone: parked */
        CHECK_PTR_EQ(heap->usedpools[c2], second);
        soma_free(full[0]); /* the full pool gets a block back */
        CHECK_PTR_EQ(heap->usedpools[c2], first);
        CHECK_PTR_EQ(first->nextpool, first); /* alone: the parked pool went back */
        check_heap("a full pool joins while another is parked");
        for (size_t i = 1; i < cap; i++)
            soma_free(full[i]);
        check_heap("the full pool emptied");
        free(full);
    }

    /* Unused for the decay time: the next sweep returns it. */
    test_sleep_ms(250);
    void *other = soma_malloc(300); /* a fresh pool for class 18: a sweep */
    CHECK(heap->usedpools[c] == NULL); /* (its pool may be the one class 18 took) */
    check_heap("sweep");
    soma_free(other);

    /* Emptied arenas, and the arena a parked pool pinned, decay away too. */
    enum { NB = 12288 }; /* 256-byte blocks: 3 MiB, several arenas */
    void **b = malloc(NB * sizeof *b);
    for (size_t i = 0; i < NB; i++)
        b[i] = soma_malloc(256);
    uint64_t t_free = test_now_ms();
    for (size_t i = 0; i < NB; i++)
        soma_free(b[i]);
    free(b);
    soma_stats_get(&st);
    size_t kept = st.arenas_current;
    if (test_young(t_free, 150, "arenas kept while young"))
        CHECK_GE(kept, 3); /* younger than the decay: kept for reuse */
    test_sleep_ms(250);
    soma_free(soma_malloc(496)); /* a fresh pool for class 30: a sweep */
    soma_stats_get(&st);
    test_note("arenas: %zu kept after freeing, %zu after the decay", kept, st.arenas_current);
    CHECK_LE(st.arenas_current, 1); /* CPython's one kept arena */
    check_heap("decay");

    /* A thread's parked pools go back when it exits. */
    soma_stats_get(&st0);
    pthread_t t;
    pthread_create(&t, NULL, thread_parks, NULL);
    pthread_join(t, NULL);
    soma_stats_get(&st);
    CHECK_EQ(st.arenas_current, st0.arenas_current);
    CHECK_EQ(st.medium.arenas_current, st0.medium.arenas_current);

    fork_marks_all();
    return test_summary();
}
