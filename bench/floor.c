/*
 * floor.c: the speed limit of soma's design, preloaded like any allocator
 * (build/bench/libsoma-floor.so; bench/run.py runs it on the single-threaded
 * workloads and prints soma's ratio against it).
 *
 * It keeps exactly what soma cannot do without and drops everything else:
 *   malloc  pops a per-class free list (one list per class for the whole
 *           process), else carves the next block of the class's current pool;
 *   free    asks soma's own address map (region.c) whether the pointer is ours (the same
 *           inline lookup, soma__region_arena, and the same pool-header
 *           check), reads the class from the pool's record in the arena's
 *           record, and pushes the block on that class's list.
 * No threads (one thread at a time: the workloads hand over only through
 * pthread_create/join), no per-pool counts, no used-pool lists, no memory
 * ever returned, no statistics.  What soma spends beyond this is the price
 * of those features; the target is to stay within 10% of it.
 *
 * Requests above 512 bytes go to glibc (__libc_*): the floor is the limit
 * of the small-block path only (soma serves 513..8144 bytes itself).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pool/pool.h"

extern void *__libc_malloc(size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

#define EXPORT __attribute__((visibility("default")))

/* By soma's own class index (a hardened build's has twins: base/config.h);
 * the floor uses the plain twin of each class, with no tails. */
static void *freelist[SOMA_SMALL_CLASSES];
static char *carve_at[SOMA_SMALL_CLASSES], *carve_end[SOMA_SMALL_CLASSES];
static char *pool_next, *pool_end; /* pools not yet given to a class */
/* Arena records: the map names one per arena, and each holds the records
 * of its pools.  Never returned, so a fixed number (64 MiB of arenas). */
#define FLOOR_ARENAS 64
static arena_t floor_arenas[FLOOR_ARENAS];
static unsigned floor_narenas;
static arena_t *floor_arena; /* the arena pool_next lies in */

static int new_pool(unsigned c)
{
    if (pool_next == pool_end) {
        if (floor_narenas == FLOOR_ARENAS)
            return -1;
        floor_arena = &floor_arenas[floor_narenas];
        char *a = (char *)soma__region_map(floor_arena);
        if (a == NULL)
            return -1;
        floor_narenas++;
        pool_next = a;
        pool_end = a + SOMA_ARENA_SIZE;
    }
    pool_t *pool = soma__pool_in(floor_arena, pool_next);
    pool->base = pool_next;
    pool_next += SOMA_POOL_SIZE;
    pool->szidx = (uint16_t)c;
    carve_at[c] = pool->base + SOMA_POOL_OVERHEAD;
    carve_end[c] = pool->base + SOMA_POOL_SIZE - soma__sizeclass_size(c);
    return 0;
}

static void *carve(unsigned c)
{
    if (carve_at[c] == NULL || carve_at[c] > carve_end[c])
        if (new_pool(c) != 0) {
            errno = ENOMEM;
            return NULL;
        }
    void *b = carve_at[c];
    carve_at[c] += soma__sizeclass_size(c);
    return b;
}

static inline pool_t *ours(const void *p)
{
    arena_t *a = soma__region_arena(p);
    if (a == NULL)
        return NULL;
    if (SOMA_UNLIKELY(((uintptr_t)p & SOMA_POOL_MASK) < SOMA_POOL_OVERHEAD))
        abort();
    return soma__pool_in(a, p);
}

EXPORT void *malloc(size_t n)
{
    if (SOMA_LIKELY(n - 1 < SOMA_SMALL_THRESHOLD)) {
        unsigned c = (unsigned)((n - 1) >> SOMA_ALIGNMENT_SHIFT) * SOMA_SMALL_TWINS +
                     (SOMA_SMALL_TWINS - 1);
        void *b = freelist[c];
        if (SOMA_LIKELY(b != NULL)) {
            freelist[c] = *(void **)b;
            return b;
        }
        return carve(c);
    }
    return n == 0 ? malloc(1) : __libc_malloc(n);
}

EXPORT void free(void *p)
{
    pool_t *pool = ours(p);
    if (SOMA_LIKELY(pool != NULL)) {
        unsigned c = pool->szidx;
        *(void **)p = freelist[c];
        freelist[c] = p;
        return;
    }
    if (p != NULL)
        __libc_free(p);
}

EXPORT void *calloc(size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = malloc(total);
    if (p != NULL)
        memset(p, 0, total);
    return p;
}

EXPORT void *realloc(void *p, size_t n)
{
    pool_t *pool = ours(p);
    if (pool == NULL)
        return p == NULL ? malloc(n) : __libc_realloc(p, n);
    size_t have = soma__sizeclass_size(pool->szidx);
    if (n <= have && n != 0)
        return p;
    void *q = malloc(n);
    if (q != NULL)
        memcpy(q, p, n < have ? n : have);
    free(p);
    return n == 0 ? (free(q), NULL) : q;
}

EXPORT size_t malloc_usable_size(void *p)
{
    pool_t *pool = ours(p);
    if (pool != NULL)
        return soma__sizeclass_size(pool->szidx);
    size_t (*sys)(void *) = (size_t(*)(void *))dlsym(RTLD_NEXT, "malloc_usable_size");
    return p && sys ? sys(p) : 0;
}

EXPORT void *memalign(size_t align, size_t n)
{
    return align <= SOMA_ALIGNMENT ? malloc(n) : __libc_memalign(align, n);
}

EXPORT void *aligned_alloc(size_t align, size_t n)
{
    return memalign(align, n);
}

EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
    void *p = memalign(align, n);
    if (p == NULL)
        return ENOMEM;
    *out = p;
    return 0;
}
