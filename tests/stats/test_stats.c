/*
 * test_stats: the figures of soma_stats_get are exact.
 *
 *   - k_c blocks allocated in class c (k_c not a multiple of the capacity)
 *     show as exactly k_c more blocks in use, in ceil(k_c / capacity) pools
 *     when the class had none, with avail = pools * capacity - in use;
 *   - the byte figures: allocated = sum in_use * size, available = sum
 *     avail * size, headers = pools * 48, quantization = pools * ((pool - 48)
 *     mod size), unused = N * pool size; the six add up to Total, which is
 *     arenas_current * arena_size; every pool of every arena is in use,
 *     unused or lost to alignment;
 *   - arena counters: reclaimed = total - current, highwater >= current;
 *     arena map total = root + mid + bot;
 *   - frees move the figures back exactly; system-sized blocks change
 *     nothing; two snapshots with nothing in between are identical.
 */
#include "soma.h"
#include "test.h"

static soma_stats base, st, st2;

static size_t capacity(const soma_stats *s, unsigned c)
{
    return (s->pool_size - s->pool_overhead) / s->classes[c].size;
}

/* Every relation between the figures of one snapshot. */
static void check_invariants(const soma_stats *s, const char *when)
{
    unsigned long failed_before = test_failed_count;
    size_t alloc = 0, avail = 0, pools = 0, headers = 0, quant = 0;
    CHECK_EQ(s->threshold, SOMA_SMALL_THRESHOLD);
    CHECK_EQ(s->num_classes, SOMA_NUM_CLASSES);
    CHECK_EQ(s->pool_overhead, 48);
    for (unsigned c = 0; c < SOMA_NUM_CLASSES; c++) {
        const soma_class_stats *cs = &s->classes[c];
        CHECK_EQ(cs->size, (c + 1) * 16);
        CHECK_EQ(cs->avail_blocks, cs->num_pools * capacity(s, c) - cs->blocks_in_use);
        if (cs->num_pools)
            CHECK_GE(cs->blocks_in_use, cs->num_pools); /* a pool in use has >= 1 block */
        else
            CHECK_EQ(cs->blocks_in_use, 0);
        alloc += cs->blocks_in_use * cs->size;
        avail += cs->avail_blocks * cs->size;
        pools += cs->num_pools;
        headers += cs->num_pools * 48;
        quant += cs->num_pools * ((s->pool_size - 48) % cs->size);
    }
    CHECK_EQ(s->bytes_in_allocated_blocks, alloc);
    CHECK_EQ(s->bytes_in_available_blocks, avail);
    CHECK_EQ(s->bytes_lost_to_pool_headers, headers);
    CHECK_EQ(s->bytes_lost_to_quantization, quant);
    CHECK_EQ(s->unused_pool_bytes, s->unused_pools * s->pool_size);
    CHECK_EQ(s->bytes_lost_to_arena_alignment % s->pool_size, 0);
    CHECK_EQ(s->total, s->bytes_in_allocated_blocks + s->bytes_in_available_blocks +
                           s->unused_pool_bytes + s->bytes_lost_to_pool_headers +
                           s->bytes_lost_to_quantization + s->bytes_lost_to_arena_alignment);
    CHECK_EQ(s->total, s->arenas_current * s->arena_size);
    CHECK_EQ(s->arena_bytes, s->arenas_current * s->arena_size);
    /* Each pool of each arena: in use, unused, or lost to alignment. */
    CHECK_EQ(pools + s->unused_pools + s->bytes_lost_to_arena_alignment / s->pool_size,
             s->arenas_current * (s->arena_size / s->pool_size));
    CHECK_EQ(s->arenas_reclaimed, s->arenas_allocated_total - s->arenas_current);
    CHECK_GE(s->arenas_highwater, s->arenas_current);
    CHECK_LE(s->arenas_highwater, s->arenas_allocated_total);
    CHECK_EQ(s->arena_map_total,
             s->arena_map_root_bytes + s->arena_map_mid_bytes + s->arena_map_bot_bytes);
    /* soma's map is one flat table over its address range (region.c): the
     * pages covering every arena slot used so far, no interior nodes. */
    CHECK_EQ(s->arena_map_mid_nodes, 0);
    CHECK_EQ(s->arena_map_bot_nodes, 0);
    CHECK_EQ(s->arena_map_mid_bytes + s->arena_map_bot_bytes, 0);
    CHECK_EQ(s->arena_map_root_bytes % 4096, 0);
    if (s->arenas_current > 0) {
        CHECK_GE(s->arena_map_root_bytes, 4096);
        CHECK_GE(s->address_space_reserved, s->arenas_current * s->arena_size);
    }
    if (test_failed_count != failed_before)
        test_note("  (invariants of the snapshot taken %s)", when);
}

/* 1 if every figure of a and b is the same. */
static int same_stats(const soma_stats *a, const soma_stats *b)
{
    int same = 1;
#define SAME(f)                                                                                    \
    do {                                                                                           \
        if (!CHECK_EQ(a->f, b->f))                                                                 \
            same = 0;                                                                              \
    } while (0)
    for (unsigned c = 0; c < SOMA_NUM_CLASSES; c++) {
        SAME(classes[c].size);
        SAME(classes[c].num_pools);
        SAME(classes[c].blocks_in_use);
        SAME(classes[c].avail_blocks);
    }
    SAME(threshold);
    SAME(num_classes);
    SAME(pool_size);
    SAME(arena_size);
    SAME(pool_overhead);
    SAME(arenas_allocated_total);
    SAME(arenas_reclaimed);
    SAME(arenas_highwater);
    SAME(arenas_current);
    SAME(arena_bytes);
    SAME(bytes_in_allocated_blocks);
    SAME(bytes_in_available_blocks);
    SAME(unused_pools);
    SAME(unused_pool_bytes);
    SAME(bytes_lost_to_pool_headers);
    SAME(bytes_lost_to_quantization);
    SAME(bytes_lost_to_arena_alignment);
    SAME(total);
    SAME(arena_map_mid_nodes);
    SAME(arena_map_bot_nodes);
    SAME(arena_map_root_bytes);
    SAME(arena_map_mid_bytes);
    SAME(arena_map_bot_bytes);
    SAME(arena_map_total);
    SAME(num_types);
#undef SAME
    return same;
}

#define NCLS 6
static const unsigned cls[NCLS] = {0, 5, 12, 20, 27, 31};
static const size_t want_count[NCLS] = {1500, 333, 77, 200, 95, 45};
static size_t count[NCLS];
static void **blk[NCLS];

/* The leading version and size: filled in, and a caller built against a
 * smaller soma_stats (an older soma.h) gets exactly its own bytes, the
 * same as the start of a whole snapshot, and nothing past them. */
static void check_sized(void)
{
    static soma_stats whole;
    static unsigned char buf[sizeof(soma_stats) + 64];
    soma_stats_get(&whole);
    CHECK_EQ(whole.version, SOMA_STATS_VERSION);
    CHECK_EQ(whole.size, sizeof(soma_stats));
    size_t part = offsetof(soma_stats, arenas_allocated_total);
    memset(buf, 0xAB, sizeof buf);
    soma_stats_get_sized((soma_stats *)buf, part);
    soma_stats got;
    memcpy(&got, buf, part);
    CHECK_EQ(got.version, SOMA_STATS_VERSION);
    CHECK_EQ(got.size, part);
    CHECK_EQ(got.threshold, whole.threshold);
    size_t from = offsetof(soma_stats, classes);
    CHECK(memcmp(buf + from, (const char *)&whole + from, part - from) == 0);
    size_t untouched = 0;
    for (size_t i = part; i < sizeof buf; i++)
        untouched += buf[i] == 0xAB;
    CHECK_EQ(untouched, sizeof buf - part);
}

int main(void)
{
    test_begin("test_stats");
    soma_stats_get(&base);
    check_invariants(&base, "at start");
    check_sized();

    /* Two snapshots with nothing in between are the same. */
    soma_stats_get(&st);
    CHECK(same_stats(&base, &st));

    for (int i = 0; i < NCLS; i++) {
        unsigned c = cls[i];
        size_t cap = capacity(&base, c);
        count[i] = want_count[i];
        if (count[i] % cap == 0)
            count[i]++;
        blk[i] = calloc(count[i], sizeof(void *));
        if (!CHECK(blk[i] != NULL))
            return test_summary();
        for (size_t k = 0; k < count[i]; k++) {
            /* The request sizes of one twin of the class, in turn: those
             * that fill a block, or (every other class) those that leave
             * it 8 bytes, which a hardened build serves from pools of
             * their own (the statistics count both as the class's) */
            size_t n = (c + 1) * 16 - (i % 2 ? 8 : 0) - k % 8;
            blk[i][k] = soma_malloc(n);
            if (!CHECK(blk[i][k] != NULL))
                return test_summary();
            memset(blk[i][k], (int)k, n);
        }
    }
    /* And a few large ones, which the stats must not see. */
    void *large[4];
    for (int i = 0; i < 4; i++)
        large[i] = soma_malloc(513 + (size_t)i * 1000);

    soma_stats_get(&st);
    check_invariants(&st, "after allocating");
    for (int i = 0; i < NCLS; i++) {
        unsigned c = cls[i];
        size_t cap = capacity(&st, c);
        CHECK_EQ(st.classes[c].blocks_in_use - base.classes[c].blocks_in_use, count[i]);
        if (base.classes[c].num_pools == 0) {
            CHECK_EQ(st.classes[c].num_pools, (count[i] + cap - 1) / cap);
            CHECK_EQ(st.classes[c].avail_blocks, st.classes[c].num_pools * cap - count[i]);
        } else {
            test_note("class %u was in use before; pool count not checked", c);
        }
    }
    /* Classes not allocated from did not move. */
    for (unsigned c = 0; c < SOMA_NUM_CLASSES; c++) {
        int used = 0;
        for (int i = 0; i < NCLS; i++)
            used |= cls[i] == c;
        if (!used) {
            CHECK_EQ(st.classes[c].blocks_in_use, base.classes[c].blocks_in_use);
            CHECK_EQ(st.classes[c].num_pools, base.classes[c].num_pools);
        }
    }
    CHECK_GE(st.arenas_highwater, base.arenas_highwater);
    CHECK_GE(st.arenas_allocated_total, base.arenas_allocated_total);

    /* Still the same snapshot twice; large frees do not move it either. */
    soma_stats_get(&st2);
    CHECK(same_stats(&st, &st2));
    for (int i = 0; i < 4; i++)
        soma_free(large[i]);
    soma_stats_get(&st2);
    CHECK(same_stats(&st, &st2));

    /* Free every other block of each class (and the last third of class 0):
     * the counts drop by exactly that many. */
    size_t freed[NCLS] = {0};
    for (int i = 0; i < NCLS; i++) {
        for (size_t k = 0; k < count[i]; k += 2) {
            soma_free(blk[i][k]);
            blk[i][k] = NULL;
            freed[i]++;
        }
        if (i == 0)
            for (size_t k = count[i] * 2 / 3; k < count[i]; k++)
                if (blk[i][k]) {
                    soma_free(blk[i][k]);
                    blk[i][k] = NULL;
                    freed[i]++;
                }
    }
    soma_stats_get(&st2);
    check_invariants(&st2, "after freeing some");
    for (int i = 0; i < NCLS; i++) {
        unsigned c = cls[i];
        CHECK_EQ(st2.classes[c].blocks_in_use - base.classes[c].blocks_in_use,
                 count[i] - freed[i]);
        /* Pools only empty when all their blocks are gone. */
        CHECK_LE(st2.classes[c].num_pools, st.classes[c].num_pools);
    }
    /* Class 0 lost every block in its last third of pools, more or less:
     * fewer pools now. */
    if (base.classes[0].num_pools == 0)
        CHECK_LT(st2.classes[0].num_pools, st.classes[0].num_pools);

    for (int i = 0; i < NCLS; i++) {
        for (size_t k = 0; k < count[i]; k++)
            soma_free(blk[i][k]); /* NULL for the freed ones: a no-op */
        free(blk[i]);
    }
    soma_stats_get(&st2);
    check_invariants(&st2, "after freeing all");
    for (unsigned c = 0; c < SOMA_NUM_CLASSES; c++) {
        CHECK_EQ(st2.classes[c].blocks_in_use, base.classes[c].blocks_in_use);
        CHECK_EQ(st2.classes[c].num_pools, base.classes[c].num_pools);
    }
    CHECK_LE(st2.arenas_current, base.arenas_current + 1);
    CHECK_EQ(st2.arenas_highwater, st.arenas_highwater);
    return test_summary();
}
