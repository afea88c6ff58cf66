/*
 * alloc.c: the public malloc family, for the calling thread's heap and for
 * explicit heaps.  Each call decides, once, who serves the request: a small
 * size (1..512 bytes) or a medium one (513..SOMA_MEDIUM_MAX, 8160 bytes by
 * default) goes to the heap (heap.c); anything larger to the system
 * allocator (sys.c).  A pointer is soma's exactly when it lies in an arena
 * of soma's address range (region.c), so free/realloc/usable_size
 * accept memory from either side.
 */
#include <errno.h>

#include "internal.h"

soma__gate_t soma__gate = {SOMA_SMALL_THRESHOLD, SOMA_MEDIUM_MAX, SOMA_POOL_OVERHEAD};
int soma__debug;

/* The API a call of heap's came through, for debug blocks. */
static inline int api_of(const heap_t *heap, int thread_api, int heap_api)
{
    return heap->explicit_heap ? heap_api : thread_api;
}

/* The pool of p if p lies in one of soma's arenas, else NULL.  An address
 * inside a pool header is no block: taking it would hand the header out. */
static inline pool_t *block_pool(const void *p) /* p lies in one of soma's arenas */
{
    if (SOMA_UNLIKELY(((uintptr_t)p & SOMA_POOL_MASK) < SOMA_POOL_OVERHEAD))
        soma__fatal("%p: not an allocated block (an address inside a pool header)", p);
    return soma__pool_of(p);
}

static inline pool_t *owned_pool(const void *p)
{
    return soma__arena_map_get(p) != NULL ? block_pool(p) : NULL;
}

/* Above the threshold, out of line so that the small path stays short. */
__attribute__((noinline)) static void *malloc_medium_or_sys(heap_t *heap, size_t size)
{
    if (size - 1 < soma__gate.medium_limit) /* 513..SOMA_MEDIUM_MAX; 0 wraps around */
        return soma__heap_malloc_class(heap, soma__medium_class(size));
    /* Before the first large block: debug mode, if set, must be known (a
     * program's constructor may run before soma's). */
    soma__init();
    if (SOMA_UNLIKELY(soma__debug)) /* the gate sends every size here (internal.h) */
        return soma__debug_malloc(heap, size, api_of(heap, SOMA_API_MALLOC, SOMA_API_HEAP_MALLOC),
                                  0);
    if (size == 0)
        return soma__heap_malloc(heap, 1);
    return soma__large_malloc(size);
}

/* Every allocation is made in a heap: the calling thread's (soma_malloc and
 * friends) or an explicit one (soma_heap_*). */
static inline void *malloc_in(heap_t *heap, size_t size)
{
#if SOMA_TRACKING
    /* A checker's build (track.h): the block's size asked, and no more,
     * becomes the program's. */
    void *p = size - 1 < soma__gate.small_limit ? soma__heap_malloc(heap, size)
                                                 : malloc_medium_or_sys(heap, size);
    if (p != NULL && soma__arena_map_get(p) != NULL)
        soma__track_alloc(p, size);
    return p;
#else
    /* 1..512 (0 wraps around); never in debug mode: the gate */
    if (SOMA_LIKELY(size - 1 < soma__gate.small_limit))
        return soma__heap_malloc(heap, size);
    return malloc_medium_or_sys(heap, size);
#endif
}

static void *calloc_in(heap_t *heap, size_t nmemb, size_t size)
{
    size_t total;
    if (soma__mul_overflow(nmemb, size, &total))
        return NULL;
    if (total > SOMA_MEDIUM_MAX) {
        soma__init(); /* before the first large block: is debug mode on? */
        if (!soma__debug)
            return soma__large_calloc(total); /* the system knows fresh pages are zero */
    }
    if (SOMA_UNLIKELY(soma__debug))
        return soma__debug_calloc(heap, nmemb, size,
                                  api_of(heap, SOMA_API_CALLOC, SOMA_API_HEAP_CALLOC));
    void *p = malloc_in(heap, total);
    if (p != NULL)
        memset(p, 0, total);
    return p;
}

static void *realloc_in(heap_t *heap, void *p, size_t size);

void *soma_malloc(size_t size)
{
    return malloc_in(soma__tls_heap, size);
}

void *soma_calloc(size_t nmemb, size_t size)
{
    return calloc_in(soma__tls_heap, nmemb, size);
}

void *soma_realloc(void *p, size_t size)
{
    return realloc_in(soma__tls_heap, p, size);
}

soma_heap *soma_heap_new(void)
{
    return (soma_heap *)soma__heap_create_explicit();
}

void soma_heap_destroy(soma_heap *heap)
{
    if (heap == NULL)
        return;
    if (SOMA_UNLIKELY(soma__debug))
        soma__debug_heap_destroy((heap_t *)heap);
    else
        soma__heap_destroy((heap_t *)heap);
}

void *soma_heap_malloc(soma_heap *heap, size_t size)
{
    return malloc_in((heap_t *)heap, size);
}

void *soma_heap_calloc(soma_heap *heap, size_t nmemb, size_t size)
{
    return calloc_in((heap_t *)heap, nmemb, size);
}

void *soma_heap_realloc(soma_heap *heap, void *p, size_t size)
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
__attribute__((noinline, cold)) static void free_foreign(void *p)
{
    int saved = errno; /* free never changes errno */
    if (SOMA_UNLIKELY(soma__debug)) {
        soma__debug_free(p);
    } else {
        not_given_back(p, "soma_free");
        soma__large_free(p);
    }
    errno = saved;
}

void soma_free(void *p)
{
    /* owned_pool's own "NULL if not ours" test would cost a second branch
     * here (the compiler cannot know a pool address is never NULL), and
     * free_small checks for a pool-header address itself, off its fast path. */
    if (SOMA_LIKELY(soma__arena_map_get(p) != NULL)) {
        soma__free_small(soma__pool_of(p), p);
        return;
    }
    if (p != NULL)
        free_foreign(p);
}

static void *realloc_in(heap_t *heap, void *p, size_t size)
{
    if (SOMA_UNLIKELY(soma__debug))
        return soma__debug_realloc(heap, p, size,
                                   api_of(heap, SOMA_API_REALLOC, SOMA_API_HEAP_REALLOC));
    if (p == NULL)
        return malloc_in(heap, size);
    if (size == 0) {
        soma_free(p);
        return NULL;
    }
    pool_t *pool = owned_pool(p);
    if (pool == NULL) {
        not_given_back(p, "soma_realloc");
        return soma__large_realloc(p, size);
    }
    /* Stay in place when the new size fits and does not waste a quarter or
     * more of the block (CPython's rule: growing always moves; shrinking by
     * 25% or more moves to the smaller class). */
    size_t have = soma__class_size(pool->szidx);
    /* A checker's build (track.h) asks the checker what the program had. */
    size_t old = SOMA_TRACKING ? soma__track_size(p, have) : have;
    if (size <= have && (4 * size > 3 * have || soma__class_of(size) == pool->szidx)) {
        soma__track_resize(p, old, size, have);
        return p;
    }
    void *q = malloc_in(heap, size);
    if (q == NULL)
        return NULL; /* p untouched, errno = ENOMEM */
    memcpy(q, p, size < old ? size : old);
    soma__free_small(pool, p);
    return q;
}

size_t soma_usable_size(const void *p)
{
    if (p == NULL)
        return 0;
    if (SOMA_UNLIKELY(soma__debug))
        return soma__debug_usable_size(p);
    pool_t *pool = owned_pool(p);
    if (pool == NULL) {
        not_given_back(p, "soma_usable_size");
        return soma__large_usable_size(p);
    }
#if defined(SOMA_TRACK_ASAN)
    /* The program may use all it is told it has. */
    soma__track_alloc((void *)p, soma__class_size(pool->szidx));
#elif defined(SOMA_TRACK_VALGRIND)
    /* memcheck's own malloc says the size asked; so must soma under it. */
    return soma__track_size(p, soma__class_size(pool->szidx));
#endif
    return soma__class_size(pool->szidx);
}

void *soma_aligned_alloc(size_t alignment, size_t size)
{
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
        errno = EINVAL;
        return NULL;
    }
    if (alignment <= SOMA_ALIGNMENT)
        return soma_malloc(size);
    soma__init();
    if (SOMA_UNLIKELY(soma__debug))
        return soma__debug_malloc(soma__tls_heap, size, SOMA_API_ALIGNED, alignment);
    return soma__large_aligned_alloc(alignment, size);
}

_Static_assert(SOMA_MEDIUM_MAX <= SOMA_TRACK_MAX_BLOCK, "track.h bisects within a block");
