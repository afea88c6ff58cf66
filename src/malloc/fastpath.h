/*
 * fastpath.h: soma_malloc's and soma_free's fast paths, whole, inline.
 *
 *   malloc(n), 1 <= n <= 512:  heap = the thread's (a TLS load), pool =
 *       heap->usedpools[(n - 1) >> 3] ((n - 1) >> 4 without small tails:
 *       base/config.h); pop its first free block
 *       (pool/pool.h: soma__pool_pop).  A miss (no used pool) goes to
 *       soma__malloc_slow; a larger size to soma__malloc_sized, both in
 *       malloc.c, which decides who serves the request.
 *   free(p):  the arena map says whether p is soma's (os/region.h: a range
 *       check and a table load); if its pool's owner is the calling
 *       thread's heap and p starts a block, push it back (soma__pool_push),
 *       a tailed small block once its head is checked (pool/tail.h).
 *       With tails, the owner's other frees (a medium block, a tailed
 *       small pool's last block, a pointer that is no block, debug mode)
 *       go to soma__malloc_free_owner; anything else (another thread's
 *       block, an explicit heap's, and every such free without tails) to
 *       soma__malloc_free_other; outside soma's arenas, to
 *       soma__malloc_free_foreign.
 *
 * Both paths take no lock, make no system call and count nothing; their
 * comparisons are against the gate (base/options.h), which is how debug
 * mode closes them at no cost.  Only malloc.c and debug.c include this.
 */
#ifndef SOMA_FASTPATH_H
#define SOMA_FASTPATH_H

#include "malloc/malloc.h"
#include "os/track.h"
#include "pool/tail.h"

/* Above the threshold (malloc.c), out of line so that the small path stays short. */
SOMA_INTERNAL void *soma__malloc_sized(heap_t *heap, size_t size);
/* p outside soma's arenas, not NULL (malloc.c). */
SOMA_INTERNAL void soma__malloc_free_foreign(void *p);

SOMA_ENTRY static inline void *soma__fastpath_malloc_class(heap_t *heap, size_t c)
{
    pool_t *pool = heap->usedpools[c];
    if (SOMA_LIKELY(pool != NULL))
        return soma__pool_pop(heap, pool);
    return soma__malloc_slow(heap, (unsigned)c);
}

SOMA_ENTRY static inline void *soma__fastpath_malloc_small(heap_t *heap, size_t size) /* 1..threshold */
{
    return soma__fastpath_malloc_class(heap, soma__sizeclass_small(size));
}

/* Every allocation is made in a heap: the calling thread's (soma_malloc and
 * friends) or an explicit one (soma_heap_*). */
SOMA_ENTRY static inline void *soma__fastpath_malloc(heap_t *heap, size_t size)
{
#if SOMA_TRACKING
    /* A checker's build (os/track.h): the block's size asked, and no more,
     * becomes the program's. */
    void *p = size - 1 < soma__options_gate.small_limit ? soma__fastpath_malloc_small(heap, size)
                                                        : soma__malloc_sized(heap, size);
    if (p != NULL && soma__region_arena(p) != NULL)
        soma__track_alloc(p, size);
    return p;
#else
    /* 1..512 (0 wraps around); never in debug mode: the gate */
    if (SOMA_LIKELY(size - 1 < soma__options_gate.small_limit))
        return soma__fastpath_malloc_small(heap, size);
    return soma__malloc_sized(heap, size);
#endif
}

/* p lies in one of soma's arenas, pool is its record (soma__pool_of(p)).  The common
 * case, a block of the calling thread's heap, is two tests: the owner, and
 * that p starts one of the pool's blocks (a multiply by the class's
 * reciprocal, both in the record's line: pool/pool.h).  With tails, the
 * owner's other frees (a medium block or a tailed small pool's last, whose
 * checks are out of line; a pointer into a block or a pool header; debug
 * mode) go to soma__malloc_free_owner, which need not ask for the owner
 * again; everything else (another thread's block, an explicit heap's, a
 * pool never handed out) to soma__malloc_free_other, which says which. */
static inline __attribute__((always_inline)) void soma__fastpath_free_small(pool_t *pool, void *p)
{
#if SOMA_TRACKING
    if (pool->szidx < SOMA_NUM_ALL_CLASSES)
        soma__track_free(p, soma__sizeclass_size(pool->szidx));
#endif
    heap_t *owner = pool->heap;
#if SOMA_HARDEN
    uint32_t product = soma__pool_start_product(pool, p, (uint32_t)soma__options_gate.min_offset);
    int starts = product < pool->recip_fast;
#else
    uint32_t product = 0; /* (unused without tails) */
    /* Unhardened (link.h): the pool header alone is excluded here, and a
     * pointer into a block is pushed as if it started one. */
    int starts = ((uintptr_t)p & SOMA_POOL_MASK) >= soma__options_gate.min_offset;
#endif
    if (SOMA_LIKELY(owner == soma__heap_tls && starts)) {
#if SOMA_MEDIUM_TAIL
        /* A small block (a medium pool's never passes `starts` here:
         * soma__pool_fast_starts), whose twin's head, if it has one, is
         * checked without a branch (pool/tail.h); the class is a byte of
         * the line read above. */
        soma__tail_small_check_any(pool, pool->szidx, p, "soma_free", 1);
#endif
        soma__pool_push(owner, pool, p);
        return;
    }
#if SOMA_MEDIUM_TAIL
    /* (the owner tested again, off the fast path: not before `starts`,
     * which would cost the fast path an instruction) */
    if (owner == soma__heap_tls) {
        soma__malloc_free_owner(pool, p, product);
        return;
    }
#endif
    (void)product;
    soma__malloc_free_other(pool, p);
}

static inline void soma__fastpath_free(void *p)
{
    /* A "NULL if not ours" pool lookup would cost a second branch here
     * (the compiler cannot know a pool address is never NULL), and
     * free_other checks for a pool-header address itself, off this path. */
    arena_t *a = soma__region_arena(p);
    if (SOMA_LIKELY(a != NULL)) {
        soma__fastpath_free_small(soma__pool_in(a, p), p);
        return;
    }
    if (p != NULL)
        soma__malloc_free_foreign(p);
}

#endif /* SOMA_FASTPATH_H */
