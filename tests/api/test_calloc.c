/*
 * test_calloc: soma_calloc returns zeroed memory and refuses overflow.
 *
 *   - every product 1..600 (and a few large ones) reads as all zero bytes,
 *     in a block that was just dirtied and freed (the calloc gets the very
 *     same block back from the free list, so this is reuse, not fresh pages);
 *   - the same across the threshold, where the system serves the request;
 *   - calloc(0, n) and calloc(n, 0) give unique, freeable pointers;
 *   - nmemb * size overflowing size_t gives NULL with errno ENOMEM, and
 *     allocates nothing; so does a product too large to be had.
 */
#include <errno.h>

#include "soma.h"
#include "test.h"

static soma_stats s0, s1;

static size_t nonzero(const void *p, size_t n)
{
    const unsigned char *q = p;
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += q[i] != 0;
    return bad;
}

static void test_dirty_reuse(void)
{
    for (size_t n = 1; n <= 600; n++) {
        /* Dirty a block of the same class, free it, calloc the size. */
        void *d = soma_malloc(n);
        if (!CHECK(d != NULL))
            return;
        memset(d, 0xa5, soma_usable_size(d));
        soma_free(d);
        size_t nmemb = (n % 4 == 0) ? 4 : 1;
        unsigned char *p = soma_calloc(nmemb, n / nmemb);
        if (!CHECK(p != NULL))
            return;
        if (n <= SOMA_SMALL_THRESHOLD)
            CHECK_PTR_EQ(p, d); /* LIFO: the dirtied block itself */
        if (!CHECK_EQ(nonzero(p, n), 0))
            test_note("  calloc of %zu bytes", n);
        CHECK_GE(soma_usable_size(p), n);
        CHECK_EQ((uintptr_t)p % 16, 0);
        soma_free(p);
    }
}

static void test_many_at_once(void)
{
    /* Fill a pool with dirty blocks, free them all, calloc them back. */
    enum { N = 2000 };
    static void *b[N];
    for (int i = 0; i < N; i++) {
        b[i] = soma_malloc(48);
        if (!CHECK(b[i] != NULL))
            return;
        memset(b[i], 0xff, 48);
    }
    for (int i = 0; i < N; i++)
        soma_free(b[i]);
    size_t bad = 0;
    for (int i = 0; i < N; i++) {
        b[i] = soma_calloc(3, 16);
        if (!CHECK(b[i] != NULL))
            return;
        bad += nonzero(b[i], 48);
    }
    CHECK_EQ(bad, 0);
    for (int i = 0; i < N; i++)
        soma_free(b[i]);
}

static void test_large(void)
{
    static const size_t sizes[] = {520, 1000, 4096, 100000, 1 << 20, 3 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        void *d = soma_malloc(n);
        if (!CHECK(d != NULL))
            return;
        memset(d, 0x5a, n);
        soma_free(d);
        soma_stats_get(&s0);
        void *p = soma_calloc(n / 8, 8);
        if (!CHECK(p != NULL))
            return;
        if (!CHECK_EQ(nonzero(p, n / 8 * 8), 0))
            test_note("  calloc of %zu bytes", n);
        soma_stats_get(&s1);
        CHECK_EQ(test_blocks_in_use(&s1), test_blocks_in_use(&s0)); /* the system's */
        soma_free(p);
    }
}

static void test_zero_sizes(void)
{
    void *a = soma_calloc(0, 10);
    void *b = soma_calloc(10, 0);
    void *c = soma_calloc(0, 0);
    CHECK(a != NULL && b != NULL && c != NULL);
    CHECK(a != b && b != c && a != c);
    soma_free(a);
    soma_free(b);
    soma_free(c);
}

static void test_overflow(void)
{
    static const size_t cases[][2] = {
        {SIZE_MAX / 2 + 1, 4},
        {4, SIZE_MAX / 2 + 1},
        {SIZE_MAX, 2},
        {2, SIZE_MAX},
        {SIZE_MAX, SIZE_MAX},
        {(size_t)1 << 32, (size_t)1 << 32},
        {SIZE_MAX / 16 + 1, 16},
    };
    soma_stats_get(&s0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        errno = 0;
        void *p = soma_calloc(cases[i][0], cases[i][1]);
        if (!CHECK(p == NULL))
            soma_free(p);
        if (!CHECK_EQ(errno, ENOMEM))
            test_note("  calloc(%zu, %zu)", cases[i][0], cases[i][1]);
    }
    /* No overflow, but more than can be had. */
    errno = 0;
    void *p = soma_calloc(1, SIZE_MAX / 2);
    CHECK(p == NULL);
    CHECK_EQ(errno, ENOMEM);
    soma_stats_get(&s1);
    CHECK_EQ(test_blocks_in_use(&s1), test_blocks_in_use(&s0));
}

int main(void)
{
    test_begin("test_calloc");
    test_dirty_reuse();
    test_many_at_once();
    test_large();
    test_zero_sizes();
    test_overflow();
    return test_summary();
}
