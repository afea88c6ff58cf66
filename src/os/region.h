/* region.h: the address range arenas are carved from, and the arena map
 * that answers "is this pointer soma's?" (region.c says why it is safe
 * without a lock). */
#ifndef SOMA_REGION_H
#define SOMA_REGION_H

#include "base/base.h"

typedef struct arena arena_t; /* pool/pool.h; the map only stores pointers */

typedef struct {
    _Atomic size_t size;        /* bytes reserved; 0 until the first arena */
    _Atomic uintptr_t base;     /* arena-aligned */
    _Atomic(arena_t *) *arenas; /* by slot: (address - base) >> SOMA_ARENA_BITS */
} region_t;
extern SOMA_INTERNAL region_t soma__region;

/* The arena holding p, or NULL if p is not in one of soma's arenas: a range
 * check and one table load, no lock.  Inline: it is in every free. */
static inline arena_t *soma__region_arena(const void *p)
{
    size_t size = atomic_load_explicit(&soma__region.size, memory_order_acquire);
    uintptr_t off = (uintptr_t)p - atomic_load_explicit(&soma__region.base, memory_order_relaxed);
    if (off >= size)
        return NULL;
    return atomic_load_explicit(&soma__region.arenas[off >> SOMA_ARENA_BITS], memory_order_acquire);
}
/* Does p lie in soma's reserved range (an arena now, or a slot that held
 * one or will)?  For diagnoses: a pointer there that no arena holds is one
 * soma handed out and took back. */
static inline int soma__region_holds(const void *p)
{
    size_t size = atomic_load_explicit(&soma__region.size, memory_order_acquire);
    return (uintptr_t)p - atomic_load_explicit(&soma__region.base, memory_order_relaxed) < size;
}
/* A fresh arena-sized, arena-aligned mapping recorded as `arena`'s; 0 with
 * errno = ENOMEM when the range is full or the kernel refuses. */
SOMA_INTERNAL uintptr_t soma__region_map(arena_t *arena);
SOMA_INTERNAL void soma__region_unmap(uintptr_t base); /* forget it; pages back to the OS */
/* The same if the region's lock is free at once (1), else nothing (0): for
 * a caller that must never wait (the purge thread). */
SOMA_INTERNAL int soma__region_unmap_try(uintptr_t base);
SOMA_INTERNAL void soma__region_counts(size_t *reserved, size_t *table_bytes);
/* Slots used so far (an upper bound on arenas), and the bases of the used
 * slots that hold no arena now: at most cap of them into out; returns how
 * many there are. */
SOMA_INTERNAL size_t soma__region_slots_used(void);
SOMA_INTERNAL size_t soma__region_reclaimed(uintptr_t *out, size_t cap);

#endif /* SOMA_REGION_H */
