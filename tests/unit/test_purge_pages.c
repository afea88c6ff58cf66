/*
 * test_purge_pages.c: the pages of empty pools leave, inside arenas still
 * in use, and come back (issue 15; src/pool/arena.c purge_pools).
 *
 * Several small arenas and several medium ones are filled with blocks of
 * a few classes, then every block is freed but one per arena (so no arena
 * empties and goes back whole: only pools can) and one per class (so no
 * pool is the last of its class when it empties, and none is parked: a
 * parked pool stays resident by design, pool.c).  The blocks are freed in
 * the order they were made: each class's kept pool is back on its class
 * list before any other pool of the class empties.  Once the pools are
 * older than SOMA_ARENA_DECAY_MS (CTest sets 300) something sweeps, and
 * the kernel is asked (mincore) what is resident:
 *
 *   call    soma_purge(0), with no purge thread;
 *   sweep   the owner's own sweep, on a pool transition (a free that
 *           empties a pool), with no purge thread;
 *   thread  nothing at all: SOMA_BACKGROUND_PURGE=1 (CTest sets it), and
 *           the program only sleeps and looks with mincore.
 *
 * Then, in each mode:
 *   - every pool the test emptied holds no resident page, while the pages
 *     of the kept blocks stay resident and their contents survive;
 *   - soma_stats.returned.pools and .medium_pools equal the hand count of
 *     the pools mincore says are wholly gone, kind by kind, and
 *     pools_total grew by as many; soma_purge(0) says it gave back that
 *     many pools' bytes;
 *   - the heap's invariants hold (soma__check_heap);
 *   - allocating the same blocks again maps no arena: the pools are put
 *     back to work in place, their pages come back (resident once
 *     written), a block carved from a returned pool reads zeros past its
 *     link word (fresh pages, not the old contents), what is written
 *     survives, and the returned counts fall to the pools still gone;
 *   - a soma_purge(1) then leaves every pool in use alone (their contents
 *     and pages stay), and the invariants hold at the end.
 */
#include <stdlib.h>

#include "malloc/malloc.h"
#include "test.h"
#include "purge.h"

enum { SMALL_BYTES = 4 << 20, MEDIUM_BYTES = 3 << 20 };

typedef struct {
    unsigned char *p;
    size_t size;
    int kept;
} blk_t;

typedef struct {
    uintptr_t base;
    unsigned kind;
    int kept;      /* holds a kept block */
    int reused;    /* holds a block of the second round */
} pool_rec_t;

static blk_t *blocks;
static size_t nblocks;
static pool_rec_t *pools;
static size_t npools;

static unsigned char pattern(size_t i, int round)
{
    return (unsigned char)(i * 131 + 17 + round * 71) | 1; /* never 0 */
}

static uintptr_t pool_base(const void *p)
{
    return (uintptr_t)p & ~(uintptr_t)SOMA_POOL_MASK;
}

static uintptr_t arena_base(const void *p)
{
    return (uintptr_t)p & ~(uintptr_t)(SOMA_ARENA_SIZE - 1);
}

static void check_heap(const char *when)
{
    char why[256];
    if (!CHECK_EQ(soma__check_heap(soma__heap_current(), why, sizeof why), 0))
        test_note("  %s: %s", when, why);
}

static int cmp_pool(const void *a, const void *b)
{
    uintptr_t x = ((const pool_rec_t *)a)->base, y = ((const pool_rec_t *)b)->base;
    return x < y ? -1 : x > y;
}

static pool_rec_t *find_pool(uintptr_t base)
{
    pool_rec_t key = {.base = base};
    return bsearch(&key, pools, npools, sizeof *pools, cmp_pool);
}

/* Blocks of `sizes` in turn until `bytes` are handed out. */
static void fill(const size_t *sizes, size_t nsizes, size_t bytes)
{
    for (size_t made = 0, i = 0; made < bytes; i++) {
        size_t size = sizes[i % nsizes];
        unsigned char *p = soma_malloc(size);
        if (!CHECK(p != NULL))
            return;
        memset(p, pattern(nblocks, 0), size);
        blocks[nblocks++] = (blk_t){p, size, 0};
        made += size;
    }
}

/* Is every byte of block i still what round `round` wrote? */
static int intact(size_t i, int round)
{
    unsigned char want = pattern(i, round);
    for (size_t k = 0; k < blocks[i].size; k++)
        if (blocks[i].p[k] != want)
            return 0;
    return 1;
}

/* Among the pools the test emptied: how many of each kind are wholly not
 * resident, and how many are (partly) resident. */
static void count_gone(size_t gone[SOMA_NUM_KINDS], size_t *resident, int skip_reused)
{
    gone[0] = gone[1] = 0;
    *resident = 0;
    for (size_t i = 0; i < npools; i++) {
        if (pools[i].kept || (skip_reused && pools[i].reused))
            continue;
        if (purge_pool_resident(pools[i].base, SOMA_POOL_SIZE) == 0)
            gone[pools[i].kind]++;
        else
            (*resident)++;
    }
}

/* The sweep mode's trigger pool: emptied by the test too (it parks), and
 * given back like the others once it has been parked for the decay, if
 * the run is slow enough for a later sweep to find it so.  1 if it is
 * wholly gone now. */
static uintptr_t trigger_pool;

static size_t trigger_gone(void)
{
    return trigger_pool != 0 && purge_pool_resident(trigger_pool, SOMA_POOL_SIZE) == 0;
}

int main(int argc, char **argv)
{
    test_begin("test_purge_pages");
    const char *mode = argc > 1 ? argv[1] : "call";
    int by_thread = strcmp(mode, "thread") == 0, by_sweep = strcmp(mode, "sweep") == 0;
    test_note("mode %s", mode);
    long decay = soma__options.decay_ms;
    if (!CHECK(decay >= 100) || !CHECK_EQ(soma__options.purge_thread, by_thread))
        return test_summary(); /* CTest sets the environment */
    /* Only the thread asked for may do the work: the other modes prove
     * that their own trigger did it. */
    if (by_thread)
        CHECK(purge_thread_start(decay));
    CHECK_EQ(purge_threads(), by_thread);

    soma_stats st0, st;
    soma_stats_get(&st0);
    CHECK_EQ(st0.returned.pools + st0.returned.medium_pools, 0);

    size_t small_sizes[] = {16, 48, 128, 320, 512};
    size_t medium_sizes[3] = {st0.medium.classes[0].size,
                              st0.medium.classes[st0.medium.num_classes / 2].size,
                              st0.medium.max_size};
    size_t cap = SMALL_BYTES / 16 + MEDIUM_BYTES / 512 + 16;
    blocks = calloc(cap, sizeof *blocks);
    pools = calloc(cap, sizeof *pools);
    if (!CHECK(blocks != NULL && pools != NULL))
        return test_summary();
    fill(small_sizes, 5, SMALL_BYTES);
    fill(medium_sizes, 3, MEDIUM_BYTES);
    size_t first_round = nblocks;

    /* The sweep mode's trigger: a block of a class nothing else uses, whose
     * free (its pool empties: a transition) comes after the decay. */
    void *trigger = by_sweep ? soma_malloc(100) : NULL;
    trigger_pool = trigger != NULL ? pool_base(trigger) : 0;

    /* Keep the first block of each class and of each arena. */
    {
        uintptr_t seen_arena[64];
        size_t nseen = 0, seen_size[8], nsizes = 0;
        for (size_t i = 0; i < nblocks; i++) {
            uintptr_t a = arena_base(blocks[i].p);
            int new_arena = 1, new_size = 1;
            for (size_t k = 0; k < nseen; k++)
                new_arena &= seen_arena[k] != a;
            for (size_t k = 0; k < nsizes; k++)
                new_size &= seen_size[k] != blocks[i].size;
            if (new_arena && nseen < 64)
                seen_arena[nseen++] = a;
            if (new_size)
                seen_size[nsizes++] = blocks[i].size;
            blocks[i].kept = new_arena || new_size;
        }
        test_note("%zu blocks in %zu arenas", nblocks, nseen);
        CHECK_GE(nseen, 6); /* several of each kind */
    }
    /* Every pool the test's blocks lie in, and whether a kept one is there. */
    for (size_t i = 0; i < nblocks; i++)
        pools[i] = (pool_rec_t){pool_base(blocks[i].p),
                                blocks[i].size > SOMA_SMALL_THRESHOLD ? SOMA_KIND_MEDIUM
                                                                      : SOMA_KIND_SMALL,
                                0, 0};
    qsort(pools, nblocks, sizeof *pools, cmp_pool);
    for (size_t i = 0; i < nblocks; i++)
        if (npools == 0 || pools[npools - 1].base != pools[i].base)
            pools[npools++] = pools[i];
    for (size_t i = 0; i < nblocks; i++)
        if (blocks[i].kept)
            find_pool(pool_base(blocks[i].p))->kept = 1;
    size_t emptied = 0;
    for (size_t i = 0; i < npools; i++)
        emptied += !pools[i].kept;
    test_note("%zu pools, %zu of them to be emptied", npools, emptied);
    CHECK_GE(emptied, 200);

    uint64_t t0 = test_now_ms();
    for (size_t i = 0; i < nblocks; i++)
        if (!blocks[i].kept)
            soma_free(blocks[i].p);
    uint64_t freed_ms = test_now_ms() - t0;
    size_t gone[SOMA_NUM_KINDS], resident;
    /* Just emptied, young: nothing has gone yet.  Judged only if the look
     * ended before the first pool freed was a decay old: the purge thread
     * may rightly take it then, and in the other modes a free that empties
     * a pool sweeps too (at most every quarter decay). */
    count_gone(gone, &resident, 0);
    soma_stats_get(&st);
    test_note("freeing took %llu ms", (unsigned long long)freed_ms);
    if (test_young(t0, (uint64_t)decay - 20, "nothing gone before the decay")) {
        CHECK_EQ(gone[0] + gone[1], 0);
        CHECK_EQ(resident, emptied);
        CHECK_EQ(st.returned.pools + st.returned.medium_pools, 0);
    }
    check_heap("emptied");

    /* Past the decay, then the trigger. */
    size_t purged = 0;
    if (by_thread) {
        /* No call into soma until the thread has done it (or 5 s passed):
         * mincore and nanosleep only. */
        uint64_t start = test_now_ms();
        do {
            test_sleep_ms(20);
            count_gone(gone, &resident, 0);
        } while (resident > 0 && test_now_ms() - start < 5000);
        test_note("the thread had them all after %llu ms",
                  (unsigned long long)(test_now_ms() - start));
    } else {
        test_sleep_ms(decay + 150);
        if (by_sweep)
            soma_free(trigger); /* its pool parks: a sweep, at most a quarter decay apart */
        else
            purged = soma_purge(0);
    }

    count_gone(gone, &resident, 0);
    test_note("%zu small and %zu medium pools not resident, %zu resident", gone[0], gone[1],
              resident);
    CHECK_EQ(resident, 0);
    CHECK_EQ(gone[0] + gone[1], emptied);
    if (!by_thread && !by_sweep)
        CHECK_EQ(purged, emptied * SOMA_POOL_SIZE);
    soma_stats_get(&st);
    CHECK_EQ(st.returned.pools, gone[SOMA_KIND_SMALL] + trigger_gone());
    CHECK_EQ(st.returned.medium_pools, gone[SOMA_KIND_MEDIUM]);
    CHECK_EQ(st.returned.pools_total - st0.returned.pools_total, emptied);
    /* Only pools went: every arena is still there. */
    CHECK_EQ(st.arenas_reclaimed, st0.arenas_reclaimed);
    CHECK_EQ(st.medium.arenas_reclaimed, st0.medium.arenas_reclaimed);
    /* The kept blocks: their pages are there, and so are their contents. */
    for (size_t i = 0; i < first_round; i++) {
        if (!blocks[i].kept)
            continue;
        if (!CHECK_GT(test_resident_pages((uintptr_t)blocks[i].p, blocks[i].size), 0) ||
            !CHECK(intact(i, 0)))
            break;
    }
    check_heap("purged");

    /* The same blocks again: back in the same pools, no new arena. */
    size_t arenas = st.arenas_allocated_total + st.medium.arenas_allocated_total;
    size_t fresh_checked = 0;
    for (size_t i = 0; i < first_round; i++) {
        if (blocks[i].kept)
            continue;
        unsigned char *p = soma_malloc(blocks[i].size);
        if (!CHECK(p != NULL))
            break;
        pool_rec_t *r = find_pool(pool_base(p));
        if (r != NULL && !r->kept && !r->reused) {
            /* The first block of a pool whose pages went back: fresh zeros
             * past the free list's link word. */
            r->reused = 1;
            size_t nonzero = 0;
            for (size_t k = 16; k < blocks[i].size; k++)
                nonzero += p[k] != 0;
            CHECK_EQ(nonzero, 0);
            fresh_checked++;
        }
        blocks[i].p = p;
        memset(p, pattern(i, 1), blocks[i].size);
        if (!CHECK_GT(test_resident_pages((uintptr_t)p, blocks[i].size), 0))
            break;
    }
    test_note("%zu returned pools put back to work", fresh_checked);
    CHECK_GT(fresh_checked, 0);
    soma_stats_get(&st);
    CHECK_EQ(st.arenas_allocated_total + st.medium.arenas_allocated_total, arenas);
    /* What was not put back to work is still gone, and counted so. */
    count_gone(gone, &resident, 1);
    CHECK_EQ(resident, 0);
    CHECK_EQ(st.returned.pools, gone[SOMA_KIND_SMALL] + trigger_gone());
    CHECK_EQ(st.returned.medium_pools, gone[SOMA_KIND_MEDIUM]);
    check_heap("reused");

    /* Everything soma keeps goes back; nothing in use does. */
    soma_purge(1);
    for (size_t i = 0; i < first_round; i++)
        if (!CHECK(intact(i, !blocks[i].kept)) ||
            !CHECK_GT(test_resident_pages((uintptr_t)blocks[i].p, blocks[i].size), 0))
            break;
    check_heap("purged again");

    for (size_t i = 0; i < first_round; i++)
        soma_free(blocks[i].p);
    check_heap("all freed");
    free(blocks);
    free(pools);
    return test_summary();
}
