/*
 * emit_json.c: a snapshot as JSON, every figure of the text dump and the
 * detail behind it (docs/stats.schema.json is the schema; its version is
 * SCHEMA_VERSION below, raised whenever a key changes meaning or goes).
 *
 *   { envelope: schema_version, soma_version, reason, pid, program,
 *     timestamp, time_ms, elapsed_ms, scope, build, options,
 *     the figures: one key per soma_stats member (common/stats_fields.h), with
 *     "classes", "medium", "large", "returned", "guarded" and "types" as nested
 *     objects/arrays,
 *     "detail": every arena (address, heap, kind, and its pools in address
 *     order as [class, blocks in use]: 0 in use is an empty pool, still
 *     marked with the class it last served, and [class, 0, 1] one whose
 *     pages went back to the OS; pools never carved are only counted) and
 *     the arena slots reclaimed (empty now) }
 *
 * The sampling thread writes through a descriptor sink and must not
 * allocate (base/sink.h): nothing here calls malloc, including the clock (UTC
 * is computed by hand rather than by gmtime_r, whose first call may load
 * time-zone data).  Strings are escaped for JSON; the program's command
 * line may hold anything.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/options.h"
#include "base/process.h"
#include "stats/emit.h"

#define SCHEMA_VERSION 1

static void put_class(sink_t *s, size_t index, const soma_class_stats *cs, size_t capacity)
{
    soma__sink_printf(s, "{\"class\": %zu", index);
#define X(m, label, group) soma__sink_printf(s, ", \"" #m "\": %zu", cs->m);
    SOMA_CLASS_FIELDS(X)
#undef X
    soma__sink_printf(s, ", \"capacity\": %zu}", capacity);
}

static void put_classes(emit_t *e, const soma_class_stats *classes, size_t n, size_t first,
                        size_t pool_size, size_t overhead)
{
    soma__sink_put(e->sink, "[");
    for (size_t c = 0; c < n; c++) {
        soma__sink_printf(e->sink, "%s%s  ", c ? "," : "", e->nl);
        put_class(e->sink, first + c, &classes[c], (pool_size - overhead) / classes[c].size);
    }
    soma__sink_printf(e->sink, "%s ]", e->nl);
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

static void put_envelope(emit_t *e, const char *reason, const char *scope)
{
    sink_t *s = e->sink;
    char cmd[512], when[96];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    utc(when, sizeof when, &now);
    soma__process_command_line(cmd, sizeof cmd);

    soma__sink_printf(s, "{%s \"schema_version\": %d", e->nl, SCHEMA_VERSION);
    soma__emit_key(e, "soma_version"), soma__emit_string(e, SOMA_VERSION);
    soma__emit_key(e, "reason"), soma__emit_string(e, reason);
    soma__emit_key(e, "scope"), soma__emit_string(e, scope);
    soma__emit_key(e, "pid"), soma__sink_printf(s, "%d", (int)getpid());
    soma__emit_key(e, "program"), soma__emit_string(e, cmd);
    soma__emit_key(e, "timestamp"), soma__emit_string(e, when);
    soma__emit_key(e, "time_ms"),
        soma__sink_printf(s, "%lld", (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000);
    soma__emit_key(e, "elapsed_ms"), soma__sink_printf(s, "%.3f", soma__process_elapsed_ms());
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
    soma__emit_key(e, "build");
    soma__sink_printf(s, "{\"geometry\": \"%s\", \"override\": %s}", geometry, override);
    soma__emit_key(e, "options");
    soma__sink_printf(s, "{\"show_stats\": %s, \"stats_file\": ",
                      soma__options.show_stats ? "true" : "false");
    if (soma__options.stats_file[0])
        soma__emit_string(e, soma__options.stats_file);
    else
        soma__sink_put(s, "null");
    soma__sink_put(s, ", \"stats_signal\": ");
    const char *sig = soma__options.stats_signal ? sigabbrev_np((int)soma__options.stats_signal) : NULL;
    if (sig != NULL)
        soma__emit_string(e, sig);
    else if (soma__options.stats_signal)
        soma__sink_printf(s, "\"%ld\"", soma__options.stats_signal);
    else
        soma__sink_put(s, "null");
    soma__sink_printf(s, ", \"stats_format\": \"%s\", \"stats_interval_ms\": %ld, "
                         "\"arena_decay_ms\": %ld}",
                      soma__options.json ? "json" : "text", soma__options.interval_ms,
                      soma__options.decay_ms);
}

/* The figures of a nested section, as "key": value members, comma-separated. */
static void section(emit_t *e, const soma_stats *st, int which)
{
    const char *sep = "";
    for (int id = 0; id < SOMA_NUM_FIELDS; id++) {
        if (soma__emit_fields[id].section != which)
            continue;
        soma__sink_printf(e->sink, "%s\"%s\": %zu", sep, soma__emit_fields[id].key,
                          soma__emit_value(st, id));
        sep = ", ";
    }
}

static void put_figures(emit_t *e, const soma_stats *st)
{
    sink_t *s = e->sink;
    for (int id = 0; id < SOMA_NUM_FIELDS; id++)
        if (soma__emit_fields[id].section == SOMA_SECTION_TOP)
            soma__emit_figure(e, st, id);
    soma__emit_key(e, "classes");
    put_classes(e, st->classes, st->num_classes, 0, st->pool_size, st->pool_overhead);

    const soma_medium_stats *m = &st->medium;
    soma__emit_key(e, "medium");
    soma__sink_put(s, "{");
    section(e, st, SOMA_SECTION_MEDIUM);
    soma__sink_put(s, ", \"classes\": ");
    put_classes(e, m->classes, m->num_classes, st->num_classes, st->pool_size, st->pool_overhead);
    soma__sink_put(s, "}");

    soma__emit_key(e, "large");
    soma__sink_put(s, "{");
    section(e, st, SOMA_SECTION_LARGE);
    soma__sink_put(s, "}");

    soma__emit_key(e, "returned");
    soma__sink_put(s, "{");
    section(e, st, SOMA_SECTION_RETURNED);
    soma__sink_put(s, "}");

    soma__emit_key(e, "guarded");
    soma__sink_put(s, "{");
    section(e, st, SOMA_SECTION_GUARDED);
    soma__sink_put(s, "}");

    soma__emit_key(e, "types");
    soma__sink_put(s, "[");
    for (size_t i = 0; i < st->num_types; i++) {
        const soma_type_stats *t = &st->types[i];
        soma__sink_put(s, i ? ", {\"name\": " : "{\"name\": ");
        soma__emit_string(e, t->name);
        soma__sink_printf(s, ", \"elem_size\": %zu, \"count\": %zu}", t->elem_size, t->count);
    }
    soma__sink_put(s, "]");
}

static void put_detail(emit_t *e, const detail_t *d)
{
    sink_t *s = e->sink;
    static const char *const kinds[] = {"small", "medium"};
    soma__emit_key(e, "detail");
    soma__sink_printf(s, "{\"pools_per_arena\": %zu, \"heaps\": %u, \"dropped_arenas\": %zu,%s  "
                         "\"arenas\": [",
                      (size_t)SOMA_POOLS_PER_ARENA, d->nheaps, d->dropped, e->nl);
    for (size_t i = 0; i < d->narenas; i++) {
        const arena_view_t *v = &d->arenas[i];
        soma__sink_printf(s, "%s%s   {\"address\": \"0x%lx\", \"heap\": %u, \"heap_kind\": \"%s\", "
                             "\"kind\": \"%s\", \"fresh_pools\": %u, \"pools\": [",
                          i ? "," : "", e->nl, (unsigned long)v->address, v->heap,
                          v->explicit_heap ? "explicit" : "thread", kinds[v->kind],
                          (unsigned)(v->npools - v->carved));
        for (unsigned p = 0; p < v->carved; p++) {
            int cls = v->cls[p] == SOMA_NO_CLASS ? -1 : (int)v->cls[p];
            /* A third element, only where it is 1: the detail of a program
             * that never gave pages back reads as it always did. */
            if (v->returned >> p & 1)
                soma__sink_printf(s, "%s[%d,0,1]", p ? "," : "", cls);
            else
                soma__sink_printf(s, "%s[%d,%u]", p ? "," : "", cls, (unsigned)v->used[p]);
        }
        soma__sink_put(s, "]}");
    }
    soma__sink_printf(s, "%s  ],%s  \"reclaimed_slots\": [", e->nl, e->nl);
    for (size_t i = 0; i < d->nreclaimed; i++)
        soma__sink_printf(s, "%s\"0x%lx\"", i ? ", " : "", (unsigned long)d->reclaimed[i]);
    soma__sink_put(s, "]}");
}

void soma__emit_json(emit_t *e, const soma_stats *st, const detail_t *d, const char *reason,
                     const char *scope)
{
    put_envelope(e, reason, scope);
    put_figures(e, st);
    if (d != NULL)
        put_detail(e, d);
    soma__sink_put(e->sink, *e->nl ? "\n}\n" : "}\n");
}
