/*
 * heap.h: the heap layer (heap.c): heap records, which heap a thread
 * allocates from, orphans and adoption, the walk over every heap, and the
 * lock that holds pools still in debug mode.
 */
#ifndef SOMA_HEAP_H
#define SOMA_HEAP_H

#include "pool/pool.h"

/* The calling thread's heap; &soma__heap_empty (no pools, so every malloc
 * takes the slow path, which gives the thread a real heap) until then. */
extern __thread heap_t *soma__heap_tls __attribute__((tls_model("initial-exec")));
extern SOMA_INTERNAL heap_t soma__heap_empty;
/* The calling thread's heap, made or adopted now (the thread had none);
 * NULL with errno = ENOMEM. */
SOMA_INTERNAL heap_t *soma__heap_acquire(void);
/* The calling thread, which has no heap yet, frees a block of o, an
 * orphan: it adopts o.  1 if it did. */
SOMA_INTERNAL int soma__heap_adopt(heap_t *o);
SOMA_INTERNAL heap_t *soma__heap_current(void); /* acquires one if needed; NULL on OOM */
SOMA_INTERNAL heap_t *soma__heap_create_explicit(void);
SOMA_INTERNAL void soma__heap_destroy(heap_t *heap); /* unlist + release */
SOMA_INTERNAL void soma__heap_unlist(heap_t *heap);  /* no walk reaches it any more */
SOMA_INTERNAL void soma__heap_release(heap_t *heap); /* its arenas and record go back */
/* Every heap, for statistics: fn(heap, arg) with the heap's lock held (and,
 * if tidy_orphans, orphan heaps' pending frees collected first and their
 * empty arenas released, under the debug lock). */
SOMA_INTERNAL void soma__heap_foreach(void (*fn)(heap_t *, void *), void *arg, int tidy_orphans);
/* The same for a caller that must never wait on a lock (the purge thread:
 * runtime/purge.c): heaps_lock and each heap's lock are only tried, a busy
 * heap is left out.  Returns how many were left out, or -1 if all were
 * (heaps_lock busy). */
SOMA_INTERNAL int soma__heap_foreach_try(void (*fn)(heap_t *, void *), void *arg);
/* A walk over every heap that lets go of every lock between its steps, so
 * that the program may be called back in between (stats/visit.c).  Each
 * step calls fn(h, again, arg) with heaps_lock and h's lock held, for h:
 * the heap of the step before if fn asked to stay (returned nonzero) and
 * h is still listed (again = 1), else the next heap (again = 0).  Returns
 * 0, without calling fn, once every heap has been left.  Start with a
 * zeroed place. */
typedef struct {
    heap_t *heap;    /* the heap of the last step */
    uint64_t serial; /* its serial then; 0 before the first step */
    int done;        /* fn asked to move on from it */
} heap_place_t;
SOMA_INTERNAL int soma__heap_step(heap_place_t *at, int (*fn)(heap_t *, int, void *), void *arg);
/* The heap's pending cross-thread frees back to their pools, under the
 * debug lock; for a heap the caller may change (its own, or one whose
 * user it is by contract). */
SOMA_INTERNAL void soma__heap_collect(heap_t *heap);

/* Debug mode's lock, recursive: every debug call holds it (malloc/debug.c),
 * and so does all work that changes pools outside the owner's own calls (a
 * thread's exit, adopting an orphan, a snapshot's collects: this file), so
 * that soma_debug_check never walks a pool while it changes.  Without
 * debug mode both do nothing.  Lock order: before heaps_lock. */
SOMA_INTERNAL void soma__heap_debug_lock(void);
SOMA_INTERNAL void soma__heap_debug_unlock(void);

#endif /* SOMA_HEAP_H */
