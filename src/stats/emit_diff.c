/*
 * emit_diff.c: what changed between two snapshots (soma_stats_diff, and
 * so `soma diff`, which reads two JSON snapshots back into soma_stats).
 *
 * Comparing two text dumps means scrolling between them; this prints only
 * the rows that moved, biggest first, each with its value after and the
 * change:
 *
 *   What changed, after - before (unchanged rows left out):
 *
 *   class   size  pools  change blocks in use      change avail blocks     change
 *       2     48     53     +52        17,608     +17,600           94        +94
 *
 *   Counts                                 before         after        change
 *   # arenas allocated current                  1            12           +11
 *
 *   Bytes                                  before         after        change
 *   # bytes in allocated blocks            12,800    11,010,048   +10,997,248
 *
 * Classes are ordered by the change in bytes in use (blocks * size), then in
 * pools; counts and bytes by the size of their change.  Ties keep the
 * dump's order.  No allocation: rows are sorted in place by insertion
 * (there are at most a few dozen).
 */
#include <errno.h>
#include <string.h>

#include "common/text.h"
#include "stats/emit.h"

typedef struct {
    const char *label; /* figures */
    size_t cls;        /* classes */
    size_t before, after;
    size_t weight; /* what the rows are ordered by, largest first */
    size_t weight2;
} row_t;

#define MAX_ROWS 96

static size_t absdiff(size_t a, size_t b)
{
    return a > b ? a - b : b - a;
}

/* "+1,234", "-56" or "0". */
static char *signed_commas(char *buf, size_t len, size_t before, size_t after)
{
    char num[SOMA_TEXT_COMMAS_LEN];
    soma_text_commas(num, sizeof num, absdiff(before, after));
    snprintf(buf, len, "%s%s", after > before ? "+" : after < before ? "-" : "", num);
    return buf;
}

static void sort_rows(row_t *r, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        row_t x = r[i];
        size_t j = i;
        while (j > 0 && (r[j - 1].weight < x.weight ||
                         (r[j - 1].weight == x.weight && r[j - 1].weight2 < x.weight2))) {
            r[j] = r[j - 1];
            j--;
        }
        r[j] = x;
    }
}

static void add(row_t *rows, size_t *n, const char *label, size_t before, size_t after)
{
    if (before == after)
        return;
    rows[(*n)++] = (row_t){label, 0, before, after, absdiff(before, after), 0};
}

/* The label column's width: the longest label printed, in either table. */
static int label_width(const row_t *a, size_t na, const row_t *b, size_t nb)
{
    int width = 30;
    for (size_t i = 0; i < na + nb; i++) {
        int len = (int)strlen(i < na ? a[i].label : b[i - na].label);
        width = len > width ? len : width;
    }
    return width;
}

static void print_figures(emit_t *e, const char *title, row_t *rows, size_t n, int width)
{
    if (n == 0)
        return;
    sort_rows(rows, n);
    soma__sink_printf(e->sink, "%-*s %14s %14s %14s\n", width, title, "before", "after", "change");
    for (size_t i = 0; i < n; i++) {
        char b[SOMA_TEXT_COMMAS_LEN], a[SOMA_TEXT_COMMAS_LEN], d[SOMA_TEXT_COMMAS_LEN + 1];
        soma__sink_printf(e->sink, "%-*s %14s %14s %14s\n", width, rows[i].label,
                soma_text_commas(b, sizeof b, rows[i].before),
                soma_text_commas(a, sizeof a, rows[i].after),
                signed_commas(d, sizeof d, rows[i].before, rows[i].after));
    }
    soma__sink_put(e->sink, "\n");
}

/* The class rows: small classes, then medium ones (numbered on). */
static size_t class_rows(row_t *rows, const soma_stats *b, const soma_stats *a)
{
    size_t n = 0, total = b->num_classes + b->medium.num_classes;
    for (size_t c = 0; c < total && n < MAX_ROWS; c++) {
        const soma_class_stats *x = c < b->num_classes ? &b->classes[c]
                                                       : &b->medium.classes[c - b->num_classes];
        const soma_class_stats *y = c < a->num_classes ? &a->classes[c]
                                                       : &a->medium.classes[c - a->num_classes];
        if (x->num_pools == y->num_pools && x->blocks_in_use == y->blocks_in_use &&
            x->avail_blocks == y->avail_blocks)
            continue;
        rows[n++] = (row_t){NULL, c, 0, 0, absdiff(x->blocks_in_use, y->blocks_in_use) * y->size,
                          absdiff(x->num_pools, y->num_pools)};
    }
    return n;
}

/* Every class row, header included, in these columns: class, size, then
 * value and change of pools, blocks in use and avail blocks. */
#define CLASS_COLUMNS "%5s %6s %6s %7s %13s %11s %12s %10s\n"

static void print_classes(emit_t *e, const soma_stats *b, const soma_stats *a, row_t *rows,
                          size_t n)
{
    if (n == 0)
        return;
    sort_rows(rows, n);
    soma__sink_printf(e->sink, CLASS_COLUMNS, "class", "size", "pools", "change", "blocks in use", "change",
            "avail blocks", "change");
    soma__sink_printf(e->sink, CLASS_COLUMNS, "-----", "----", "-----", "------", "-------------", "------",
            "------------", "------");
    for (size_t i = 0; i < n; i++) {
        size_t c = rows[i].cls;
        int medium = c >= b->num_classes;
        const soma_class_stats *x = medium ? &b->medium.classes[c - b->num_classes]
                                           : &b->classes[c];
        const soma_class_stats *y = medium ? &a->medium.classes[c - a->num_classes]
                                           : &a->classes[c];
        char cls[24], size[24], v[3][SOMA_TEXT_COMMAS_LEN], d[3][SOMA_TEXT_COMMAS_LEN + 1];
        snprintf(cls, sizeof cls, "%zu", c);
        snprintf(size, sizeof size, "%zu", y->size);
        soma__sink_printf(e->sink, CLASS_COLUMNS, cls, size,
                soma_text_commas(v[0], sizeof v[0], y->num_pools),
                signed_commas(d[0], sizeof d[0], x->num_pools, y->num_pools),
                soma_text_commas(v[1], sizeof v[1], y->blocks_in_use),
                signed_commas(d[1], sizeof d[1], x->blocks_in_use, y->blocks_in_use),
                soma_text_commas(v[2], sizeof v[2], y->avail_blocks),
                signed_commas(d[2], sizeof d[2], x->avail_blocks, y->avail_blocks));
    }
    soma__sink_put(e->sink, "\n");
}

static int same_geometry(const soma_stats *b, const soma_stats *a)
{
    int same = 1;
    for (int id = 0; id < SOMA_NUM_FIELDS; id++)
        same &= soma__emit_fields[id].group != SOMA_FIELD_GEOMETRY ||
                soma__emit_value(b, id) == soma__emit_value(a, id);
    if (same && (b->num_classes > SOMA_NUM_CLASSES || b->medium.num_classes > SOMA_MAX_MEDIUM_CLASSES))
        return 0;
    for (size_t c = 0; same && c < b->num_classes; c++)
        same = b->classes[c].size == a->classes[c].size;
    for (size_t c = 0; same && c < b->medium.num_classes; c++)
        same = b->medium.classes[c].size == a->medium.classes[c].size;
    return same;
}

int soma__emit_diff(emit_t *e, const soma_stats *before, const soma_stats *after)
{
    if (!same_geometry(before, after)) {
        errno = EINVAL;
        return -1;
    }
    row_t classes[MAX_ROWS], counts[MAX_ROWS + 2 * SOMA_MAX_TYPES], bytes[MAX_ROWS];
    size_t nclasses = class_rows(classes, before, after), ncounts = 0, nbytes = 0;

    for (int id = 0; id < SOMA_NUM_FIELDS; id++) {
        const field_t *f = &soma__emit_fields[id];
        if (f->group == SOMA_FIELD_COUNT)
            add(counts, &ncounts, f->label, soma__emit_value(before, id), soma__emit_value(after, id));
        else if (f->group == SOMA_FIELD_BYTES)
            add(bytes, &nbytes, f->label, soma__emit_value(before, id), soma__emit_value(after, id));
    }
    /* The object caches, matched by name: those after (0 if new), then
     * those that are gone (0 after). */
    char type_labels[2 * SOMA_MAX_TYPES][SOMA_TYPE_NAME_MAX + 16];
    size_t nlabels = 0;
    for (int side = 0; side < 2; side++) {
        const soma_stats *here = side ? before : after, *there = side ? after : before;
        for (size_t i = 0; i < here->num_types && i < SOMA_MAX_TYPES; i++) {
            const soma_type_stats *t = &here->types[i];
            size_t other = 0;
            int found = 0;
            for (size_t j = 0; j < there->num_types && j < SOMA_MAX_TYPES; j++)
                if (strcmp(there->types[j].name, t->name) == 0)
                    other = there->types[j].count, found = 1;
            if (side == 1 && found)
                continue; /* already compared from the after side */
            char *label = type_labels[nlabels++];
            snprintf(label, sizeof type_labels[0], "# free %s", t->name);
            if (side == 0)
                add(counts, &ncounts, label, other, t->count);
            else
                add(counts, &ncounts, label, t->count, other);
        }
    }

    size_t changed = nclasses + ncounts + nbytes;
    if (changed == 0)
        soma__sink_put(e->sink, "Nothing changed.\n");
    else
        soma__sink_put(e->sink, "What changed, after - before (unchanged rows left out):\n\n");
    print_classes(e, before, after, classes, nclasses);
    int width = label_width(counts, ncounts, bytes, nbytes);
    print_figures(e, "Counts", counts, ncounts, width);
    print_figures(e, "Bytes", bytes, nbytes, width);
    return (int)changed;
}
