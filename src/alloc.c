/*
 * alloc.c: the public malloc family.  Each call decides, once, who serves the
 * request: a small size (1..512 bytes) goes to a heap (heap.c); anything else
 * to the system allocator (sys.c).  A pointer is soma's exactly when the arena
 * map (arena_map.c) knows the arena it lies in, so free/realloc/usable_size
 * accept memory from either side.
 */
#include <errno.h>

#include "internal.h"

/* The pool of p if p is one of soma's blocks, else NULL. */
static inline pool_t *owned_pool(const void *p)
{
    return soma__arena_map_get(p) != NULL ? soma__pool_of(p) : NULL;
}

void *soma_malloc(size_t size)
{
    if (SOMA_LIKELY(size - 1 < SOMA_SMALL_THRESHOLD)) /* 1..512; 0 wraps around */
        return soma__malloc_small(size);
    if (size == 0)
        return soma__malloc_small(1);
    return soma__sys_malloc(size);
}

void *soma_calloc(size_t nmemb, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(nmemb, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    if (total > SOMA_SMALL_THRESHOLD)
        return soma__sys_calloc(1, total); /* the system knows fresh pages are zero */
    void *p = soma_malloc(total);
    if (p != NULL)
        memset(p, 0, total);
    return p;
}

void soma_free(void *p)
{
    if (p == NULL)
        return;
    pool_t *pool = owned_pool(p);
    if (SOMA_LIKELY(pool != NULL)) {
        soma__free_small(pool, p);
        return;
    }
    int saved = errno; /* free never changes errno */
    soma__sys_free(p);
    errno = saved;
}

void *soma_realloc(void *p, size_t size)
{
    if (p == NULL)
        return soma_malloc(size);
    if (size == 0) {
        soma_free(p);
        return NULL;
    }
    pool_t *pool = owned_pool(p);
    if (pool == NULL)
        return soma__sys_realloc(p, size);
    /* Stay in place when the new size fits and does not waste a quarter or
     * more of the block (CPython's rule: growing always moves; shrinking by
     * 25% or more moves to the smaller class). */
    size_t have = soma__class_size(pool->szidx);
    if (size <= have && 4 * size > 3 * have)
        return p;
    void *q = soma_malloc(size);
    if (q == NULL)
        return NULL; /* p untouched, errno = ENOMEM */
    memcpy(q, p, size < have ? size : have);
    soma__free_small(pool, p);
    return q;
}

size_t soma_usable_size(const void *p)
{
    if (p == NULL)
        return 0;
    pool_t *pool = owned_pool(p);
    return pool ? soma__class_size(pool->szidx) : soma__sys_usable_size(p);
}

void *soma_aligned_alloc(size_t alignment, size_t size)
{
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
        errno = EINVAL;
        return NULL;
    }
    if (alignment <= SOMA_ALIGNMENT)
        return soma_malloc(size);
    return soma__sys_aligned_alloc(alignment, size);
}
