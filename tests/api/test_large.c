/*
 * test_large: blocks above the medium classes, soma's own mappings and
 * their cache (src/malloc/large.c).  Run with SOMA_ARENA_DECAY_MS=200
 * (tests/api/CMakeLists.txt), so that the cache keeps up to its bound.
 *
 *   - contents survive, sizes 8,161 bytes to 32 MiB; usable_size >= asked;
 *   - realloc grows (in place or moved by mremap) and shrinks (in place)
 *     with the contents kept;
 *   - aligned_alloc up to 1 MiB of alignment;
 *   - calloc of a cached (dirty) mapping reads zero;
 *   - the cache reuses: a malloc/free loop of 20 MiB makes one mapping,
 *     the later turns reuse it (the statistics say so) and RSS stays;
 *   - the cache is bounded: freeing more than its bound leaves at most
 *     cache_max_bytes cached, and only that much of the freed pages stays
 *     resident (mincore);
 *   - a mapping unused for longer than the decay is released;
 *   - a split mapping is whole again once the part taken is freed;
 *   - hundreds of cached mappings are each found again;
 *   - the bound follows use: 2 MiB for a program whose large blocks never
 *     had more mapped at once, however its pattern scatters cached pieces;
 *   - blocks in use and cached stay within the recent peak: when the
 *     blocks in use grow again by a system call (realloc), the cache keeps
 *     only what would take them back to the peak, or a third of it;
 *   - pointers soma never gave out still go to the system allocator;
 *   - fork: the child frees and allocates large blocks;
 *   - threads free each other's large blocks, contents checked.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "soma.h"
#include "test.h"

static soma_stats s0, s1;

/* CTest's SOMA_ARENA_DECAY_MS (the checks that something is still cached
 * are judged only within it: test_young) */
static uint64_t decay_ms(void)
{
    return test_env_ull("SOMA_ARENA_DECAY_MS", 200);
}

/* The mapping a fresh block of n bytes takes: its pages, with the 8-byte
 * tail a hardened build keeps at a mapping's end, which takes a page more
 * from 128 KiB on (src/malloc/large.c; the medium blocks' tail says
 * whether the build has tails). */
static size_t mapping_of(size_t n)
{
    soma_stats st;
    soma_stats_get(&st);
    size_t tail = st.medium_tail && n >= ((size_t)128 << 10) ? 8 : 0;
    return (n + tail + 4095) & ~(size_t)4095;
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    /* Every 64th byte and the last: the pattern reaches every page. */
    for (size_t i = 0; i < n; i += 64)
        p[i] = (unsigned char)(seed + i / 64);
    p[n - 1] = (unsigned char)(seed ^ 0x5a);
}

static int intact_from(const unsigned char *p, size_t n, unsigned seed, size_t from)
{
    for (size_t i = from; i < n - 1; i += 64) /* the last byte has its own value */
        if (p[i] != (unsigned char)(seed + i / 64))
            return 0;
    return p[n - 1] == (unsigned char)(seed ^ 0x5a);
}

static int intact(const unsigned char *p, size_t n, unsigned seed)
{
    return intact_from(p, n, seed, 0);
}

/* Empty the cache but for one small mapping: everything in it ages out
 * (SOMA_ARENA_DECAY_MS=200) at the next free. */
static void flush_cache(void)
{
    test_sleep_ms(250);
    soma_free(soma_malloc(10000));
}

static size_t rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    if (f == NULL)
        return 0;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = 0;
    fclose(f);
    return (size_t)resident * ((size_t)sysconf(_SC_PAGESIZE) / 1024);
}

/* 1 if no page of [p, p+n) is resident (or mapped at all). */
static int gone(void *p, size_t n)
{
    size_t pages = n / 4096;
    unsigned char *v = malloc(pages);
    if (v == NULL)
        return 0;
    int rc = mincore(p, n, v);
    int out = 1;
    if (rc == 0) {
        for (size_t i = 0; i < pages; i++)
            if (v[i] & 1)
                out = 0;
    } else if (errno != ENOMEM) {
        out = 0;
    }
    free(v);
    return out;
}

static void test_sizes(void)
{
    static const size_t sizes[] = {8161,   8192,    12288,    65536,    100000,  262144,
                                   262145, 1 << 20, 3 << 20,  5 << 20,  (20 << 20) + 123,
                                   32 << 20};
    enum { N = sizeof sizes / sizeof sizes[0] };
    void *p[N];
    soma_stats_get(&s0);
    for (size_t i = 0; i < N; i++) {
        p[i] = soma_malloc(sizes[i]);
        if (!CHECK(p[i] != NULL))
            return;
        CHECK_EQ((uintptr_t)p[i] % 16, 0);
        CHECK_GE(soma_usable_size(p[i]), sizes[i]);
        fill(p[i], sizes[i], (unsigned)i);
    }
    soma_stats_get(&s1);
    CHECK_EQ(s1.large.blocks_in_use, s0.large.blocks_in_use + N);
    CHECK_GE(s1.large_map.bytes_mapped, s0.large_map.bytes_mapped);
    for (size_t i = 0; i < N; i++)
        CHECK(intact(p[i], sizes[i], (unsigned)i));
    for (size_t i = 0; i < N; i++)
        soma_free(p[i]);
    soma_stats_get(&s1);
    CHECK_EQ(s1.large.blocks_in_use, s0.large.blocks_in_use);
    CHECK_LE(s1.large_map.cached_bytes, s1.large_map.cache_max_bytes);
}

static void test_realloc(void)
{
    static const size_t steps[] = {10000, 300000, 1 << 20, 20 << 20, 21 << 20, 300000, 9000, 100};
    size_t n = steps[0];
    unsigned char *p = soma_malloc(n);
    if (!CHECK(p != NULL))
        return;
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 7);
    for (size_t s = 1; s < sizeof steps / sizeof steps[0]; s++) {
        size_t m = steps[s];
        unsigned char *q = soma_realloc(p, m);
        if (!CHECK(q != NULL))
            return;
        size_t kept = n < m ? n : m;
        size_t bad = 0;
        for (size_t i = 0; i < kept; i++)
            bad += q[i] != (unsigned char)(i * 7);
        CHECK_EQ(bad, 0);
        CHECK_GE(soma_usable_size(q), m);
        for (size_t i = kept; i < m; i++)
            q[i] = (unsigned char)(i * 7);
        p = q, n = m;
    }
    soma_stats_get(&s1);
    size_t in_use = s1.large.blocks_in_use;
    soma_free(p);
    soma_stats_get(&s1);
    CHECK_EQ(s1.large.blocks_in_use, in_use - 1);
}

static void test_aligned(void)
{
    static const size_t sizes[] = {100, 10000, 3 << 20};
    for (size_t a = 32; a <= (1 << 20); a *= 2)
        for (size_t i = 0; i < 3; i++) {
            unsigned char *p = soma_aligned_alloc(a, sizes[i]);
            if (!CHECK(p != NULL))
                return;
            CHECK_EQ((uintptr_t)p % a, 0);
            CHECK_GE(soma_usable_size(p), sizes[i]);
            fill(p, sizes[i], (unsigned)a);
            CHECK(intact(p, sizes[i], (unsigned)a));
            soma_free(p);
        }
}

static void test_calloc_reused(void)
{
    size_t n = 1 << 20;
    flush_cache();
    unsigned char *d = soma_malloc(n);
    if (!CHECK(d != NULL))
        return;
    memset(d, 0xa5, soma_usable_size(d));
    soma_free(d);
    soma_stats_get(&s0);
    unsigned char *p = soma_calloc(4, n / 4);
    if (!CHECK(p != NULL))
        return;
    soma_stats_get(&s1);
    CHECK_EQ(s1.large_map.maps_reused_total, s0.large_map.maps_reused_total + 1);
    CHECK(p == d); /* the same mapping, dirty, from the cache */
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += p[i] != 0;
    CHECK_EQ(bad, 0);
    soma_free(p);
}

static void test_loop_reuses(void)
{
    size_t n = 20 << 20;
    void *first = NULL;
    size_t rss = 0;
    flush_cache();
    soma_stats_get(&s0);
    for (int i = 0; i < 10; i++) {
        unsigned char *p = soma_malloc(n);
        if (!CHECK(p != NULL))
            return;
        memset(p, i, n);
        if (i == 0) {
            first = p;
            rss = rss_kib();
        } else {
            CHECK(p == first); /* the cached mapping again */
        }
        soma_free(p);
    }
    soma_stats_get(&s1);
    /* The first turn's mapping is made (or put together from the one small
     * cached mapping: then it counts as reused); the other nine reuse it. */
    CHECK_EQ(s1.large_map.maps_made_total + s1.large_map.maps_reused_total,
             s0.large_map.maps_made_total + s0.large_map.maps_reused_total + 10);
    CHECK_GE(s1.large_map.maps_reused_total, s0.large_map.maps_reused_total + 9);
    /* Every turn wrote 20 MiB: with fresh pages RSS would not grow either,
     * but the faults would show; what must not happen is growth. */
    CHECK_LE(rss_kib(), rss + 4096);
}

/* Bytes of [p, p+n) resident (mincore); an unmapped range has none. */
static size_t resident(void *p, size_t n)
{
    size_t pages = n / 4096, in = 0;
    unsigned char *v = malloc(pages);
    if (v == NULL)
        return 0;
    if (mincore(p, n, v) == 0)
        for (size_t i = 0; i < pages; i++)
            in += v[i] & 1;
    free(v);
    return in * 4096;
}

static void test_bounded(void)
{
    enum { N = 24 };
    size_t n = 8 << 20; /* 24 of them: 192 MiB, above the 128 MiB bound */
    unsigned char *p[N];
    flush_cache();
    for (int i = 0; i < N; i++) {
        p[i] = soma_malloc(n);
        if (!CHECK(p[i] != NULL))
            return;
        memset(p[i], i, n); /* resident, all of it: the pages released must leave */
    }
    uint64_t t_free = test_now_ms();
    for (int i = 0; i < N; i++)
        soma_free(p[i]);
    soma_stats_get(&s1);
    CHECK_GT(s1.large_map.cache_max_bytes, 0);
    CHECK_LE(s1.large_map.cached_bytes, s1.large_map.cache_max_bytes);
    if (test_young(t_free, decay_ms() - 20, "the cache full to its bound"))
        CHECK_GE(s1.large_map.cached_bytes, s1.large_map.cache_max_bytes - n);
    CHECK_GT(s1.large_map.maps_released_total, 0);
    CHECK_GE(s1.large_map.bytes_mapped, s1.large_map.cached_bytes);
    /* What the cache released left memory: of the 192 MiB written, what is
     * still resident is what is cached (mappings that touch are merged, so
     * which pages went is the cache's choice; how many is not). */
    size_t in = 0;
    for (int i = 0; i < N; i++)
        in += resident(p[i], mapping_of(n));
    CHECK_LE(in, s1.large_map.cached_bytes);
    /* (a mapping the cache released in part counts none: mincore fails on
     * a range with a hole) */
    CHECK_GE(in + mapping_of(n), s1.large_map.cached_bytes);
}

static void test_decay(void)
{
    /* SOMA_ARENA_DECAY_MS=200: a mapping cached that long goes at the next free. */
    size_t n = 3 << 20;
    test_large_cache_ready(n + 4096 * 7); /* a and b are cached, not sealed */
    flush_cache(); /* nothing older lies beside a or b, to be merged with them */
    unsigned char *a = soma_malloc(n), *gap = soma_malloc(5 * 4096), *b = soma_malloc(n + 4096 * 7);
    if (!CHECK(a != NULL && gap != NULL && b != NULL))
        return; /* gap, live throughout, keeps a's and b's mappings apart */
    memset(a, 1, n);
    soma_free(a);
    test_sleep_ms(400);
    soma_free(b); /* ages the cache: everything cached before the sleep goes */
    soma_stats_get(&s1);
    CHECK_EQ(s1.large_map.cached_blocks, 1);
    CHECK_GE(s1.large_map.cached_bytes, n + 4096 * 7);
    CHECK_LE(s1.large_map.cached_bytes, (n + 4096 * 7) / 3 * 4 + 4096);
    CHECK(gone(a, n));
    soma_free(gap);
}

static void test_merges(void)
{
    /* A mapping split by a request is whole again when the part taken is
     * freed: the cache merges the ranges that touch, so the next request
     * for the whole size gets the same pages. */
    flush_cache();
    size_t n = 1 << 20;
    unsigned char *a = soma_malloc(n);
    if (!CHECK(a != NULL))
        return;
    memset(a, 3, n);
    /* A range merges only while younger than half the decay (large.c):
     * what depends on the merge is judged once the run is known to have
     * been that quick, from a's free to c's malloc. */
    uint64_t t_free = test_now_ms();
    soma_free(a);
    soma_stats_get(&s0);
    /* (a take ignores age: no check before the merge's depends on time) */
    unsigned char *b = soma_malloc(n / 4); /* the first quarter of a's pages */
    CHECK(b == a);
    soma_stats_get(&s1);
    CHECK_EQ(s1.large_map.cached_bytes, s0.large_map.cached_bytes - mapping_of(n / 4));
    soma_free(b);
    soma_stats_get(&s1);
    size_t merged_blocks = s1.large_map.cached_blocks, merged_bytes = s1.large_map.cached_bytes;
    unsigned char *c = soma_malloc(n);
    soma_stats_get(&s1);
    if (test_young(t_free, decay_ms() / 2 - 20, "the merge")) {
        CHECK_EQ(merged_blocks, s0.large_map.cached_blocks); /* one again */
        CHECK_EQ(merged_bytes, s0.large_map.cached_bytes);
        CHECK(c == a); /* whole, with no system call: reused */
        CHECK_EQ(s1.large_map.maps_reused_total, s0.large_map.maps_reused_total + 2);
        CHECK_EQ(s1.large_map.maps_made_total, s0.large_map.maps_made_total);
    }
    soma_free(c);
}

static void test_follows_use(void)
{
    /* The bound follows the program's use: after a quiet spell (two decay
     * windows), a program whose large blocks never exceed 2 MiB at once
     * has a cache bounded by that 2 MiB, not by 128 MiB, however
     * its pattern scatters pieces: here lua's, a block grown by realloc
     * doubling (mremap; moved when a cached rest sits after it), freed,
     * and the next one carved from the cache. */
    flush_cache();
    flush_cache();
    for (int round = 0; round < 24; round++) {
        size_t n = 64 << 10;
        unsigned char *p = soma_malloc(n);
        if (!CHECK(p != NULL))
            return;
        fill(p, n, (unsigned)round);
        for (; n < (2u << 20); n *= 2) {
            unsigned char *q = soma_realloc(p, 2 * n);
            if (!CHECK(q != NULL))
                return;
            CHECK(intact(q, n, (unsigned)round)); /* the contents moved with it */
            p = q;
            fill(p, 2 * n, (unsigned)round);
        }
        soma_free(p);
    }
    soma_stats_get(&s1);
    CHECK_EQ(s1.large_map.cache_max_bytes, mapping_of((size_t)2 << 20));
    CHECK_LE(s1.large_map.cached_bytes, mapping_of((size_t)2 << 20)); /* 46 MiB without the bound */
    CHECK_LE(s1.large_map.bytes_mapped, mapping_of((size_t)2 << 20));
}

static void test_within_peak(void)
{
    /* Large blocks in use and cached together stay within their recent
     * peak (or the cache within a third of it): python's json round frees
     * a 5 MiB text, then grows lists by realloc, and a cache as large as
     * the peak kept the freed pages on top of the next peak.  24 blocks
     * of 1 MiB (the peak), 16 freed (all cached: they take the blocks
     * back to the peak), then one grown to 13 MiB by realloc (mremap, no
     * cached pages): 20 MiB in use, so the cache keeps a third of the
     * peak, 8 MiB, where the old bound (the peak) kept all 16. */
    flush_cache();
    flush_cache();
    enum { N = 24, FREED = 16 };
    size_t n = 1 << 20;
    unsigned char *b[N];
    for (int i = 0; i < N; i++) {
        b[i] = soma_malloc(n);
        if (!CHECK(b[i] != NULL))
            return;
        fill(b[i], n, (unsigned)i);
    }
    uint64_t t_free = test_now_ms();
    for (int i = 0; i < FREED; i++)
        soma_free(b[i]);
    soma_stats_get(&s1);
    if (test_young(t_free, decay_ms() - 20, "all 16 cached"))
        CHECK_GE(s1.large_map.cached_bytes, (size_t)FREED << 20);
    unsigned char *g = soma_realloc(b[FREED], 13 * n);
    if (!CHECK(g != NULL))
        return;
    CHECK(intact(g, n, FREED));
    fill(g, 13 * n, 99);
    b[FREED] = g;
    soma_stats_get(&s1);
    CHECK_LE(s1.large_map.cache_max_bytes, (size_t)9 << 20);
    CHECK_LE(s1.large_map.cached_bytes, (size_t)9 << 20); /* 16 MiB with the old bound */
    CHECK_LE(s1.large_map.bytes_mapped, (size_t)29 << 20);
    for (int i = FREED; i < N; i++)
        soma_free(b[i]);
}

static void test_foreign(void)
{
    soma_stats_get(&s0);
    void *f = malloc(100000); /* the system's (the test links soma, not the override) */
    if (!CHECK(f != NULL))
        return;
    memset(f, 3, 100000);
    CHECK_GE(soma_usable_size(f), 100000);
    f = soma_realloc(f, 300000);
    if (!CHECK(f != NULL))
        return;
    CHECK_EQ(((unsigned char *)f)[99999], 3);
    soma_free(f);
    soma_stats_get(&s1);
    CHECK_EQ(s1.large.blocks_allocated_total, s0.large.blocks_allocated_total);
    CHECK_EQ(s1.large_map.maps_made_total, s0.large_map.maps_made_total);
}

static void test_fork(void)
{
    size_t n = 5 << 20;
    unsigned char *keep = soma_malloc(n), *cached = soma_malloc(2 * n);
    if (!CHECK(keep != NULL && cached != NULL))
        return;
    fill(keep, n, 11);
    soma_free(cached);
    pid_t pid = fork();
    if (pid == 0) {
        int ok = intact(keep, n, 11);
        soma_free(keep);
        for (int i = 0; i < 20; i++) {
            size_t m = (size_t)(i + 1) * 300000;
            unsigned char *p = soma_malloc(m);
            if (p == NULL)
                _exit(2);
            fill(p, m, (unsigned)i);
            ok &= intact(p, m, (unsigned)i);
            soma_free(p);
        }
        _exit(ok ? 0 : 1);
    }
    if (!CHECK(pid > 0))
        return;
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(intact(keep, n, 11));
    soma_free(keep);
}

/* Threads hand blocks to each other through a ring of slots: each frees
 * what another thread put there (after checking it) and puts its own. */
enum { THREADS = 4, SLOTS = 64, TURNS = 3000 };
static _Atomic(unsigned char *) ring[SLOTS]; /* a block holds its size in its first word */
static atomic_int bad;

static void *worker(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u + 1;
    for (int i = 0; i < TURNS; i++) {
        seed = seed * 1103515245u + 12345u;
        size_t k = (seed >> 8) % SLOTS;
        size_t n = 8161 + (seed >> 4) % (600 * 1024);
        unsigned char *p = soma_malloc(n);
        if (p == NULL) {
            atomic_fetch_add(&bad, 1);
            return NULL;
        }
        fill(p, n, (unsigned)n);
        memcpy(p, &n, sizeof n);
        unsigned char *old = atomic_exchange(&ring[k], NULL);
        if (old != NULL) {
            size_t on;
            memcpy(&on, old, sizeof on);
            if (on < 8161 || !intact_from(old, on, (unsigned)on, 64))
                atomic_fetch_add(&bad, 1);
            soma_free(old);
        }
        unsigned char *expect = NULL;
        if (!atomic_compare_exchange_strong(&ring[k], &expect, p))
            soma_free(p); /* another thread filled it meanwhile: ours is not published */
    }
    return NULL;
}

static void test_threads(void)
{
    pthread_t t[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++)
        CHECK_EQ(pthread_create(&t[i], NULL, worker, (void *)i), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    CHECK_EQ(atomic_load(&bad), 0);
    for (int k = 0; k < SLOTS; k++)
        soma_free(atomic_load(&ring[k]));
    soma_stats_get(&s1);
    CHECK_LE(s1.large_map.cached_bytes, s1.large_map.cache_max_bytes);
}

static void test_many_cached(void)
{
    /* Hundreds of cached mappings that do not touch (a block in use lies
     * between each two), each found again by its size: the index of their
     * ends grows with them (from 256 entries to 4096) and must keep every
     * one.  Freed in reverse, the blocks between come back to whole ranges,
     * merged with the cached neighbours on both sides. */
    enum { N = 1200 };
    static unsigned char *p[N];
    flush_cache();
    flush_cache();
    for (int i = 0; i < N; i++) {
        size_t n = 8192 + (size_t)(i % 7) * 4096;
        p[i] = soma_malloc(n);
        if (!CHECK(p[i] != NULL))
            return;
        fill(p[i], n, (unsigned)i);
    }
    soma_stats before;
    soma_stats_get(&before);
    for (int i = 0; i < N; i += 2)
        soma_free(p[i]);
    soma_stats_get(&s0);
    /* Hardly any merged (a block in use lies between two freed ones,
     * unless the addresses came in another order: pieces cached by the
     * tests before), released only if they aged out (a loaded machine can
     * take the decay's 200 ms over this loop).  More than 511 cached: the
     * index grew to 4096 entries. */
    size_t aged = s0.large_map.maps_released_total - before.large_map.maps_released_total;
    CHECK_GE(s0.large_map.cached_blocks + aged, (size_t)N / 2 - 16);
    for (int i = 0; i < N; i += 2) {
        size_t n = 8192 + (size_t)(i % 7) * 4096;
        p[i] = soma_malloc(n);
        if (!CHECK(p[i] != NULL))
            return;
        fill(p[i], n, (unsigned)i + 1);
    }
    soma_stats_get(&s1);
    /* all reused but a few: a merged range serves one request (split),
     * and flush_cache's own 12 KiB mapping may serve a request before the
     * one freed for it */
    aged = s1.large_map.maps_released_total - before.large_map.maps_released_total;
    CHECK_LE(s1.large_map.maps_made_total, s0.large_map.maps_made_total + 16 + aged);
    for (int i = N; i-- > 0;) {
        size_t n = 8192 + (size_t)(i % 7) * 4096;
        CHECK(intact(p[i], n, (unsigned)i + (unsigned)(i % 2 == 0)));
        soma_free(p[i]);
    }
    soma_stats_get(&s1);
    CHECK_LE(s1.large_map.cached_blocks, s0.large_map.cached_blocks);
    CHECK_LE(s1.large_map.cached_bytes, s1.large_map.cache_max_bytes);
}

int main(void)
{
    test_sizes();
    test_realloc();
    test_aligned();
    test_calloc_reused();
    test_loop_reuses();
    test_bounded();
    test_decay();
    test_merges();
    test_many_cached();
    test_follows_use();
    test_within_peak();
    test_foreign();
    test_fork();
    test_threads();
    return test_summary();
}
