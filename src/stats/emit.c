/*
 * emit.c: the writer every statistics format goes through (emit.h), the
 * table of figures it reads, and the one scratch snapshot.
 */
#include <stdio.h>

#include "base/start.h"
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
};
_Static_assert(offsetof(soma_stats, large) + sizeof(soma_large_stats) <= UINT16_MAX,
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

/* ---- the scratch snapshot ---- */

/* Guards the scratch: the snapshot, its sink and its detail.  Not held
 * across fork: a snapshot being taken calls the program's count functions
 * (types.c), which may wait for a lock the forking thread holds.  The
 * child's copy is reset: the thread that held it does not exist there,
 * and what it guards is only scratch space. */
static pthread_mutex_t scratch_lock = PTHREAD_MUTEX_INITIALIZER;
static soma_stats scratch;
static sink_t scratch_sink;

static void scratch_fork(int phase)
{
    if (phase == SOMA_FORK_CHILD)
        pthread_mutex_init(&scratch_lock, NULL);
}
SOMA_HOOK(emit, SOMA_ORDER_EMIT, NULL, scratch_fork);

/* The scratch's sink, emptied, writing to file or fd (scratch_lock held). */
static sink_t *scratch_sink_to(FILE *file, int fd)
{
    memset(&scratch_sink, 0, sizeof scratch_sink);
    scratch_sink.file = file;
    scratch_sink.fd = fd;
    return &scratch_sink;
}

/* Take a snapshot (of heap, or the process's) into the scratch and write it. */
static int take_and_write(FILE *out, heap_t *heap, int json)
{
    pthread_mutex_lock(&scratch_lock);
    emit_t e = {scratch_sink_to(out, -1), json, "\n"};
    if (json) {
        detail_t d;
        soma__walk_take(&scratch, heap, &d);
        soma__emit_json(&e, &scratch, d.arenas != NULL ? &d : NULL, "request",
                        heap != NULL ? "heap" : "process");
        soma__walk_detail_free(&d);
    } else {
        soma__walk_take(&scratch, heap, NULL);
        soma__emit_text(&e, &scratch);
    }
    int rc = soma__sink_flush(e.sink);
    pthread_mutex_unlock(&scratch_lock);
    return rc;
}

/* Write st, a snapshot the caller took. */
static int write_given(FILE *out, const soma_stats *st, int json)
{
    pthread_mutex_lock(&scratch_lock);
    emit_t e = {scratch_sink_to(out, -1), json, "\n"};
    if (json)
        soma__emit_json(&e, st, NULL, "request", "snapshot");
    else
        soma__emit_text(&e, st);
    int rc = soma__sink_flush(e.sink);
    pthread_mutex_unlock(&scratch_lock);
    return rc;
}

int soma__emit_snapshot(const emit_request_t *r)
{
    pthread_mutex_lock(&scratch_lock);
    emit_t e = {scratch_sink_to(r->file, r->fd), r->json, r->sample ? "" : "\n"};
    detail_t d = {0};
    if (r->sample)
        soma__walk_sample(&scratch);
    else
        soma__walk_take(&scratch, NULL, r->json ? &d : NULL);
    if (r->json) {
        soma__emit_json(&e, &scratch, d.arenas != NULL ? &d : NULL, r->reason, "process");
    } else {
        if (r->header != NULL)
            soma__sink_put(e.sink, r->header);
        soma__emit_text(&e, &scratch);
    }
    soma__walk_detail_free(&d);
    int rc = soma__sink_flush(e.sink);
    pthread_mutex_unlock(&scratch_lock);
    return rc;
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
    pthread_mutex_lock(&scratch_lock);
    emit_t e = {scratch_sink_to(out, -1), 0, "\n"};
    int changed = soma__emit_diff(&e, before, after);
    int rc = changed < 0 ? -1 : soma__sink_flush(e.sink);
    pthread_mutex_unlock(&scratch_lock);
    return rc < 0 ? -1 : changed;
}
