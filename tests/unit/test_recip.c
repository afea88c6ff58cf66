/*
 * test_recip: the per-class reciprocals that find a block without a
 * division (src/pool/sizeclass.h), checked against the division at every
 * byte offset of a pool, for every class:
 *
 *   - this build's table (soma__sizeclass_recip), through the pool
 *     layer's two users of it: soma__pool_block_start (the block that holds
 *     a byte, NULL in the header and in the tail) and
 *     soma__pool_starts_block (does a byte start a block) and the free
 *     fast path's form of it, soma__pool_fast_starts (the same, but no
 *     block of a medium pool in a build with medium tails, nor the last
 *     block of a tailed small pool), both also
 *     with debug mode's origin (the pool's end), where no offset may pass;
 *   - the same formulas (SOMA_RECIP_MUL, SOMA_RECIP_BOUND_IN) for both
 *     geometries, 16 KiB pools (the default) and 4 KiB pools
 *     (-DSOMA_GEOMETRY=py38), whichever this build is, with the classes
 *     made from the pool size as base/config.h makes them.
 *
 * Exhaustive, so it is the proof of the cases sizeclass.h does not argue
 * (offsets inside the pool header, debug mode's origin).
 */
#include <stdint.h>

#include "pool/pool.h"
#include "test.h"

/* The division's answers for offset o in a pool of pool_size bytes with
 * blocks of size bytes: the block's start offset, or NONE. */
#define NONE SIZE_MAX
static size_t start_by_division(size_t o, size_t size, size_t pool_size)
{
    if (o < SOMA_POOL_OVERHEAD)
        return NONE;
    size_t q = (o - SOMA_POOL_OVERHEAD) / size;
    if (q >= (pool_size - SOMA_POOL_OVERHEAD) / size)
        return NONE; /* the tail */
    return SOMA_POOL_OVERHEAD + q * size;
}

/* The multiply's answer to "does offset o start a block", as the fast path
 * computes it. */
static int starts(uint32_t mul, uint32_t bound, size_t o, uint32_t origin)
{
    uint32_t x = (uint32_t)o - origin;
    return (uint32_t)(x * mul) <= bound;
}

/* Every offset of a pool of pool_size bytes, for blocks of size bytes. */
static void check_formula(size_t size, size_t pool_size)
{
    uint32_t mul = SOMA_RECIP_MUL(size);
    uint32_t bound = SOMA_RECIP_BOUND_IN(size, pool_size);
    long bad = 0, bad_debug = 0;
    size_t first = 0;
    for (size_t o = 0; o < pool_size; o++) {
        size_t want = start_by_division(o, size, pool_size);
        /* the index, as soma__pool_block_start computes it */
        uint32_t x = (uint32_t)o - (uint32_t)SOMA_POOL_OVERHEAD;
        uint64_t q = ((uint64_t)x * mul) >> 32;
        size_t got = SOMA_POOL_OVERHEAD + (q + 1) * size > pool_size
                         ? NONE
                         : SOMA_POOL_OVERHEAD + q * size;
        int ok = got == want && starts(mul, bound, o, SOMA_POOL_OVERHEAD) == (want == o);
        if (!ok && bad++ == 0)
            first = o;
        bad_debug += starts(mul, bound, o, (uint32_t)pool_size);
    }
    if (!CHECK_EQ(bad, 0))
        test_note("  %zu-byte blocks, %zu-byte pools: first wrong offset %zu", size, pool_size,
                  first);
    if (!CHECK_EQ(bad_debug, 0))
        test_note("  %zu-byte blocks, %zu-byte pools: debug mode's origin lets offsets pass", size,
                  pool_size);
}

/* The classes of a geometry, made as base/config.h makes them. */
static int check_geometry(size_t pool_size)
{
    int n = 0;
    for (size_t s = 16; s <= SOMA_SMALL_THRESHOLD; s += 16, n++)
        check_formula(s, pool_size);
    for (size_t k = 64; k >= 2; k--) {
        size_t s = (pool_size - SOMA_POOL_OVERHEAD) / k & ~(size_t)15;
        if (s > SOMA_SMALL_THRESHOLD) {
            check_formula(s, pool_size);
            n++;
        }
    }
    return n;
}

/* This build's table, through the pool layer's functions. */
static void check_table(void)
{
    /* Nothing is read at base: any pool-aligned address will do. */
    pool_t pool = {.base = (char *)(uintptr_t)(SOMA_POOL_SIZE * 1000)};
    for (unsigned c = 0; c < SOMA_NUM_ALL_CLASSES; c++) {
        size_t size = soma__sizeclass_size(c);
        const soma_recip_t *r = &soma__sizeclass_recip[c];
        CHECK_EQ(r->mul, SOMA_RECIP_MUL(size));
        CHECK_EQ(r->bound, SOMA_RECIP_BOUND(size));
        soma__pool_set_class(&pool, c);
        long bad = 0;
        size_t first = 0;
        for (size_t o = 0; o < SOMA_POOL_SIZE; o++) {
            const char *p = pool.base + o;
            size_t want = start_by_division(o, size, SOMA_POOL_SIZE);
            const char *got = soma__pool_block_start(&pool, p);
            /* the fast path's form: the same, but nothing of a medium
             * pool with tails, nor the last block of a tailed small one
             * (pool.h: recip_fast) */
            int fast = SOMA_MEDIUM_TAIL && c >= SOMA_SMALL_CLASSES ? 0
                       : soma__sizeclass_small_tailed(c) && want == o &&
                               o + size > SOMA_POOL_SIZE - size
                           ? 0
                           : want == o;
            int ok = got == (want != NONE ? pool.base + want : NULL) &&
                     soma__pool_starts_block(&pool, p, SOMA_POOL_OVERHEAD) == (want == o) &&
                     !soma__pool_starts_block(&pool, p, SOMA_POOL_SIZE) &&
                     soma__pool_fast_starts(&pool, p, SOMA_POOL_OVERHEAD) == fast &&
                     !soma__pool_fast_starts(&pool, p, SOMA_POOL_SIZE);
            if (!ok && bad++ == 0)
                first = o;
        }
        if (!CHECK_EQ(bad, 0))
            test_note("  class %u (%zu bytes): first wrong offset %zu", c, size, first);
    }
    /* A pool that serves no class: no block; the fast path's test passes
     * offset 48 alone (the pool's count sends it to the slow path), and
     * nothing with debug mode's origin. */
    soma__pool_set_class(&pool, SOMA_NO_CLASS);
    long passed = 0, passed_debug = 0, passed_fast = 0, found = 0;
    for (size_t o = 0; o < SOMA_POOL_SIZE; o++) {
        found += soma__pool_block_start(&pool, pool.base + o) != NULL;
        passed += soma__pool_starts_block(&pool, pool.base + o, SOMA_POOL_OVERHEAD);
        passed_debug += soma__pool_starts_block(&pool, pool.base + o, SOMA_POOL_SIZE);
        passed_fast += soma__pool_fast_starts(&pool, pool.base + o, SOMA_POOL_OVERHEAD);
    }
    CHECK_EQ(found, 0);
    CHECK_EQ(passed, 1);
    CHECK_EQ(passed_fast, 1);
    CHECK_EQ(passed_debug, 0);
}

int main(void)
{
    test_begin("test_recip");
    check_table();
    /* the default geometry's classes: 32 small, 29 medium; py38's: 32, 6 */
    CHECK_EQ(check_geometry(16384), 61);
    CHECK_EQ(check_geometry(4096), 38);
    return test_summary();
}
