/*
 * test_diff: soma_stats_diff on two snapshots built by hand, the same two
 * that tests/stats/data/diff_before.json and diff_after.json describe (so the
 * text must be exactly tests/stats/data/diff_expected.txt, which test_snapshots.py
 * also expects from `soma diff` on the JSON files), plus the edge cases:
 * nothing changed, and different geometries.
 */
#include <errno.h>

#include "test.h"

static void geometry(soma_stats *st)
{
    memset(st, 0, sizeof *st);
    st->threshold = 512;
    st->num_classes = 32;
    st->pool_size = 16384;
    st->arena_size = 1048576;
    st->pool_overhead = 48;
    for (size_t c = 0; c < 32; c++)
        st->classes[c].size = (c + 1) * 16;
    st->medium.max_size = 8160;
    st->medium.num_classes = 29;
    for (size_t m = 0; m < 29; m++) /* k = 30 .. 2 blocks per pool */
        st->medium.classes[m].size = ((16384 - 48) / (30 - m)) & ~(size_t)15;
    st->arena_map_root_bytes = st->arena_map_total = 4096;
    st->address_space_reserved = (size_t)1 << 40;
    st->large.blocks_allocated_total = 2;
    st->num_types = 1;
    strcpy(st->types[0].name, "Nodes");
    st->types[0].elem_size = 48;
    st->classes[2] = (soma_class_stats){48, 1, 100, 240};
}

static void before(soma_stats *st)
{
    geometry(st);
    st->arenas_allocated_total = st->arenas_highwater = st->arenas_current = 1;
    st->arena_bytes = st->total = 1048576;
    st->bytes_in_allocated_blocks = 4800;
    st->bytes_in_available_blocks = 11520;
    st->unused_pools = 63;
    st->unused_pool_bytes = 1032192;
    st->bytes_lost_to_pool_headers = 48;
    st->bytes_lost_to_quantization = 16;
    st->large.blocks_in_use = 1;
    st->large.bytes_in_use = 10000;
    st->types[0].count = 10;
}

static void after(soma_stats *st)
{
    geometry(st);
    st->arenas_allocated_total = st->arenas_highwater = 3;
    st->arenas_reclaimed = 1;
    st->arenas_current = 2;
    st->arena_bytes = st->total = 2097152;
    st->bytes_in_allocated_blocks = 69600;
    st->bytes_in_available_blocks = 8480;
    st->unused_pools = 122;
    st->unused_pool_bytes = 1998848;
    st->bytes_lost_to_pool_headers = 288;
    st->bytes_lost_to_quantization = 20096;
    st->classes[31] = (soma_class_stats){512, 5, 126, 29};
    st->medium.arenas_allocated_total = st->medium.arenas_highwater = 1;
    st->medium.arenas_current = 1;
    st->medium.arena_bytes = 1048576;
    st->medium.classes[28] = (soma_class_stats){8160, 1, 2, 0};
    st->types[0].count = 4;
    /* 3 of the 122 unused pools have their pages returned; 2 more did and
     * were put to work again.  (diff_before.json has no "returned": a
     * snapshot from before version 3, read as zeros.) */
    st->returned.pools = 3;
    st->returned.pool_bytes = 3 * 16384;
    st->returned.pools_total = 5;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* soma_stats_diff into a string; its errno is kept (fclose may change it). */
static int diff_to_string(const soma_stats *a, const soma_stats *b, char **text)
{
    size_t len;
    FILE *f = open_memstream(text, &len);
    int rc = soma_stats_diff(f, a, b);
    int saved = errno;
    fclose(f);
    errno = saved;
    return rc;
}

int main(void)
{
    test_program_name = "test_diff";
    static soma_stats a, b;
    before(&a);
    after(&b);
    char *text = NULL;
    int rows = diff_to_string(&a, &b, &text);
    /* 2 classes, 12 counts (one of them the Nodes cache, two returned
     * pools'), 10 byte lines. */
    CHECK_EQ(rows, 24);
    const char *expected = slurp(SOMA_TEST_DATA "/diff_expected.txt");
    CHECK(expected != NULL);
    if (expected != NULL)
        CHECK_STR_EQ(text, expected);
    free(text);

    /* Nothing changed: one line, 0 rows. */
    text = NULL;
    CHECK_EQ(diff_to_string(&a, &a, &text), 0);
    CHECK_STR_EQ(text, "Nothing changed.\n");
    free(text);

    /* The reverse diff has the same rows, with the signs turned. */
    text = NULL;
    CHECK_EQ(diff_to_string(&b, &a, &text), 24);
    CHECK(strstr(text, "# unused pools                                122             63            -59") != NULL);
    CHECK(strstr(text, "# unused pools with pages returned              3              0             -3") != NULL);
    free(text);

    /* A cache that is gone counts as 0 after (and one that is new as 0
     * before). */
    static soma_stats gone;
    before(&gone);
    gone.num_types = 0;
    text = NULL;
    CHECK_EQ(diff_to_string(&a, &gone, &text), 1);
    char line[128];
    snprintf(line, sizeof line, "%-30s %14s %14s %14s\n", "# free Nodes", "10", "0", "-10");
    CHECK(strstr(text, line) != NULL);
    free(text);
    text = NULL;
    CHECK_EQ(diff_to_string(&gone, &a, &text), 1);
    snprintf(line, sizeof line, "%-30s %14s %14s %14s\n", "# free Nodes", "0", "10", "+10");
    CHECK(strstr(text, line) != NULL);
    free(text);

    /* Different geometries cannot be compared. */
    b.pool_size = 4096;
    text = NULL;
    errno = 0;
    CHECK_EQ(diff_to_string(&a, &b, &text), -1);
    CHECK_EQ(errno, EINVAL);
    free(text);
    b.pool_size = 16384;
    b.classes[5].size = 100;
    text = NULL;
    CHECK_EQ(diff_to_string(&a, &b, &text), -1);
    free(text);
    return test_summary();
}
