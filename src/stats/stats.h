/*
 * stats.h: the statistics layer: the walk that takes a snapshot (walk.c)
 * and the registry of the program's object caches (types.c).  The writers
 * of every format are the emitter's (emit.h).
 */
#ifndef SOMA_STATS_H
#define SOMA_STATS_H

#include "base/sink.h"
#include "malloc/malloc.h"

/* ---- types.c ---- */
SOMA_INTERNAL void soma__types_snapshot(soma_stats *out);

/* What a snapshot saw of one arena (the JSON detail): its pools in address
 * order, cls/used for the `carved` first ones (cls is the class a pool
 * serves, or last served if used == 0: an empty pool); the rest were never
 * carved. */
typedef struct {
    uintptr_t address;
    uint32_t heap; /* the heap's number in this walk (0 = the first heap) */
    uint8_t kind;  /* SOMA_KIND_* */
    uint8_t explicit_heap;
    uint16_t npools;
    uint16_t carved;
    uint64_t returned; /* bit i: pool i is empty and its pages went back */
    uint16_t cls[SOMA_POOLS_PER_ARENA];
    uint16_t used[SOMA_POOLS_PER_ARENA];
} arena_view_t;

/* The detail of a snapshot, in memory soma maps for it (never malloc: the
 * sampling thread must not allocate).  Arenas are in walk order (by heap);
 * `reclaimed` are the arena slots that held an arena and hold none now. */
typedef struct {
    arena_view_t *arenas;
    size_t narenas, cap;
    size_t dropped; /* arenas made during the walk that found no room */
    uint32_t nheaps;
    uintptr_t *reclaimed;
    size_t nreclaimed, reclaimed_cap;
} detail_t;

/* A snapshot of the process (heap == NULL) or of one explicit heap, and,
 * if d != NULL, its detail (d is mapped here; soma__walk_detail_free it). */
SOMA_INTERNAL void soma__walk_take(soma_stats *st, heap_t *heap, detail_t *d);
/* A sample: the process's figures, read only.  Unlike a snapshot it
 * collects no pending frees, releases nothing and calls no registered
 * count function (which might allocate, or not expect another thread), so
 * taking it changes nothing and allocates nothing; num_types is 0. */
SOMA_INTERNAL void soma__walk_sample(soma_stats *st);
SOMA_INTERNAL void soma__walk_detail_free(detail_t *d);
#endif /* SOMA_STATS_H */
