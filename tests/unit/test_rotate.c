/*
 * test_rotate: the life of a full pool (src/pool/pool.c), with the heap's
 * internal view and soma__check_heap after every step:
 *
 *   - a pool that fills while it is alone on its class list leaves it,
 *     marked unlisted; a free into it relinks it, second;
 *   - a pool that fills while others are listed stays on the list, last,
 *     and the head moves to the next pool with a free block; a free into
 *     that full, listed pool is a plain push (the list does not change);
 *   - when malloc comes round to full pools, it takes them off the list on
 *     its way to a pool with a block, and the class list empties when
 *     every pool is full;
 *   - a live block whose first word happens to look like a free-list link
 *     (hardened builds: it decodes to "end of list") is freed like any
 *     other: its pool, which still has live blocks, stays where it is, and
 *     their contents survive.
 */
#include <stdint.h>
#include <string.h>

#include "malloc/malloc.h"
#include "test.h"

#define SIZE 336 /* class 20: nothing else in this test uses it */
/* soma's own index of the class (its plain twin, hardened: config.h) */
#define CLASS soma__sizeclass_small(SIZE)

static heap_t *heap;

static void check(const char *when)
{
    char why[256];
    if (!CHECK_EQ(soma__check_heap(heap, why, sizeof why), 0))
        test_note("%s: %s", when, why);
}

static int unlisted(const pool_t *pool)
{
    return (soma__pool_count_raw(pool) & SOMA_POOL_UNLISTED) != 0;
}

/* The class list, head first, as pools' indices in `pools` (-1: another). */
static int list_is(pool_t **pools, int npools, const int *want, int nwant)
{
    const pool_t *head = heap->usedpools[CLASS], *q = head;
    int i = 0;
    if (head == NULL)
        return nwant == 0;
    do {
        int idx = -1;
        for (int k = 0; k < npools; k++)
            if (pools[k] == q)
                idx = k;
        if (i >= nwant || want[i] != idx)
            return 0;
        i++;
        q = q->nextpool;
    } while (q != head);
    return i == nwant;
}

static int test_rotation(void)
{
    const size_t cap = soma__sizeclass_capacity(CLASS);
    void **b = calloc(3 * cap, sizeof *b);
    REQUIRE(b != NULL);
    /* A and B fill; C gets one block. */
    for (size_t i = 0; i < 2 * cap + 1; i++) {
        b[i] = soma_malloc(SIZE);
        REQUIRE(b[i] != NULL);
        memset(b[i], (int)(i & 0xff), SIZE);
    }
    heap = soma__heap_tls;
    pool_t *p[3] = {soma__pool_of(b[0]), soma__pool_of(b[cap]), soma__pool_of(b[2 * cap])};
    CHECK(p[0] != p[1] && p[1] != p[2] && p[0] != p[2]);
    /* A and B each filled alone on the list: both unlisted. */
    CHECK(unlisted(p[0]) && unlisted(p[1]) && !unlisted(p[2]));
    CHECK(list_is(p, 3, (int[]){2}, 1));
    check("after filling");

    /* A free into an unlisted pool relinks it second. */
    soma_free(b[5]);
    b[5] = NULL;
    soma_free(b[cap + 7]);
    b[cap + 7] = NULL;
    CHECK(!unlisted(p[0]) && !unlisted(p[1]));
    CHECK(list_is(p, 3, (int[]){2, 1, 0}, 3));
    check("after relinking");

    /* C fills while B and A are listed: it stays, last; B serves. */
    for (size_t i = 2 * cap + 1; i < 3 * cap; i++)
        b[i] = soma_malloc(SIZE);
    CHECK_EQ(soma__pool_count_raw(p[2]), cap);
    CHECK(list_is(p, 3, (int[]){1, 0, 2}, 3));
    check("after C filled");

    /* A free into full, listed C: a plain push, the list as it was. */
    soma_free(b[2 * cap + 3]);
    b[2 * cap + 3] = NULL;
    CHECK_EQ(soma__pool_count_raw(p[2]), cap - 1);
    CHECK(list_is(p, 3, (int[]){1, 0, 2}, 3));
    check("after a free into a listed full pool");

    /* B's one block, A's one block, C's one block: the last malloc finds
     * B and A full on its way round and takes them off; C, full and alone,
     * leaves too. */
    void *x = soma_malloc(SIZE), *y = soma_malloc(SIZE), *z = soma_malloc(SIZE);
    CHECK(soma__pool_of(x) == p[1] && soma__pool_of(y) == p[0] && soma__pool_of(z) == p[2]);
    CHECK(unlisted(p[0]) && unlisted(p[1]) && unlisted(p[2]));
    CHECK(heap->usedpools[CLASS] == NULL);
    check("after every pool filled");

    /* Contents survive. */
    for (size_t i = 0; i < 3 * cap; i++) {
        if (b[i] == NULL || i >= 2 * cap + 1)
            continue;
        unsigned char *u = b[i];
        if (!CHECK_EQ(u[SIZE - 1], i & 0xff))
            break;
    }
    for (size_t i = 0; i < 3 * cap; i++)
        soma_free(b[i]);
    soma_free(x);
    soma_free(y);
    soma_free(z);
    check("after freeing everything");
    free(b);
    return 0;
}

static int test_looks_free(void)
{
#if SOMA_HARDEN_DF
    void *a = soma_malloc(SIZE), *p = soma_malloc(SIZE), *c = soma_malloc(SIZE);
    REQUIRE(a != NULL && p != NULL && c != NULL);
    memset(a, 0xa5, SIZE);
    memset(c, 0x5a, SIZE);
    pool_t *pool = soma__pool_of(p);
    unsigned before = soma__pool_count(pool);
    /* The one value that decodes to "end of list" (link.h). */
    uintptr_t word = soma__link_mask(p) ^ (uintptr_t)soma__link_end(p);
    memcpy(p, &word, sizeof word);
    CHECK(soma__link_looks_free(p));
    soma_free(p);
    CHECK_EQ(soma__pool_count(pool), before - 1);
    CHECK(soma__pool_of(a) == pool && pool->heap == soma__heap_tls);
    check("after freeing a block that looked free");
    unsigned char *ua = a, *uc = c;
    CHECK_EQ(ua[0], 0xa5);
    CHECK_EQ(ua[SIZE - 1], 0xa5);
    CHECK_EQ(uc[0], 0x5a);
    /* The pool still serves: the freed block comes back first. */
    void *q = soma_malloc(SIZE);
    CHECK_PTR_EQ(q, p);
    soma_free(q);
    soma_free(a);
    soma_free(c);
    check("after freeing the rest");
#else
    test_note("unhardened build: no double-free test on the fast path, nothing to check");
#endif
    return 0;
}

int main(void)
{
    test_begin("test_rotate");
    test_rotation();
    test_looks_free();
    return test_summary();
}
