/*
 * test_purge_decay.c: when empty pools' pages and cached large mappings go
 * back (SOMA_ARENA_DECAY_MS; CTest sets 250): never before the decay has
 * passed since they were freed, and soon after it.  mincore is the judge.
 *
 *   sweep   no purge thread (SOMA_BACKGROUND_PURGE=0): the program's own
 *           transitions do it.  While the pools are young, a transition
 *           (a free that empties a pool, which sweeps at most every
 *           quarter decay) is made over and over, and every look finds all
 *           the freed pages resident; after the decay and some slack one
 *           more transition, and a large free (which sheds the cache's
 *           expired mappings), give them all back.
 *   thread  SOMA_BACKGROUND_PURGE=1, and the program makes no call into
 *           soma at all after its frees: it sleeps and looks.  Nothing is
 *           gone while younger than the decay; all of it is gone within
 *           the decay plus a generous slack (2 s: the purge thread sleeps
 *           until the earliest expiry, and two noisy cores may keep it
 *           waiting).
 *
 * Every "before" look is judged only when it ended, by the clock, before
 * the first free was a decay old (minus a margin): a look the scheduler
 * delays past that proves nothing and is not counted, so a slow machine
 * cannot make the test fail, only weaker.
 */
#include <stdlib.h>

#include "test.h"
#include "purge.h"

enum { NBLOCKS = 32768, BLOCK = 64, LARGE = 1 << 20 };

static unsigned char *blocks[NBLOCKS];
static unsigned char kept[NBLOCKS]; /* the blocks not freed */
static uintptr_t emptied[NBLOCKS]; /* pools the frees emptied */
static size_t nemptied;
static size_t pool_size, arena_size;

/* Freed pages: pools still (partly) resident, and the large mapping. */
static size_t resident_pools(void)
{
    size_t n = 0;
    for (size_t i = 0; i < nemptied; i++)
        n += test_resident_pages(emptied[i], pool_size) > 0;
    return n;
}

int main(int argc, char **argv)
{
    test_begin("test_purge_decay");
    const char *mode = argc > 1 ? argv[1] : "sweep";
    int by_thread = strcmp(mode, "thread") == 0;
    long decay = (long)test_env_ull("SOMA_ARENA_DECAY_MS", 0);
    test_note("mode %s, decay %ld ms", mode, decay);
    if (!CHECK_GE(decay, 100) ||
        !CHECK_EQ(test_env_ull("SOMA_BACKGROUND_PURGE", 2), (unsigned long long)by_thread))
        return test_summary(); /* CTest sets the environment */
    if (by_thread)
        CHECK(purge_thread_start(decay));
    CHECK_EQ(purge_threads(), by_thread);

    soma_stats st;
    soma_stats_get(&st);
    pool_size = st.pool_size;
    arena_size = st.arena_size;

    /* The sweep mode's transitions: pools of two classes nothing else
     * uses, taken now (so that none of the pools emptied below serves
     * them) and parked; each later malloc and free of these classes parks
     * the pool again, a transition that sweeps. */
    if (!by_thread) {
        soma_free(soma_malloc(100));
        soma_free(soma_malloc(2000));
    }

    /* 2 MiB of 64-byte blocks; one kept in each arena and the class's
     * first one (no arena empties, no pool parks: pools alone decay). */
    for (size_t i = 0; i < NBLOCKS; i++) {
        blocks[i] = soma_malloc(BLOCK);
        if (!CHECK(blocks[i] != NULL))
            return test_summary();
        memset(blocks[i], 0x3c, BLOCK);
    }
    test_large_cache_ready(LARGE);
    unsigned char *large = soma_malloc(LARGE);
    if (!CHECK(large != NULL))
        return test_summary();
    memset(large, 0x5e, LARGE);
    /* Freed after the decay in the sweep mode: a put into the cache sheds
     * the mappings that expired (large.c cache_put). */
    unsigned char *large2 = soma_malloc(LARGE);
    if (!CHECK(large2 != NULL))
        return test_summary();
    memset(large2, 0x5f, LARGE);
    nemptied = purge_plan(blocks, NBLOCKS, pool_size, arena_size, kept, emptied);
    test_note("%zu pools to empty", nemptied);
    CHECK_GE(nemptied, 100);

    uint64_t t_free = test_now_ms();
    for (size_t i = 0; i < NBLOCKS; i++)
        if (!kept[i])
            soma_free(blocks[i]);
    soma_free(large); /* into the cache: its pages stay, for the decay */
    uint64_t t_freed = test_now_ms();
    size_t res0 = resident_pools(), big0 = test_resident_pages((uintptr_t)large, LARGE);
    if (test_young(t_free, (uint64_t)decay - 30, "resident just after the frees")) {
        CHECK_EQ(res0, nemptied);
        CHECK_GT(big0, 0);
    }

    /* Young: nothing may be gone, however often anything sweeps. */
    size_t looks = 0, early = 0;
    for (;;) {
        if (!by_thread) {
            soma_free(soma_malloc(100)); /* a transition: the pool parks */
            soma_free(soma_malloc(2000)); /* a medium one too */
        }
        size_t res = resident_pools();
        size_t big = test_resident_pages((uintptr_t)large, LARGE);
        uint64_t t = test_now_ms();
        if (t - t_free + 30 >= (uint64_t)decay)
            break; /* this look may have been late: not judged */
        looks++;
        early += (nemptied - res) + (big == 0);
        test_sleep_ms(decay / 10);
    }
    test_note("%zu looks before the decay (freeing took %llu ms)", looks,
              (unsigned long long)(t_freed - t_free));
    CHECK_EQ(early, 0);
    if (looks == 0)
        test_note("no look came in time: the check before the decay proved nothing");

    /* Old: all of it goes. */
    uint64_t deadline = t_freed + (uint64_t)decay + 2000, t_gone;
    if (by_thread) {
        do {
            test_sleep_ms(10);
            t_gone = test_now_ms();
        } while ((resident_pools() > 0 || test_resident_pages((uintptr_t)large, LARGE) > 0) &&
                 t_gone < deadline);
    } else {
        test_sleep_ms(decay + 100);
        soma_free(soma_malloc(100)); /* a transition: the owner's sweep */
        soma_free(large2); /* a put into the cache: it sheds the expired */
        large2 = NULL;
        t_gone = test_now_ms();
    }
    size_t left = resident_pools(), big = test_resident_pages((uintptr_t)large, LARGE);
    test_note("gone %llu ms after the first free: %zu pools and %zu large pages left",
              (unsigned long long)(t_gone - t_free), left, big);
    CHECK_EQ(left, 0);
    CHECK_EQ(big, 0);
    /* Not before the decay, as far as soma's clock can tell: it stamps
     * and judges ages on the coarse clock (base/process.h), which may lag
     * this precise one by up to its resolution (4 ms where the kernel
     * ticks at 250 Hz; 248 ms was seen for a decay of 250), and both are
     * cut to whole milliseconds. */
    struct timespec res;
    clock_getres(CLOCK_MONOTONIC_COARSE, &res);
    uint64_t coarse_ms = (uint64_t)res.tv_sec * 1000 + ((uint64_t)res.tv_nsec + 999999) / 1000000;
    CHECK_GE(t_gone - t_free + coarse_ms + 1, (uint64_t)decay);
    CHECK_LT(t_gone, deadline);
    soma_stats_get(&st);
    CHECK_EQ(st.returned.pools, nemptied);

    for (size_t i = 0; i < NBLOCKS; i++)
        if (kept[i])
            soma_free(blocks[i]);
    soma_free(large2);
    return test_summary();
}
