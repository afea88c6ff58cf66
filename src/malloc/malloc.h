/*
 * malloc.h: the malloc family's layer: what its files share.  malloc.c is
 * the one place that decides who serves a request (a heap's pools, the
 * large blocks, debug mode, the system allocator as a fallback); large.c
 * keeps the blocks above the medium classes; debug.c is debug mode, and
 * leaks.c its call stacks and its leak report at exit.
 */
#ifndef SOMA_MALLOC_H
#define SOMA_MALLOC_H

#include "heap/heap.h"

/* Every function that may stand between a program's allocation call and
 * debug mode's taking of its call stack (the malloc family's entry points
 * in malloc.c and the override, their helpers, debug.c's and leaks.c's
 * allocating calls) lives in this one linker section, so that leaks.c can
 * drop soma's own frames by address, whatever was inlined or became a
 * tail call.  (gcc does not split a function of a named section into hot
 * and cold parts.)  Not in the override: a shared object of its own, all
 * of whose code is soma's (leaks.c takes its bounds), and one that
 * valgrind must read whole (valgrind reads the line and inlining tables
 * of .text alone). */
#ifdef SOMA_OVERRIDE
#define SOMA_ENTRY
#else
#define SOMA_ENTRY __attribute__((section("soma_entry")))
#endif

/* ---- malloc.c ---- */
/* The fast paths' miss (fastpath.h): no used pool of class c in heap. */
SOMA_INTERNAL void *soma__malloc_slow(heap_t *heap, unsigned c);
/* A free the owner's fast path did not take (fastpath.h). */
SOMA_INTERNAL void soma__malloc_free_other(pool_t *pool, void *p);

/* ---- large.c: soma's blocks above the medium classes: mappings of its own,
 * cached when freed; system blocks for the rare small ones; all recorded
 * and counted ---- */
/* owner: the explicit heap the block is asked of (its statistics count
 * it, its destroy releases it), or NULL for a thread's heap. */
SOMA_INTERNAL void *soma__large_malloc(const void *owner, size_t n);
SOMA_INTERNAL void *soma__large_calloc(const void *owner, size_t n); /* n: the product, checked */
SOMA_INTERNAL void *soma__large_aligned_alloc(const void *owner, size_t alignment, size_t n);
SOMA_INTERNAL void *soma__large_realloc(void *p, size_t n); /* p: not in an arena */
SOMA_INTERNAL void soma__large_free(void *p);                /* p: not in an arena */
SOMA_INTERNAL size_t soma__large_usable_size(const void *p);
/* The most the mappings of large blocks in use took at once lately (the
 * cache's window; policy, not a statistic). */
SOMA_INTERNAL size_t soma__large_peak(void);
SOMA_INTERNAL void soma__large_counts(size_t *count, size_t *bytes, size_t *total);
/* The large blocks asked of one explicit heap: how many, their bytes. */
SOMA_INTERNAL void soma__large_owned_counts(const void *owner, size_t *count, size_t *bytes);
/* ... and all of them released (soma_heap_destroy). */
SOMA_INTERNAL void soma__large_release_owned(const void *owner);
/* Cached mappings aged out (all, with SOMA_LARGE_TRIM_ALL) back to the
 * OS; *next_ms is lowered to the next one's expiry, or to retry_ms if
 * SOMA_LARGE_TRIM_TRY found the cache busy.  Returns the bytes given back. */
enum { SOMA_LARGE_TRIM_ALL = 1, SOMA_LARGE_TRIM_TRY = 2 };
SOMA_INTERNAL size_t soma__large_trim(unsigned how, uint64_t retry_ms, uint64_t *next_ms);
/* The mappings and their cache: every field of *m. */
SOMA_INTERNAL void soma__large_map_counts(soma_large_map_stats *m);
/* Is p one of soma's large blocks?  1 and its requested size in *n. */
SOMA_INTERNAL int soma__large_lookup(const void *p, size_t *n);
/* fn(p, n, arg) for every large block, one shard locked at a time (fn must
 * not allocate or free a large block). */
SOMA_INTERNAL void soma__large_foreach(void (*fn)(void *p, size_t n, void *arg), void *arg);
/* The large blocks in batches, for a walk that lets go of every lock
 * between them (stats/visit.c calls the program back in between): up to
 * max blocks into out, each batch copied under its shard's lock, and the
 * place moved past them.  keep, if not NULL, sees each block there, under
 * the lock (the block cannot be freed meanwhile), and may change it or
 * drop it (0).  Returns how many were kept, and 0 only once the walk is
 * over.  Start with a zeroed place.  A block registered all through the
 * walk is returned exactly once, whatever is registered or forgotten, and
 * however the tables grow, between batches. */
typedef struct {
    uintptr_t p;       /* the block */
    size_t n;          /* bytes requested */
    const void *owner; /* the explicit heap it was asked of, or NULL */
} large_block_t;
typedef struct {
    unsigned shard;  /* the shard being walked */
    uintptr_t after; /* its blocks up to this address have been returned */
} large_place_t;
SOMA_INTERNAL size_t soma__large_batch(large_place_t *at, large_block_t *out, size_t max,
                                       int (*keep)(large_block_t *b));

/* ---- debug.c: SOMA_DEBUG, blocks with a header, guards and fill patterns ---- */
/* The call a debug block came from (its header records it). */
enum {
    SOMA_CALL_MALLOC = 1,
    SOMA_CALL_CALLOC,
    SOMA_CALL_REALLOC,
    SOMA_CALL_ALIGNED,
    SOMA_CALL_HEAP_MALLOC,
    SOMA_CALL_HEAP_CALLOC,
    SOMA_CALL_HEAP_REALLOC,
    SOMA_CALL_END
};
/* heap: the heap asked (soma__heap_tls for the malloc family, maybe still
 * &soma__heap_empty); align: 0, or an alignment above 16. */
SOMA_INTERNAL void *soma__debug_malloc(heap_t *heap, size_t n, int call, size_t align);
SOMA_INTERNAL void *soma__debug_calloc(heap_t *heap, size_t nmemb, size_t size, int call);
SOMA_INTERNAL void *soma__debug_realloc(heap_t *heap, void *p, size_t n, int call);
SOMA_INTERNAL void soma__debug_free(void *p);
SOMA_INTERNAL size_t soma__debug_usable_size(const void *p);
SOMA_INTERNAL void soma__debug_heap_destroy(heap_t *heap);
/* A walk over the blocks in use (stats/visit.c), with the debug lock held:
 * what the program has in the block at b, a pool's block of `total` bytes
 * or (large) a registered block of `total` bytes asked: 1, with the
 * pointer it was given and the size it asked for, if it is a live debug
 * block (or a large block that is no debug block: itself); 0 if it is
 * freed (in the quarantine, or released and waiting on a remote stack) or
 * its header is not one. */
SOMA_INTERNAL int soma__debug_visible(void *b, size_t total, int large, void **user, size_t *size);

/* ---- leaks.c: the call stacks of debug blocks, and the leak report ---- */
/* A debug block's stack number (its header): 1.. a stack of the table, or */
#define SOMA_STACK_NONE 0u          /* none taken (SOMA_DEBUG_LEAKS=0, or no frames) */
#define SOMA_STACK_FULL 0xfffffffeu /* taken, but the table was full */
#define SOMA_STACK_OWN 0xffffffffu  /* made by the unwinder while it took a stack */
/* The calling allocation's stack (call: SOMA_CALL_*), soma's frames
 * dropped, into frames (SOMA_LEAKS_DEPTH of them at most): how many, or -1
 * when this thread is taking one already (the allocation is the
 * unwinder's).  Without any lock: it unwinds, and may load the unwinder
 * (which allocates). */
#define SOMA_LEAKS_DEPTH 6
SOMA_INTERNAL int soma__leaks_take(void **frames, unsigned call);
/* The number of that stack (n from soma__leaks_take), kept in the table if
 * it is new.  Debug lock held. */
SOMA_INTERNAL uint32_t soma__leaks_intern(void *const *frames, int n);
/* The leak report at exit: a tally begun (-1 if it cannot be mapped), every
 * live block added, both with the debug lock held; then printed to stderr
 * and thrown away with the lock let go (naming frames takes the loader's
 * lock).  call_name names a block's call. */
SOMA_INTERNAL int soma__leaks_begin(void);
SOMA_INTERNAL void soma__leaks_add(uint32_t stack, unsigned call, size_t size);
SOMA_INTERNAL void soma__leaks_report(const char *(*call_name)(unsigned));
/* The frames of stack number `stack` (known when the tally began), one
 * line each with `indent`, to stderr; nothing for no stack. */
SOMA_INTERNAL void soma__leaks_print_stack(uint32_t stack, const char *indent);

#endif /* SOMA_MALLOC_H */
