/*
 * test_invariants.c: drive the default heap through many pool and arena
 * transitions (pools filling, emptying and changing class; arenas moving
 * along the usable list, emptying, being unmapped and mapped again) and run
 * the full consistency check (src/pool/check.c) after every phase and every few
 * thousand operations.  A broken nfp2lasta finger, a pool on the wrong list
 * or a corrupted free list fails here with the invariant that broke.
 * CTest runs it twice: with no decay (CPython's rule) and with a decay of
 * 50 ms (pools are parked, src/pool/pool.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "malloc/malloc.h"
#include "soma.h"
#include "test.h"

static test_rng rng;

/* A random small size, 1 .. SOMA_SMALL_THRESHOLD. */
static size_t small_size(void)
{
    return 1 + (size_t)test_rng_below(&rng, SOMA_SMALL_THRESHOLD);
}

static void check(const char *when)
{
    char why[256];
    if (!CHECK_EQ(soma__check_heap(soma__heap_current(), why, sizeof why), 0))
        test_note("  after %s: %s", when, why);
}

enum { NSLOTS = 60000 };
static void *slot[NSLOTS];

int main(void)
{
    test_begin("test_invariants");
    test_rng_seed(&rng, 0x9e3779b97f4a7c15ULL);
    soma_stats st;
    check("start");

    /* Phase 1: fill ~10 arenas with a mix of classes. */
    for (size_t i = 0; i < NSLOTS; i++) {
        slot[i] = soma_malloc(small_size());
        if (i % 1000 == 0)
            check("filling");
    }
    check("filling");
    soma_stats_get(&st);
    size_t peak = st.arenas_current;
    test_note("filled: %zu arenas", peak);

    /* Phase 2: random frees and reallocations, checking as we go. */
    for (size_t op = 0; op < 400000; op++) {
        size_t k = (size_t)test_rng_below(&rng, NSLOTS);
        if (slot[k] && test_rng_below(&rng, 3) != 0) {
            soma_free(slot[k]);
            slot[k] = NULL;
        } else {
            soma_free(slot[k]);
            slot[k] = soma_malloc(small_size());
        }
        if (op % 2000 == 0)
            check("random churn");
    }
    check("random churn");

    /* Phase 3: empty whole address ranges so arenas drain in a scattered
     * order and get unmapped; then refill to map new ones. */
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < NSLOTS; i++) {
            if (slot[i] && (i / 997) % 3 == (size_t)round) {
                soma_free(slot[i]);
                slot[i] = NULL;
            }
        }
        check("draining");
        for (size_t i = 0; i < NSLOTS; i += 2)
            if (slot[i] == NULL)
                slot[i] = soma_malloc(1 + (i * 37) % SOMA_SMALL_THRESHOLD);
        check("refilling");
    }

    /* Phase 4: free everything; at most one (empty) arena may stay. */
    for (size_t i = 0; i < NSLOTS; i++) {
        soma_free(slot[i]);
        slot[i] = NULL;
        if (i % 7919 == 0)
            check("freeing everything");
    }
    check("freeing everything");
    if (soma__options.decay_ms > 0) {
        /* With a decay (a second CTest run) the emptied arenas and parked
         * pools wait for it; a sweep after it (taking a fresh pool, here
         * for a medium class this test never used) gives them back. */
        test_sleep_ms(soma__options.decay_ms + 30);
        soma_free(soma_malloc(1500));
        check("the sweep after the decay");
    }
    soma_stats_get(&st);
    test_note("after freeing: %zu arenas current, %zu reclaimed", st.arenas_current,
              st.arenas_reclaimed);
    if (!CHECK_LE(st.arenas_current, 1))
        test_note("  %zu arenas still mapped with no block in use", st.arenas_current);
    if (!CHECK_GE(st.arenas_reclaimed, peak - 1))
        test_note("  only %zu arenas reclaimed of a peak of %zu", st.arenas_reclaimed, peak);
    return test_summary();
}
