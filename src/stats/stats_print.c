/*
 * stats_print.c: a snapshot as text, in the exact layout of CPython 3.12's
 * sys._debugmallocstats(), so that whoever can read one can read the other:
 *
 *   Small block threshold = 512, in 32 size classes.
 *   <class table: one row per class with at least one pool in use>
 *   <arena counters, then where the arena bytes are, adding up to Total>
 *   <the arena map: nodes and the bytes they cost>
 *   <one line per registered object cache>
 *   [soma's medium blocks, in the same layout, if any medium arena was ever
 *    mapped, and its large blocks (from the system allocator), if it ever
 *    handed one out: a program that never asks for more than 512 bytes gets
 *    CPython's dump and nothing else]
 *
 * Every "label = value" line is CPython's printone(): the label padded to
 * column 35, '=', the value with thousands separators right-aligned in 21
 * columns.  Lines are formatted into a stack buffer, then written to the
 * FILE.
 */
#include <stdarg.h>
#include <stdio.h>

#include "common/text.h"
#include "base/start.h"
#include "stats/stats.h"

typedef struct {
    FILE *out;
    int failed;
} sink;

static void put(sink *s, const char *text)
{
    if (fputs(text, s->out) == EOF)
        s->failed = 1;
}

static void putf(sink *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(sink *s, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    put(s, line);
}

static void printone(sink *s, const char *label, size_t value)
{
    char num[SOMA_TEXT_COMMAS_LEN];
    putf(s, "%-35s=%21s\n", label, soma_text_commas(num, sizeof num, value));
}

/* The class table: rows numbered from `first`, classes with no pool left out. */
static void print_classes(sink *s, const soma_class_stats *classes, size_t n, size_t first)
{
    put(s, "class   size   num pools   blocks in use  avail blocks\n"
           "-----   ----   ---------   -------------  ------------\n");
    for (size_t c = 0; c < n; c++) {
        const soma_class_stats *cs = &classes[c];
        if (cs->num_pools == 0)
            continue;
        putf(s, "%5zu %6zu %11zu %15zu %13zu\n", first + c, cs->size, cs->num_pools,
             cs->blocks_in_use, cs->avail_blocks);
    }
    put(s, "\n");
}

/* The arena counters and the byte lines adding up to Total: the same lines
 * for the small arenas (CPython's) and the medium ones (prefix "medium "). */
typedef struct {
    const char *prefix;
    size_t total, reclaimed, highwater, current, arena_bytes;
    size_t allocated, available, unused_pools, unused_bytes, headers, quantization;
    int has_alignment; /* CPython's line; soma's medium arenas have none */
    size_t alignment, sum;
} arena_lines;

#define ARENA_LINES(x, pfx, has_align, align)                                                     \
    {(pfx),                                                                                        \
     (x)->arenas_allocated_total,                                                                  \
     (x)->arenas_reclaimed,                                                                        \
     (x)->arenas_highwater,                                                                        \
     (x)->arenas_current,                                                                          \
     (x)->arena_bytes,                                                                             \
     (x)->bytes_in_allocated_blocks,                                                               \
     (x)->bytes_in_available_blocks,                                                               \
     (x)->unused_pools,                                                                            \
     (x)->unused_pool_bytes,                                                                       \
     (x)->bytes_lost_to_pool_headers,                                                              \
     (x)->bytes_lost_to_quantization,                                                              \
     (has_align),                                                                                  \
     (align),                                                                                      \
     (x)->total}

static void print_arena_lines(sink *s, const soma_stats *st, const arena_lines *a)
{
    char label[128];
    static const char *const counters[] = {"arenas allocated total", "arenas reclaimed",
                                           "arenas highwater mark", "arenas allocated current"};
    const size_t values[] = {a->total, a->reclaimed, a->highwater, a->current};
    for (size_t i = 0; i < 4; i++) {
        snprintf(label, sizeof label, "# %s%s", a->prefix, counters[i]);
        printone(s, label, values[i]);
    }
    snprintf(label, sizeof label, "%zu arenas * %zu bytes/arena", a->current, st->arena_size);
    printone(s, label, a->arena_bytes);
    put(s, "\n");

    printone(s, "# bytes in allocated blocks", a->allocated);
    printone(s, "# bytes in available blocks", a->available);
    snprintf(label, sizeof label, "%zu unused pools * %zu bytes", a->unused_pools, st->pool_size);
    printone(s, label, a->unused_bytes);
    printone(s, "# bytes lost to pool headers", a->headers);
    printone(s, "# bytes lost to quantization", a->quantization);
    if (a->has_alignment)
        printone(s, "# bytes lost to arena alignment", a->alignment);
    printone(s, "Total", a->sum);
}

static void print_medium(sink *s, const soma_stats *st)
{
    const soma_medium_stats *m = &st->medium;
    putf(s, "\nMedium blocks (soma's own, not in CPython's dump): %zu to %zu bytes, "
            "in %zu size classes.\n\n",
         st->threshold + 1, m->max_size, m->num_classes);
    print_classes(s, m->classes, m->num_classes, st->num_classes);
    arena_lines lines = ARENA_LINES(m, "medium ", 0, 0);
    print_arena_lines(s, st, &lines);
}

static void print_all(sink *s, const soma_stats *st)
{
    char label[128];
    putf(s, "Small block threshold = %zu, in %zu size classes.\n\n", st->threshold,
         st->num_classes);
    print_classes(s, st->classes, st->num_classes, 0);
    arena_lines lines = ARENA_LINES(st, "", 1, st->bytes_lost_to_arena_alignment);
    print_arena_lines(s, st, &lines);
    put(s, "\n");

    put(s, "arena map counts\n");
    printone(s, "# arena map mid nodes", st->arena_map_mid_nodes);
    printone(s, "# arena map bot nodes", st->arena_map_bot_nodes);
    put(s, "\n");
    printone(s, "# bytes lost to arena map root", st->arena_map_root_bytes);
    printone(s, "# bytes lost to arena map mid", st->arena_map_mid_bytes);
    printone(s, "# bytes lost to arena map bot", st->arena_map_bot_bytes);
    printone(s, "Total", st->arena_map_total);
    put(s, "\n");

    for (size_t i = 0; i < st->num_types; i++) {
        const soma_type_stats *t = &st->types[i];
        snprintf(label, sizeof label, "%zu free %s * %zu bytes each", t->count, t->name,
                 t->elem_size);
        char padded[160];
        snprintf(padded, sizeof padded, "%48s ", label);
        printone(s, padded, t->count * t->elem_size);
    }
    if (st->medium.arenas_allocated_total > 0)
        print_medium(s, st);
    if (st->large.blocks_allocated_total > 0) {
        putf(s, "\nLarge blocks (soma's own, from the system allocator): above %zu bytes, or "
                "aligned above %d.\n\n",
             st->medium.max_size, SOMA_ALIGNMENT);
        printone(s, "# large blocks allocated total", st->large.blocks_allocated_total);
        printone(s, "# large blocks in use", st->large.blocks_in_use);
        printone(s, "# bytes in large blocks", st->large.bytes_in_use);
    }
}

int soma_stats_fprint(FILE *out, const soma_stats *st)
{
    sink s = {out, 0};
    print_all(&s, st);
    if (fflush(out) == EOF)
        s.failed = 1;
    return s.failed ? -1 : 0;
}

/* soma_stats_print's snapshot is large (it holds every registered type):
 * it is kept off small thread stacks, in a static guarded by print_lock. */
static pthread_mutex_t print_lock = PTHREAD_MUTEX_INITIALIZER;

/* Not held across fork: a snapshot being printed calls the program's count
 * functions, which may wait for a lock the forking thread holds.  The
 * child's copy is reset: the thread that held it does not exist there, and
 * the snapshot it guards is only scratch space. */
static void print_fork(int phase)
{
    if (phase == SOMA_FORK_CHILD)
        pthread_mutex_init(&print_lock, NULL);
}
SOMA_HOOK(print, SOMA_ORDER_EMIT, NULL, print_fork);

static int print_snapshot(FILE *out, soma_heap *heap)
{
    static soma_stats st;
    pthread_mutex_lock(&print_lock);
    if (heap != NULL)
        soma_heap_stats_get(heap, &st);
    else
        soma_stats_get(&st);
    int rc = soma_stats_fprint(out, &st);
    pthread_mutex_unlock(&print_lock);
    return rc;
}

int soma_stats_print(FILE *out)
{
    return print_snapshot(out, NULL);
}

int soma_heap_stats_print(soma_heap *heap, FILE *out)
{
    return print_snapshot(out, heap);
}
