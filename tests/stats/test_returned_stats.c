/*
 * test_returned_stats.c: the statistics' identities hold once pools'
 * pages have gone back (soma_stats version 3, issue 15).  In every
 * snapshot, the process's and an explicit heap's:
 *   - total == arena_bytes == the sum of the six byte lines (allocated,
 *     available, unused pools, pool headers, quantization, alignment), and
 *     the medium total == its arena_bytes == the sum of its five;
 *   - returned.pool_bytes == returned.pools * pool_size, no more than
 *     unused_pool_bytes (a returned pool is an unused pool whose pages went
 *     back), and returned.pools <= unused_pools; the same for medium;
 *   - returned.pools_total >= the pools returned now, and never falls from
 *     one snapshot to the next;
 * and the kernel agrees: the pages resident in the test's arenas (mincore)
 * are no more than the arena bytes less the returned pools' bytes.
 * Snapshots are taken right after soma_purge(1), after putting pools back
 * to work, and after soma_purge(0) past a decay.  CTest runs it with no
 * decay, and with a 3 ms decay and the purge thread changing what the
 * snapshots see while they are taken (each walk holds a heap's lock, so
 * the identities must still hold exactly).
 */
#include <stdlib.h>

#include "test.h"
#include "purge.h"

enum { NBLOCKS = 24000 };

static void *blocks[NBLOCKS];
static size_t sizes[NBLOCKS];
static uintptr_t arenas[256];
static size_t narenas;
static size_t last_total; /* pools_total of the previous snapshot */
static int noted;

static void note_arena(const void *p, size_t arena_size)
{
    uintptr_t a = (uintptr_t)p & ~(uintptr_t)(arena_size - 1);
    for (size_t i = 0; i < narenas; i++)
        if (arenas[i] == a)
            return;
    if (narenas < 256)
        arenas[narenas++] = a;
}

static void identities(const soma_stats *s, const char *when, int process)
{
    size_t six = s->bytes_in_allocated_blocks + s->bytes_in_available_blocks +
                 s->unused_pool_bytes + s->bytes_lost_to_pool_headers +
                 s->bytes_lost_to_quantization + s->bytes_lost_to_arena_alignment;
    const soma_medium_stats *m = &s->medium;
    size_t five = m->bytes_in_allocated_blocks + m->bytes_in_available_blocks +
                  m->unused_pool_bytes + m->bytes_lost_to_pool_headers +
                  m->bytes_lost_to_quantization;
    int ok = CHECK_EQ(s->total, six) & CHECK_EQ(s->total, s->arena_bytes) &
             CHECK_EQ(m->total, five) & CHECK_EQ(m->total, m->arena_bytes) &
             CHECK_EQ(s->returned.pool_bytes, s->returned.pools * s->pool_size) &
             CHECK_EQ(s->returned.medium_pool_bytes, s->returned.medium_pools * s->pool_size) &
             CHECK_LE(s->returned.pool_bytes, s->unused_pool_bytes) &
             CHECK_LE(s->returned.medium_pool_bytes, m->unused_pool_bytes) &
             CHECK_LE(s->returned.pools, s->unused_pools) &
             CHECK_LE(s->returned.medium_pools, m->unused_pools) &
             CHECK_GE(s->returned.pools_total, s->returned.pools + s->returned.medium_pools);
    if (process) {
        ok &= CHECK_GE(s->returned.pools_total, last_total);
        last_total = s->returned.pools_total;
    }
    if (!ok)
        test_note("  (%s)", when);
}

/* The kernel's view: what the snapshot says went back is not resident. */
static void resident_bound(const soma_stats *s, const char *when)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), resident = 0;
    for (size_t i = 0; i < narenas; i++)
        resident += test_resident_pages(arenas[i], s->arena_size) * page;
    size_t bound = s->arena_bytes + s->medium.arena_bytes - s->returned.pool_bytes -
                   s->returned.medium_pool_bytes;
    if (!CHECK_LE(resident, bound))
        test_note("  (%s)", when);
    if (strcmp(when, "after soma_purge(1)") == 0 && !noted) {
        noted = 1;
        test_note("after soma_purge(1): %zu + %zu pools returned; %zu KiB resident in the "
                  "test's arenas, at most %zu KiB allowed",
                  s->returned.pools, s->returned.medium_pools, resident >> 10, bound >> 10);
    }
}

static void snapshot(const char *when)
{
    soma_stats s;
    soma_stats_get(&s);
    identities(&s, when, 1);
    resident_bound(&s, when);
}

int main(void)
{
    test_begin("test_returned_stats");
    long decay = (long)test_env_ull("SOMA_ARENA_DECAY_MS", 0);
    soma_stats s;
    soma_stats_get(&s);
    CHECK_EQ(s.version, SOMA_STATS_VERSION);
    CHECK_GE(s.version, 3);
    size_t arena_size = s.arena_size;
    size_t medium_max = s.medium.max_size;
    identities(&s, "at the start", 1);

    for (int round = 0; round < 3; round++) {
        /* Small and medium blocks over several arenas; most freed. */
        for (size_t i = 0; i < NBLOCKS; i++) {
            sizes[i] = i % 5 == 4 ? 513 + (i * 97) % (medium_max - 512) : 16 + (i * 31) % 497;
            blocks[i] = soma_malloc(sizes[i]);
            if (!CHECK(blocks[i] != NULL))
                return test_summary();
            memset(blocks[i], 0x11, sizes[i]);
            note_arena(blocks[i], arena_size);
        }
        snapshot("filled");
        for (size_t i = 0; i < NBLOCKS; i++)
            if (i % 401 != 0) {
                soma_free(blocks[i]);
                blocks[i] = NULL;
            }
        snapshot("freed");

        soma_purge(1);
        soma_stats_get(&s);
        identities(&s, "after soma_purge(1)", 1);
        resident_bound(&s, "after soma_purge(1)");
        CHECK_GT(s.returned.pools, 0);
        CHECK_GT(s.returned.medium_pools, 0);

        /* Pools back to work: fewer returned, the identities still. */
        size_t before = s.returned.pools + s.returned.medium_pools;
        for (size_t i = 0; i < NBLOCKS; i += 3)
            if (blocks[i] == NULL) {
                blocks[i] = soma_malloc(sizes[i]);
                if (blocks[i] != NULL)
                    memset(blocks[i], 0x22, sizes[i]);
            }
        soma_stats_get(&s);
        identities(&s, "after reuse", 1);
        resident_bound(&s, "after reuse");
        CHECK_LT(s.returned.pools + s.returned.medium_pools, before);

        /* An explicit heap's snapshot, after its pools went back. */
        soma_heap *h = soma_heap_new();
        void *hb[2000];
        for (int i = 0; i < 2000; i++)
            hb[i] = soma_heap_malloc(h, i % 2 ? 64 : 2000);
        /* All but one block of each class, onto the heap's remote stack,
         * newest first: collected oldest first, so the kept blocks' pools
         * are listed again before the others empty (none parks). */
        for (int i = 1999; i >= 2; i--)
            soma_free(hb[i]);
        void *miss = soma_heap_malloc(h, 300); /* a class with no pool: collects */
        soma_purge(1);
        soma_stats hs;
        soma_heap_stats_get(h, &hs);
        identities(&hs, "an explicit heap", 0);
        CHECK_GT(hs.returned.pools + hs.returned.medium_pools, 0);
        soma_free(miss);
        soma_free(hb[0]);
        soma_free(hb[1]);
        soma_heap_destroy(h);

        /* Past a decay, soma_purge(0) gives back what expired. */
        if (decay > 0) {
            for (size_t i = 0; i < NBLOCKS; i++)
                if (i % 401 != 0 && blocks[i] != NULL) {
                    soma_free(blocks[i]);
                    blocks[i] = NULL;
                }
            test_sleep_ms(decay + 20);
            soma_purge(0);
            snapshot("after soma_purge(0)");
        }
        for (size_t i = 0; i < NBLOCKS; i++) {
            soma_free(blocks[i]);
            blocks[i] = NULL;
        }
        snapshot("all freed");
    }
    return test_summary();
}
