/*
 * test_takeover: a thread that frees a block of an exited thread's heap
 * takes that heap's arenas over (src/heap/heap.c), with the internal view:
 *
 *   - thread A allocates blocks of several classes and exits; its heap is
 *     an orphan.  The main thread frees one of them: every pool and arena
 *     of A's heap now names the main thread's heap, A's heap is empty and
 *     still an orphan, and soma__check_heap passes on both;
 *   - the main thread's later frees of A's blocks are local (nothing goes
 *     to a remote stack), contents survive, and the blocks in use equal
 *     the hand count all along;
 *   - under traffic: while the main thread takes over, other threads free
 *     blocks of the same orphan (their frees race with the move, and those
 *     that reach the old heap's remote stack are passed on); at the end,
 *     every block is accounted for and both heaps check.  (TSan runs this.)
 */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "malloc/malloc.h"
#include "test.h"

#define N 3000
static void *blocks[N];
static heap_t *a_heap;

static size_t size_of(size_t i)
{
    return 16 + (i * 37) % 1000; /* small and medium classes */
}

static void *alloc_all(void *arg)
{
    (void)arg;
    for (size_t i = 0; i < N; i++) {
        blocks[i] = soma_malloc(size_of(i));
        if (blocks[i] != NULL)
            memset(blocks[i], (int)(i % 251), size_of(i));
    }
    a_heap = soma__heap_tls;
    return NULL;
}

/* Small and medium blocks in use, every heap. */
static size_t in_use(void)
{
    soma_stats st;
    soma_stats_get(&st);
    size_t n = test_blocks_in_use(&st);
    for (size_t c = 0; c < st.medium.num_classes; c++)
        n += st.medium.classes[c].blocks_in_use;
    return n;
}

static int intact(size_t i)
{
    const unsigned char *u = blocks[i];
    return u[0] == i % 251 && u[size_of(i) - 1] == i % 251;
}

static int check(heap_t *h, const char *what)
{
    char why[256];
    int rc = soma__check_heap(h, why, sizeof why);
    if (!CHECK_EQ(rc, 0))
        test_note("%s: %s", what, why);
    return rc;
}

static int test_alone(void)
{
    void *warm = soma_malloc(8); /* the main thread's heap */
    heap_t *me = soma__heap_tls;
    size_t base = in_use();
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, alloc_all, NULL) == 0);
    pthread_join(t, NULL);
    for (size_t i = 0; i < N; i++)
        REQUIRE(blocks[i] != NULL);
    REQUIRE(a_heap != NULL && a_heap != me);
    CHECK(atomic_load(&a_heap->orphaned));
    CHECK_EQ(in_use(), base + N);

    soma_free(blocks[0]);
    blocks[0] = NULL;
    /* Every pool of A's blocks is the main thread's now. */
    size_t moved = 0;
    for (size_t i = 1; i < N; i++)
        moved += soma__pool_of(blocks[i])->heap == me &&
                 soma__region_arena(blocks[i])->heap == me;
    CHECK_EQ(moved, N - 1);
    CHECK(atomic_load(&a_heap->orphaned));
    CHECK(a_heap->sets[0].all_arenas == NULL && a_heap->sets[1].all_arenas == NULL);
    check(me, "the main heap after the take-over");
    check(a_heap, "the emptied orphan");
    CHECK_EQ(in_use(), base + N - 1);

    /* The rest are local frees: nothing reaches a remote stack. */
    for (size_t i = 1; i < N; i++) {
        if (!CHECK(intact(i)))
            break;
        soma_free(blocks[i]);
        blocks[i] = NULL;
        if (i % 500 == 0)
            CHECK(atomic_load(&me->remote) == NULL);
    }
    CHECK(atomic_load(&me->remote) == NULL);
    CHECK_EQ(in_use(), base);
    check(me, "the main heap after freeing everything");
    soma_free(warm);
    return 0;
}

/* ---- under traffic ---- */

static _Atomic size_t next_victim;

static void *free_some(void *arg)
{
    (void)arg;
    for (;;) {
        size_t i = atomic_fetch_add(&next_victim, 1);
        if (i >= N)
            break;
        if (!intact(i))
            return (void *)1;
        soma_free(blocks[i]);
        /* and a little traffic of its own */
        void *q = soma_malloc(size_of(i));
        soma_free(q);
    }
    return NULL;
}

static int test_racing(void)
{
    size_t base = in_use();
    for (int round = 0; round < 20; round++) {
        pthread_t t, f[3];
        REQUIRE(pthread_create(&t, NULL, alloc_all, NULL) == 0);
        pthread_join(t, NULL);
        atomic_store(&next_victim, 0);
        for (int k = 0; k < 3; k++)
            REQUIRE(pthread_create(&f[k], NULL, free_some, NULL) == 0);
        void *bad = free_some(NULL); /* the main thread frees too: one of us takes over */
        CHECK(bad == NULL);
        for (int k = 0; k < 3; k++) {
            void *r;
            pthread_join(f[k], &r);
            CHECK(r == NULL);
        }
    }
    /* Exited threads' pending frees are collected by the walk. */
    CHECK_EQ(in_use(), base);
    check(soma__heap_tls, "the main heap after the racing rounds");
    return 0;
}

int main(void)
{
    test_begin("test_takeover");
    test_alone();
    test_racing();
    return test_summary();
}
