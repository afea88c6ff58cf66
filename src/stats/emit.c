/*
 * emit.c: the writer every statistics format goes through (emit.h), the
 * table of figures it reads, and the one scratch snapshot.
 */
#include <stdio.h>

#include "os/os.h"
#include "common/text.h"
#include "stats/emit.h"

const field_t soma__emit_fields[SOMA_NUM_FIELDS] = {
#define X(m, label, group) {#m, label, group, SOMA_SECTION_TOP, offsetof(soma_stats, m)},
    SOMA_STATS_FIELDS(X)
#undef X
#define X(m, label, group) {#m, label, group, SOMA_SECTION_MEDIUM, offsetof(soma_stats, medium.m)},
    SOMA_MEDIUM_FIELDS(X)
#undef X
#define X(m, label, group) {#m, label, group, SOMA_SECTION_LARGE, offsetof(soma_stats, large.m)},
    SOMA_LARGE_FIELDS(X)
#undef X
#define X(m, label, group)                                                                         \
    {#m, label, group, SOMA_SECTION_LARGE, offsetof(soma_stats, large_map.m)},
    SOMA_LARGE_MAP_FIELDS(X)
#undef X
#define X(m, label, group)                                                                         \
    {#m, label, group, SOMA_SECTION_RETURNED, offsetof(soma_stats, returned.m)},
    SOMA_RETURNED_FIELDS(X)
#undef X
#define X(m, label, group)                                                                         \
    {#m, label, group, SOMA_SECTION_GUARDED, offsetof(soma_stats, guarded.m)},
    SOMA_GUARDED_FIELDS(X)
#undef X
};
_Static_assert(offsetof(soma_stats, guarded) + sizeof(soma_guarded_stats) <= UINT16_MAX,
               "a figure's offset fits field_t's");

void soma__emit_line(emit_t *e, const char *label, size_t value)
{
    char num[SOMA_TEXT_COMMAS_LEN];
    soma__sink_printf(e->sink, "%-35s=%21s\n", label, soma_text_commas(num, sizeof num, value));
}

void soma__emit_key(emit_t *e, const char *key)
{
    soma__sink_printf(e->sink, ",%s \"%s\": ", e->nl, key);
}

void soma__emit_figure(emit_t *e, const soma_stats *st, int id)
{
    if (e->json) {
        soma__emit_key(e, soma__emit_fields[id].key);
        soma__sink_printf(e->sink, "%zu", soma__emit_value(st, id));
    } else {
        soma__emit_line(e, soma__emit_fields[id].label, soma__emit_value(st, id));
    }
}

void soma__emit_string(emit_t *e, const char *text)
{
    sink_t *s = e->sink;
    char esc[8];
    soma__sink_put(s, "\"");
    const unsigned char *p = (const unsigned char *)text;
    size_t left = strlen(text);
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

/* ---- the scratch: a snapshot and a sink for one call ---- */

/* A soma_stats holds every registered type: too large for a small thread
 * stack.  And no lock may be shared by the printers: a snapshot runs the
 * program's count functions, which take the program's own locks, and a
 * thread that holds one of those and prints (or a count function that
 * prints) would wait for a printer waiting for it.  So every call maps a
 * scratch of its own (mmap: never malloc, which may be what is measured)
 * and gives it back; printers share nothing and take no lock of soma's but
 * the walk's. */
typedef struct {
    soma_stats st;    /* the snapshot taken, or a short caller's copy */
    soma_stats other; /* a short caller's copy (the diff's second snapshot) */
    sink_t sink;
} scratch_t;

static scratch_t *scratch_new(FILE *file, int fd)
{
    scratch_t *s = soma__os_map(sizeof *s); /* zeroed */
    if (s == NULL)
        return NULL;
    s->sink.file = file;
    s->sink.fd = fd;
    return s;
}

static int scratch_done(scratch_t *s, int rc)
{
    soma__os_unmap(s, sizeof *s);
    return rc;
}

/* st as a whole soma_stats of this header: st itself, or, if the caller's
 * struct is shorter (built against an older soma.h: its `size`), its bytes
 * copied into room and the rest zero.  A size of 0 (a struct filled by
 * hand) means the whole. */
static const soma_stats *whole(const soma_stats *st, soma_stats *room)
{
    if (st->size == 0 || st->size >= sizeof *st)
        return st;
    memset(room, 0, sizeof *room);
    memcpy(room, st, st->size);
    return room;
}

/* Take a snapshot (of heap, or the process's) into a scratch and write it. */
static int take_and_write(FILE *out, heap_t *heap, int json)
{
    scratch_t *s = scratch_new(out, -1);
    if (s == NULL)
        return -1;
    emit_t e = {&s->sink, json, "\n"};
    if (json) {
        detail_t d;
        soma__walk_take(&s->st, heap, &d);
        soma__emit_json(&e, &s->st, d.arenas != NULL ? &d : NULL, "request",
                        heap != NULL ? "heap" : "process");
        soma__walk_detail_free(&d);
    } else {
        soma__walk_take(&s->st, heap, NULL);
        soma__emit_text(&e, &s->st);
    }
    return scratch_done(s, soma__sink_flush(e.sink));
}

/* Write st, a snapshot the caller took. */
static int write_given(FILE *out, const soma_stats *st, int json)
{
    scratch_t *s = scratch_new(out, -1);
    if (s == NULL)
        return -1;
    emit_t e = {&s->sink, json, "\n"};
    st = whole(st, &s->other);
    if (json)
        soma__emit_json(&e, st, NULL, "request", "snapshot");
    else
        soma__emit_text(&e, st);
    return scratch_done(s, soma__sink_flush(e.sink));
}

int soma__emit_snapshot(const emit_request_t *r)
{
    scratch_t *s = r->keep != NULL ? *r->keep : NULL;
    if (s == NULL && (s = scratch_new(r->file, r->fd)) == NULL)
        return -1;
    memset(&s->sink, 0, sizeof s->sink);
    s->sink.file = r->file;
    s->sink.fd = r->fd;
    emit_t e = {&s->sink, r->json, r->sample ? "" : "\n"};
    detail_t d = {0};
    if (r->sample)
        soma__walk_sample(&s->st);
    else
        soma__walk_take(&s->st, NULL, r->json ? &d : NULL);
    if (r->json) {
        soma__emit_json(&e, &s->st, d.arenas != NULL ? &d : NULL, r->reason, "process");
    } else {
        if (r->header != NULL)
            soma__sink_put(e.sink, r->header);
        soma__emit_text(&e, &s->st);
    }
    soma__walk_detail_free(&d);
    int rc = soma__sink_flush(e.sink);
    if (r->keep != NULL) {
        *r->keep = s;
        return rc;
    }
    return scratch_done(s, rc);
}

/* ---- the public print functions (soma.h) ---- */

int soma_stats_print(FILE *out)
{
    return take_and_write(out, NULL, 0);
}

int soma_heap_stats_print(soma_heap *heap, FILE *out)
{
    return take_and_write(out, (heap_t *)heap, 0);
}

int soma_stats_print_json(FILE *out)
{
    return take_and_write(out, NULL, 1);
}

int soma_heap_stats_print_json(soma_heap *heap, FILE *out)
{
    return take_and_write(out, (heap_t *)heap, 1);
}

int soma_stats_fprint(FILE *out, const soma_stats *st)
{
    return write_given(out, st, 0);
}

int soma_stats_fprint_json(FILE *out, const soma_stats *st)
{
    return write_given(out, st, 1);
}

int soma_stats_diff(FILE *out, const soma_stats *before, const soma_stats *after)
{
    scratch_t *s = scratch_new(out, -1);
    if (s == NULL)
        return -1;
    emit_t e = {&s->sink, 0, "\n"};
    int changed = soma__emit_diff(&e, whole(before, &s->st), whole(after, &s->other));
    int rc = changed < 0 ? -1 : soma__sink_flush(e.sink);
    if (rc == 0 && ferror(out)) /* as fprintf's callers learn of a failed write */
        rc = -1;
    return scratch_done(s, rc < 0 ? -1 : changed);
}
