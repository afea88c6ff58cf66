/*
 * test_dump: the printed dump, read back.
 *
 *   - soma_stats_print into a memory stream, between two snapshots that must
 *     be identical; every line parsed (dump_parse.h, which checks the layout
 *     strictly: exact first line and headers, 54-character rows, printone
 *     lines of 57 characters with '=' in column 36, values right-aligned with
 *     exact thousands separators, 71-character type lines) and every number
 *     compared with the snapshot: class rows (exactly the classes with pools
 *     in use), the arena counters, the "N arenas * S bytes/arena" and
 *     "N unused pools * S bytes" labels, the byte lines, the arena map, the
 *     type lines; and the dump's own arithmetic;
 *   - soma_stats_fprint of a made-up snapshot, every field a different
 *     number (up to 16 digits), gives each number back under its own label;
 *   - pools emptied in arenas that stay, their pages given back by
 *     soma_purge(1): the "Returned pools" section counts exactly those
 *     (small and medium), the byte lines still add up to Total, the pages
 *     hold no memory, and a pool put back to work leaves the count but not
 *     the total; a snapshot of version 2's size prints no such section;
 *   - a failing stream makes soma_stats_print return -1;
 *   - the sequence of line kinds and labels is that of CPython 3.12's dump
 *     (the reference file; the comparison is skipped, not failed, when the
 *     file is absent), and the same parser and arithmetic accept CPython's
 *     own dump.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>

#include "dump_parse.h"
#include "soma.h"
#include "test.h"

#ifndef SOMA_REFERENCE_DIR
#define SOMA_REFERENCE_DIR "../shared/reference"
#endif

static soma_stats s1, s2;
static dp_dump parsed, ref;

static size_t cache_a = 17, cache_b = 1234567;
static size_t count_a(void *ctx)
{
    return *(size_t *)ctx;
}

static void test_commas(void)
{
    static const struct {
        size_t v;
        const char *s;
    } cases[] = {
        {0, "0"},
        {7, "7"},
        {999, "999"},
        {1000, "1,000"},
        {65536, "65,536"},
        {262144, "262,144"},
        {1048576, "1,048,576"},
        {123456789, "123,456,789"},
        {1000000000, "1,000,000,000"},
        {SIZE_MAX, "18,446,744,073,709,551,615"},
    };
    char buf[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dp_commas(buf, sizeof buf, cases[i].v);
        CHECK_STR_EQ(buf, cases[i].s);
    }
}

/* Read a whole stream written by fn into a malloc'ed string. */
static char *capture(int (*fn)(FILE *, const void *), const void *arg, size_t *len, int *rc)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!CHECK(f != NULL))
        return NULL;
    *rc = fn(f, arg);
    fclose(f);
    *len = n;
    return buf;
}

static int print_live(FILE *f, const void *arg)
{
    (void)arg;
    return soma_stats_print(f);
}

static int print_given(FILE *f, const void *arg)
{
    return soma_stats_fprint(f, arg);
}

/* Every line of the dump by kind: exact lengths and '=' columns. */
static void check_line_shapes(const char *text, size_t len)
{
    const char *p = text, *end = text + len;
    size_t printone = 0, rows = 0, types = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!CHECK(nl != NULL)) /* every line ends in a newline */
            break;
        size_t n = (size_t)(nl - p);
        if (n >= 22 && p[n - 22] == '=') {
            if (n == 71 && memchr(p, '*', n) && strstr(p, " bytes each") < nl) {
                CHECK_EQ(p[49], '=');
                types++;
            } else {
                if (!CHECK_EQ(n, 57))
                    test_note("  line: %.*s", (int)n, p);
                CHECK_EQ(p[35], '=');
                printone++;
            }
        } else if (n > 0 && isdigit((unsigned char)p[n - 1]) && p[0] == ' ') {
            CHECK_EQ(n, 54);
            rows++;
        }
        p = nl + 1;
    }
    /* 4 + 1 arena lines, 7 byte lines, 2 + 4 arena map lines. */
    CHECK_EQ(printone, 18);
    CHECK_EQ(rows, parsed.nrows);
    CHECK_EQ(types, parsed.ntypes);
}

static void compare_with_snapshot(const dp_dump *d, const soma_stats *s)
{
    CHECK_EQ(d->threshold, s->threshold);
    CHECK_EQ(d->nclasses, s->num_classes);
    size_t r = 0;
    for (size_t c = 0; c < SOMA_NUM_CLASSES; c++) {
        const soma_class_stats *cs = &s->classes[c];
        if (cs->num_pools == 0) {
            CHECK(dp_find_row(d, c) == NULL);
            continue;
        }
        const dp_row *row = dp_find_row(d, c);
        if (!CHECK(row != NULL)) {
            test_note("  class %zu has %zu pools but no row", c, cs->num_pools);
            continue;
        }
        CHECK_EQ(row->size, cs->size);
        CHECK_EQ(row->pools, cs->num_pools);
        CHECK_EQ(row->in_use, cs->blocks_in_use);
        CHECK_EQ(row->avail, cs->avail_blocks);
        r++;
    }
    CHECK_EQ(d->nrows, r);
    CHECK_EQ(d->arenas_total, s->arenas_allocated_total);
    CHECK_EQ(d->arenas_reclaimed, s->arenas_reclaimed);
    CHECK_EQ(d->arenas_highwater, s->arenas_highwater);
    CHECK_EQ(d->arenas_current, s->arenas_current);
    CHECK_EQ(d->label_arenas, s->arenas_current);
    CHECK_EQ(d->label_arena_size, s->arena_size);
    CHECK_EQ(d->arena_bytes, s->arena_bytes);
    CHECK_EQ(d->alloc_bytes, s->bytes_in_allocated_blocks);
    CHECK_EQ(d->avail_bytes, s->bytes_in_available_blocks);
    CHECK_EQ(d->label_unused_pools, s->unused_pools);
    CHECK_EQ(d->label_pool_size, s->pool_size);
    CHECK_EQ(d->unused_pool_bytes, s->unused_pool_bytes);
    CHECK_EQ(d->pool_headers, s->bytes_lost_to_pool_headers);
    CHECK_EQ(d->quantization, s->bytes_lost_to_quantization);
    CHECK_EQ(d->arena_alignment, s->bytes_lost_to_arena_alignment);
    CHECK_EQ(d->total, s->total);
    CHECK_EQ(d->map_mid_nodes, s->arena_map_mid_nodes);
    CHECK_EQ(d->map_bot_nodes, s->arena_map_bot_nodes);
    CHECK_EQ(d->map_root_bytes, s->arena_map_root_bytes);
    CHECK_EQ(d->map_mid_bytes, s->arena_map_mid_bytes);
    CHECK_EQ(d->map_bot_bytes, s->arena_map_bot_bytes);
    CHECK_EQ(d->map_total, s->arena_map_total);
    if (CHECK_EQ(d->ntypes, s->num_types)) {
        for (size_t i = 0; i < d->ntypes; i++) {
            CHECK_STR_EQ(d->types[i].name, s->types[i].name);
            CHECK_EQ(d->types[i].count, s->types[i].count);
            CHECK_EQ(d->types[i].elem_size, s->types[i].elem_size);
            CHECK_EQ(d->types[i].value, s->types[i].count * s->types[i].elem_size);
        }
    }
}

static int same_snapshot(const soma_stats *a, const soma_stats *b)
{
    int same = a->num_types == b->num_types;
    for (size_t c = 0; c < SOMA_NUM_CLASSES; c++)
        same &= a->classes[c].num_pools == b->classes[c].num_pools &&
                a->classes[c].blocks_in_use == b->classes[c].blocks_in_use &&
                a->classes[c].avail_blocks == b->classes[c].avail_blocks;
    same &= a->arenas_allocated_total == b->arenas_allocated_total &&
            a->arenas_current == b->arenas_current && a->arenas_highwater == b->arenas_highwater &&
            a->unused_pools == b->unused_pools && a->total == b->total &&
            a->arena_map_total == b->arena_map_total;
    for (size_t i = 0; same && i < a->num_types; i++)
        same &= a->types[i].count == b->types[i].count;
    return same;
}

static char *the_dump;
static size_t the_dump_len;

static void test_live_dump(void)
{
    /* Enough blocks that some figures pass a million (commas at two places). */
    enum { N1 = 9000, N2 = 2500, N3 = 700 };
    static void *b1[N1], *b2[N2], *b3[N3];
    for (int i = 0; i < N1; i++)
        b1[i] = soma_malloc(40);
    for (int i = 0; i < N2; i++)
        b2[i] = soma_malloc(300);
    for (int i = 0; i < N3; i++)
        b3[i] = soma_malloc(512);
    CHECK_EQ(soma_stats_register_type("TestDumpObjects", 56, count_a, &cache_a), 0);
    CHECK_EQ(soma_stats_register_type("Big cache entries", 8, count_a, &cache_b), 0);

    soma_stats_get(&s1);
    int rc = -1;
    size_t len = 0;
    char *text = capture(print_live, NULL, &len, &rc);
    soma_stats_get(&s2);
    CHECK_EQ(rc, 0);
    if (!CHECK(same_snapshot(&s1, &s2)))
        test_note("  the stats moved while nothing was allocated");
    CHECK_GE(s1.bytes_in_allocated_blocks, 1000000);
    if (!text)
        return;

    /* The first line, exactly. */
    const char *first = "Small block threshold = 512, in 32 size classes.\n";
    CHECK(strncmp(text, first, strlen(first)) == 0);

    char err[1024];
    size_t consumed = 0;
    if (!CHECK_EQ(dp_parse(text, len, &parsed, err, sizeof err, &consumed), 0)) {
        test_note("%s", err);
        fputs(text, stdout);
    } else {
        CHECK_EQ(consumed, len); /* nothing after the type lines */
        compare_with_snapshot(&parsed, &s1);
        if (!CHECK_EQ(dp_consistent(&parsed, 48, err, sizeof err), 0))
            test_note("%s", err);
        check_line_shapes(text, len);
        /* The type lines in full, as CPython lays out its free lists. */
        CHECK(strstr(text, "\n" /* 9 spaces of padding: the label is 39 characters */
                           "         17 free TestDumpObjects * 56 bytes each ="
                           "                  952\n") != NULL);
        CHECK(strstr(text, "\n   1234567 free Big cache entries * 8 bytes each ="
                           "            9,876,536\n") != NULL);
        char want[128], num[32];
        dp_commas(num, sizeof num, s1.arena_bytes);
        snprintf(want, sizeof want, "%zu arenas * %zu bytes/arena", s1.arenas_current,
                 s1.arena_size);
        char line[256];
        snprintf(line, sizeof line, "%-35s=%21s\n", want, num);
        CHECK(strstr(text, line) != NULL);
    }
    the_dump = text;
    the_dump_len = len;

    CHECK_EQ(soma_stats_unregister_type("TestDumpObjects"), 0);
    CHECK_EQ(soma_stats_unregister_type("Big cache entries"), 0);
    for (int i = 0; i < N1; i++)
        soma_free(b1[i]);
    for (int i = 0; i < N2; i++)
        soma_free(b2[i]);
    for (int i = 0; i < N3; i++)
        soma_free(b3[i]);
}

/* The value of the "label = value" line that starts with `label`, or -1. */
static long long line_value(const char *text, const char *label)
{
    const char *at = strstr(text, label);
    if (at == NULL)
        return -1;
    const char *eq = strchr(at, '=');
    if (eq == NULL)
        return -1;
    long long v = 0;
    for (const char *q = eq + 1; *q && *q != '\n'; q++)
        if (*q >= '0' && *q <= '9')
            v = v * 10 + (*q - '0');
    return v;
}

/* Medium blocks: after CPython's dump, a section in the same layout whose
 * figures add up (rows: avail = pools * capacity - in use; the byte lines
 * sum to Total = arenas * arena size) and equal the snapshot's; then the
 * large blocks' section, with the snapshot's figures. */
static void test_medium_section(void)
{
    enum { NM = 300 };
    static void *m[NM];
    soma_stats_get(&s1);
    size_t max = s1.medium.max_size; /* 8144, or 2000 with 4 KiB pools (a hardened build) */
    for (int i = 0; i < NM; i++)
        m[i] = soma_malloc(i % 3 == 0 ? 600 : max - 4 * (size_t)i);
    void *large[3] = {soma_malloc(max + 1), soma_malloc(100000), soma_malloc(1 << 20)};
    soma_stats_get(&s1);
    int rc = -1;
    size_t len = 0;
    char *text = capture(print_live, NULL, &len, &rc);
    CHECK_EQ(rc, 0);
    if (!text)
        return;
    char err[1024];
    size_t consumed = 0;
    if (!CHECK_EQ(dp_parse(text, len, &parsed, err, sizeof err, &consumed), 0)) {
        test_note("%s", err);
        free(text);
        return;
    }
    const char *rest = text + consumed;
    char head[200];
    snprintf(head, sizeof head,
             "\nMedium blocks (soma's own, not in CPython's dump): 513 to %zu bytes, in %zu size "
             "classes.\n\nclass   size   num pools   blocks in use  avail blocks\n",
             s1.medium.max_size, s1.medium.num_classes);
    if (!CHECK(strncmp(rest, head, strlen(head)) == 0))
        test_note("  the medium section starts:\n%.300s", rest);
    const char *row = strstr(rest, "-----   ----");
    size_t rows = 0, in_use = 0, allocated = 0, available = 0, pools = 0;
    for (row = row ? strchr(row, '\n') + 1 : NULL; row && *row != '\n'; row = strchr(row, '\n') + 1) {
        size_t c, size, np, used, avail;
        if (!CHECK_EQ(sscanf(row, "%zu %zu %zu %zu %zu", &c, &size, &np, &used, &avail), 5))
            break;
        rows++;
        const soma_class_stats *cs = &s1.medium.classes[c - SOMA_NUM_CLASSES];
        CHECK(c >= SOMA_NUM_CLASSES && c < SOMA_NUM_CLASSES + s1.medium.num_classes);
        CHECK_EQ(size, cs->size);
        CHECK_EQ(np, cs->num_pools);
        CHECK_EQ(used, cs->blocks_in_use);
        CHECK_EQ(avail, np * ((s1.pool_size - 48) / size) - used);
        in_use += used;
        allocated += used * size;
        available += avail * size;
        pools += np;
    }
    CHECK_GE(rows, 2);
    CHECK_EQ(in_use, NM);
    CHECK_EQ(line_value(rest, "# medium arenas allocated current"), (long long)s1.medium.arenas_current);
    CHECK_EQ(line_value(rest, "# medium arenas allocated total"),
             (long long)s1.medium.arenas_allocated_total);
    CHECK_EQ(line_value(rest, "# bytes in allocated blocks"), (long long)allocated);
    CHECK_EQ(line_value(rest, "# bytes in available blocks"), (long long)available);
    CHECK_EQ(line_value(rest, "# bytes lost to pool headers"), (long long)(pools * 48));
    long long total = line_value(rest, "Total");
    CHECK_EQ(total, (long long)(s1.medium.arenas_current * s1.arena_size));
    long long sum = line_value(rest, "# bytes in allocated blocks") +
                    line_value(rest, "# bytes in available blocks") +
                    line_value(rest, " unused pools * ") +
                    line_value(rest, "# bytes lost to pool headers") +
                    line_value(rest, "# bytes lost to quantization");
    CHECK_EQ(sum, total);
    /* The large blocks, last. */
    const char *lg = strstr(rest, "\nLarge blocks (soma's own mappings, freed ones cached): above ");
    if (CHECK(lg != NULL)) {
        CHECK_EQ(line_value(lg, "# large blocks in use"), (long long)s1.large.blocks_in_use);
        CHECK_GE(line_value(lg, "# large blocks in use"), 3);
        CHECK_EQ(line_value(lg, "# bytes in large blocks"), (long long)s1.large.bytes_in_use);
        CHECK_GE(line_value(lg, "# bytes in large blocks"), (long long)(max + 1 + 100000 + (1 << 20)));
        CHECK_EQ(line_value(lg, "# large blocks allocated total"),
                 (long long)s1.large.blocks_allocated_total);
        CHECK_EQ(line_value(lg, "# bytes mapped for large blocks"),
                 (long long)s1.large_map.bytes_mapped);
        CHECK_GE(line_value(lg, "# bytes mapped for large blocks"),
                 line_value(lg, "# bytes in large blocks") - (long long)max); /* pages, not bytes */
        CHECK_EQ(line_value(lg, "# large mappings cached"), (long long)s1.large_map.cached_blocks);
        CHECK_EQ(line_value(lg, "# bytes in cached large mappings"),
                 (long long)s1.large_map.cached_bytes);
        CHECK_EQ(line_value(lg, "# bytes the large cache may hold"),
                 (long long)s1.large_map.cache_max_bytes);
        CHECK_EQ(line_value(lg, "# large mappings made total"),
                 (long long)s1.large_map.maps_made_total);
        CHECK_EQ(line_value(lg, "# large mappings reused total"),
                 (long long)s1.large_map.maps_reused_total);
        CHECK_EQ(line_value(lg, "# large mappings released total"),
                 (long long)s1.large_map.maps_released_total);
    }
    for (int i = 0; i < 3; i++)
        soma_free(large[i]);
    free(text);
    for (int i = 0; i < NM; i++)
        soma_free(m[i]);
}

/* The distinct pools (their bases, ascending) that n blocks lie in. */
static size_t pools_of(void *const *b, size_t n, uintptr_t *bases, size_t max, size_t pool_size)
{
    size_t np = 0;
    for (size_t i = 0; i < n; i++) {
        uintptr_t base = (uintptr_t)b[i] & ~(uintptr_t)(pool_size - 1);
        size_t at = 0;
        while (at < np && bases[at] < base)
            at++;
        if (at < np && bases[at] == base)
            continue;
        if (!CHECK_LT(np, max))
            break;
        memmove(&bases[at + 1], &bases[at], (np - at) * sizeof *bases);
        bases[at] = base;
        np++;
    }
    return np;
}

/* Frees the blocks of b that lie in the pool at base (NULL: freed). */
static void free_pool(void **b, size_t n, uintptr_t base, size_t pool_size)
{
    for (size_t i = 0; i < n; i++)
        if (b[i] != NULL && ((uintptr_t)b[i] & ~(uintptr_t)(pool_size - 1)) == base) {
            soma_free(b[i]);
            b[i] = NULL;
        }
}

/* The unused pools whose pages went back: 10 pools of 48-byte blocks and 4
 * of medium blocks, filled in fresh arenas; the blocks of 5 small pools
 * and 2 medium ones freed (so their arenas stay), then soma_purge(1). */
static void test_returned_section(void)
{
    enum { NP = 10, NMP = 4 };
    static void *b[NP * 400], *m[NMP * 30];
    static uintptr_t bases[64], mbases[64];
    soma_purge(1); /* the empty arenas the tests before left go: a fresh start */
    soma_stats_get(&s1);
    size_t ps = s1.pool_size, total0 = s1.returned.pools_total;
    CHECK_EQ(s1.arenas_current + s1.medium.arenas_current, 0);
    CHECK_EQ(s1.returned.pools + s1.returned.medium_pools, 0);
    size_t cap = (ps - s1.pool_overhead) / 48, nb = NP * cap;
    for (size_t i = 0; i < nb; i++)
        b[i] = soma_malloc(48);
    size_t msize = s1.medium.max_size - 100, mcap = (ps - s1.pool_overhead) / s1.medium.max_size;
    size_t nm = NMP * mcap;
    for (size_t i = 0; i < nm; i++)
        m[i] = soma_malloc(msize);
    if (!CHECK_EQ(pools_of(b, nb, bases, 64, ps), NP) ||
        !CHECK_EQ(pools_of(m, nm, mbases, 64, ps), NMP))
        return;
    /* Two runs of pools (one madvise each) and a pool alone. */
    static const size_t gone[] = {1, 2, 3, 5, 6}, mgone[] = {1, 2};
    for (size_t i = 0; i < 5; i++)
        free_pool(b, nb, bases[gone[i]], ps);
    for (size_t i = 0; i < 2; i++)
        free_pool(m, nm, mbases[mgone[i]], ps);
    soma_stats_get(&s1);
    CHECK_EQ(s1.returned.pools, 0); /* empty, still resident: no decay in the library */
    CHECK_EQ(s1.returned.pools_total, total0);
    CHECK_GE(soma_purge(1), 7 * ps);
    soma_stats_get(&s1);
    CHECK_EQ(s1.returned.pools, 5);
    CHECK_EQ(s1.returned.pool_bytes, 5 * ps);
    CHECK_EQ(s1.returned.medium_pools, 2);
    CHECK_EQ(s1.returned.medium_pool_bytes, 2 * ps);
    CHECK_EQ(s1.returned.pools_total, total0 + 7);
    for (size_t i = 0; i < 5; i++)
        CHECK_EQ(test_resident_pages(bases[gone[i]], ps), 0);
    for (size_t i = 0; i < 2; i++)
        CHECK_EQ(test_resident_pages(mbases[mgone[i]], ps), 0);
    /* Still unused pools: the arena's bytes are accounted as before. */
    CHECK_EQ(s1.arenas_current, 1);
    CHECK_EQ(s1.unused_pools, 64 - NP + 5);
    CHECK_EQ(s1.medium.unused_pools, 64 - NMP + 2);
    CHECK_LE(s1.returned.pool_bytes, s1.unused_pool_bytes);
    CHECK_LE(s1.returned.medium_pool_bytes, s1.medium.unused_pool_bytes);
    CHECK_EQ(s1.bytes_in_allocated_blocks + s1.bytes_in_available_blocks + s1.unused_pool_bytes +
                 s1.bytes_lost_to_pool_headers + s1.bytes_lost_to_quantization +
                 s1.bytes_lost_to_arena_alignment,
             s1.total);
    CHECK_EQ(s1.total, s1.arena_bytes);

    int rc = -1;
    size_t len = 0;
    char *text = capture(print_live, NULL, &len, &rc);
    CHECK_EQ(rc, 0);
    if (text == NULL)
        return;
    char err[1024];
    size_t consumed = 0;
    if (CHECK_EQ(dp_parse(text, len, &parsed, err, sizeof err, &consumed), 0)) {
        CHECK_EQ(parsed.label_unused_pools, 64 - NP + 5);
        const char *rs = strstr(text + consumed, "\nReturned pools (soma's own: unused pools above "
                                                 "whose pages went back to the OS).\n\n");
        /* Last, after the medium section. */
        if (CHECK(rs != NULL) && CHECK(strstr(text + consumed, "\nMedium blocks") < rs)) {
            char want[512], n1[32], n2[32], n3[32];
            dp_commas(n1, sizeof n1, 5 * ps);
            dp_commas(n2, sizeof n2, 2 * ps);
            dp_commas(n3, sizeof n3, total0 + 7);
            snprintf(want, sizeof want,
                     "%-35s=%21s\n%-35s=%21s\n%-35s=%21s\n%-35s=%21s\n%-35s=%21s\n",
                     "# unused pools with pages returned", "5", "# bytes of pages returned", n1,
                     "# medium pools with pages returned", "2", "# medium bytes of pages returned",
                     n2, "# pools returned total", n3);
            if (!CHECK(strcmp(strchr(rs + 1, '\n') + 2, want) == 0))
                test_note("  the section reads:\n%s", rs);
        }
    }
    free(text);

    /* A pool put to work again is no longer returned; the total stays. */
    size_t extra = 0;
    for (size_t i = 0; i < nb; i++)
        if (b[i] == NULL && extra++ < cap) /* one pool's worth */
            b[i] = soma_malloc(48);
    soma_stats_get(&s2);
    CHECK_EQ(s2.returned.pools, 4);
    CHECK_EQ(s2.returned.pools_total, total0 + 7);

    /* Written as a version-2 caller's struct: no section (whole() zeroes
     * what lies past its size). */
    s2.size = (uint32_t)offsetof(soma_stats, returned);
    text = capture(print_given, &s2, &len, &rc);
    CHECK_EQ(rc, 0);
    if (text != NULL) {
        CHECK(strstr(text, "Returned pools") == NULL);
        CHECK(strstr(text, "Large blocks") != NULL);
    }
    free(text);
    for (size_t i = 0; i < nb; i++)
        soma_free(b[i]);
    for (size_t i = 0; i < nm; i++)
        soma_free(m[i]);
}

/* A snapshot where every field is a distinct number. */
static void test_made_up_snapshot(void)
{
    static soma_stats st;
    memset(&st, 0, sizeof st);
    st.threshold = 512;
    st.num_classes = 32;
    st.pool_size = 16384;
    st.arena_size = 1048576;
    st.pool_overhead = 48;
    for (size_t c = 0; c < SOMA_NUM_CLASSES; c++) {
        st.classes[c].size = (c + 1) * 16;
        if (c % 3 == 1)
            continue; /* no pools: no row */
        st.classes[c].num_pools = 10000000 + c;           /* 11 columns */
        st.classes[c].blocks_in_use = 100000000000000 + c; /* 15 columns */
        st.classes[c].avail_blocks = 1000000000000 + c;    /* 13 columns */
    }
    size_t v = 1;
    size_t *fields[] = {
        &st.arenas_allocated_total,     &st.arenas_reclaimed,
        &st.arenas_highwater,           &st.arenas_current,
        &st.arena_bytes,                &st.bytes_in_allocated_blocks,
        &st.bytes_in_available_blocks,  &st.unused_pools,
        &st.unused_pool_bytes,          &st.bytes_lost_to_pool_headers,
        &st.bytes_lost_to_quantization, &st.bytes_lost_to_arena_alignment,
        &st.total,                      &st.arena_map_mid_nodes,
        &st.arena_map_bot_nodes,        &st.arena_map_root_bytes,
        &st.arena_map_mid_bytes,        &st.arena_map_bot_bytes,
        &st.arena_map_total,
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        v = v * 6 + 1 + i; /* distinct, growing to 15 digits */
        *fields[i] = v;
    }
    st.total = 1234567890123456; /* 16 digits, 21 characters with commas */
    st.num_types = 2;
    snprintf(st.types[0].name, sizeof st.types[0].name, "Alpha");
    st.types[0].elem_size = 24;
    st.types[0].count = 3;
    snprintf(st.types[1].name, sizeof st.types[1].name, "Beta things");
    st.types[1].elem_size = 1000;
    st.types[1].count = 4321;

    int rc = -1;
    size_t len = 0;
    char *text = capture(print_given, &st, &len, &rc);
    CHECK_EQ(rc, 0);
    if (!text)
        return;
    dp_dump d;
    char err[1024];
    if (!CHECK_EQ(dp_parse(text, len, &d, err, sizeof err, NULL), 0)) {
        test_note("%s", err);
        fputs(text, stdout);
    } else {
        compare_with_snapshot(&d, &st);
    }
    CHECK(strstr(text, "Total                              =1,234,567,890,123,456\n") != NULL);
    free(text);
}

static void test_write_failure(void)
{
    FILE *f = fopen("/dev/full", "w");
    if (f == NULL) {
        test_note("SKIP: no /dev/full");
        return;
    }
    CHECK_EQ(soma_stats_print(f), -1);
    fclose(f);
}

/* ---- structure against CPython's dump ---- */

/* One token per line: rows and type lines collapse into one token per run,
 * digits in labels become '#'. */
static size_t line_kinds(const char *text, size_t len, char kinds[][64], size_t max)
{
    size_t n = 0;
    const char *p = text, *end = text + len;
    while (p < end && n < max) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            nl = end;
        size_t l = (size_t)(nl - p);
        char kind[64];
        if (l == 0) {
            snprintf(kind, sizeof kind, "blank");
        } else if (strncmp(p, "Small block threshold", 21) == 0) {
            snprintf(kind, sizeof kind, "threshold");
        } else if (l >= 22 && p[l - 22] == '=' && l == 71) {
            snprintf(kind, sizeof kind, "type line");
        } else if (l >= 22 && p[l - 22] == '=') {
            /* The label, each run of digits turned into one '#'. */
            size_t k = 0;
            for (size_t i = 0; i < l - 22 && k + 1 < sizeof kind; i++) {
                if (isdigit((unsigned char)p[i])) {
                    if (k == 0 || kind[k - 1] != '#')
                        kind[k++] = '#';
                } else {
                    kind[k++] = p[i];
                }
            }
            while (k > 0 && kind[k - 1] == ' ')
                k--;
            kind[k] = '\0';
        } else if (p[0] == ' ' && isdigit((unsigned char)p[l - 1])) {
            snprintf(kind, sizeof kind, "row");
        } else {
            snprintf(kind, sizeof kind, "%.*s", (int)(l < 60 ? l : 60), p);
        }
        /* Collapse runs of rows and of type lines. */
        if (!(n > 0 && strcmp(kind, kinds[n - 1]) == 0 &&
              (strcmp(kind, "row") == 0 || strcmp(kind, "type line") == 0)))
            snprintf(kinds[n++], 64, "%s", kind);
        p = nl + 1;
    }
    return n;
}

static void test_against_cpython(void)
{
    const char *path = SOMA_REFERENCE_DIR "/debugmallocstats-3.12.txt";
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        test_note("SKIP: %s not found (%s); comparison with CPython's dump skipped", path,
                  strerror(errno));
        return;
    }
    static char text[64 * 1024];
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = '\0';

    char err[1024];
    size_t consumed = 0;
    if (!CHECK_EQ(dp_parse(text, len, &ref, err, sizeof err, &consumed), 0)) {
        test_note("parsing CPython's dump: %s", err);
        return;
    }
    CHECK_EQ(consumed, len);
    /* The formulas hold for CPython's own figures too. */
    if (!CHECK_EQ(dp_consistent(&ref, 48, err, sizeof err), 0))
        test_note("CPython's dump: %s", err);
    CHECK_GT(ref.nrows, 0);
    CHECK_GT(ref.ntypes, 0);

    if (!the_dump)
        return;
    static char k1[200][64], k2[200][64];
    size_t n1 = line_kinds(the_dump, the_dump_len, k1, 200);
    size_t n2 = line_kinds(text, len, k2, 200);
    test_note("line structure: soma %zu kinds, CPython 3.12 %zu kinds", n1, n2);
    if (CHECK_EQ(n1, n2)) {
        for (size_t i = 0; i < n1; i++)
            if (!CHECK_STR_EQ(k1[i], k2[i]))
                test_note("  line kind %zu differs", i);
    }
}

int main(void)
{
    test_begin("test_dump");
    test_commas();
    test_live_dump();
    test_medium_section();
    test_made_up_snapshot();
    test_returned_section();
    test_write_failure();
    test_against_cpython();
    free(the_dump);
    return test_summary();
}
