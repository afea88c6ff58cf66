/*
 * malloc.c: the public malloc family, for the calling thread's heap and for
 * explicit heaps, and the one place that decides who serves a request:
 *
 *   size 1..512 (small)           the heap's pools, inline (fastpath.h)
 *   513..SOMA_MEDIUM_MAX (medium) the heap's pools too, medium classes
 *   larger, or aligned above 16   large blocks (large.c: the system
 *                                 allocator's, tagged and counted)
 *   debug mode (SOMA_DEBUG)       debug.c, for every call (the gate closes
 *                                 the fast paths and sends them here)
 *   no arena to be had            a large block of the class's size
 *                                 (soma__malloc_slow), unless the heap is
 *                                 an explicit one
 *
 * A pointer is soma's exactly when it lies in an arena of soma's address
 * range (os/region.c), so free/realloc/usable_size accept memory from
 * either side.
 */
#include "base/start.h"
#include "malloc/fastpath.h"

/* Who a large block asked of heap belongs to: the explicit heap itself
 * (its statistics count it, its destroy releases it), or no heap. */
static inline const void *large_owner(const heap_t *heap)
{
    return heap->explicit_heap ? heap : NULL;
}

/* The API a call of heap's came through, for debug blocks. */
static inline int api_of(const heap_t *heap, int thread_api, int heap_api)
{
    return heap->explicit_heap ? heap_api : thread_api;
}

/* The pool of p if p lies in one of soma's arenas, else NULL.  An address
 * inside a pool header (the 48 bytes CPython's header takes, which soma
 * leaves unused: pool/pool.h) is no block. */
static inline pool_t *owned_pool(const void *p)
{
    arena_t *a = soma__region_arena(p);
    if (a == NULL)
        return NULL;
    if (SOMA_UNLIKELY(((uintptr_t)p & SOMA_POOL_MASK) < SOMA_POOL_OVERHEAD))
        soma__fatal("%p: not an allocated block (an address inside a pool header)", p);
    return soma__pool_in(a, p);
}

/* Above the threshold, out of line so that the small path stays short. */
SOMA_ENTRY __attribute__((noinline)) void *soma__malloc_sized(heap_t *heap, size_t size)
{
    if (size - 1 < soma__options_gate.medium_limit) /* 513..SOMA_MEDIUM_MAX; 0 wraps around */
        return soma__fastpath_malloc_class(heap, soma__sizeclass_medium(size));
    /* Before the first large block: debug mode, if set, must be known (a
     * program's constructor may run before soma's). */
    soma__start();
    if (SOMA_UNLIKELY(soma__options.debug)) /* the gate sends every size here */
        return soma__debug_malloc(heap, size, api_of(heap, SOMA_CALL_MALLOC, SOMA_CALL_HEAP_MALLOC),
                                  0);
    if (size == 0)
        return soma__fastpath_malloc_small(heap, 1);
    return soma__large_malloc(large_owner(heap), size);
}

/* The fast path's miss: heap has no used pool of class c. */
SOMA_ENTRY void *soma__malloc_slow(heap_t *heap, unsigned c)
{
    if (SOMA_UNLIKELY(heap == &soma__heap_empty)) {
        /* The thread's first small allocation: give it a heap. */
        heap = soma__heap_acquire();
        if (heap == NULL)
            return NULL;
        /* If this call started soma and SOMA_DEBUG is set, the block must
         * be a debug block like every later one (the gate); the size asked
         * is lost by now: the class's size stands in. */
        if (SOMA_UNLIKELY(soma__options.debug))
            return soma__debug_malloc(heap, soma__sizeclass_size(c), SOMA_CALL_MALLOC, 0);
        pool_t *pool = heap->usedpools[c];
        if (pool != NULL) /* an adopted heap may have one */
            return soma__pool_pop(heap, pool);
    }
    void *bp = soma__pool_malloc_slow(heap, c);
    if (bp == NULL && !heap->explicit_heap)
        /* No new arena (soma's address range is full, or the kernel said
         * no): the system allocator may still have memory.  Its block is
         * foreign to soma, and free and realloc treat it so.  An explicit
         * heap cannot do this: destroying it would not free the block. */
        return soma__large_malloc(NULL, soma__sizeclass_size(c));
    return bp;
}

SOMA_ENTRY static void *calloc_in(heap_t *heap, size_t nmemb, size_t size)
{
    size_t total;
    if (soma__base_mul_overflow(nmemb, size, &total))
        return NULL;
    if (total > SOMA_MEDIUM_MAX) {
        soma__start(); /* before the first large block: is debug mode on? */
        if (!soma__options.debug)
            return soma__large_calloc(large_owner(heap), total); /* fresh pages are zero */
    }
    if (SOMA_UNLIKELY(soma__options.debug))
        return soma__debug_calloc(heap, nmemb, size,
                                  api_of(heap, SOMA_CALL_CALLOC, SOMA_CALL_HEAP_CALLOC));
    void *p = soma__fastpath_malloc(heap, total);
    if (p != NULL)
        memset(p, 0, total);
    return p;
}

SOMA_ENTRY static void *realloc_in(heap_t *heap, void *p, size_t size);

SOMA_ENTRY void *soma_malloc(size_t size)
{
    return soma__fastpath_malloc(soma__heap_tls, size);
}

SOMA_ENTRY void *soma_calloc(size_t nmemb, size_t size)
{
    return calloc_in(soma__heap_tls, nmemb, size);
}

SOMA_ENTRY void *soma_realloc(void *p, size_t size)
{
    return realloc_in(soma__heap_tls, p, size);
}

soma_heap *soma_heap_new(void)
{
    return (soma_heap *)soma__heap_create_explicit();
}

void soma_heap_destroy(soma_heap *heap)
{
    if (heap == NULL)
        return;
    if (SOMA_UNLIKELY(soma__options.debug)) {
        soma__debug_heap_destroy((heap_t *)heap);
    } else {
        soma__large_release_owned(heap);
        soma__heap_destroy((heap_t *)heap);
    }
}

SOMA_ENTRY void *soma_heap_malloc(soma_heap *heap, size_t size)
{
    return soma__fastpath_malloc((heap_t *)heap, size);
}

SOMA_ENTRY void *soma_heap_calloc(soma_heap *heap, size_t nmemb, size_t size)
{
    return calloc_in((heap_t *)heap, nmemb, size);
}

SOMA_ENTRY void *soma_heap_realloc(soma_heap *heap, void *p, size_t size)
{
    return realloc_in((heap_t *)heap, p, size);
}

/* A pointer outside soma's arenas goes to the system allocator, unless it
 * lies in soma's range: then its arena was given back, and glibc would
 * crash on it, or worse. */
static void not_given_back(const void *p, const char *fn)
{
    if (soma__region_holds(p))
        soma__fatal("%s(%p): not an allocated block: it lies in an arena soma has given back (a "
                    "double free, or a pointer kept after its block was freed or its heap "
                    "destroyed)",
                    fn, p);
}

/* Out of line, so that soma_free's own frame stays empty on the fast path. */
__attribute__((noinline, cold)) void soma__malloc_free_foreign(void *p)
{
    int saved = errno; /* free never changes errno */
    if (SOMA_UNLIKELY(soma__options.debug)) {
        soma__debug_free(p);
    } else {
        not_given_back(p, "soma_free");
        soma__large_free(p);
    }
    errno = saved;
}

/* A free of a block in soma's arenas that the owner's fast path did not
 * take: debug mode (the gate sends every free here), or the pool layer's
 * other cases (another thread's block, an explicit heap's, no block). */
void soma__malloc_free_other(pool_t *pool, void *p)
{
    if (SOMA_UNLIKELY(soma__options.debug)) {
        soma__debug_free(p);
        return;
    }
    /* A thread's first call, a free of a block of an exited thread's heap:
     * the thread adopts that heap (heap/heap.c), and the free is its own. */
    heap_t *owner = pool->heap;
    if (SOMA_UNLIKELY(soma__heap_tls == &soma__heap_empty) && owner != NULL &&
        atomic_load_explicit(&owner->orphaned, memory_order_relaxed) && soma__heap_adopt(owner)) {
        soma__fastpath_free_small(pool, p);
        return;
    }
    soma__pool_free_other(pool, p);
}

void soma_free(void *p)
{
    soma__fastpath_free(p);
}

SOMA_ENTRY static void *realloc_in(heap_t *heap, void *p, size_t size)
{
    if (SOMA_UNLIKELY(soma__options.debug))
        return soma__debug_realloc(heap, p, size,
                                   api_of(heap, SOMA_CALL_REALLOC, SOMA_CALL_HEAP_REALLOC));
    if (p == NULL)
        return soma__fastpath_malloc(heap, size);
    if (size == 0) {
        soma_free(p);
        return NULL;
    }
    pool_t *pool = owned_pool(p);
    if (pool == NULL) {
        not_given_back(p, "soma_realloc");
        return soma__large_realloc(p, size); /* it keeps its owner */
    }
    /* Stay in place when the new size fits and does not waste a quarter or
     * more of the block (CPython's rule: growing always moves; shrinking by
     * 25% or more moves to the smaller class). */
    size_t have = soma__sizeclass_size(pool->szidx);
    /* A checker's build (os/track.h) asks the checker what the program had. */
    size_t old = SOMA_TRACKING ? soma__track_size(p, have) : have;
    if (size <= have && (4 * size > 3 * have || soma__sizeclass_of(size) == pool->szidx)) {
        soma__track_resize(p, old, size, have);
        return p;
    }
    void *q = soma__fastpath_malloc(heap, size);
    if (q == NULL)
        return NULL; /* p untouched, errno = ENOMEM */
    memcpy(q, p, size < old ? size : old);
    soma__fastpath_free_small(pool, p);
    return q;
}

size_t soma_usable_size(const void *p)
{
    if (p == NULL)
        return 0;
    if (SOMA_UNLIKELY(soma__options.debug))
        return soma__debug_usable_size(p);
    pool_t *pool = owned_pool(p);
    if (pool == NULL) {
        not_given_back(p, "soma_usable_size");
        return soma__large_usable_size(p);
    }
#if defined(SOMA_TRACK_ASAN)
    /* The program may use all it is told it has. */
    soma__track_alloc((void *)p, soma__sizeclass_size(pool->szidx));
#elif defined(SOMA_TRACK_VALGRIND)
    /* memcheck's own malloc says the size asked; so must soma under it. */
    return soma__track_size(p, soma__sizeclass_size(pool->szidx));
#endif
    return soma__sizeclass_size(pool->szidx);
}

SOMA_ENTRY void *soma_aligned_alloc(size_t alignment, size_t size)
{
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
        errno = EINVAL;
        return NULL;
    }
    if (alignment <= SOMA_ALIGNMENT)
        return soma_malloc(size);
    soma__start();
    if (SOMA_UNLIKELY(soma__options.debug))
        return soma__debug_malloc(soma__heap_tls, size, SOMA_CALL_ALIGNED, alignment);
    return soma__large_aligned_alloc(NULL, alignment, size);
}

_Static_assert(SOMA_MEDIUM_MAX <= SOMA_TRACK_MAX_BLOCK, "track.h bisects within a block");
