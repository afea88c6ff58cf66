/*
 * test_foreign: free, errno, pointers soma does not own, aligned_alloc.
 *
 *   - soma_free(NULL) does nothing (stats and errno unchanged);
 *   - soma_free never changes errno: not for soma's blocks (including the
 *     frees that empty a pool and that unmap an arena), not for the system's
 *     blocks, not for memory from plain malloc;
 *   - memory from malloc/calloc/realloc/posix_memalign/strdup (small and
 *     large) may be passed to soma_usable_size (= malloc_usable_size),
 *     soma_realloc (contents kept) and soma_free; soma's stats never move;
 *   - soma_aligned_alloc: power-of-two alignments up to 4096 give aligned,
 *     writable blocks that soma_free takes; alignment 0, 3, 24, 48 give NULL
 *     with errno EINVAL;
 *   - a double free that finds its pool already empty stops the program
 *     (in a child process) with SIGABRT and a "soma: fatal" line naming the
 *     pointer, instead of handing the block out twice.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "soma.h"
#include "test.h"

#define SENTINEL 4242

static soma_stats s0, s1;

static void test_free_null(void)
{
    soma_stats_get(&s0);
    errno = SENTINEL;
    soma_free(NULL);
    CHECK_EQ(errno, SENTINEL);
    soma_stats_get(&s1);
    CHECK_EQ(test_blocks_in_use(&s1), test_blocks_in_use(&s0));
    CHECK_EQ(s1.arenas_current, s0.arenas_current);
}

static void test_errno_kept(void)
{
    soma_stats_get(&s0);
    /* Three arenas of 512-byte blocks: their frees empty pools and unmap
     * arenas. */
    size_t n = 3 * s0.arena_size / 512;
    void **b = malloc(n * sizeof *b);
    if (!CHECK(b != NULL))
        return;
    for (size_t i = 0; i < n; i++)
        b[i] = soma_malloc(512);
    void *sys = soma_malloc(4000);
    void *libc = malloc(64);
    void *libc_big = malloc(200000);
    soma_stats_get(&s1);
    CHECK_GE(s1.arenas_current, s0.arenas_current + 2);

    size_t changed = 0;
    for (size_t i = 0; i < n; i++) {
        errno = SENTINEL + (int)(i % 7);
        soma_free(b[i]);
        changed += errno != SENTINEL + (int)(i % 7);
    }
    CHECK_EQ(changed, 0);
    soma_stats_get(&s1);
    CHECK_GT(s1.arenas_reclaimed, s0.arenas_reclaimed); /* the unmap path ran */

    errno = SENTINEL;
    soma_free(sys);
    CHECK_EQ(errno, SENTINEL);
    errno = SENTINEL;
    soma_free(libc);
    CHECK_EQ(errno, SENTINEL);
    errno = SENTINEL;
    soma_free(libc_big);
    CHECK_EQ(errno, SENTINEL);
    errno = 0;
    void *p = soma_malloc(10);
    errno = SENTINEL;
    soma_free(p);
    CHECK_EQ(errno, SENTINEL);
    errno = SENTINEL;
    CHECK(soma_realloc(soma_malloc(10), 0) == NULL); /* realloc(p, 0) frees */
    free(b);
}

static void test_foreign_pointers(void)
{
    static const size_t sizes[] = {1, 16, 100, 512, 513, 5000, 1 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        soma_stats_get(&s0);
        unsigned char *p = malloc(n);
        if (!CHECK(p != NULL))
            return;
        CHECK_EQ(soma_usable_size(p), malloc_usable_size(p));
        for (size_t k = 0; k < n; k++)
            p[k] = (unsigned char)(k * 3 + n);
        /* Grow and shrink through soma_realloc: the system's realloc. */
        size_t m = n < 1000 ? n * 3 + 7 : n / 3;
        unsigned char *q = soma_realloc(p, m);
        if (!CHECK(q != NULL))
            return;
        size_t keep = n < m ? n : m, bad = 0;
        for (size_t k = 0; k < keep; k++)
            bad += q[k] != (unsigned char)(k * 3 + n);
        CHECK_EQ(bad, 0);
        CHECK_EQ(soma_usable_size(q), malloc_usable_size(q));
        soma_stats_get(&s1);
        CHECK_EQ(test_blocks_in_use(&s1), test_blocks_in_use(&s0));
        soma_free(q);
        soma_stats_get(&s1);
        CHECK_EQ(test_blocks_in_use(&s1), test_blocks_in_use(&s0));
        CHECK_EQ(s1.arenas_current, s0.arenas_current);
    }

    /* Other ways the C library hands out memory. */
    char *s = strdup("a string from the C library");
    void *z = calloc(10, 10);
    void *al = NULL;
    CHECK_EQ(posix_memalign(&al, 256, 300), 0);
    CHECK(s && z && al);
    CHECK_EQ(soma_usable_size(z), malloc_usable_size(z));
    char *s2 = soma_realloc(s, 200);
    CHECK(s2 != NULL);
    if (s2)
        CHECK_STR_EQ(s2, "a string from the C library");
    soma_free(s2);
    soma_free(z);
    soma_free(al);

    /* Foreign blocks are never counted as soma's large blocks. */
    soma_stats_get(&s1);
    CHECK_EQ(s1.large.blocks_in_use, s0.large.blocks_in_use);

    /* And soma's own large block: tagged, counted, freed with soma. */
    unsigned char *big = soma_malloc(100000);
    CHECK_GE(soma_usable_size(big), 100000);
    memset(big, 7, soma_usable_size(big));
    soma_stats_get(&s1);
    CHECK_EQ(s1.large.blocks_in_use, s0.large.blocks_in_use + 1);
    soma_free(big);
    soma_stats_get(&s1);
    CHECK_EQ(s1.large.blocks_in_use, s0.large.blocks_in_use);
}

static void test_aligned_alloc(void)
{
    static const size_t aligns[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 4096};
    static const size_t sizes[] = {0, 1, 16, 100, 512, 600, 5000};
    soma_stats_get(&s0);
    for (size_t a = 0; a < sizeof aligns / sizeof aligns[0]; a++) {
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            size_t al = aligns[a], n = sizes[s];
            errno = 0;
            unsigned char *p = soma_aligned_alloc(al, n);
            if (!CHECK(p != NULL)) {
                test_note("  aligned_alloc(%zu, %zu), errno %d", al, n, errno);
                continue;
            }
            if (!CHECK_EQ((uintptr_t)p % al, 0))
                test_note("  aligned_alloc(%zu, %zu) = %p", al, n, (void *)p);
            CHECK_EQ((uintptr_t)p % 16, 0);
            CHECK_GE(soma_usable_size(p), n);
            memset(p, 0x77, n);
            if (n)
                CHECK_EQ(p[n - 1], 0x77);
            soma_free(p);
        }
    }
    soma_stats_get(&s1);
    CHECK_EQ(test_blocks_in_use(&s1), test_blocks_in_use(&s0));

    static const size_t bad[] = {0, 3, 24, 48, 100, 4095, 4097, SIZE_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        void *p = soma_aligned_alloc(bad[i], 64);
        if (!CHECK(p == NULL))
            soma_free(p);
        if (!CHECK_EQ(errno, EINVAL))
            test_note("  alignment %zu", bad[i]);
    }
}

static void double_free(void)
{
    void *keep = soma_malloc(300); /* keeps the arena mapped */
    void *p = soma_malloc(150);    /* the only block of its pool */
    soma_free(p);                  /* the pool is empty now */
    fprintf(stderr, "pointer %p\n", p);
    soma_free(p); /* must not return */
    soma_free(keep);
}

static void free_never_carved(void)
{
    /* Allocate 512-byte blocks (kept) until one opens a pool in an arena
     * mapped for it: that arena has carved one pool, so its last pool has
     * never been handed out. */
    soma_stats st;
    soma_stats_get(&st);
    size_t mapped = st.arenas_allocated_total;
    for (;;) {
        char *b = soma_malloc(512);
        if (b == NULL)
            _exit(3);
        if (((uintptr_t)b & (st.pool_size - 1)) != st.pool_overhead)
            continue; /* not the first block of a new pool */
        soma_stats_get(&st);
        if (st.arenas_allocated_total == mapped)
            continue;
        uintptr_t arena = (uintptr_t)b & ~(uintptr_t)(st.arena_size - 1);
        void *p = (char *)(arena + st.arena_size - st.pool_size) + st.pool_overhead;
        fprintf(stderr, "pointer %p\n", p);
        soma_free(p); /* must not return */
        return;
    }
}

static void free_pool_header(void)
{
    soma_stats st;
    soma_stats_get(&st);
    char *b = soma_malloc(16);
    void *p = (void *)(((uintptr_t)b & ~(uintptr_t)(st.pool_size - 1)) + 16); /* in the header */
    fprintf(stderr, "pointer %p\n", p);
    soma_free(p); /* must not return */
}

static void test_misuse(void)
{
    test_expect_fatal("pool header", free_pool_header, "pool header");
    test_expect_fatal("double free", double_free, "double free");
    test_expect_fatal("never-carved pool", free_never_carved, "never handed out");
}

int main(void)
{
    test_begin("test_foreign");
    test_free_null();
    test_errno_kept();
    test_foreign_pointers();
    test_aligned_alloc();
    test_misuse();
    return test_summary();
}
