/*
 * stats_json.c: a snapshot as JSON, every figure of the text dump and the
 * detail behind it (docs/stats.schema.json is the schema; its version is
 * SCHEMA_VERSION below, raised whenever a key changes meaning or goes).
 *
 *   { envelope: schema_version, soma_version, reason, pid, program,
 *     timestamp, time_ms, elapsed_ms, scope, build, options,
 *     the figures: one key per soma_stats member (stats_fields.h), with
 *     "classes", "medium", "large" and "types" as nested objects/arrays,
 *     "detail": every arena (address, heap, kind, and its pools in address
 *     order as [class, blocks in use]: 0 in use is an empty pool, still
 *     marked with the class it last served; pools never carved are only
 *     counted) and the arena slots reclaimed (empty now) }
 *
 * The sampling thread writes through a descriptor sink and must not
 * allocate (sink.h): nothing here calls malloc, including the clock (UTC
 * is computed by hand rather than by gmtime_r, whose first call may load
 * time-zone data).  Strings are escaped for JSON; the program's command
 * line may hold anything.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/text.h"
#include "base/options.h"
#include "base/process.h"
#include "base/start.h"
#include "stats/stats.h"
#include "common/stats_fields.h"

#define SCHEMA_VERSION 1

typedef struct {
    sink_t *s;
    const char *nl; /* "\n" between top-level members, or "" (one line) */
} jw;

static void put_string(sink_t *s, const char *str)
{
    char esc[8];
    soma__sink_put(s, "\"");
    const unsigned char *p = (const unsigned char *)str;
    size_t left = strlen(str);
    while (left > 0) {
        size_t n = soma_text_utf8_len(p, left);
        if (n == 0) { /* not UTF-8: JSON text must be */
            soma__sink_put(s, "\\ufffd");
            p++, left--;
            continue;
        }
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\', esc[1] = (char)*p, esc[2] = '\0';
            soma__sink_put(s, esc);
        } else if (*p < 0x20 || *p == 0x7f) {
            soma__sink_printf(s, "\\u%04x", *p);
        } else {
            memcpy(esc, p, n);
            esc[n] = '\0';
            soma__sink_put(s, esc);
        }
        p += n, left -= n;
    }
    soma__sink_put(s, "\"");
}

/* "key": at the top level, on a line of its own in the pretty form. */
static void key(jw *w, const char *name)
{
    soma__sink_printf(w->s, ",%s \"%s\": ", w->nl, name);
}

static void put_class(sink_t *s, size_t index, const soma_class_stats *cs, size_t capacity)
{
    soma__sink_printf(s, "{\"class\": %zu", index);
#define X(m, label, group) soma__sink_printf(s, ", \"" #m "\": %zu", cs->m);
    SOMA_CLASS_FIELDS(X)
#undef X
    soma__sink_printf(s, ", \"capacity\": %zu}", capacity);
}

static void put_classes(jw *w, const soma_class_stats *classes, size_t n, size_t first,
                        size_t pool_size, size_t overhead)
{
    soma__sink_put(w->s, "[");
    for (size_t c = 0; c < n; c++) {
        soma__sink_printf(w->s, "%s%s  ", c ? "," : "", w->nl);
        put_class(w->s, first + c, &classes[c], (pool_size - overhead) / classes[c].size);
    }
    soma__sink_printf(w->s, "%s ]", w->nl);
}

/* UTC "YYYY-MM-DDTHH:MM:SS.mmmZ" from the epoch, with the civil-from-days
 * conversion (proleptic Gregorian calendar, eras of 400 years). */
static void utc(char *out, size_t len, const struct timespec *ts)
{
    long long secs = ts->tv_sec, days = secs / 86400, rem = secs % 86400;
    if (rem < 0)
        rem += 86400, days--;
    long long z = days + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
    long long doe = z - era * 146097;
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long long mp = (5 * doy + 2) / 153;
    long long d = doy - (153 * mp + 2) / 5 + 1, m = mp < 10 ? mp + 3 : mp - 9;
    long long y = yoe + era * 400 + (m <= 2);
    snprintf(out, len, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld.%03ldZ", y, m, d, rem / 3600,
             rem / 60 % 60, rem % 60, ts->tv_nsec / 1000000);
}

static void put_envelope(jw *w, const char *reason, const char *scope)
{
    sink_t *s = w->s;
    char cmd[512], when[96];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    utc(when, sizeof when, &now);
    soma__process_command_line(cmd, sizeof cmd);

    soma__sink_printf(s, "{%s \"schema_version\": %d", w->nl, SCHEMA_VERSION);
    key(w, "soma_version"), put_string(s, SOMA_VERSION);
    key(w, "reason"), put_string(s, reason);
    key(w, "scope"), put_string(s, scope);
    key(w, "pid"), soma__sink_printf(s, "%d", (int)getpid());
    key(w, "program"), put_string(s, cmd);
    key(w, "timestamp"), put_string(s, when);
    key(w, "time_ms"),
        soma__sink_printf(s, "%lld", (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000);
    key(w, "elapsed_ms"), soma__sink_printf(s, "%.3f", soma__process_elapsed_ms());
#ifdef SOMA_GEOMETRY_PY38
    const char *geometry = "py38";
#else
    const char *geometry = "py312";
#endif
#ifdef SOMA_OVERRIDE
    const char *override = "true";
#else
    const char *override = "false";
#endif
    key(w, "build");
    soma__sink_printf(s, "{\"geometry\": \"%s\", \"override\": %s}", geometry, override);
    key(w, "options");
    soma__sink_printf(s, "{\"show_stats\": %s, \"stats_file\": ",
                      soma__options.show_stats ? "true" : "false");
    if (soma__options.stats_file[0])
        put_string(s, soma__options.stats_file);
    else
        soma__sink_put(s, "null");
    soma__sink_put(s, ", \"stats_signal\": ");
    const char *sig = soma__options.stats_signal ? sigabbrev_np((int)soma__options.stats_signal) : NULL;
    if (sig != NULL)
        put_string(s, sig);
    else if (soma__options.stats_signal)
        soma__sink_printf(s, "\"%ld\"", soma__options.stats_signal);
    else
        soma__sink_put(s, "null");
    soma__sink_printf(s, ", \"stats_format\": \"%s\", \"stats_interval_ms\": %ld, "
                         "\"arena_decay_ms\": %ld}",
                      soma__options.json ? "json" : "text", soma__options.interval_ms,
                      soma__options.decay_ms);
}

static void put_figures(jw *w, const soma_stats *st)
{
    sink_t *s = w->s;
#define X(m, label, group) key(w, #m), soma__sink_printf(s, "%zu", st->m);
    SOMA_STATS_FIELDS(X)
#undef X
    key(w, "classes");
    put_classes(w, st->classes, st->num_classes, 0, st->pool_size, st->pool_overhead);

    const soma_medium_stats *m = &st->medium;
    key(w, "medium");
    soma__sink_put(s, "{");
    const char *sep = "";
#define X(f, label, group) soma__sink_printf(s, "%s\"" #f "\": %zu", sep, m->f), sep = ", ";
    SOMA_MEDIUM_FIELDS(X)
#undef X
    soma__sink_put(s, ", \"classes\": ");
    put_classes(w, m->classes, m->num_classes, st->num_classes, st->pool_size, st->pool_overhead);
    soma__sink_put(s, "}");

    key(w, "large");
    sep = "{";
#define X(f, label, group) soma__sink_printf(s, "%s\"" #f "\": %zu", sep, st->large.f), sep = ", ";
    SOMA_LARGE_FIELDS(X)
#undef X
    soma__sink_put(s, "}");

    key(w, "types");
    soma__sink_put(s, "[");
    for (size_t i = 0; i < st->num_types; i++) {
        const soma_type_stats *t = &st->types[i];
        soma__sink_put(s, i ? ", {\"name\": " : "{\"name\": ");
        put_string(s, t->name);
        soma__sink_printf(s, ", \"elem_size\": %zu, \"count\": %zu}", t->elem_size, t->count);
    }
    soma__sink_put(s, "]");
}

static void put_detail(jw *w, const detail_t *d)
{
    sink_t *s = w->s;
    static const char *const kinds[] = {"small", "medium"};
    key(w, "detail");
    soma__sink_printf(s, "{\"pools_per_arena\": %zu, \"heaps\": %u, \"dropped_arenas\": %zu,%s  "
                         "\"arenas\": [",
                      (size_t)SOMA_POOLS_PER_ARENA, d->nheaps, d->dropped, w->nl);
    for (size_t i = 0; i < d->narenas; i++) {
        const arena_view_t *v = &d->arenas[i];
        soma__sink_printf(s, "%s%s   {\"address\": \"0x%lx\", \"heap\": %u, \"heap_kind\": \"%s\", "
                             "\"kind\": \"%s\", \"fresh_pools\": %u, \"pools\": [",
                          i ? "," : "", w->nl, (unsigned long)v->address, v->heap,
                          v->explicit_heap ? "explicit" : "thread", kinds[v->kind],
                          (unsigned)(v->npools - v->carved));
        for (unsigned p = 0; p < v->carved; p++) {
            int cls = v->cls[p] == SOMA_NO_CLASS ? -1 : (int)v->cls[p];
            soma__sink_printf(s, "%s[%d,%u]", p ? "," : "", cls, (unsigned)v->used[p]);
        }
        soma__sink_put(s, "]}");
    }
    soma__sink_printf(s, "%s  ],%s  \"reclaimed_slots\": [", w->nl, w->nl);
    for (size_t i = 0; i < d->nreclaimed; i++)
        soma__sink_printf(s, "%s\"0x%lx\"", i ? ", " : "", (unsigned long)d->reclaimed[i]);
    soma__sink_put(s, "]}");
}

int soma__stats_json_write(sink_t *s, const soma_stats *st, const detail_t *d,
                           const char *reason, const char *scope, int one_line)
{
    jw w = {s, one_line ? "" : "\n"};
    put_envelope(&w, reason, scope);
    put_figures(&w, st);
    if (d != NULL)
        put_detail(&w, d);
    soma__sink_put(s, one_line ? "}\n" : "\n}\n");
    return soma__sink_flush(s);
}

/* As in stats_print.c: the snapshot is large, kept off the caller's stack. */
static pthread_mutex_t json_lock = PTHREAD_MUTEX_INITIALIZER;

static void json_fork(int phase)
{
    if (phase == SOMA_FORK_CHILD)
        pthread_mutex_init(&json_lock, NULL);
}
SOMA_HOOK(json, SOMA_ORDER_EMIT + 1, NULL, json_fork);

static int print_json(FILE *out, heap_t *heap)
{
    static soma_stats st;
    static sink_t s;
    detail_t d;
    pthread_mutex_lock(&json_lock);
    soma__walk_take(&st, heap, &d);
    memset(&s, 0, sizeof s);
    s.file = out;
    int rc = soma__stats_json_write(&s, &st, d.arenas != NULL ? &d : NULL, "request",
                                    heap != NULL ? "heap" : "process", 0);
    soma__walk_detail_free(&d);
    pthread_mutex_unlock(&json_lock);
    return rc;
}

int soma_stats_print_json(FILE *out)
{
    return print_json(out, NULL);
}

int soma_heap_stats_print_json(soma_heap *heap, FILE *out)
{
    return print_json(out, (heap_t *)heap);
}

int soma_stats_fprint_json(FILE *out, const soma_stats *st)
{
    static sink_t s;
    pthread_mutex_lock(&json_lock);
    memset(&s, 0, sizeof s);
    s.file = out;
    int rc = soma__stats_json_write(&s, st, NULL, "request", "snapshot", 0);
    pthread_mutex_unlock(&json_lock);
    return rc;
}
