/*
 * soma map SNAPSHOT.json -o arenas.svg|arenas.html
 *
 * Draws the last snapshot of the file that has the arena detail (dumps and
 * soma_stats_print_json have it, samples do not): every arena a row of its
 * pools, coloured by block size and shaded by fullness (page.c).  Up to
 * 1000 arenas are drawn; beyond that the rest are summarised in a line.
 * .svg writes a standalone SVG; .html a self-contained page around it.
 */
#include <stdio.h>
#include <string.h>

#include "page.h"
#include "snapshot.h"
#include "tool.h"

#define MAP_MAX_ROWS 1000

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

int soma_tool_map(int argc, char **argv)
{
    const char *in = NULL, *outpath = NULL;
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--output") == 0) && i + 1 < argc)
            outpath = argv[++i];
        else if (argv[i][0] != '-' && in == NULL)
            in = argv[i];
        else
            in = outpath = NULL, i = argc;
    }
    int html = outpath && (ends_with(outpath, ".html") || ends_with(outpath, ".htm"));
    if (in == NULL || outpath == NULL || (!html && !ends_with(outpath, ".svg"))) {
        fputs("usage: soma map SNAPSHOT.json -o OUT.svg|OUT.html\n"
              "  draws every arena of the snapshot as a row of its pools\n",
              stderr);
        return 2;
    }
    char err[512];
    tool_snapshot *snaps;
    size_t n;
    int rc = tool_snapshots_read(in, 1, 0, &snaps, &n, NULL, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "soma map: %s\n", err);
        return 2;
    }
    if (rc > 0)
        fprintf(stderr, "soma map: warning: %s; the snapshots before it are used\n", err);
    const tool_snapshot *s = NULL;
    for (size_t i = n; i-- > 0 && s == NULL;)
        if (snaps[i].has_detail)
            s = &snaps[i];
    if (s == NULL) {
        fprintf(stderr, "soma map: %s: no snapshot with the arena detail (samples have none; "
                        "use a dump: SOMA_STATS_FORMAT=json, soma run --format json, or "
                        "soma_stats_print_json)\n", in);
        tool_snapshots_free(snaps, n);
        return 2;
    }
    FILE *out = fopen(outpath, "w");
    if (out == NULL) {
        perror(outpath);
        tool_snapshots_free(snaps, n);
        return 2;
    }
    char title[600];
    snprintf(title, sizeof title, "soma: arenas and pools of pid %ld", s->pid);
    if (html) {
        page_html_begin(out, title);
        page_map_svg(out, s, title, 0, MAP_MAX_ROWS, 0);
        page_html_end(out);
    } else {
        fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", out);
        page_map_svg(out, s, title, 0, MAP_MAX_ROWS, 1);
    }
    int bad = ferror(out);
    if (fclose(out) != 0 || bad) {
        fprintf(stderr, "soma map: cannot write %s\n", outpath);
        tool_snapshots_free(snaps, n);
        return 1;
    }
    tool_snapshots_free(snaps, n);
    return 0;
}
