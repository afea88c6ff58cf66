/*
 * snapshot.h: a JSON snapshot (docs/stats.schema.json) read back into a
 * soma_stats and the arena detail, for soma diff, soma map, the timeline
 * and soma run's report.  The keys come from common/stats_fields.h, the same
 * list the writer uses, so the two cannot drift apart.
 */
#ifndef SOMA_TOOL_SNAPSHOT_H
#define SOMA_TOOL_SNAPSHOT_H

#include <stddef.h>

#include "json.h"
#include "soma.h"

typedef struct {
    int cls;       /* the class it serves (or last served); -1: never initialised */
    unsigned used; /* blocks in use; 0: an empty pool */
    int returned;  /* empty, and its pages went back to the OS */
} tool_pool;

typedef struct {
    unsigned long long address;
    unsigned heap;
    int explicit_heap;
    int medium;    /* serves medium classes */
    int reclaimed; /* an empty slot: its arena was given back to the OS */
    unsigned fresh; /* pools never carved, after the carved ones */
    size_t npools;  /* carved pools */
    tool_pool *pools;
} tool_arena;

typedef struct {
    soma_stats st;
    long pid;
    char program[512];
    char reason[16];
    char signal[16]; /* the options' stats_signal, for a dump taken on it */
    long decay_ms;   /* the options' arena_decay_ms */
    size_t offset, length; /* where the value lies in the file it was read from */
    char timestamp[40];
    double elapsed_ms;
    unsigned long long time_ms;
    int has_detail;
    unsigned pools_per_arena;
    size_t dropped; /* arenas the writer had no room for */
    size_t narenas; /* live arenas and reclaimed slots, by address */
    tool_arena *arenas;
} tool_snapshot;

/* One parsed JSON value into *out (freed with tool_snapshot_free).
 * Returns 0, or -1 with a message in err. */
int tool_snapshot_from_json(const sj_value *v, tool_snapshot *out, char *err, size_t errlen);
void tool_snapshot_free(tool_snapshot *s);

/* Every snapshot in a file (a stream of JSON values), in file order, into a
 * malloc'd array (*out, *n; free with tool_snapshots_free).  If details is
 * 0, arena details are skipped.  If max_samples > 0 and the file holds more
 * samples (reason "sample") than that, every other one is dropped as often
 * as needed, so a long run at a short interval stays a few MB; the other
 * snapshots are all kept.  Returns 0; or 1 when a value is damaged (a
 * process killed while writing it): the snapshots before it are kept and
 * err says where; or -1 with a message naming the file, nothing read (an
 * empty file is an error too).  valid_bytes (may be NULL): where the last
 * whole value ends in the file, thinned samples included. */
int tool_snapshots_read(const char *path, int details, size_t max_samples, tool_snapshot **out,
                        size_t *n, size_t *valid_bytes, char *err, size_t errlen);
void tool_snapshots_free(tool_snapshot *s, size_t n);

/* Blocks per pool of a class, from the snapshot's geometry. */
size_t tool_capacity(const tool_snapshot *s, int cls);
/* A class's block size (small and medium numbered on), 0 if out of range. */
size_t tool_class_size(const tool_snapshot *s, int cls);

#endif
