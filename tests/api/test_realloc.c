/*
 * test_realloc: soma_realloc keeps contents and goes to the right place.
 *
 *   - within the class (and not shrinking by a quarter or more): the same
 *     pointer, contents kept; a shrink of exactly a quarter moves; a block
 *     with a small tail (hardened) moves when the size no longer leaves
 *     the tail room;
 *   - across classes, growing 16 -> 300 and shrinking 300 -> 20: the block
 *     moves (counts move between the classes), min(old, new) bytes kept;
 *   - across the threshold and beyond, 400 -> 2000 -> 20000 -> 100, and
 *     100 -> (medium max - 100): contents kept each time; 2000 and the
 *     latter are medium blocks
 *     (counted in their medium class), 20000 a large block (from the system
 *     allocator, counted in the large figures, and still large when shrunk
 *     to 100); within a medium class the
 *     block stays in place, as in a small one;
 *   - realloc(NULL, n) is malloc(n); realloc(p, 0) frees p and returns NULL;
 *   - an impossible size (SIZE_MAX / 2, SIZE_MAX - 15) gives NULL with errno
 *     ENOMEM and leaves the old block as it was, for soma's blocks and the
 *     system's;
 *   - a block grown one byte at a time from 1 to 12000 bytes and shrunk back
 *     keeps its contents all the way.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>

#include "soma.h"
#include "test.h"

static soma_stats s0, s1;

static void fill(void *p, size_t n, unsigned seed)
{
    unsigned char *q = p;
    for (size_t i = 0; i < n; i++)
        q[i] = (unsigned char)(seed + i * 13 + (i >> 8));
}

/* Number of bytes among the first n that differ from the fill pattern. */
static size_t diff(const void *p, size_t n, unsigned seed)
{
    const unsigned char *q = p;
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += q[i] != (unsigned char)(seed + i * 13 + (i >> 8));
    return bad;
}

/* What a small block made for n bytes holds: its class's size, less the 8
 * bytes of a tail when the request leaves them (a hardened build with small
 * tails, classes.h: soma.h, soma_usable_size). */
static size_t holds(size_t n)
{
    soma_stats st;
    soma_stats_get(&st);
    size_t size = (n + 15) / 16 * 16;
    return size - (st.medium_tail != 0 && SOMA_TEST_SMALL_TAILS && (n - 1) / 8 % 2 == 0 ? 8 : 0);
}

static long in_use(const soma_stats *s, unsigned c)
{
    return (long)s->classes[c].blocks_in_use;
}

static void test_same_class(void)
{
    /* class 1: 32 bytes (26 fills more than 24 of them: no tail) */
    void *p = soma_malloc(26);
    if (!CHECK(p != NULL))
        return;
    fill(p, 26, 1);
    soma_stats_get(&s0);
    void *q = soma_realloc(p, 30);
    CHECK_PTR_EQ(q, p);
    CHECK_EQ(diff(q, 26, 1), 0);
    fill(q, 30, 2);
    q = soma_realloc(q, 32);
    CHECK_PTR_EQ(q, p);
    CHECK_EQ(diff(q, 30, 2), 0);
    q = soma_realloc(q, 25); /* a shrink of less than a quarter */
    CHECK_PTR_EQ(q, p);
    CHECK_EQ(diff(q, 25, 2), 0);
    soma_stats_get(&s1);
    CHECK_EQ(in_use(&s1, 1), in_use(&s0, 1));

    /* A block with a tail (20 bytes asked of 32: 24 held) stays while the
     * size fits what it holds, and moves past it, within its class. */
    void *t = soma_malloc(20);
    fill(t, 20, 14);
    void *t24 = soma_realloc(t, 24);
    CHECK_PTR_EQ(t24, t);
    CHECK_EQ(soma_usable_size(t24), holds(20));
    void *t30 = soma_realloc(t24, 30);
    CHECK(holds(20) == 32 ? t30 == t24 : t30 != t24);
    CHECK_EQ(diff(t30, 20, 14), 0);
    CHECK_EQ(soma_usable_size(t30), 32);
    soma_free(t30);

    /* 24 of 32 bytes is a shrink of exactly a quarter, but 24 is still in
     * the 32-byte class, so the block stays (CPython would copy it to another
     * block of the same class); 16 moves to class 0. */
    void *e = soma_malloc(32);
    fill(e, 32, 12);
    void *e25 = soma_realloc(e, 25);
    CHECK_PTR_EQ(e25, e);
    void *e24 = soma_realloc(e25, 24);
    CHECK_PTR_EQ(e24, e25);
    CHECK_EQ(diff(e24, 24, 12), 0);
    CHECK_EQ(soma_usable_size(e24), 32);
    void *e16 = soma_realloc(e24, 16);
    CHECK(e16 != e24);
    CHECK_EQ(diff(e16, 16, 12), 0);
    CHECK_EQ(soma_usable_size(e16), 16);
    e24 = e16;
    /* 512 -> 385 stays (4 * 385 > 3 * 512); 384 moves to class 23. */
    void *g = soma_malloc(512);
    fill(g, 512, 13);
    void *g385 = soma_realloc(g, 385);
    CHECK_PTR_EQ(g385, g);
    void *g384 = soma_realloc(g385, 384);
    CHECK(g384 != g385);
    CHECK_EQ(diff(g384, 384, 13), 0);
    CHECK_EQ(soma_usable_size(g384), 384);
    soma_free(e24);
    soma_free(g384);

    /* Same for the largest class. */
    void *b = soma_malloc(505);
    fill(b, 505, 3);
    void *b2 = soma_realloc(b, 512);
    CHECK_PTR_EQ(b2, b);
    CHECK_EQ(diff(b2, 505, 3), 0);
    soma_free(b2);
    soma_free(q);
}

static void test_across_classes(void)
{
    soma_stats_get(&s0);
    void *p = soma_malloc(16);
    if (!CHECK(p != NULL))
        return;
    fill(p, 16, 4);
    void *q = soma_realloc(p, 300); /* class 0 -> class 18 */
    if (!CHECK(q != NULL))
        return;
    CHECK(q != p);
    CHECK_EQ(diff(q, 16, 4), 0);
    CHECK_EQ(soma_usable_size(q), 304);
    soma_stats_get(&s1);
    CHECK_EQ(in_use(&s1, 0), in_use(&s0, 0));
    CHECK_EQ(in_use(&s1, 18), in_use(&s0, 18) + 1);

    fill(q, 300, 5);
    void *r = soma_realloc(q, 20); /* class 18 -> class 1 */
    if (!CHECK(r != NULL))
        return;
    CHECK(r != q);
    CHECK_EQ(diff(r, 20, 5), 0);
    CHECK_EQ(soma_usable_size(r), holds(20));
    soma_stats_get(&s1);
    CHECK_EQ(in_use(&s1, 18), in_use(&s0, 18));
    CHECK_EQ(in_use(&s1, 1), in_use(&s0, 1) + 1);

    /* A shrink by a quarter or more within reach of a smaller class moves. */
    void *t = soma_malloc(256); /* class 15 */
    fill(t, 256, 6);
    void *u = soma_realloc(t, 100); /* class 6 */
    CHECK(u != t);
    CHECK_EQ(diff(u, 100, 6), 0);
    CHECK_EQ(soma_usable_size(u), holds(100));
    soma_free(u);
    soma_free(r);
    soma_stats_get(&s1);
    for (unsigned c = 0; c < SOMA_NUM_CLASSES; c++)
        CHECK_EQ(in_use(&s1, c), in_use(&s0, c));
}

static size_t medium_in_use(const soma_stats *st)
{
    size_t n = 0;
    for (size_t c = 0; c < st->medium.num_classes; c++)
        n += st->medium.classes[c].blocks_in_use;
    return n;
}

/* The medium class size that serves n bytes (a class of s bytes holds
 * s - tail: soma_medium_stats). */
static size_t medium_size(const soma_stats *st, size_t n)
{
    for (size_t c = 0; c < st->medium.num_classes; c++)
        if (st->medium.classes[c].size - st->medium_tail >= n)
            return st->medium.classes[c].size;
    return 0;
}

static void test_across_threshold(void)
{
    soma_stats_get(&s0);
    size_t m2000 = medium_size(&s0, 2000), near_max = s0.medium.max_size - 100;
    void *a = soma_malloc(400); /* class 24 */
    if (!CHECK(a != NULL))
        return;
    fill(a, 400, 7);
    void *b = soma_realloc(a, 2000); /* medium: the 2032-byte class (2016 with 4 KiB pools) */
    if (!CHECK(b != NULL))
        return;
    CHECK_EQ(diff(b, 400, 7), 0);
    /* what the class holds: its size, less a tail */
    CHECK_EQ(soma_usable_size(b), m2000 - s0.medium_tail);
    soma_stats_get(&s1);
    CHECK_EQ(in_use(&s1, 24), in_use(&s0, 24)); /* gone from the small classes */
    CHECK_EQ(s1.bytes_in_allocated_blocks, s0.bytes_in_allocated_blocks);
    CHECK_EQ(medium_in_use(&s1), medium_in_use(&s0) + 1);
    CHECK_EQ(s1.medium.bytes_in_allocated_blocks, s0.medium.bytes_in_allocated_blocks + m2000);
    /* In place within the medium class, as for small blocks. */
    fill(b, 2000, 12);
    size_t holds = m2000 - s0.medium_tail;
    CHECK_PTR_EQ(soma_realloc(b, holds), b);
    CHECK_EQ(soma_usable_size(b), holds);
    CHECK_PTR_EQ(soma_realloc(b, 1800), b); /* 1800 > 3/4 of the class */
    CHECK_EQ(soma_usable_size(b), holds);
    CHECK_EQ(diff(b, 1800, 12), 0);

    fill(b, 1800, 8);
    void *big = soma_realloc(b, 20000); /* beyond the medium classes: the system's */
    if (!CHECK(big != NULL))
        return;
    CHECK_EQ(diff(big, 1800, 8), 0);
    CHECK_GE(soma_usable_size(big), 20000);
    soma_stats_get(&s1);
    CHECK_EQ(medium_in_use(&s1), medium_in_use(&s0));
    CHECK_EQ(s1.large.blocks_in_use, s0.large.blocks_in_use + 1);
    CHECK_EQ(s1.large.bytes_in_use, s0.large.bytes_in_use + 20000);

    /* A system block stays the system's, even shrunk (realloc in place). */
    void *c = soma_realloc(big, 100);
    if (!CHECK(c != NULL))
        return;
    CHECK_EQ(diff(c, 100, 8), 0);
    CHECK_GE(soma_usable_size(c), 100);
    soma_stats_get(&s1);
    CHECK_EQ(s1.large.blocks_in_use, s0.large.blocks_in_use + 1); /* still large */
    CHECK_EQ(s1.large.bytes_in_use, s0.large.bytes_in_use + 100);
    CHECK_EQ(medium_in_use(&s1), medium_in_use(&s0));
    soma_free(c);
    void *e = soma_malloc(100);
    fill(e, 100, 9);
    void *d = soma_realloc(e, near_max); /* small to the largest medium class */
    if (!CHECK(d != NULL))
        return;
    CHECK_EQ(diff(d, 100, 9), 0);
    CHECK_EQ(soma_usable_size(d), s0.medium.max_size); /* the largest class holds it */
    soma_free(d);
    soma_stats_get(&s1);
    for (unsigned k = 0; k < SOMA_NUM_CLASSES; k++)
        CHECK_EQ(in_use(&s1, k), in_use(&s0, k));
    CHECK_EQ(medium_in_use(&s1), medium_in_use(&s0));
}

static void test_null_and_zero(void)
{
    soma_stats_get(&s0);
    void *p = soma_realloc(NULL, 100); /* = malloc(100): class 6 */
    if (!CHECK(p != NULL))
        return;
    CHECK_EQ((uintptr_t)p % 16, 0);
    CHECK_EQ(soma_usable_size(p), holds(100));
    soma_stats_get(&s1);
    CHECK_EQ(in_use(&s1, 6), in_use(&s0, 6) + 1);
    void *big = soma_realloc(NULL, 20000);
    CHECK(big != NULL);
    CHECK_GE(soma_usable_size(big), 20000);

    errno = 0;
    CHECK(soma_realloc(p, 0) == NULL);
    soma_stats_get(&s1);
    CHECK_EQ(in_use(&s1, 6), in_use(&s0, 6)); /* freed */
    CHECK(soma_realloc(big, 0) == NULL);      /* a system block: freed too */
    /* The freed block is handed out again: it really was freed. */
    void *again = soma_malloc(100);
    CHECK_PTR_EQ(again, p);
    soma_free(again);
}

static void test_huge(void)
{
    static const size_t huge[] = {SIZE_MAX / 2, SIZE_MAX - 15, SIZE_MAX};
    void *p = soma_malloc(200);
    void *sys = soma_malloc(30000);
    if (!CHECK(p != NULL && sys != NULL))
        return;
    fill(p, 200, 10);
    fill(sys, 30000, 11);
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        soma_stats_get(&s0);
        errno = 0;
        void *q = soma_realloc(p, huge[i]);
        CHECK(q == NULL);
        CHECK_EQ(errno, ENOMEM);
        CHECK_EQ(diff(p, 200, 10), 0);
        CHECK_EQ(soma_usable_size(p), holds(200));
        soma_stats_get(&s1);
        CHECK_EQ(in_use(&s1, 12), in_use(&s0, 12));

        errno = 0;
        q = soma_realloc(sys, huge[i]);
        CHECK(q == NULL);
        CHECK_EQ(errno, ENOMEM);
        CHECK_EQ(diff(sys, 30000, 11), 0);

        errno = 0;
        CHECK(soma_malloc(huge[i]) == NULL);
        CHECK_EQ(errno, ENOMEM);
        /* The large block is still counted, once; nothing else was made. */
        soma_stats_get(&s1);
        CHECK_EQ(s1.large.blocks_in_use, s0.large.blocks_in_use);
        CHECK_EQ(s1.large.bytes_in_use, s0.large.bytes_in_use);
        CHECK_EQ(s1.large.blocks_allocated_total, s0.large.blocks_allocated_total);
    }
    /* Still usable afterwards. */
    void *q = soma_realloc(p, 300);
    CHECK(q != NULL);
    CHECK_EQ(diff(q, 200, 10), 0);
    soma_free(q);
    soma_free(sys);
}

static void test_grow_shrink_walk(void)
{
    soma_stats_get(&s0);
    unsigned char *p = NULL;
    size_t have = 0;
    /* Contents: byte i is (i * 7 + 3) mod 256, written as the block grows. */
    for (size_t n = 1; n <= 12000; n++) {
        unsigned char *q = soma_realloc(p, n);
        if (!CHECK(q != NULL))
            return;
        size_t bad = 0;
        for (size_t i = 0; i < have; i++)
            bad += q[i] != (unsigned char)(i * 7 + 3);
        if (!CHECK_EQ(bad, 0)) {
            test_note("  growing to %zu bytes", n);
            break;
        }
        CHECK_GE(soma_usable_size(q), n);
        q[n - 1] = (unsigned char)((n - 1) * 7 + 3);
        p = q;
        have = n;
    }
    for (size_t n = 12000; n >= 1; n--) {
        unsigned char *q = soma_realloc(p, n);
        if (!CHECK(q != NULL))
            return;
        size_t bad = 0;
        for (size_t i = 0; i < n; i++)
            bad += q[i] != (unsigned char)(i * 7 + 3);
        if (!CHECK_EQ(bad, 0)) {
            test_note("  shrinking to %zu bytes", n);
            break;
        }
        p = q;
    }
    soma_free(p);
    soma_stats_get(&s1);
    for (unsigned c = 0; c < SOMA_NUM_CLASSES; c++)
        CHECK_EQ(in_use(&s1, c), in_use(&s0, c));
}

int main(void)
{
    test_begin("test_realloc");
    test_same_class();
    test_across_classes();
    test_across_threshold();
    test_null_and_zero();
    test_huge();
    test_grow_shrink_walk();
    return test_summary();
}
