/*
 * test_json: the soma tool's JSON parser (tools/soma/json.c).
 *
 *   - integers are exact over the whole uint64 range (0, 2^53 + 1, 2^64 - 1),
 *     negative ones fill sint, floats and exponents only the double;
 *   - string escapes decode to the right UTF-8 bytes, surrogate pairs
 *     included, lone surrogates become U+FFFD;
 *   - nested objects/arrays, sj_get / sj_get_uint / sj_get_string;
 *   - *end lets a caller parse concatenated values;
 *   - malformed inputs are rejected with "line L, column C: ..."; each one is
 *     given in a buffer of exactly its length, so ASan catches a read past it;
 *   - 64 levels of nesting parse, 65 do not;
 *   - a 200000-item array of [i, i*2] parses with every value right;
 *   - the snapshot reader on it (tools/soma/snapshot.c): "returned" and the
 *     detail's [class, 0, 1] read back, a snapshot without them (before
 *     soma_stats version 3) reads as zeros, and a third element that is not
 *     1 on an empty pool (or 0) is refused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "snapshot.h"
#include "test.h"

/* Parse s from a malloc'd copy of exactly strlen(s) bytes (no NUL after it). */
static sj_value *parse_exact(const char *s, const char **endoff, char *err, size_t errlen)
{
    size_t n = strlen(s);
    char *buf = malloc(n ? n : 1);
    if (!buf)
        return NULL;
    memcpy(buf, s, n);
    const char *end = NULL;
    sj_value *v = sj_parse(buf, n, &end, err, errlen);
    if (endoff)
        *endoff = v ? s + (end - buf) : NULL;
    free(buf);
    return v;
}

static int test_numbers(void)
{
    char err[128];
    sj_value *v = parse_exact("[0, 18446744073709551615, 9007199254740993, -42, -9223372036854775808,"
                              " 3.25, -1.5e3, 1E2, 18446744073709551616, 9223372036854775808, -0]",
                              NULL, err, sizeof err);
    REQUIRE(v && v->type == SJ_ARRAY && v->n == 11);
    sj_value **it = v->items;
    REQUIRE(it[0]->type == SJ_NUMBER && it[0]->is_uint && it[0]->uint == 0 && it[0]->is_int && it[0]->sint == 0);
    REQUIRE(it[1]->is_uint && it[1]->uint == 18446744073709551615ULL && !it[1]->is_int);
    REQUIRE(it[2]->is_uint && it[2]->uint == 9007199254740993ULL && it[2]->sint == 9007199254740993LL);
    REQUIRE(!it[3]->is_uint && it[3]->is_int && it[3]->sint == -42 && it[3]->number == -42.0);
    REQUIRE(it[4]->is_int && it[4]->sint == -9223372036854775807LL - 1 && !it[4]->is_uint);
    REQUIRE(it[5]->number == 3.25 && !it[5]->is_uint && !it[5]->is_int);
    REQUIRE(it[6]->number == -1500.0 && !it[6]->is_int);
    REQUIRE(it[7]->number == 100.0 && !it[7]->is_uint);   /* has an exponent */
    REQUIRE(!it[8]->is_uint && !it[8]->is_int && it[8]->number == 18446744073709551616.0);
    REQUIRE(it[9]->is_uint && !it[9]->is_int && it[9]->uint == 9223372036854775808ULL);
    REQUIRE(!it[10]->is_uint && it[10]->is_int && it[10]->sint == 0);
    sj_free(v);
    return 0;
}

static int test_strings(void)
{
    char err[128];
    sj_value *v = parse_exact("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\\u20AC\\u0041\"",
                              NULL, err, sizeof err);
    REQUIRE(v && v->type == SJ_STRING);
    const char want[] = "a\"b\\c/d\b\f\n\r\t\xc3\xa9\xf0\x9f\x98\x80\xe2\x82\xac" "A";
    REQUIRE(v->len == sizeof want - 1 && memcmp(v->string, want, sizeof want) == 0);
    sj_free(v);

    /* Lone surrogates: U+FFFD (EF BF BD); the escape after a lone high one still decodes. */
    v = parse_exact("\"\\ud800x\\udc00\\ud800\\u0042\"", NULL, err, sizeof err);
    REQUIRE(v && v->type == SJ_STRING);
    REQUIRE(v->len == 11 && memcmp(v->string, "\xef\xbf\xbdx\xef\xbf\xbd\xef\xbf\xbd" "B", 12) == 0);
    sj_free(v);

    /* \u0000 is kept, with len counting it; raw UTF-8 passes through. */
    v = parse_exact("\"a\\u0000b\xc3\xa9\"", NULL, err, sizeof err);
    REQUIRE(v && v->len == 5 && memcmp(v->string, "a\0b\xc3\xa9", 6) == 0);
    sj_free(v);
    return 0;
}

static int test_nested(void)
{
    char err[128];
    const char *text = " {\n  \"name\": \"heap\\u00e9\",\n  \"count\": 18446744073709551615,\n"
                       "  \"neg\": -1, \"flags\": [true, false, null],\n"
                       "  \"inner\": {\"a\": [[1], {}], \"b\": []},\n  \"name\": \"second\"\n} ";
    sj_value *v = parse_exact(text, NULL, err, sizeof err);
    REQUIRE(v && v->type == SJ_OBJECT && v->n == 6);
    REQUIRE(strcmp(v->keys[0], "name") == 0 && strcmp(v->keys[5], "name") == 0);
    REQUIRE(strcmp(sj_get_string(v, "name"), "heap\xc3\xa9") == 0);  /* first match */
    unsigned long long u = 0;
    REQUIRE(sj_get_uint(v, "count", &u) == 1 && u == 18446744073709551615ULL);
    REQUIRE(sj_get_uint(v, "neg", &u) == 0 && sj_get_uint(v, "missing", &u) == 0);
    REQUIRE(sj_get_uint(v, "name", &u) == 0 && sj_get_string(v, "count") == NULL);
    const sj_value *flags = sj_get(v, "flags");
    REQUIRE(flags && flags->type == SJ_ARRAY && flags->n == 3);
    REQUIRE(flags->items[0]->type == SJ_BOOL && flags->items[0]->boolean == 1);
    REQUIRE(flags->items[1]->type == SJ_BOOL && flags->items[1]->boolean == 0);
    REQUIRE(flags->items[2]->type == SJ_NULL);
    const sj_value *inner = sj_get(v, "inner");
    const sj_value *a = sj_get(inner, "a");
    REQUIRE(a && a->type == SJ_ARRAY && a->n == 2);
    REQUIRE(a->items[0]->type == SJ_ARRAY && a->items[0]->n == 1 && a->items[0]->items[0]->uint == 1);
    REQUIRE(a->items[1]->type == SJ_OBJECT && a->items[1]->n == 0);
    REQUIRE(sj_get(inner, "b")->type == SJ_ARRAY && sj_get(inner, "b")->n == 0);
    REQUIRE(sj_get(flags, "x") == NULL && sj_get(NULL, "x") == NULL && sj_get(v, "zzz") == NULL);
    sj_free(v);
    return 0;
}

static int test_concatenated(void)
{
    char err[128];
    /* Two pretty-printed objects, then a number and a string, as a stream. */
    const char *text = "{\n  \"id\": 1\n}\n{\n  \"id\": 2\n}\n7 \"x\"\n";
    const char *p = text, *lim = text + strlen(text);
    unsigned long long ids[4] = { 0 };
    int count = 0;
    while ((p = sj_skip_space(p, lim)) < lim) {
        const char *end;
        sj_value *v = sj_parse(p, (size_t)(lim - p), &end, err, sizeof err);
        REQUIRE(v && end > p && end <= lim && count < 4);
        if (v->type == SJ_OBJECT)
            REQUIRE(sj_get_uint(v, "id", &ids[count]));
        else if (v->type == SJ_NUMBER)
            ids[count] = v->uint;
        else
            REQUIRE(v->type == SJ_STRING && strcmp(v->string, "x") == 0);
        count++;
        p = end;
        sj_free(v);
    }
    REQUIRE(count == 4 && ids[0] == 1 && ids[1] == 2 && ids[2] == 7);

    /* *end points just past the value, trailing whitespace untouched. */
    const char *end;
    sj_value *v = parse_exact("  [1,2]  ", &end, err, sizeof err);
    REQUIRE(v && end && strcmp(end, "  ") == 0);
    sj_free(v);
    v = parse_exact("123", &end, err, sizeof err);
    REQUIRE(v && v->uint == 123 && end && *end == '\0');
    sj_free(v);
    return 0;
}

static int test_malformed(void)
{
    static const char *const bad[] = {
        "", "   ", "[1, 2,]", "{\"a\": 1,}", "01", "-01", "[1 2]", "{\"a\" 1}", "{a: 1}",
        "\"abc", "\"a\\", "\"a\\x\"", "\"\\u12\"", "\"\\u12", "\"tab\there\"", "\"nl\nhere\"",
        "[1, 2", "{\"a\": 1", "[", "{", "tru", "nul", "truex", "-", "1.", "1.e5", "1e", "1e+",
        ".5", "+1", "0x10", "1.5.2", "NaN", "Infinity", "'a'", "[,1]", "{,}", "[1,,2]",
        "{\"a\":}", "\"\\u00G0\"", "]", "\x01",
    };
    char err[128];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        strcpy(err, "untouched");
        sj_value *v = parse_exact(bad[i], NULL, err, sizeof err);
        if (v || strncmp(err, "line ", 5) != 0 || !strstr(err, ", column ")) {
            fprintf(stderr, "input #%zu [%s] gave %s, message \"%s\"\n", i, bad[i],
                    v ? "a value" : "NULL", err);
            sj_free(v);
            return 1;
        }
    }
    /* The position is where the problem is: line 3, column 5 (the ']'). */
    REQUIRE(!parse_exact("[\n 1,\n 2, ]", NULL, err, sizeof err));
    REQUIRE(strncmp(err, "line 3, column 5: ", 18) == 0);
    REQUIRE(!parse_exact("{\"k\": 01}", NULL, err, sizeof err));
    REQUIRE(strncmp(err, "line 1, column 7: ", 18) == 0);
    /* err may be NULL, and a tiny buffer is truncated, still NUL-terminated. */
    REQUIRE(!parse_exact("[1,]", NULL, NULL, 0));
    char tiny[5];
    REQUIRE(!parse_exact("[1,]", NULL, tiny, sizeof tiny) && strcmp(tiny, "line") == 0);
    REQUIRE(!sj_parse(NULL, 0, NULL, err, sizeof err));
    return 0;
}

static int test_depth(void)
{
    char text[2 * 66 + 1], err[128];
    for (int depth = 64; depth <= 65; depth++) {
        memset(text, '[', (size_t)depth);
        memset(text + depth, ']', (size_t)depth);
        text[2 * depth] = '\0';
        sj_value *v = parse_exact(text, NULL, err, sizeof err);
        if (depth == 64) {
            REQUIRE(v && v->type == SJ_ARRAY && v->n == 1);
            sj_free(v);
        } else {
            REQUIRE(!v && strncmp(err, "line 1, column 65: ", 19) == 0);
        }
    }
    return 0;
}

static int test_large(void)
{
    enum { N = 200000 };
    size_t cap = (size_t)N * 24 + 16, len = 0;
    char *text = malloc(cap), err[128];
    REQUIRE(text);
    text[len++] = '[';
    for (unsigned i = 0; i < N; i++)
        len += (size_t)snprintf(text + len, cap - len, "%s[%u, %u]", i ? ",\n" : "", i, i * 2);
    text[len++] = ']';
    const char *end;
    sj_value *v = sj_parse(text, len, &end, err, sizeof err);   /* not NUL-terminated */
    REQUIRE(v && v->type == SJ_ARRAY && v->n == N && end == text + len);
    for (unsigned i = 0; i < N; i++) {
        const sj_value *p = v->items[i];
        REQUIRE(p->type == SJ_ARRAY && p->n == 2);
        REQUIRE(p->items[0]->is_uint && p->items[0]->uint == i);
        REQUIRE(p->items[1]->is_uint && p->items[1]->uint == 2ULL * i && p->items[1]->number == 2.0 * i);
    }
    sj_free(v);
    free(text);
    return 0;
}

/* text read as one snapshot: tool_snapshot_from_json's result, err filled. */
static int read_snapshot(const char *text, tool_snapshot *out, char *err, size_t errlen)
{
    sj_value *v = parse_exact(text, NULL, err, errlen);
    if (v == NULL)
        return -2;
    int rc = tool_snapshot_from_json(v, out, err, errlen);
    sj_free(v);
    return rc;
}

#define SNAP_HEAD                                                                                  \
    "{\"schema_version\": 1, \"threshold\": 512, \"num_classes\": 32, \"pool_size\": 16384, "       \
    "\"arena_size\": 1048576, \"pool_overhead\": 48, \"unused_pools\": 62"

static int test_snapshot_returned(void)
{
    static tool_snapshot s;
    char err[256];
    REQUIRE(read_snapshot(SNAP_HEAD ", \"returned\": {\"pools\": 2, \"pool_bytes\": 32768, "
                          "\"medium_pools\": 1, \"medium_pool_bytes\": 16384, \"pools_total\": 9}, "
                          "\"detail\": {\"pools_per_arena\": 64, \"arenas\": [{\"address\": "
                          "\"0x7f0000000000\", \"kind\": \"small\", \"fresh_pools\": 60, "
                          "\"pools\": [[2,5], [2,0,1], [-1,0], [3,0,1]]}], \"reclaimed_slots\": []}}",
                          &s, err, sizeof err) == 0);
    REQUIRE(s.st.returned.pools == 2 && s.st.returned.pool_bytes == 32768);
    REQUIRE(s.st.returned.medium_pools == 1 && s.st.returned.medium_pool_bytes == 16384);
    REQUIRE(s.st.returned.pools_total == 9);
    REQUIRE(s.narenas == 1 && s.arenas[0].npools == 4);
    const tool_pool *p = s.arenas[0].pools;
    REQUIRE(!p[0].returned && p[0].used == 5 && p[1].returned && p[1].used == 0 && p[1].cls == 2);
    REQUIRE(!p[2].returned && p[2].cls == -1 && p[3].returned && p[3].cls == 3);
    tool_snapshot_free(&s);

    /* Before version 3: no "returned", pairs only. */
    REQUIRE(read_snapshot(SNAP_HEAD ", \"detail\": {\"pools_per_arena\": 64, \"arenas\": "
                          "[{\"address\": \"0x7f0000000000\", \"kind\": \"small\", "
                          "\"fresh_pools\": 62, \"pools\": [[2,5], [2,0]]}]}}",
                          &s, err, sizeof err) == 0);
    REQUIRE(s.st.returned.pools == 0 && s.st.returned.pools_total == 0 && s.st.unused_pools == 62);
    REQUIRE(s.arenas[0].npools == 2 && !s.arenas[0].pools[0].returned &&
            !s.arenas[0].pools[1].returned);
    tool_snapshot_free(&s);

    /* A third element only as 1 on an empty pool (0 is read as absent). */
    static const char *const bad[] = {"[2,5,1]", "[2,0,2]", "[2,0,1,1]", "[2,0,\"1\"]", "[2,0,-1]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[512];
        snprintf(text, sizeof text,
                 SNAP_HEAD ", \"detail\": {\"pools_per_arena\": 64, \"arenas\": [{\"address\": "
                           "\"0x7f0000000000\", \"fresh_pools\": 62, \"pools\": [[1,1], %s]}]}}",
                 bad[i]);
        REQUIRE(read_snapshot(text, &s, err, sizeof err) == -1);
        REQUIRE(strstr(err, "pool 1 is not [class, blocks in use] or [class, 0, 1]") != NULL);
    }
    REQUIRE(read_snapshot(SNAP_HEAD ", \"detail\": {\"pools_per_arena\": 64, \"arenas\": "
                          "[{\"address\": \"0x7f0000000000\", \"fresh_pools\": 63, "
                          "\"pools\": [[4,0,0]]}]}}",
                          &s, err, sizeof err) == 0);
    REQUIRE(s.arenas[0].npools == 1 && !s.arenas[0].pools[0].returned);
    tool_snapshot_free(&s);
    return 0;
}

int main(void)
{
    test_begin("test_json");
    /* Each part stops at its first failed check (REQUIRE), and the run at
     * the first part that failed. */
    (void)(test_numbers() || test_strings() || test_nested() || test_concatenated() ||
           test_malformed() || test_depth() || test_large() || test_snapshot_returned());
    return test_summary();
}
