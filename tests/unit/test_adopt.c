/*
 * test_adopt: a thread whose first call is a free of a block of an exited
 * thread's heap adopts that heap (src/heap/heap.c: soma__heap_adopt):
 *
 *   - thread A allocates blocks of several classes and exits: its heap is
 *     an orphan.  Thread B's first call frees one of them: B's heap is now
 *     A's, no longer an orphan, and B's later frees of A's blocks are
 *     local (nothing waits on a remote stack), with contents intact and
 *     the blocks in use equal to the hand count;
 *   - a thread whose first call frees a block of a live thread's heap
 *     adopts nothing: the free goes to that heap's remote stack, and the
 *     thread's own first malloc gives it a heap of its own;
 *   - soma__check_heap passes throughout.
 */
#include <pthread.h>
#include <string.h>

#include "malloc/malloc.h"
#include "test.h"

#define N 2000
static void *blocks[N];
static heap_t *a_heap;

static size_t size_of(size_t i)
{
    return 16 + (i * 37) % 1000; /* small and medium classes */
}

static size_t in_use(void)
{
    soma_stats st;
    soma_stats_get(&st);
    size_t n = test_blocks_in_use(&st);
    for (size_t c = 0; c < st.medium.num_classes; c++)
        n += st.medium.classes[c].blocks_in_use;
    return n;
}

static void check(heap_t *h, const char *what)
{
    char why[256];
    if (!CHECK_EQ(soma__check_heap(h, why, sizeof why), 0))
        test_note("%s: %s", what, why);
}

static void *thread_a(void *arg)
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

static _Atomic int b_ok;

static void *thread_b(void *arg)
{
    (void)arg;
    int ok = CHECK(soma__heap_tls == &soma__heap_empty);
    soma_free(blocks[0]); /* the first call */
    ok &= CHECK(soma__heap_tls == a_heap);
    ok &= CHECK(!atomic_load(&a_heap->orphaned));
    for (size_t i = 1; i < N; i++) {
        const unsigned char *u = blocks[i];
        if (!CHECK(u[0] == i % 251 && u[size_of(i) - 1] == i % 251)) {
            ok = 0;
            break;
        }
        soma_free(blocks[i]);
    }
    ok &= CHECK(atomic_load(&a_heap->remote) == NULL);
    check(a_heap, "A's heap, adopted by B, after B freed A's blocks");
    atomic_store(&b_ok, ok);
    return NULL;
}

static void *block_for_c;
static heap_t *c_heap_after_free;

static void *thread_c(void *arg)
{
    (void)arg;
    soma_free(block_for_c); /* a live heap's block: no adoption */
    c_heap_after_free = soma__heap_tls;
    void *q = soma_malloc(64);
    soma_free(q);
    return NULL;
}

int main(void)
{
    test_begin("test_adopt");
    size_t base = in_use();
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, thread_a, NULL) == 0);
    pthread_join(t, NULL);
    for (size_t i = 0; i < N; i++)
        REQUIRE(blocks[i] != NULL);
    REQUIRE(a_heap != NULL);
    CHECK(atomic_load(&a_heap->orphaned));
    CHECK_EQ(in_use(), base + N);
    REQUIRE(pthread_create(&t, NULL, thread_b, NULL) == 0);
    pthread_join(t, NULL);
    CHECK(atomic_load(&b_ok));
    CHECK_EQ(in_use(), base);

    /* The main thread's heap is live: a thread freeing its block adopts
     * nothing. */
    block_for_c = soma_malloc(100);
    heap_t *me = soma__heap_tls;
    REQUIRE(pthread_create(&t, NULL, thread_c, NULL) == 0);
    pthread_join(t, NULL);
    CHECK(c_heap_after_free == &soma__heap_empty);
    /* The main thread has not allocated since: C's free waits on its
     * remote stack, alone. */
    CHECK(atomic_load(&me->remote) == block_for_c);
    CHECK_EQ(in_use(), base); /* the walk collects the pending free */
    check(me, "the main heap");
    return test_summary();
}
