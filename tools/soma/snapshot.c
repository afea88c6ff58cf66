/*
 * snapshot.c: JSON snapshots back into soma_stats (snapshot.h).
 *
 * The reader is lenient where the schema is strict: a figure that is
 * missing reads as 0, so that a snapshot written by hand (the diff tests
 * have some) names only what matters to it.  The geometry is required:
 * without it no figure can be placed, and two snapshots of different
 * geometries cannot be compared.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot.h"
#include "common/stats_fields.h"

#define MAX_POOLS 4096 /* pools per arena: 64 in soma's geometries */

static size_t get(const sj_value *o, const char *key)
{
    unsigned long long v = 0;
    sj_get_uint(o, key, &v);
    return (size_t)v;
}

static void copy_string(char *out, size_t len, const sj_value *o, const char *key)
{
    const char *s = sj_get_string(o, key);
    snprintf(out, len, "%s", s ? s : "");
}

/* A class table: entries carry their index ("class"); missing ones are 0. */
static int read_classes(const sj_value *arr, soma_class_stats *out, size_t n, size_t first,
                        char *err, size_t errlen)
{
    if (arr == NULL)
        return 0;
    if (arr->type != SJ_ARRAY) {
        snprintf(err, errlen, "\"classes\" is not an array");
        return -1;
    }
    for (size_t i = 0; i < arr->n; i++) {
        const sj_value *row = arr->items[i];
        unsigned long long c;
        if (!sj_get_uint(row, "class", &c) || c < first || c - first >= n) {
            snprintf(err, errlen, "class entry %zu has no valid \"class\" index", i);
            return -1;
        }
        soma_class_stats *cs = &out[c - first];
#define X(m, label, group) cs->m = get(row, #m);
        SOMA_CLASS_FIELDS(X)
#undef X
    }
    return 0;
}

static unsigned long long parse_address(const sj_value *v)
{
    if (v == NULL || v->type != SJ_STRING)
        return 0;
    return strtoull(v->string, NULL, 16);
}

static int by_address(const void *a, const void *b)
{
    unsigned long long x = ((const tool_arena *)a)->address, y = ((const tool_arena *)b)->address;
    return (x > y) - (x < y);
}

static int read_detail(const sj_value *d, tool_snapshot *out, char *err, size_t errlen)
{
    const sj_value *arenas = sj_get(d, "arenas"), *slots = sj_get(d, "reclaimed_slots");
    size_t na = arenas && arenas->type == SJ_ARRAY ? arenas->n : 0;
    size_t ns = slots && slots->type == SJ_ARRAY ? slots->n : 0;
    out->has_detail = 1;
    /* Values are clamped to what soma can write: a hand-made or damaged
     * file must not make the pictures' arithmetic overflow. */
    size_t ppa = get(d, "pools_per_arena");
    out->pools_per_arena = ppa >= 1 && ppa <= MAX_POOLS ? (unsigned)ppa : MAX_POOLS;
    out->dropped = get(d, "dropped_arenas");
    out->arenas = calloc(na + ns + 1, sizeof *out->arenas);
    if (out->arenas == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < na; i++) {
        const sj_value *a = arenas->items[i], *pools = sj_get(a, "pools");
        tool_arena *t = &out->arenas[out->narenas++];
        const char *heap_kind = sj_get_string(a, "heap_kind"), *kind = sj_get_string(a, "kind");
        t->address = parse_address(sj_get(a, "address"));
        t->heap = (unsigned)get(a, "heap");
        t->explicit_heap = heap_kind && strcmp(heap_kind, "explicit") == 0;
        t->medium = kind && strcmp(kind, "medium") == 0;
        size_t fresh = get(a, "fresh_pools");
        t->fresh = fresh <= out->pools_per_arena ? (unsigned)fresh : out->pools_per_arena;
        if (pools == NULL || pools->type != SJ_ARRAY)
            continue;
        if (pools->n + t->fresh > out->pools_per_arena) {
            snprintf(err, errlen, "arena %zu: more than pools_per_arena (%u) pools", i,
                     out->pools_per_arena);
            return -1;
        }
        t->pools = calloc(pools->n + 1, sizeof *t->pools);
        if (t->pools == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        for (size_t p = 0; p < pools->n; p++) {
            const sj_value *pv = pools->items[p];
            /* [class, blocks in use], or [class, 0, 1]: empty, its pages
             * returned (a snapshot from before version 3 has no third). */
            int third = pv->type == SJ_ARRAY && pv->n == 3;
            if (pv->type != SJ_ARRAY || (pv->n != 2 && !third) || !pv->items[0]->is_int ||
                !pv->items[1]->is_uint || pv->items[0]->sint < -1 ||
                pv->items[0]->sint >= SOMA_NUM_CLASSES + SOMA_MAX_MEDIUM_CLASSES ||
                pv->items[1]->uint > 65535 ||
                (third && (!pv->items[2]->is_uint || pv->items[2]->uint > 1 ||
                           (pv->items[2]->uint == 1 && pv->items[1]->uint != 0)))) {
                snprintf(err, errlen,
                         "arena %zu: pool %zu is not [class, blocks in use] or [class, 0, 1]", i, p);
                return -1;
            }
            t->pools[p].cls = (int)pv->items[0]->sint;
            t->pools[p].used = (unsigned)pv->items[1]->uint;
            t->pools[p].returned = third && pv->items[2]->uint == 1;
        }
        t->npools = pools->n;
    }
    for (size_t i = 0; i < ns; i++) {
        tool_arena *t = &out->arenas[out->narenas++];
        t->address = parse_address(slots->items[i]);
        t->reclaimed = 1;
    }
    qsort(out->arenas, out->narenas, sizeof *out->arenas, by_address);
    return 0;
}

int tool_snapshot_from_json(const sj_value *v, tool_snapshot *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (v->type != SJ_OBJECT) {
        snprintf(err, errlen, "a snapshot is a JSON object");
        return -1;
    }
    unsigned long long version;
    if (!sj_get_uint(v, "schema_version", &version) || version != 1) {
        snprintf(err, errlen, "not a soma snapshot of schema_version 1");
        return -1;
    }
    soma_stats *st = &out->st;
    st->version = SOMA_STATS_VERSION; /* what the reader fills: this header's layout */
    st->size = sizeof *st;
#define X(m, label, group) st->m = get(v, #m);
    SOMA_STATS_FIELDS(X)
#undef X
    if (st->threshold == 0 || st->pool_size == 0 || st->arena_size == 0 ||
        st->num_classes == 0 || st->num_classes > SOMA_NUM_CLASSES ||
        st->pool_overhead >= st->pool_size || st->pool_size > st->arena_size) {
        snprintf(err, errlen, "the geometry (threshold, num_classes, pool_size, arena_size) "
                              "is missing or not soma's");
        return -1;
    }
    const sj_value *medium = sj_get(v, "medium"), *large = sj_get(v, "large");
    if (medium != NULL) {
#define X(m, label, group) st->medium.m = get(medium, #m);
        SOMA_MEDIUM_FIELDS(X)
#undef X
        if (st->medium.num_classes > SOMA_MAX_MEDIUM_CLASSES) {
            snprintf(err, errlen, "too many medium classes");
            return -1;
        }
    }
    if (large != NULL) {
#define X(m, label, group) st->large.m = get(large, #m);
        SOMA_LARGE_FIELDS(X)
#undef X
#define X(m, label, group) st->large_map.m = get(large, #m);
        SOMA_LARGE_MAP_FIELDS(X)
#undef X
    }
    /* Version 3's; an older snapshot has none: 0, as the dump reads them. */
    const sj_value *returned = sj_get(v, "returned");
#define X(m, label, group) st->returned.m = get(returned, #m);
    SOMA_RETURNED_FIELDS(X)
#undef X
    /* Version 5's; likewise. */
    const sj_value *guarded = sj_get(v, "guarded");
#define X(m, label, group) st->guarded.m = get(guarded, #m);
    SOMA_GUARDED_FIELDS(X)
#undef X
    if (read_classes(sj_get(v, "classes"), st->classes, st->num_classes, 0, err, errlen) != 0 ||
        (medium != NULL && read_classes(sj_get(medium, "classes"), st->medium.classes,
                                        st->medium.num_classes, st->num_classes, err, errlen) != 0))
        return -1;
    /* Sizes a hand-written snapshot leaves out follow from the geometry:
     * small class i serves (i + 1) * threshold / num_classes bytes, medium
     * class m (of M) the largest multiple of 16 that fits (M + 1 - m) times
     * in a pool after its header (sizeclass.c). */
    for (size_t c = 0; c < st->num_classes; c++)
        if (st->classes[c].size == 0)
            st->classes[c].size = (c + 1) * st->threshold / st->num_classes;
    size_t nmed = st->medium.num_classes;
    for (size_t m = 0; m < nmed; m++)
        if (st->medium.classes[m].size == 0 && st->pool_size > st->pool_overhead)
            st->medium.classes[m].size =
                ((st->pool_size - st->pool_overhead) / (nmed + 1 - m)) & ~(size_t)15;
    const sj_value *types = sj_get(v, "types");
    for (size_t i = 0; types && types->type == SJ_ARRAY && i < types->n && i < SOMA_MAX_TYPES; i++) {
        soma_type_stats *t = &st->types[st->num_types++];
        copy_string(t->name, sizeof t->name, types->items[i], "name");
        t->elem_size = get(types->items[i], "elem_size");
        t->count = get(types->items[i], "count");
    }
    out->pid = (long)get(v, "pid");
    copy_string(out->program, sizeof out->program, v, "program");
    copy_string(out->reason, sizeof out->reason, v, "reason");
    const sj_value *options = sj_get(v, "options");
    if (options != NULL) {
        copy_string(out->signal, sizeof out->signal, options, "stats_signal");
        out->decay_ms = (long)get(options, "arena_decay_ms");
    }
    copy_string(out->timestamp, sizeof out->timestamp, v, "timestamp");
    const sj_value *e = sj_get(v, "elapsed_ms");
    out->elapsed_ms = e && e->type == SJ_NUMBER ? e->number : 0;
    out->time_ms = get(v, "time_ms");
    const sj_value *d = sj_get(v, "detail");
    if (d != NULL && read_detail(d, out, err, errlen) != 0) {
        tool_snapshot_free(out);
        return -1;
    }
    return 0;
}

void tool_snapshot_free(tool_snapshot *s)
{
    for (size_t i = 0; i < s->narenas; i++)
        free(s->arenas[i].pools);
    free(s->arenas);
    s->arenas = NULL;
    s->narenas = 0;
}

/* The whole file, mapped (a long run's samples may be GBs: the page cache
 * holds them, not the heap); NULL with errno set.  An empty file maps
 * nothing: *len is 0 and a dummy non-NULL pointer is returned. */
static const char *map_file(const char *path, size_t *len)
{
    static const char empty[1];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return NULL;
    }
    *len = (size_t)sb.st_size;
    if (*len == 0) {
        close(fd);
        return empty;
    }
    void *p = mmap(NULL, *len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    return p == MAP_FAILED ? NULL : p;
}

static int is_sample(const tool_snapshot *s)
{
    return strcmp(s->reason, "sample") == 0;
}

/* Drop every other sample (the first kept), keeping every other snapshot. */
static size_t thin(tool_snapshot *s, size_t n, size_t *samples)
{
    size_t kept = 0, seen = 0;
    *samples = 0;
    for (size_t i = 0; i < n; i++) {
        if (is_sample(&s[i]) && seen++ % 2 == 1) {
            tool_snapshot_free(&s[i]);
            continue;
        }
        *samples += is_sample(&s[i]);
        s[kept++] = s[i];
    }
    return kept;
}

int tool_snapshots_read(const char *path, int details, size_t max_samples, tool_snapshot **out,
                        size_t *n, size_t *valid_bytes, char *err, size_t errlen)
{
    size_t len = 0;
    if (valid_bytes != NULL)
        *valid_bytes = 0;
    const char *text = map_file(path, &len);
    *out = NULL;
    *n = 0;
    if (text == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    const char *p = text, *limit = text + len;
    size_t cap = 0, line = 1, samples = 0;
    int failed = 0;
    char why[256];
    for (;;) {
        const char *start = sj_skip_space(p, limit);
        for (const char *q = p; q < start; q++)
            line += *q == '\n';
        if (start >= limit)
            break;
        const char *end;
        sj_value *v = sj_parse(start, (size_t)(limit - start), &end, why, sizeof why);
        if (v == NULL) {
            snprintf(err, errlen, "%s: snapshot %zu (from line %zu): %s", path, *n + 1, line, why);
            failed = 1;
            break;
        }
        if (!details && v->type == SJ_OBJECT) { /* drop the detail before reading it */
            for (size_t i = 0; i < v->n; i++)
                if (strcmp(v->keys[i], "detail") == 0)
                    v->keys[i][0] = '\0';
        }
        if (*n == cap) {
            tool_snapshot *more = realloc(*out, (cap = cap ? 2 * cap : 16) * sizeof **out);
            if (more == NULL) {
                sj_free(v);
                snprintf(err, errlen, "%s: out of memory", path);
                failed = 1;
                break;
            }
            *out = more;
        }
        if (tool_snapshot_from_json(v, &(*out)[*n], why, sizeof why) != 0) {
            snprintf(err, errlen, "%s: snapshot %zu (from line %zu): %s", path, *n + 1, line, why);
            sj_free(v);
            failed = 1;
            break;
        }
        (*out)[*n].offset = (size_t)(start - text);
        (*out)[*n].length = (size_t)(end - start);
        samples += is_sample(&(*out)[*n]);
        (*n)++;
        sj_free(v);
        if (max_samples > 0 && samples > max_samples)
            *n = thin(*out, *n, &samples);
        for (const char *q = start; q < end; q++)
            line += *q == '\n';
        p = end;
        if (valid_bytes != NULL)
            *valid_bytes = (size_t)(end - text);
    }
    if (len > 0)
        munmap((void *)text, len);
    if (*n == 0) {
        if (!failed)
            snprintf(err, errlen, "%s: no snapshot in the file", path);
        free(*out);
        *out = NULL;
        return -1;
    }
    return failed; /* 1: the snapshots before the damage are kept */
}

void tool_snapshots_free(tool_snapshot *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        tool_snapshot_free(&s[i]);
    free(s);
}

size_t tool_class_size(const tool_snapshot *s, int cls)
{
    if (cls < 0)
        return 0;
    if ((size_t)cls < s->st.num_classes)
        return s->st.classes[cls].size;
    if ((size_t)cls - s->st.num_classes < s->st.medium.num_classes)
        return s->st.medium.classes[cls - s->st.num_classes].size;
    return 0;
}

size_t tool_capacity(const tool_snapshot *s, int cls)
{
    size_t size = tool_class_size(s, cls);
    return size ? (s->st.pool_size - s->st.pool_overhead) / size : 0;
}
