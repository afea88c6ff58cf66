/*
 * test_exchange.c: idle memory changes sides (DESIGN.md).  With a decay
 * far longer than the test (CTest sets SOMA_ARENA_DECAY_MS=60000 and no
 * purge thread), nothing goes back by age; what goes back goes because
 * the other side took fresh memory.  mincore is the judge.
 *
 *   cache -> pools  A 4 MiB large block is freed: cached, its pages
 *                   resident.  2 MiB of small blocks are then taken from
 *                   fresh pools: the cache gives back as much, from the
 *                   start of its oldest mapping (to within the batch the
 *                   pools settle in, 256 KiB), and those pages are gone.
 *   pools -> large  The small blocks are freed (one kept per arena): their
 *                   pools are empty and stay resident.  A large block 1 MiB
 *                   larger than all the cache holds is taken: the cached
 *                   pieces go into it and 1 MiB comes fresh, so as many of
 *                   the empty pools as that 1 MiB give their pages back, no
 *                   more, and the statistics count them as returned.
 */
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "purge.h"

enum { BLOCK = 64, SMALL_BYTES = 2 << 20, NBLOCKS = SMALL_BYTES / BLOCK };
#define LARGE ((size_t)4 << 20)
#define FRESH ((size_t)1 << 20)
#define BATCH ((size_t)256 << 10) /* pool.h's SOMA_SHED_BATCH */

static unsigned char *blocks[NBLOCKS];
static unsigned char kept[NBLOCKS];
static uintptr_t emptied[NBLOCKS];
static size_t nemptied, pool_size, arena_size;

static size_t resident_pools(void)
{
    size_t n = 0;
    for (size_t i = 0; i < nemptied; i++)
        n += test_resident_pages(emptied[i], pool_size) == pool_size / 4096;
    return n;
}

int main(void)
{
    test_begin("test_exchange");
    if (!CHECK_GE(test_env_ull("SOMA_ARENA_DECAY_MS", 0), 60000) ||
        !CHECK_EQ(test_env_ull("SOMA_BACKGROUND_PURGE", 2), 0))
        return test_summary(); /* CTest sets the environment */
    soma_stats s0, s1;
    soma_stats_get(&s0);
    pool_size = s0.pool_size;
    arena_size = s0.arena_size;

    /* cache -> pools */
    test_large_cache_ready(LARGE);
    unsigned char *big = soma_malloc(LARGE);
    if (!CHECK(big != NULL))
        return test_summary();
    memset(big, 0x5a, LARGE);
    soma_free(big);
    soma_stats_get(&s0);
    CHECK_GE(s0.large_map.cached_bytes, LARGE);
    CHECK_EQ(test_resident_pages((uintptr_t)big, LARGE), LARGE / 4096);
    for (size_t i = 0; i < NBLOCKS; i++) {
        blocks[i] = soma_malloc(BLOCK);
        if (!CHECK(blocks[i] != NULL))
            return test_summary();
        memset(blocks[i], (int)(i & 0xff), BLOCK);
    }
    soma_stats_get(&s1);
    size_t shed = s0.large_map.cached_bytes - s1.large_map.cached_bytes;
    test_note("pools grew by %zu KiB, the cache shed %zu KiB", (size_t)SMALL_BYTES >> 10,
              shed >> 10);
    CHECK_GE(shed + BATCH, (size_t)SMALL_BYTES);
    CHECK_LE(shed, (size_t)SMALL_BYTES + BATCH);
    /* what went, went from the mapping's start: gone from memory */
    CHECK_EQ(test_resident_pages((uintptr_t)big, shed), 0);
    CHECK_EQ(test_resident_pages((uintptr_t)big + shed, LARGE - shed), (LARGE - shed) / 4096);

    /* pools -> large: empty the pools (one block kept in each arena, so no
     * arena empties), then take more than the cache holds. */
    nemptied = purge_plan(blocks, NBLOCKS, pool_size, arena_size, kept, emptied);
    for (size_t i = 0; i < NBLOCKS; i++) {
        if (kept[i])
            continue;
        if (!CHECK_EQ(blocks[i][BLOCK - 1], (unsigned char)(i & 0xff)))
            break;
        soma_free(blocks[i]);
    }
    test_note("%zu pools emptied", nemptied);
    CHECK_GE(nemptied, (size_t)SMALL_BYTES / pool_size - 8);
    CHECK_EQ(resident_pools(), nemptied);
    soma_stats_get(&s0);
    size_t cached = s0.large_map.cached_bytes;
    /* (less the tail a hardened build keeps at a mapping's end: large.c) */
    size_t asked = cached + FRESH - (s0.medium_tail ? 8 : 0);
    unsigned char *fresh = soma_malloc(asked);
    if (!CHECK(fresh != NULL))
        return test_summary();
    soma_stats_get(&s1);
    size_t gone = nemptied - resident_pools();
    size_t counted = s1.returned.pools - s0.returned.pools;
    test_note("a block of %zu KiB, %zu KiB cached: %zu pools gave their pages back",
              (cached + FRESH) >> 10, cached >> 10, gone);
    /* the cached pieces went into the block, what they lacked came fresh */
    CHECK_GE(gone * pool_size, FRESH);
    CHECK_LT(gone * pool_size, FRESH + pool_size);
    CHECK_EQ(counted, gone);
    CHECK_EQ(s1.returned.pools_total - s0.returned.pools_total, gone); /* and the running total */
    memset(fresh, 0x33, asked);
    soma_free(fresh);
    return test_summary();
}
