/*
 * test_heap_destroy_purge.c: soma_heap_destroy takes everything of the
 * heap back, whatever state its pools are in (issue 15): in use, full,
 * empty and resident, empty with their pages given back (soma_purge), and
 * holding blocks that other threads freed onto the heap's remote stack and
 * that nobody collected yet; and its large blocks.  CTest runs it twice:
 * with no decay, and with a 5 ms decay and the purge thread sweeping every
 * heap (this one included) while the test works.
 *
 * Each round:
 *   - a new heap gets two full pools of every small and medium class, and
 *     large blocks of several sizes (malloc and calloc), all written;
 *   - the second pool of each class is emptied (its blocks freed, then
 *     one block of the first pool, so that the first pool is listed again
 *     before the second empties and the second goes back to its arena
 *     rather than parking), a miss collects those frees, and soma_purge(1)
 *     gives the empty pools' pages back: the heap's statistics show
 *     returned pools, and mincore finds those pools empty of pages;
 *   - three threads free a share of the blocks left (onto the heap's remote
 *     stack: an explicit heap's frees are always remote) and exit;
 *   - the heap is destroyed.
 * Then mincore finds no resident page in any arena the heap used nor in
 * any of its large blocks, the process's statistics are the baseline's
 * again (arenas, blocks, large blocks and mappings, returned pools,
 * totals), and a new heap works: every class and a large block, contents
 * checked, soma__check_heap clean, and destroyed in turn.
 */
#include <pthread.h>
#include <stdlib.h>

#include "malloc/malloc.h"
#include "test.h"
#include "purge.h"

enum { ROUNDS = 3, FREERS = 3, NLARGE = 6 };

static const size_t large_sizes[NLARGE] = {9000, 40000, 65536, 300000, 1 << 20, 3 << 20};

typedef struct {
    unsigned char *p;
    size_t size;
} blk_t;

static blk_t *blocks;  /* every small and medium block of the round */
static size_t nblocks;
static size_t freer_from[FREERS + 1]; /* each freer's share of blocks[] */

static void check_heap(heap_t *h, const char *when)
{
    char why[256];
    if (!CHECK_EQ(soma__check_heap(h, why, sizeof why), 0))
        test_note("  %s: %s", when, why);
}

static void *freer(void *arg)
{
    size_t id = (size_t)arg;
    for (size_t i = freer_from[id]; i < freer_from[id + 1]; i++)
        if (blocks[i].p != NULL && i % 3 == id) {
            soma_free(blocks[i].p); /* onto the heap's remote stack */
            blocks[i].p = NULL;
        }
    return NULL;
}

/* Everything the process's statistics say must be back to the baseline. */
static void check_baseline(const soma_stats *b, const soma_stats *s)
{
    CHECK_EQ(s->arenas_current, b->arenas_current);
    CHECK_EQ(s->medium.arenas_current, b->medium.arenas_current);
    CHECK_EQ(s->total, b->total);
    CHECK_EQ(s->medium.total, b->medium.total);
    CHECK_EQ(test_blocks_in_use(s), test_blocks_in_use(b));
    size_t mb = 0, ms = 0;
    for (size_t i = 0; i < s->medium.num_classes; i++) {
        mb += b->medium.classes[i].blocks_in_use;
        ms += s->medium.classes[i].blocks_in_use;
    }
    CHECK_EQ(ms, mb);
    CHECK_EQ(s->large.blocks_in_use, b->large.blocks_in_use);
    CHECK_EQ(s->large.bytes_in_use, b->large.bytes_in_use);
    CHECK_EQ(s->large_map.bytes_mapped, b->large_map.bytes_mapped);
    CHECK_EQ(s->large_map.cached_bytes, b->large_map.cached_bytes);
    CHECK_EQ(s->returned.pools, b->returned.pools);
    CHECK_EQ(s->returned.medium_pools, b->returned.medium_pools);
}

static int cmp_uptr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

static void round_of(int round, const soma_stats *base)
{
    soma_heap *h = soma_heap_new();
    if (!CHECK(h != NULL))
        return;
    nblocks = 0;
    /* Two full pools of every class, small then medium. */
    size_t first_of[SOMA_NUM_ALL_CLASSES], cap_of[SOMA_NUM_ALL_CLASSES];
    for (unsigned c = 0; c < SOMA_NUM_ALL_CLASSES; c++) {
        size_t size = soma__sizeclass_usable(c), cap = soma__sizeclass_capacity(c);
        first_of[c] = nblocks;
        cap_of[c] = cap;
        for (size_t i = 0; i < 2 * cap; i++) {
            unsigned char *p = soma_heap_malloc(h, size);
            if (!CHECK(p != NULL))
                return;
            memset(p, (int)(c + round) | 1, size);
            blocks[nblocks++] = (blk_t){p, size};
        }
    }
    blk_t large[NLARGE];
    for (int i = 0; i < NLARGE; i++) {
        size_t n = large_sizes[i];
        large[i].p = i % 2 ? soma_heap_calloc(h, 1, n) : soma_heap_malloc(h, n);
        large[i].size = n;
        if (!CHECK(large[i].p != NULL))
            return;
        memset(large[i].p, 0x77, n);
    }
    /* The arenas the heap uses (a block at each end of each pool spans
     * them all). */
    uintptr_t *arenas = malloc(nblocks * sizeof *arenas);
    size_t narenas = 0;
    for (size_t i = 0; i < nblocks; i++)
        arenas[narenas++] = (uintptr_t)blocks[i].p & ~(uintptr_t)(SOMA_ARENA_SIZE - 1);
    qsort(arenas, narenas, sizeof *arenas, cmp_uptr);
    size_t k = 0;
    for (size_t i = 0; i < narenas; i++)
        if (k == 0 || arenas[k - 1] != arenas[i])
            arenas[k++] = arenas[i];
    narenas = k;

    uintptr_t second_pool[SOMA_NUM_ALL_CLASSES];
    for (unsigned c = 0; c < SOMA_NUM_ALL_CLASSES; c++)
        second_pool[c] = (uintptr_t)blocks[first_of[c] + cap_of[c]].p & ~(uintptr_t)SOMA_POOL_MASK;
    /* Empty every class's second pool; the first pool's block 0 last, so
     * that it is collected first (the remote stack is LIFO). */
    for (unsigned c = 0; c < SOMA_NUM_ALL_CLASSES; c++)
        for (size_t i = cap_of[c]; i < 2 * cap_of[c]; i++) {
            soma_free(blocks[first_of[c] + i].p);
            blocks[first_of[c] + i].p = NULL;
        }
    for (unsigned c = 0; c < SOMA_NUM_ALL_CLASSES; c++) {
        soma_free(blocks[first_of[c]].p);
        blocks[first_of[c]].p = NULL;
    }
    /* Every class's pools are full: this misses, and collects. */
    void *miss = soma_heap_malloc(h, 16);
    CHECK(miss != NULL);
    check_heap((heap_t *)h, "second pools emptied");
    soma_purge(1);
    soma_stats hs;
    soma_heap_stats_get(h, &hs);
    size_t returned = hs.returned.pools + hs.returned.medium_pools;
    if (round == 0)
        test_note("%zu blocks in %zu arenas; %zu pools returned before the destroy", nblocks,
                  narenas, returned);
    CHECK_EQ(returned, SOMA_NUM_ALL_CLASSES);
    /* mincore agrees: those pools hold no page. */
    size_t gone = 0;
    for (unsigned c = 0; c < SOMA_NUM_ALL_CLASSES; c++)
        gone += test_resident_pages(second_pool[c], SOMA_POOL_SIZE) == 0;
    CHECK_EQ(gone, returned);
    check_heap((heap_t *)h, "purged");

    /* Frees in flight: other threads put a share on the remote stack. */
    for (int t = 0; t <= FREERS; t++)
        freer_from[t] = nblocks * (size_t)t / FREERS;
    pthread_t th[FREERS];
    for (size_t t = 0; t < FREERS; t++)
        CHECK_EQ(pthread_create(&th[t], NULL, freer, (void *)t), 0);
    for (size_t t = 0; t < FREERS; t++)
        pthread_join(th[t], NULL);
    CHECK(atomic_load(&((heap_t *)h)->remote) != NULL); /* not collected */

    soma_heap_destroy(h);

    size_t resident = 0;
    for (size_t i = 0; i < narenas; i++)
        resident += test_resident_pages(arenas[i], SOMA_ARENA_SIZE);
    for (int i = 0; i < NLARGE; i++)
        resident += test_resident_pages((uintptr_t)large[i].p, large[i].size);
    CHECK_EQ(resident, 0);
    free(arenas);

    soma_stats st;
    soma_stats_get(&st);
    check_baseline(base, &st);

    /* A new heap works. */
    soma_heap *h2 = soma_heap_new();
    if (!CHECK(h2 != NULL))
        return;
    unsigned char *p2[SOMA_NUM_ALL_CLASSES];
    for (unsigned c = 0; c < SOMA_NUM_ALL_CLASSES; c++) {
        p2[c] = soma_heap_malloc(h2, soma__sizeclass_usable(c));
        if (!CHECK(p2[c] != NULL))
            return;
        memset(p2[c], (int)c, soma__sizeclass_usable(c));
    }
    unsigned char *big = soma_heap_malloc(h2, 100000);
    if (!CHECK(big != NULL))
        return;
    memset(big, 0x42, 100000);
    check_heap((heap_t *)h2, "a new heap");
    for (unsigned c = 0; c < SOMA_NUM_ALL_CLASSES; c++) {
        size_t bad = 0;
        for (size_t i = 0; i < soma__sizeclass_usable(c); i++)
            bad += p2[c][i] != (unsigned char)c;
        CHECK_EQ(bad, 0);
    }
    CHECK_EQ(big[99999], 0x42);
    soma_heap_destroy(h2);
    soma_stats_get(&st);
    check_baseline(base, &st);
}

int main(void)
{
    test_begin("test_heap_destroy_purge");
    test_note("decay %ld ms, purge thread %s", soma__options.decay_ms,
              purge_threads() > 0 ? "on" : "off");
    size_t cap = 0;
    for (unsigned c = 0; c < SOMA_NUM_ALL_CLASSES; c++)
        cap += 2 * soma__sizeclass_capacity(c);
    blocks = calloc(cap, sizeof *blocks);
    if (!CHECK(blocks != NULL))
        return test_summary();
    soma_stats base;
    soma_stats_get(&base);
    for (int round = 0; round < ROUNDS; round++)
        round_of(round, &base);
    free(blocks);
    return test_summary();
}
