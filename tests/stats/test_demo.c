/*
 * test_demo: `soma demo` (the path of the CLI comes from CMake in SOMA_CLI).
 *
 *   - exits 0 and prints three dumps, each after its separator "==== [1/3]",
 *     "==== [2/3]", "==== [3/3]", in that order;
 *   - each dump parses (strict layout, dump_parse.h) and its arithmetic holds;
 *   - arenas current in dump 2 > dump 1 (the objects pile up), and dump 3
 *     shows arenas reclaimed > 0 and fewer arenas than dump 2 (they are gone);
 *   - the demo's node cache shows as a type line in each dump.
 */
#define _GNU_SOURCE
#include <sys/wait.h>

#include "dump_parse.h"
#include "soma.h"
#include "test.h"

int main(void)
{
    test_begin("test_demo");
    const char *cli = getenv("SOMA_CLI");
    if (!CHECK(cli != NULL && *cli != '\0')) {
        test_note("SOMA_CLI (the path of build/soma) is not set");
        return test_summary();
    }
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "'%s' demo", cli);
    FILE *p = popen(cmd, "r");
    if (!CHECK(p != NULL))
        return test_summary();
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    for (;;) {
        if (len + 4096 + 1 > cap)
            out = realloc(out, cap *= 2);
        if (!CHECK(out != NULL))
            return test_summary();
        size_t r = fread(out + len, 1, 4096, p);
        if (r == 0)
            break;
        len += r;
    }
    out[len] = '\0';
    int status = pclose(p);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);

    /* The separators, in order, each followed (later) by its dump. */
    const char *seps[3] = {"==== [1/3]", "==== [2/3]", "==== [3/3]"};
    const char *at[3] = {NULL, NULL, NULL};
    const char *from = out;
    for (int i = 0; i < 3; i++) {
        at[i] = strstr(from, seps[i]);
        if (!CHECK(at[i] != NULL)) {
            test_note("  separator \"%s\" missing", seps[i]);
            free(out);
            return test_summary();
        }
        from = at[i] + 1;
    }
    size_t ndumps = 0;
    for (const char *q = strstr(out, "Small block threshold = 512"); q;
         q = strstr(q + 1, "Small block threshold = 512"))
        ndumps++;
    CHECK_EQ(ndumps, 3);

    dp_dump *d = calloc(3, sizeof *d);
    if (!CHECK(d != NULL))
        return test_summary();
    int parsed = 0;
    for (int i = 0; i < 3; i++) {
        const char *start = strstr(at[i], "Small block threshold");
        if (!CHECK(start != NULL))
            continue;
        const char *limit = i < 2 ? at[i + 1] : out + len;
        if (!CHECK(start < limit)) {
            test_note("  no dump after \"%s\"", seps[i]);
            continue;
        }
        char err[1024];
        size_t consumed = 0;
        if (!CHECK_EQ(dp_parse(start, (size_t)(limit - start), &d[i], err, sizeof err, &consumed),
                      0)) {
            test_note("  dump %d: %s", i + 1, err);
            continue;
        }
        if (!CHECK_EQ(dp_consistent(&d[i], 48, err, sizeof err), 0))
            test_note("  dump %d: %s", i + 1, err);
        int has_cache = 0;
        for (size_t t = 0; t < d[i].ntypes; t++)
            has_cache |= strcmp(d[i].types[t].name, "DemoNodes") == 0;
        CHECK(has_cache);
        parsed++;
    }
    if (parsed == 3) {
        test_note("arenas current: %zu, %zu, %zu; reclaimed in dump 3: %zu", d[0].arenas_current,
                  d[1].arenas_current, d[2].arenas_current, d[2].arenas_reclaimed);
        CHECK_GT(d[1].arenas_current, d[0].arenas_current);
        CHECK_GT(d[2].arenas_reclaimed, 0);
        CHECK_LT(d[2].arenas_current, d[1].arenas_current);
        CHECK_EQ(d[2].arenas_reclaimed, d[2].arenas_total - d[2].arenas_current);
        CHECK_GE(d[1].arenas_highwater, d[1].arenas_current);
        CHECK_EQ(d[2].arenas_highwater, d[1].arenas_highwater);
        /* Blocks in use went up, then down. */
        size_t in_use[3] = {0, 0, 0};
        for (int i = 0; i < 3; i++)
            for (size_t r = 0; r < d[i].nrows; r++)
                in_use[i] += d[i].rows[r].in_use;
        CHECK_GT(in_use[1], in_use[0]);
        CHECK_LT(in_use[2], in_use[1]);
    }
    free(d);
    free(out);
    return test_summary();
}
