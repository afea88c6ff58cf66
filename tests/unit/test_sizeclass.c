/*
 * test_sizeclass: the mapping of request sizes to size classes, and the edge
 * of the small-object threshold.
 *
 *   - every n in 1..512 gives a block of ((n-1)/16+1)*16 bytes, 16-byte
 *     aligned, counted in class (n-1)/16 (and in no other class); all of
 *     it usable, but for the last 8 bytes of a small tail (hardened: n
 *     in 8c+1 .. 8c+8, c even);
 *   - 512 is the last small size (class 31);
 *   - 513 .. medium max are medium blocks: the medium classes are exactly
 *     the sizes ((pool size - 48) / k) rounded down to 16 that exceed 512,
 *     for k = 2, 3, ... (the tests' model of the classes, classes.h,
 *     computed from the pool size: this checks it), and every n in
 *     that range gets the smallest class that holds it, counted in that
 *     medium class and nowhere else;
 *   - above the medium max: a large block from the system allocator,
 *     counted in the large figures only (one block, its requested bytes),
 *     and not after it is freed;
 *   - malloc(0) gives a unique, freeable pointer (a class-0 block);
 *   - all the blocks are distinct and don't overlap (contents survive).
 */
#define _GNU_SOURCE
#include <malloc.h>

#include "classes.h"
#include "soma.h"
#include "test.h"

static soma_stats before, after;

/* What the block for an n-byte request holds: its class's size, less a
 * tailed small block's tail (classes.h; classes_init first). */
static size_t expected_usable(size_t n)
{
    return classes_holds_for(n);
}

/* After one allocation that soma serves in class `cls` (or -1: none), the
 * class counters moved by exactly that block. */
static void check_class_delta(const soma_stats *a, const soma_stats *b, int cls, size_t n)
{
    for (int c = 0; c < SOMA_NUM_CLASSES; c++) {
        size_t want = a->classes[c].blocks_in_use + (c == cls ? 1 : 0);
        if (!CHECK_EQ(b->classes[c].blocks_in_use, want))
            test_note("  (request of %zu bytes, class %d)", n, c);
    }
}

static unsigned char pattern(size_t n, size_t i)
{
    return (unsigned char)(n * 31 + i * 7 + 1);
}

static void test_small_sizes(void)
{
    static void *blocks[SOMA_SMALL_THRESHOLD + 1];
    soma_stats_get(&before);
    CHECK_EQ(before.threshold, 512);
    CHECK_EQ(before.num_classes, 32);
    (void)classes_init(before.pool_size, before.medium_tail);

    for (size_t n = 1; n <= SOMA_SMALL_THRESHOLD; n++) {
        soma_stats get_before;
        soma_stats_get(&get_before);
        void *p = soma_malloc(n);
        blocks[n] = p;
        if (!CHECK(p != NULL))
            continue;
        CHECK_EQ((uintptr_t)p % 16, 0);
        CHECK_EQ(soma_usable_size(p), expected_usable(n));
        soma_stats_get(&after);
        check_class_delta(&get_before, &after, classes_of(n), n);
        /* Class c serves blocks of (c+1)*16 bytes; a hardened build keeps
         * the last 8 of those asked for 8c+1 .. 8c+8, c even. */
        CHECK_EQ(after.classes[classes_of(n)].size, (size_t)(n + 15) / 16 * 16);
        CHECK_EQ(expected_usable(n), (size_t)(n + 15) / 16 * 16 -
                                         (before.medium_tail && SOMA_TEST_SMALL_TAILS && (n - 1) / 8 % 2 == 0 ? 8 : 0));
        memset(p, 0, soma_usable_size(p));
        for (size_t i = 0; i < n; i++)
            ((unsigned char *)p)[i] = pattern(n, i);
    }

    /* Every class got exactly 16 blocks: sizes 16c+1 .. 16c+16. */
    soma_stats_get(&after);
    for (int c = 0; c < SOMA_NUM_CLASSES; c++)
        CHECK_EQ(after.classes[c].blocks_in_use - before.classes[c].blocks_in_use, 16);

    /* All still intact (no two blocks share memory). */
    for (size_t n = 1; n <= SOMA_SMALL_THRESHOLD; n++) {
        const unsigned char *p = blocks[n];
        if (p == NULL)
            continue;
        size_t bad = 0;
        for (size_t i = 0; i < n; i++)
            bad += p[i] != pattern(n, i);
        for (size_t i = n; i < expected_usable(n); i++)
            bad += p[i] != 0;
        if (!CHECK_EQ(bad, 0))
            test_note("  block of %zu bytes was overwritten", n);
    }

    for (size_t n = 1; n <= SOMA_SMALL_THRESHOLD; n++)
        soma_free(blocks[n]);
    soma_stats_get(&after);
    for (int c = 0; c < SOMA_NUM_CLASSES; c++)
        CHECK_EQ(after.classes[c].blocks_in_use, before.classes[c].blocks_in_use);
}

static void test_threshold_edge(void)
{
    /* 512: the last small size, class 31. */
    soma_stats_get(&before);
    void *p512 = soma_malloc(512);
    CHECK(p512 != NULL);
    soma_stats_get(&after);
    check_class_delta(&before, &after, 31, 512);
    CHECK_EQ(soma_usable_size(p512), 512);
    CHECK_EQ(after.classes[31].size, 512);

    /* The medium classes, recomputed from the geometry (classes.h; more
     * than soma.h allows shows as a count that differs). */
    (void)classes_init(before.pool_size, before.medium_tail);
    CHECK_EQ(before.medium.num_classes, classes_nmedium);
    /* A hardened build keeps a medium block's last 16 bytes (pool/tail.h;
     * test_tail says when), an unhardened or a checker's build none. */
    CHECK(before.medium_tail == 16 || before.medium_tail == 0);
    for (size_t i = 0; i < classes_nmedium && i < before.medium.num_classes; i++)
        CHECK_EQ(before.medium.classes[i].size, classes_medium[i]);
    size_t max = before.medium.max_size;
    CHECK_EQ(max, classes_medium_max);

    /* Every medium size: the smallest class that holds it. */
    for (size_t n = 513; n <= max; n++) {
        int cls = classes_of(n);
        if (cls < 0) /* the model's classes end below max: reported above */
            break;
        unsigned char *p = soma_malloc(n);
        if (!CHECK(p != NULL))
            continue;
        if (!CHECK(classes_usable_ok(cls, 0, n, soma_usable_size(p))))
            test_note("  request of %zu bytes: usable %zu", n, soma_usable_size(p));
        CHECK_EQ((uintptr_t)p % 16, 0);
        p[0] = 1;
        p[n - 1] = 2;
        soma_free(p);
    }
    /* Counted in its medium class only. */
    static const size_t medium[] = {513, 514, 528, 544, 545, 600, 1000, 1024, 4096, 0};
    for (size_t i = 0; i < sizeof medium / sizeof medium[0]; i++) {
        size_t n = medium[i] ? medium[i] : max;
        if (n > max) /* a geometry with smaller pools */
            continue;
        int cls = classes_of(n);
        if (cls < 0) /* as above */
            break;
        size_t c = (size_t)cls - SOMA_NUM_CLASSES;
        soma_stats_get(&before);
        void *p = soma_malloc(n);
        soma_stats_get(&after);
        check_class_delta(&before, &after, -1, n);
        for (size_t j = 0; j < after.medium.num_classes; j++)
            CHECK_EQ(after.medium.classes[j].blocks_in_use,
                     before.medium.classes[j].blocks_in_use + (j == c));
        CHECK_EQ(after.medium.bytes_in_allocated_blocks,
                 before.medium.bytes_in_allocated_blocks + classes_size(cls));
        CHECK_EQ(after.medium.total, after.medium.arenas_current * after.arena_size);
        soma_free(p);
    }

    /* Beyond the medium classes: the system's. */
    const size_t big[] = {max + 1, 8192, 10000, 65536, 1 << 20};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
        soma_stats_get(&before);
        void *p = soma_malloc(big[i]);
        if (!CHECK(p != NULL))
            continue;
        CHECK_EQ((uintptr_t)p % 16, 0);
        soma_stats_get(&after);
        check_class_delta(&before, &after, -1, big[i]);
        CHECK_EQ(after.bytes_in_allocated_blocks, before.bytes_in_allocated_blocks);
        CHECK_EQ(after.medium.bytes_in_allocated_blocks, before.medium.bytes_in_allocated_blocks);
        CHECK_EQ(after.large.blocks_in_use, before.large.blocks_in_use + 1);
        CHECK_EQ(after.large.bytes_in_use, before.large.bytes_in_use + big[i]);
        CHECK_EQ(after.large.blocks_allocated_total, before.large.blocks_allocated_total + 1);
        CHECK_GE(soma_usable_size(p), big[i]);
        memset(p, 0xab, soma_usable_size(p));
        soma_free(p);
        soma_stats_get(&after);
        check_class_delta(&before, &after, -1, big[i]);
        CHECK_EQ(after.large.blocks_in_use, before.large.blocks_in_use);
        CHECK_EQ(after.large.bytes_in_use, before.large.bytes_in_use);
    }
    soma_free(p512);
}

static void test_malloc_zero(void)
{
    soma_stats_get(&before);
    void *a = soma_malloc(0);
    void *b = soma_malloc(0);
    void *c = soma_malloc(0);
    CHECK(a != NULL);
    CHECK(b != NULL);
    CHECK(c != NULL);
    CHECK(a != b && b != c && a != c);
    CHECK_EQ((uintptr_t)a % 16, 0);
    /* Served from class 0 (as a 1-byte request). */
    soma_stats_get(&after);
    CHECK_EQ(after.classes[0].blocks_in_use - before.classes[0].blocks_in_use, 3);
    CHECK_EQ(soma_usable_size(a), expected_usable(1));
    if (a)
        memset(a, 1, soma_usable_size(a));
    if (b)
        memset(b, 2, soma_usable_size(b));
    if (a && b)
        CHECK_EQ(((unsigned char *)a)[expected_usable(1) - 1], 1);
    soma_free(a);
    soma_free(b);
    soma_free(c);
    soma_stats_get(&after);
    CHECK_EQ(after.classes[0].blocks_in_use, before.classes[0].blocks_in_use);
    CHECK_EQ(soma_usable_size(NULL), 0);
}

int main(void)
{
    test_begin("test_sizeclass");
    test_small_sizes();
    test_threshold_edge();
    test_malloc_zero();
    return test_summary();
}
