/*
 * trim_rss.c: malloc_trim under the override gives soma's free memory back
 * (issue 15: malloc_trim calls soma_purge(1)).  CTest runs it with
 * LD_PRELOAD=libsoma-override.so and SOMA_ARENA_DECAY_MS=600000, so that
 * nothing ages out by itself while the test runs: whatever leaves the
 * resident set leaves because of malloc_trim.
 *
 * A plain C program: small and medium blocks through malloc (70 MiB with
 * the default geometry, 30 with py38's), written; then all freed but four
 * in 512 (one of them medium), which keeps most arenas in use, so that
 * what goes back is mostly empty pools' pages inside live arenas.  Then:
 *   - the freed memory is still resident (VmRSS in /proc/self/status, the
 *     kernel's count): soma keeps it for reuse;
 *   - malloc_trim(0) returns 1 (something was given back);
 *   - VmRSS has dropped by at least half of what was freed, not counting
 *     the arenas given back whole;
 *   - soma's statistics say pools went back, and the blocks kept are
 *     intact;
 *   - the freed memory can be allocated again and written.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "soma.h"
#include "test.h"

enum { NBLOCKS = 60000, KEEP_EVERY = 512 };

static void *blocks[NBLOCKS];

/* The resident set, in KiB, as the kernel counts it. */
static long vm_rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

static size_t medium_max; /* the largest medium block (soma_stats) */

/* Small blocks, and one in four medium (up to the largest medium class,
 * which depends on the build's geometry: none of them is a large block). */
static size_t size_of(size_t i)
{
    return i % 4 == 3 ? 513 + (i * 37) % (medium_max - 512) : 32 + (i * 13) % 400;
}

/* Four in a row every KEEP_EVERY: small ones and a medium one. */
static int kept_block(size_t i)
{
    return i % KEEP_EVERY < 4;
}

int main(void)
{
    test_begin("trim_rss");
    void (*stats_get)(soma_stats *, size_t) =
        (void (*)(soma_stats *, size_t))dlsym(RTLD_DEFAULT, "soma_stats_get_sized");
    if (!CHECK(stats_get != NULL && dlsym(RTLD_DEFAULT, "soma_purge") != NULL)) {
        test_note("soma is not preloaded");
        return test_summary();
    }
    CHECK_EQ(test_env_ull("SOMA_ARENA_DECAY_MS", 0), 600000);
    soma_stats st;
    stats_get(&st, sizeof st);
    medium_max = st.medium.max_size;

    size_t bytes = 0;
    for (size_t i = 0; i < NBLOCKS; i++) {
        size_t n = size_of(i);
        blocks[i] = malloc(n);
        if (!CHECK(blocks[i] != NULL))
            return test_summary();
        memset(blocks[i], (int)(i % 251) + 1, n);
        bytes += n;
    }
    long full = vm_rss_kib();
    size_t freed = 0;
    for (size_t i = 0; i < NBLOCKS; i++)
        if (!kept_block(i)) {
            freed += size_of(i);
            free(blocks[i]);
            blocks[i] = NULL;
        }
    long kept = vm_rss_kib();
    stats_get(&st, sizeof st);
    CHECK_EQ(st.returned.pools + st.returned.medium_pools, 0);

    int rc = malloc_trim(0);
    long trimmed = vm_rss_kib();
    test_note("%zu MiB allocated, %zu MiB freed; VmRSS %ld MiB full, %ld MiB after the frees, "
              "%ld MiB after malloc_trim (returned %d)",
              bytes >> 20, freed >> 20, full >> 10, kept >> 10, trimmed >> 10, rc);
    CHECK_EQ(rc, 1);
    /* Before the trim soma kept the freed memory resident... */
    CHECK_GT(kept, full - (long)(freed >> 10) / 4);
    /* ...and the trim gave most of it back, from inside arenas still in
     * use: what whole arenas given back (an empty one the program's
     * start-up left, say) account for does not count. */
    stats_get(&st, sizeof st);
    test_note("arenas given back whole: %zu small, %zu medium; pools returned: %zu small, "
              "%zu medium",
              st.arenas_reclaimed, st.medium.arenas_reclaimed, st.returned.pools,
              st.returned.medium_pools);
    long whole = (long)((st.arenas_reclaimed + st.medium.arenas_reclaimed) * st.arena_size >> 10);
    CHECK_GT(kept - trimmed - whole, (long)(freed >> 10) / 2);
    CHECK_GT(st.returned.pools, 0);
    CHECK_GT(st.returned.medium_pools, 0);
    CHECK_GE(st.returned.pool_bytes + st.returned.medium_pool_bytes, freed / 2);

    size_t bad = 0;
    for (size_t i = 0; i < NBLOCKS; i++) {
        if (!kept_block(i))
            continue;
        const unsigned char *p = blocks[i];
        for (size_t k = 0; k < size_of(i); k++)
            bad += p[k] != (unsigned char)((int)(i % 251) + 1);
    }
    CHECK_EQ(bad, 0);

    /* And it is there to be used again. */
    for (size_t i = 0; i < NBLOCKS; i++)
        if (blocks[i] == NULL) {
            blocks[i] = malloc(size_of(i));
            if (!CHECK(blocks[i] != NULL))
                break;
            memset(blocks[i], 0x3d, size_of(i));
        }
    long again = vm_rss_kib();
    CHECK_GT(again, trimmed + (long)(freed >> 10) / 2);
    for (size_t i = 0; i < NBLOCKS; i++)
        free(blocks[i]);
    return test_summary();
}
