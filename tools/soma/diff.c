/*
 * soma diff [--] BEFORE.json [AFTER.json]
 *
 * What changed between two snapshots: soma_stats_diff over the two read
 * back from JSON (snapshot.c), under a line naming each.  A file may hold
 * several snapshots (samples, or dumps appended): the last one is used.
 * With one file, its first snapshot and the last one of the same process
 * are compared: the whole run of a program sampled by soma run --format
 * json --interval, say (whose file also holds its children's).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "snapshot.h"
#include "tool.h"

/* Every snapshot of the file; a damaged one at the end (a process killed
 * while writing) costs a warning, not the file.  0 or -1. */
static int read_file(const char *path, tool_snapshot **s, size_t *n)
{
    char err[600];
    int rc = tool_snapshots_read(path, 0, 0, s, n, NULL, err, sizeof err);
    if (rc < 0)
        fprintf(stderr, "soma diff: %s\n", err);
    else if (rc > 0)
        fprintf(stderr, "soma diff: warning: %s; the snapshots before it are used\n", err);
    return rc < 0 ? -1 : 0;
}

static void describe(const char *which, const char *path, const tool_snapshot *s)
{
    printf("%s %s: pid %ld (%.100s), %s at %s (%.1f ms after start)\n", which, path, s->pid,
           s->program, s->reason, s->timestamp, s->elapsed_ms);
}

int soma_tool_diff(int argc, char **argv)
{
    int i = 1;
    if (i < argc && strcmp(argv[i], "--") == 0)
        i++;
    int nfiles = argc - i;
    if (nfiles < 1 || nfiles > 2 || (nfiles >= 1 && argv[i][0] == '-' && argv[i][1] != '\0')) {
        fputs("usage: soma diff BEFORE.json AFTER.json   (the last snapshot of each file)\n"
              "       soma diff RUN.json                 (its first and last snapshots)\n",
              stderr);
        return 2;
    }
    tool_snapshot *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    int rc = 2;
    if (read_file(argv[i], &a, &na) != 0 || (nfiles == 2 && read_file(argv[i + 1], &b, &nb) != 0))
        goto out;
    const tool_snapshot *before = nfiles == 2 ? &a[na - 1] : &a[0];
    const tool_snapshot *after = nfiles == 2 ? &b[nb - 1] : &a[na - 1];
    if (nfiles == 1) /* the first process's life, not another's end */
        for (size_t k = 0; k < na; k++)
            if (a[k].pid == before->pid)
                after = &a[k];
    describe("before", argv[i], before);
    describe("after ", argv[nfiles == 2 ? i + 1 : i], after);
    putchar('\n');
    int n = soma_stats_diff(stdout, &before->st, &after->st);
    if (n < 0 && errno == EINVAL) {
        fprintf(stderr, "soma diff: the two snapshots come from different geometries "
                        "(pool, arena or class sizes): their figures cannot be compared\n");
        goto out;
    }
    rc = n < 0 ? 1 : 0;
out:
    tool_snapshots_free(a, na);
    tool_snapshots_free(b, nb);
    return rc;
}
