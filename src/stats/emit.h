/*
 * emit.h: the one writer of every statistics format.
 *
 * The figures are described once, in common/stats_fields.h; emit.c turns
 * that list into a table (each figure's JSON key, its label in the text
 * dump, its group, where it lies in soma_stats), and every format reads
 * the table through one writer, emit_t, over a sink (base/sink.h):
 *
 *   emit_text.c   CPython's sys._debugmallocstats() layout, soma's
 *                 sections after it (soma_stats_print, the exit dump)
 *   emit_json.c   the JSON snapshot (docs/stats.schema.json)
 *   emit_diff.c   what changed between two snapshots (soma_stats_diff)
 *
 * emit.c also holds the scratch every call fills (a snapshot and a sink,
 * mapped for the call and given back: no lock shared between printers, no
 * large struct on a small thread stack) and the public print functions.
 */
#ifndef SOMA_EMIT_H
#define SOMA_EMIT_H

#include "common/stats_fields.h"
#include "stats/stats.h"

/* Every figure of soma_stats by number: SOMA_F_<member>, SOMA_F_medium_<member>,
 * SOMA_F_large_<member> (soma_stats.large's and .large_map's: their names
 * differ), SOMA_F_returned_<member>, SOMA_F_guarded_<member>, in the order
 * of common/stats_fields.h. */
enum {
#define X(m, label, group) SOMA_F_##m,
    SOMA_STATS_FIELDS(X)
#undef X
#define X(m, label, group) SOMA_F_medium_##m,
    SOMA_MEDIUM_FIELDS(X)
#undef X
#define X(m, label, group) SOMA_F_large_##m,
    SOMA_LARGE_FIELDS(X)
#undef X
#define X(m, label, group) SOMA_F_large_##m,
    SOMA_LARGE_MAP_FIELDS(X)
#undef X
#define X(m, label, group) SOMA_F_returned_##m,
    SOMA_RETURNED_FIELDS(X)
#undef X
#define X(m, label, group) SOMA_F_guarded_##m,
    SOMA_GUARDED_FIELDS(X)
#undef X
    SOMA_NUM_FIELDS
};

/* Which part of soma_stats a figure is in (its JSON object). */
enum {
    SOMA_SECTION_TOP,
    SOMA_SECTION_MEDIUM,
    SOMA_SECTION_LARGE,
    SOMA_SECTION_RETURNED,
    SOMA_SECTION_GUARDED
};

typedef struct {
    const char *key;   /* the member's name: the JSON key */
    const char *label; /* the text dump's and the diff's words */
    uint8_t group;     /* SOMA_FIELD_GEOMETRY, _COUNT or _BYTES */
    uint8_t section;   /* SOMA_SECTION_* */
    uint16_t offset;   /* of its size_t in soma_stats */
} field_t;
extern SOMA_INTERNAL const field_t soma__emit_fields[SOMA_NUM_FIELDS];

static inline size_t soma__emit_value(const soma_stats *st, int id)
{
    size_t v;
    memcpy(&v, (const char *)st + soma__emit_fields[id].offset, sizeof v);
    return v;
}

/* The writer: where the text goes and in which format. */
typedef struct {
    sink_t *sink;
    int json;       /* JSON, else text */
    const char *nl; /* JSON: "\n" between top-level members, or "" (one line) */
} emit_t;

/* ---- emit.c: the writer's primitives ---- */
/* Text: CPython's printone(): the label padded to column 35, '=', the
 * value with thousands separators right-aligned in 21 columns. */
SOMA_INTERNAL void soma__emit_line(emit_t *e, const char *label, size_t value);
/* A figure by number: its text line, or its JSON member. */
SOMA_INTERNAL void soma__emit_figure(emit_t *e, const soma_stats *st, int id);
/* JSON: ",\n \"key\": " at the top level; a string, escaped (never
 * anything but UTF-8 out: bytes that are not become U+FFFD). */
SOMA_INTERNAL void soma__emit_key(emit_t *e, const char *key);
SOMA_INTERNAL void soma__emit_string(emit_t *e, const char *text);

/* ---- the formats ---- */
SOMA_INTERNAL void soma__emit_text(emit_t *e, const soma_stats *st);
/* reason: "exit", "signal", "sample" or "request"; scope: "process",
 * "heap" or "snapshot"; d: the arena detail, or NULL. */
SOMA_INTERNAL void soma__emit_json(emit_t *e, const soma_stats *st, const detail_t *d,
                                   const char *reason, const char *scope);
/* The rows that changed; -1 with errno = EINVAL if the geometries differ. */
SOMA_INTERNAL int soma__emit_diff(emit_t *e, const soma_stats *before, const soma_stats *after);

/* ---- emit.c: a snapshot taken and written, for the dumps (runtime/report.c) ---- */
typedef struct {
    FILE *file;         /* where to, or NULL: fd, with write(2) (no stdio: no malloc) */
    int fd;
    int json;           /* the JSON snapshot (with the arena detail, unless a sample) */
    int sample;         /* read only (soma__walk_sample): JSON on one line, no detail */
    const char *reason; /* JSON */
    const char *header; /* text: a line written before the dump, or NULL */
    void **keep;        /* a scratch kept from call to call in *keep (the caller
                           serialises its calls: report.c's dump lock), or NULL:
                           one mapped for this call and given back */
} emit_request_t;
/* Takes the process's snapshot into a scratch and writes it; 0, or -1 if
 * a write failed (or no scratch could be mapped).  Allocates nothing
 * through malloc when writing to a descriptor. */
SOMA_INTERNAL int soma__emit_snapshot(const emit_request_t *r);

#endif /* SOMA_EMIT_H */
