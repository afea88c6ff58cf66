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
 *   SOMA_GUARD_SAMPLE's pick      a guarded block (guard.c): the gate sends
 *                                 every size to soma__malloc_sized, which
 *                                 counts down; free finds it by its range
 *
 * A pointer is soma's exactly when it lies in an arena of soma's address
 * range (os/region.c), so free/realloc/usable_size accept memory from
 * either side.
 */
#include <stdio.h>

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

/* The pool of p if p lies in one of soma's arenas, else NULL.  p must
 * start a block there (not lie inside one, or in a pool header: the 48
 * bytes CPython's header takes, which soma leaves unused: pool/pool.h);
 * fn(p) stops the program if not. */
static inline pool_t *owned_pool(const void *p, const char *fn)
{
    arena_t *a = soma__region_arena(p);
    if (a == NULL)
        return NULL;
    pool_t *pool = soma__pool_in(a, p);
    if (SOMA_UNLIKELY(!soma__pool_starts_block(pool, p, SOMA_POOL_OVERHEAD) || pool->heap == NULL))
        soma__pool_fatal_not_block(fn, pool, p);
    return pool;
}

/* SOMA_GUARD_SAMPLE's pick: a guarded block, never an explicit heap's (its
 * destroy must release every block); NULL when it cannot be guarded. */
SOMA_ENTRY static __attribute__((noinline)) void *guarded(heap_t *heap, size_t size, int api, size_t align)
{
    return heap->explicit_heap ? NULL : soma__guard_malloc(size, api, align, 0);
}

/* The allocation SOMA_GUARD_SAMPLE picks, guarded; else NULL. */
static inline void *sample_pick(heap_t *heap, size_t size, int api, size_t align)
{
    return SOMA_UNLIKELY(soma__guard_sampled()) ? guarded(heap, size, api, align) : NULL;
}

#if SOMA_MEDIUM_TAIL
/* medium_class's miss: no used pool of class c. */
static __attribute__((noinline)) void *medium_miss(heap_t *heap, unsigned c, size_t size)
{
    void *p = soma__malloc_slow(heap, c);
    /* No head for what is not a pool's block of class c: NULL, a debug
     * block (this call started soma in debug mode), the system's block
     * when no arena can be had. */
    if (p == NULL || SOMA_UNLIKELY(soma__options.debug) || soma__region_arena(p) == NULL)
        return p;
    soma__tail_set(p, size);
    return p;
}
#endif

/* A block of medium class c for a request of size bytes: its head and
 * fence written (pool/tail.h), in a hardened build.  Written before the
 * pop, in the free block the pop hands out (the first of a used pool's
 * list, the owner's alone; neither word meets the link word), so that the
 * pop stays a tail call and this path saves no register. */
static inline __attribute__((always_inline)) void *medium_class(heap_t *heap, unsigned c,
                                                                size_t size)
{
#if SOMA_MEDIUM_TAIL
    pool_t *pool = heap->usedpools[c];
    if (SOMA_UNLIKELY(pool == NULL))
        return medium_miss(heap, c, size);
    void *bp = pool->freeblock;
    soma__tail_set(bp, size);
    return soma__pool_pop_at(heap, pool, bp);
#else
    (void)size;
    return soma__fastpath_malloc_class(heap, c);
#endif
}

/* A medium request before the class table is filled (start-up). */
static __attribute__((noinline, cold)) void *medium_unfilled(heap_t *heap, size_t size)
{
    return medium_class(heap, soma__sizeclass_medium_slow(size), size);
}

/* A medium request: every call a tail call in an unhardened build. */
static inline __attribute__((always_inline)) void *medium(heap_t *heap, size_t size)
{
    unsigned c = soma__sizeclass_medium_lut_get(size);
    return SOMA_LIKELY(c != 0) ? medium_class(heap, c, size) : medium_unfilled(heap, size);
}

/* What the fast paths would do with the gate open (the sampling closed it). */
static inline __attribute__((always_inline)) void *unsampled(heap_t *heap, size_t size)
{
    if (size - 1 < SOMA_SMALL_THRESHOLD)
        return soma__fastpath_malloc_small(heap, size);
    if (size - 1 < SOMA_MEDIUM_MAX)
        return medium(heap, size);
    if (size == 0)
        return soma__fastpath_malloc_small(heap, 1);
    return soma__large_malloc(large_owner(heap), size);
}

static inline int sampling(void)
{
    return soma__options_gate.sample; /* SOMA_GUARD_SAMPLE, not in debug mode (debug.c's own) */
}

/* A malloc whose countdown ran out: guarded if it is SOMA_GUARD_SAMPLE's pick. */
SOMA_ENTRY static __attribute__((noinline)) void *malloc_counted(heap_t *heap, size_t size)
{
    void *p = soma__guard_next() ? guarded(heap, size, SOMA_CALL_MALLOC, 0) : NULL;
    return p != NULL ? p : unsampled(heap, size);
}

/* Above the medium classes, debug mode, size 0. */
SOMA_ENTRY static __attribute__((noinline)) void *malloc_rest(heap_t *heap, size_t size)
{
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

/* Above the threshold, out of line so that the small path stays short.
 * Every call here is a tail call, so that it saves no register: the medium
 * path and SOMA_GUARD_SAMPLE's count run with no prologue (with one, the
 * medium path cost 6 instructions a malloc more). */
SOMA_ENTRY __attribute__((noinline)) void *soma__malloc_sized(heap_t *heap, size_t size)
{
    if (size - 1 < soma__options_gate.medium_limit) /* 513..SOMA_MEDIUM_MAX; 0 wraps around */
        return medium(heap, size);
    /* Every size, while SOMA_GUARD_SAMPLE closes the gate (options.c); it is
     * closed only once soma has started. */
    if (SOMA_UNLIKELY(sampling()))
        return SOMA_UNLIKELY(soma__guard_tick()) ? malloc_counted(heap, size)
                                                 : unsampled(heap, size);
    return malloc_rest(heap, size);
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
        return soma__large_malloc(NULL, soma__sizeclass_usable(c));
    return bp;
}

SOMA_ENTRY static void *calloc_in(heap_t *heap, size_t nmemb, size_t size)
{
    size_t total;
    if (soma__base_mul_overflow(nmemb, size, &total))
        return NULL;
    if (SOMA_UNLIKELY(sampling())) {
        void *p = sample_pick(heap, total, SOMA_CALL_CALLOC, 0); /* fresh pages: zeros */
        if (p != NULL || total > SOMA_MEDIUM_MAX)
            return p != NULL ? p : soma__large_calloc(large_owner(heap), total);
        if ((p = unsampled(heap, total)) != NULL)
            memset(p, 0, total);
        return p;
    }
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

#if SOMA_MEDIUM_TAIL
/* The owner's frees the fast path leaves to soma__malloc_free_owner
 * (soma__pool_fast_starts): a medium block, or a tailed small pool's
 * last.  So that a small free pays no test of the class; a medium one
 * costs a test of the class and a tail call more, little beside the line
 * of the fence its check reads. */

/* A medium block's free: its head and fence checked (pool/tail.h), then
 * pushed.  (A block past the carved ones has no head: a pool's heads of
 * another class are cleared when it changes class, pool.c: forget_heads;
 * soma__tail_fatal_check says it is not allocated.) */
static __attribute__((noinline)) void free_medium(pool_t *pool, void *p, size_t size)
{
    (void)soma__tail_check_n(pool, p, size, "soma_free", 1);
    soma__pool_push(pool->heap, pool, p);
}
/* A tailed small pool's last block: its head and its last 8 bytes (which
 * no block's free reads as its head: a plain pool's blocks all pass the
 * fast path). */
static __attribute__((noinline)) void free_small_last(pool_t *pool, void *p)
{
    soma__tail_small_check_out(pool, p, "soma_free", 1);
    soma__pool_push(pool->heap, pool, p);
}
#endif

/* The rest of soma__malloc_free_other (below), out of line: that one makes
 * only tail calls, and keeps no frame. */
static __attribute__((noinline)) void free_other_rest(pool_t *pool, void *p)
{
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

/* Out of line, so that soma_free's own frame stays empty on the fast path. */
__attribute__((noinline, cold)) void soma__malloc_free_foreign(void *p)
{
    int saved = errno; /* free never changes errno */
    if (SOMA_UNLIKELY(soma__options.debug)) {
        soma__debug_free(p);
    } else if (soma__guard_holds(p)) {
        soma__guard_free(p, SOMA_FN("soma_free", "free"));
    } else {
        not_given_back(p, "soma_free");
        soma__large_free(p);
    }
    errno = saved;
}

/* A free of a block in soma's arenas that the fast path did not take:
 * debug mode (the gate sends every free here), or the pool layer's cases
 * (another thread's block, an explicit heap's, no block). */
void soma__malloc_free_other(pool_t *pool, void *p)
{
    if (SOMA_UNLIKELY(soma__options.debug)) {
        soma__debug_free(p);
        return;
    }
    free_other_rest(pool, p);
}

void soma__malloc_free_owner(pool_t *pool, void *p, uint32_t product)
{
#if SOMA_MEDIUM_TAIL
    /* p starts one of the pool's blocks: the fast path's product, whose
     * origin, 48 outside debug mode, passes no offset in it
     * (soma__pool_starts_block; tests/unit/test_recip), so that debug
     * mode needs no test here. */
    unsigned c = pool->szidx;
    if (SOMA_LIKELY(c < SOMA_NUM_ALL_CLASSES && product <= soma__sizeclass_recip[c].bound)) {
        if (SOMA_LIKELY(c >= SOMA_SMALL_CLASSES))
            free_medium(pool, p, soma__sizeclass_recip[c].size);
        else
            free_small_last(pool, p);
        return;
    }
#else
    (void)product;
#endif
    soma__malloc_free_other(pool, p);
}

void soma_free(void *p)
{
    soma__fastpath_free(p);
}

/* A guarded block's realloc: always a new block, so that the old one's
 * pages become inaccessible. */
static void *guard_realloc(heap_t *heap, void *p, size_t size)
{
    const char *fn = SOMA_FN("soma_realloc", "realloc");
    size_t had;
    if (!soma__guard_live(p, fn, &had))
        return errno = EINVAL, NULL; /* reported */
    void *q = soma__fastpath_malloc(heap, size);
    if (q == NULL)
        return NULL;
    if (soma__guard_holds(q))
        soma__guard_retag(q, SOMA_CALL_REALLOC);
    memcpy(q, p, size < had ? size : had);
    soma__guard_free(p, fn);
    return q;
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
    pool_t *pool = owned_pool(p, "soma_realloc");
    if (pool == NULL) {
        if (soma__guard_holds(p))
            return guard_realloc(heap, p, size);
        not_given_back(p, "soma_realloc");
        return soma__large_realloc(p, size); /* it keeps its owner */
    }
    /* Stay in place when the new size fits and does not waste a quarter or
     * more of the block (CPython's rule: growing always moves; shrinking by
     * 25% or more moves to the smaller class). */
    size_t have = soma__sizeclass_usable(pool->szidx);
    /* A checker's build (os/track.h) asks the checker what the program had;
     * a medium block's head says it in a hardened one. */
    size_t old = SOMA_TRACKING ? soma__track_size(p, have) : have;
#if SOMA_MEDIUM_TAIL
    int tailed = pool->szidx >= SOMA_SMALL_CLASSES;
    if (tailed) {
        /* past the carved blocks: not handed out since the pool took its
         * class (the offsets are the owner's to read; its head, cleared,
         * fails another thread's check) */
        if (pool->heap == heap)
            soma__pool_fatal_if_virgin("soma_realloc", pool, p);
        old = soma__tail_check(pool, p, "soma_realloc");
    }
    else
        soma__tail_small_check_any(pool, pool->szidx, p, "soma_realloc", pool->heap == heap);
#endif
    /* (the same class as the world knows it: a plain small twin's block
     * shrunk to a tailed twin's size stays, with no tail) */
    if (size <= have && (4 * size > 3 * have || soma__sizeclass_public(soma__sizeclass_of(size)) ==
                                                    soma__sizeclass_public(pool->szidx))) {
        soma__track_resize(p, old, size, have);
#if SOMA_MEDIUM_TAIL
        if (tailed)
            soma__tail_set(p, size);
#endif
        return p;
    }
    void *q = soma__fastpath_malloc(heap, size);
    if (q == NULL)
        return NULL; /* p untouched, errno = ENOMEM */
    if (SOMA_UNLIKELY(soma__guard_holds(q))) /* SOMA_GUARD_SAMPLE's pick */
        soma__guard_retag(q, SOMA_CALL_REALLOC);
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
    pool_t *pool = owned_pool(p, "soma_usable_size");
    if (pool == NULL) {
        size_t had;
        if (soma__guard_holds(p)) /* the size asked: the slack past it is checked */
            return soma__guard_live(p, SOMA_FN("soma_usable_size", "malloc_usable_size"), &had)
                       ? had
                       : 0;
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
#if SOMA_MEDIUM_TAIL
    /* What the class holds, the fence moved there (pool/tail.h). */
    if (pool->szidx >= SOMA_SMALL_CLASSES)
        return soma__tail_usable(pool, (void *)p, SOMA_FN("soma_usable_size", "malloc_usable_size"));
#endif
    return soma__sizeclass_usable(pool->szidx); /* a small head stays where it is */
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
    void *p = SOMA_UNLIKELY(sampling())
                  ? sample_pick(soma__heap_tls, size, SOMA_CALL_ALIGNED, alignment)
                  : NULL;
    return p != NULL ? p : soma__large_aligned_alloc(NULL, alignment, size);
}

/* ---- checked copies ---- */

void soma__malloc_copy_call(char *buf, size_t cap, const copy_t *c)
{
    switch (c->args) {
    case SOMA_COPY_SET:
        snprintf(buf, cap, "%s(%p, 0x%02x, %zu)", c->fn, c->dst,
                 (unsigned)(uintptr_t)c->src & 0xff, c->n);
        break;
    case SOMA_COPY_STR:
        snprintf(buf, cap, "%s(%p, %p)", c->fn, c->dst, c->src);
        break;
    default:
        snprintf(buf, cap, "%s(%p, %p, %zu)", c->fn, c->dst, c->src, c->n);
    }
}

/* Normal mode knows a block's bounds, not whether it is free: the bound is
 * a small block's usable size (its class size, less a tailed twin's
 * tail), a medium block's n (its tail: the size
 * asked, or what the class holds once soma_usable_size was asked), a large
 * block's mapping less its tail. */
int soma__malloc_copy_check(const copy_t *c)
{
    if (SOMA_UNLIKELY(soma__options.debug))
        return soma__debug_copy_check(c);
    if (c->len == 0)
        return 1;
    uintptr_t start;
    size_t size;
    const char *kind;
    unsigned cls = 0;
    arena_t *a = soma__region_arena(c->dst);
    if (a != NULL) {
        pool_t *pool = soma__pool_in(a, c->dst);
        void *b;
        /* a pool never carved, or the pool's header or tail: no block */
        if (pool->heap == NULL || pool->arena != a || !soma__pool_holds(pool, c->dst) ||
            (b = soma__pool_block_start(pool, c->dst)) == NULL)
            return 1;
        start = (uintptr_t)b;
        cls = pool->szidx;
        size = soma__sizeclass_usable(cls);
#if SOMA_MEDIUM_TAIL
        /* a medium block's head says what was asked (soma_usable_size) */
        size_t asked;
        if (cls >= SOMA_SMALL_CLASSES &&
            (asked = soma__tail_asked(b, soma__sizeclass_size(cls))) != SIZE_MAX)
            size = asked;
#endif
        kind = pool->heap->explicit_heap ? "in an explicit heap" : "in a thread's heap";
    } else {
        size_t n;
        if (!soma__large_block_of(c->dst, &start, &n, &size)) {
            if (soma__large_sealed(c->dst, &start, &size)) {
                char call[160];
                soma__malloc_copy_call(call, sizeof call, c);
                soma__fatal("%s: write after free: the copy writes into a large block's mapping "
                            "that soma sealed when the block was freed (%p, %zu bytes mapped)",
                            call, (void *)start, size);
            }
            return 1;
        }
        size = soma__large_usable_of(n, size); /* what soma_usable_size says */
        kind = "a large block";
    }
    /* the copy's bytes from the block's start: [lo, hi) */
    uintptr_t lo = (uintptr_t)c->dst - start, hi = 0;
    int wraps = __builtin_add_overflow(lo, c->from, &lo) || __builtin_add_overflow(lo, c->len, &hi);
    if (!wraps && hi <= size)
        return 1;
    if (wraps)
        hi = UINTPTR_MAX;
    char call[160];
    soma__malloc_copy_call(call, sizeof call, c);
    char cl[32] = "";
    if (a != NULL)
        snprintf(cl, sizeof cl, " (size class %u)", soma__sizeclass_public(cls));
    size_t over = (size_t)(hi - size);
    soma__fatal("%s: buffer overflow: the copy runs %zu byte%s past the block\n"
                "  block %p: %zu bytes usable%s, %s; the copy writes B+%zu to B+%zu (B = the "
                "block)",
                call, over, over == 1 ? "" : "s", (void *)start, size, cl, kind, (size_t)lo,
                (size_t)(hi - 1));
}

_Static_assert(SOMA_MEDIUM_MAX <= SOMA_TRACK_MAX_BLOCK, "track.h bisects within a block");
