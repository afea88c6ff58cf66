/*
 * test_invariants.c: drive the default heap through many pool and arena
 * transitions (pools filling, emptying and changing class; arenas moving
 * along the usable list, emptying, being unmapped and mapped again) and run
 * the full consistency check (src/check.c) after every phase and every few
 * thousand operations.  A broken nfp2lasta finger, a pool on the wrong list
 * or a corrupted free list fails here with the invariant that broke.
 * CTest runs it twice: with no decay (CPython's rule) and with a decay of
 * 50 ms (pools are parked, src/heap.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "soma.h"

static int failures;
static unsigned long long rng = 0x9e3779b97f4a7c15ULL;

static unsigned long long next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void check(const char *when)
{
    char why[256];
    if (soma__heap_check(soma__thread_heap(), why, sizeof why) != 0) {
        fprintf(stderr, "FAIL after %s: %s\n", when, why);
        failures++;
    }
}

enum { NSLOTS = 60000 };
static void *slot[NSLOTS];

int main(void)
{
    soma_stats st;
    check("start");

    /* Phase 1: fill ~10 arenas with a mix of classes. */
    for (size_t i = 0; i < NSLOTS; i++) {
        slot[i] = soma_malloc(1 + next_rand() % SOMA_SMALL_THRESHOLD);
        if (i % 1000 == 0)
            check("filling");
    }
    check("filling");
    soma_stats_get(&st);
    size_t peak = st.arenas_current;
    printf("filled: %zu arenas\n", peak);

    /* Phase 2: random frees and reallocations, checking as we go. */
    for (size_t op = 0; op < 400000; op++) {
        size_t k = next_rand() % NSLOTS;
        if (slot[k] && next_rand() % 3 != 0) {
            soma_free(slot[k]);
            slot[k] = NULL;
        } else {
            soma_free(slot[k]);
            slot[k] = soma_malloc(1 + next_rand() % SOMA_SMALL_THRESHOLD);
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
    if (soma__arena_decay_ms > 0) {
        /* With a decay (a second CTest run) the emptied arenas and parked
         * pools wait for it; a sweep after it (taking a fresh pool, here
         * for a medium class this test never used) gives them back. */
        struct timespec ts = {0, (soma__arena_decay_ms + 30) * 1000000L};
        nanosleep(&ts, NULL);
        soma_free(soma_malloc(1500));
        check("the sweep after the decay");
    }
    soma_stats_get(&st);
    printf("after freeing: %zu arenas current, %zu reclaimed\n", st.arenas_current,
           st.arenas_reclaimed);
    if (st.arenas_current > 1) {
        fprintf(stderr, "FAIL: %zu arenas still mapped with no block in use\n",
                st.arenas_current);
        failures++;
    }
    if (st.arenas_reclaimed < peak - 1) {
        fprintf(stderr, "FAIL: only %zu arenas reclaimed of a peak of %zu\n", st.arenas_reclaimed,
                peak);
        failures++;
    }
    printf("%d passed, %d failed\n", failures ? 0 : 1, failures ? 1 : 0);
    return failures ? 1 : 0;
}
