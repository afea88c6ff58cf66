/*
 * malloc.h: the malloc family's layer: what its files share.  malloc.c is
 * the one place that decides who serves a request (a heap's pools, the
 * large blocks, debug mode, the system allocator as a fallback); large.c
 * keeps the blocks above the medium classes; debug.c is debug mode, and
 * leaks.c its call stacks and its leak report at exit; guard.c the guarded
 * blocks (SOMA_GUARD_SAMPLE, SOMA_DEBUG=guard).
 */
#ifndef SOMA_MALLOC_H
#define SOMA_MALLOC_H

#include "heap/heap.h"
#include "pool/tail.h"

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
/* A free the fast path did not take (fastpath.h): debug mode, or the pool
 * layer's cases (another thread's block, an explicit heap's, no block). */
SOMA_INTERNAL void soma__malloc_free_other(pool_t *pool, void *p);
/* The same for a block of the calling thread's heap, with tails (the
 * fast path compared the owner): a medium block or a tailed small pool's
 * last, checked out of line; else soma__malloc_free_other.  product: the
 * fast path's soma__pool_start_product(pool, p, the gate's min_offset),
 * whence, outside debug mode, whether p starts a block of the pool's
 * class (soma__pool_starts_block) is one compare more. */
SOMA_INTERNAL void soma__malloc_free_owner(pool_t *pool, void *p, uint32_t product);

/* ---- malloc.c: checked copies (runtime/copy.c interposes the C library's
 * copies; these say whether one may go ahead) ---- */
/* A copy the program asked for: its call as written, for the diagnosis,
 * and the bytes it writes: [dst + from, dst + from + len). */
enum {
    SOMA_COPY_MEM,  /* fn(dst, src, n): memcpy, memmove, mempcpy */
    SOMA_COPY_SET,  /* fn(dst, c, n): memset */
    SOMA_COPY_STR,  /* fn(dst, src): strcpy, stpcpy, strcat */
    SOMA_COPY_STRN, /* fn(dst, src, n): strncpy, strncat */
};
typedef struct {
    const char *fn;  /* the name the program called */
    int args;        /* SOMA_COPY_*: how the call is written */
    const void *dst;
    const void *src; /* memset: (void *)(uintptr_t)c */
    size_t n;        /* the length argument, where there is one */
    size_t from;     /* where the writing starts, from dst (strcat: strlen(dst)) */
    size_t len;      /* bytes written */
} copy_t;
/* Does the copy stay inside the block of soma's that holds dst (if any)?
 * 1: it may go ahead.  One that does not is diagnosed and the program
 * stopped; in debug mode (which also stops a copy into a freed block)
 * SOMA_DEBUG=report returns 0 instead: the copy must not be made. */
SOMA_INTERNAL int soma__malloc_copy_check(const copy_t *c);
/* The quick test, inline in the copies: in normal mode, does [p, p + len)
 * stay inside the pooled block that holds p?  1: it does (the common case
 * of a copy into soma's memory, some 20 instructions); 0: p is in no
 * small block, or debug mode, or the copy may not fit: ask
 * soma__malloc_copy_check.  A pool that never served (its record zero)
 * may answer 1 wrongly: a check missed, never a false alarm. */
static inline int soma__malloc_copy_fits(const void *p, size_t len)
{
    arena_t *a = soma__region_arena(p);
    if (a == NULL || SOMA_UNLIKELY(soma__options.debug))
        return 0;
    unsigned c = soma__pool_in(a, p)->szidx;
    if (c >= SOMA_NUM_ALL_CLASSES)
        return 0;
    /* soma__pool_block_start's arithmetic (pools are pool-aligned): block
     * q of the pool, `into` bytes into it; an offset inside the header
     * wraps x, and q with it, far past the pool */
    uint32_t x = (uint32_t)((uintptr_t)p & SOMA_POOL_MASK) - (uint32_t)SOMA_POOL_OVERHEAD;
    uint64_t q = ((uint64_t)x * soma__sizeclass_recip[c].mul) >> 32;
    size_t size = soma__sizeclass_size(c), into = x - q * size;
    if (SOMA_POOL_OVERHEAD + (q + 1) * size > SOMA_POOL_SIZE)
        return 0;
#if SOMA_MEDIUM_TAIL
    /* a medium block's bound is the size asked, in its head (pool/tail.h);
     * a head that is not the block's (SIZE_MAX) goes to the full check */
    if (c >= SOMA_SMALL_CLASSES) {
        size_t n = soma__tail_asked((const char *)p - into, size);
        return n != SIZE_MAX && into <= n && len <= n - into;
    }
#endif
    size = soma__sizeclass_usable(c); /* a tailed small block's holds 8 less */
    return into <= size && len <= size - into;
}
/* The call as the program wrote it, "memcpy(0x..., 0x..., 40)", into buf. */
SOMA_INTERNAL void soma__malloc_copy_call(char *buf, size_t cap, const copy_t *c);

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
 * cache's window and the one before; policy, not a statistic). */
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
/* Does p lie in a freed large block's mapping that soma keeps: one the
 * cache keeps free for reuse (SOMA_LARGE_CACHED), or one sealed after its
 * free (SOMA_LARGE_SEALED, large.c)?  0 if neither.  A walk under the
 * cache's lock: for diagnoses only. */
enum { SOMA_LARGE_CACHED = 1, SOMA_LARGE_SEALED = 2 };
SOMA_INTERNAL int soma__large_freed(const void *p);
/* Does p lie in a mapping sealed after its block's free (large.c)?  1,
 * with the mapping's start and size.  Under the cache's lock: for
 * diagnoses. */
SOMA_INTERNAL int soma__large_sealed(const void *p, uintptr_t *start, size_t *map);
/* The same without a lock (a pair torn by a seal happening meanwhile may
 * be read): for quick answers and the fault handler. */
SOMA_INTERNAL int soma__large_sealed_quick(uintptr_t p, uintptr_t *start, size_t *map);
/* The mapped large block that holds the byte p: 1, with its start, the
 * bytes asked and its mapping's bytes (what the program may use); 0 if
 * there is none, or p lies more than about 4 MiB into one (large.c says
 * why).  No lock unless a block starts at or below p within that reach;
 * the hot test of the checked copies is soma__large_near. */
SOMA_INTERNAL int soma__large_block_of(const void *p, uintptr_t *start, size_t *n, size_t *map);
/* The last bytes of a mapped large block's mapping that are soma's (its
 * tail, large.c), in a hardened build without a checker, when the block
 * leaves them (n <= map - 8). */
#define SOMA_LARGE_TAIL (SOMA_MEDIUM_TAIL ? sizeof(uint64_t) : 0)
/* A mapped large block's usable size: n bytes asked of a mapping of map,
 * less its tail if it has one (soma_usable_size). */
SOMA_INTERNAL size_t soma__large_usable_of(size_t n, size_t map);
/* The checked copies' quick answer, no lock: may a copy to [p, p + len)
 * go ahead unchecked?  1: p lies in no large block (within the lookup's
 * reach) and no sealed mapping, or (normal mode) the copy lies inside one live mapped large
 * block; 0: it may not fit, or debug mode and p is in one: ask
 * soma__large_block_of. */
SOMA_INTERNAL int soma__large_copy_fits(const void *p, size_t len);
/* What the checked copies read of the mapped large blocks, per window of
 * 4 GiB of addresses below 2^47 (large.c says how it is kept): NULL where
 * no large block has been. */
#define SOMA_LARGE_WINDOW_BITS 32
#define SOMA_LARGE_WINDOWS ((size_t)1 << (47 - SOMA_LARGE_WINDOW_BITS))
#define SOMA_LARGE_MIB_BITS 20
#define SOMA_LARGE_MIBS ((size_t)1 << (SOMA_LARGE_WINDOW_BITS - SOMA_LARGE_MIB_BITS))
typedef struct {
    _Atomic uint16_t blocks[SOMA_LARGE_MIBS]; /* blocks overlapping each MiB */
    /* one bit a 4 KiB page: a block's first page, a block's last page */
    _Atomic uint64_t starts[((size_t)1 << (SOMA_LARGE_WINDOW_BITS - 12)) / 64];
    _Atomic uint64_t ends[((size_t)1 << (SOMA_LARGE_WINDOW_BITS - 12)) / 64];
} large_window_t;
extern SOMA_INTERNAL _Atomic(large_window_t *) soma__large_windows[SOMA_LARGE_WINDOWS];
/* Might p lie in a large block?  0 for any address of a MiB that no
 * mapped large block overlaps: a shift, a compare and two loads. */
static inline int soma__large_near(const void *p)
{
    uintptr_t w = (uintptr_t)p >> SOMA_LARGE_WINDOW_BITS;
    if (w >= SOMA_LARGE_WINDOWS)
        return 0;
    large_window_t *win = atomic_load_explicit(&soma__large_windows[w], memory_order_relaxed);
    return win != NULL &&
           atomic_load_explicit(&win->blocks[((uintptr_t)p >> SOMA_LARGE_MIB_BITS) &
                                             (SOMA_LARGE_MIBS - 1)],
                                memory_order_relaxed) != 0;
}
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
/* A fault at a (guard.c's handler, which "access" describes): 1 when it
 * lies in a large block that debug mode sealed in its quarantine (said
 * so: the program stops with the signal), 2 when SOMA_DEBUG=report goes
 * on past it (the block's pages opened again), 0 when it does not. */
SOMA_INTERNAL int soma__debug_fault(uintptr_t a, const char *access);
/* guard.c's fault handler for SIGSEGV and SIGBUS, installed once (the
 * first call; guard_start's when guarding is on). */
SOMA_INTERNAL void soma__fault_handler_install(void);
/* A checked copy (soma__malloc_copy_check) in debug mode. */
SOMA_INTERNAL int soma__debug_copy_check(const copy_t *c);
/* A walk over the blocks in use (stats/visit.c), with the debug lock held:
 * what the program has in the block at b, a pool's block of `total` bytes
 * or (large) a registered block of `total` bytes asked: 1, with the
 * pointer it was given and the size it asked for, if it is a live debug
 * block (or a large block that is no debug block: itself); 0 if it is
 * freed (in the quarantine, or released and waiting on a remote stack) or
 * its header is not one. */
SOMA_INTERNAL int soma__debug_visible(void *b, size_t total, int large, void **user, size_t *size);
/* A diagnosis in debug mode's form, for guard.c too: started with
 * soma__debug_start_as (PREFIX fn(p): what) or soma__debug_add, written by
 * soma__debug_emit (a stack buffer and write(2) only: a signal handler may
 * use them), then soma__debug_stop, which aborts in debug mode unless
 * SOMA_DEBUG=report. */
typedef struct {
    char buf[2048];
    size_t len;
    uint32_t stack;    /* of the block described (leaks.c), or SOMA_STACK_NONE */
    const void *block; /* the block described, or NULL */
} debug_text_t;
SOMA_INTERNAL void soma__debug_add(debug_text_t *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
SOMA_INTERNAL void soma__debug_start_as(debug_text_t *t, const char *prefix, const char *fn,
                                        const void *p, const char *what);
/* The bytes at p (len of them, the first bad one at `bad`) against the
 * pattern `want`, as offsets from U, a block of n bytes asked. */
SOMA_INTERNAL void soma__debug_diff(debug_text_t *t, const unsigned char *u, size_t n,
                                    const unsigned char *p, size_t len, size_t bad, unsigned want);
/* 1: written; 0: kept for after the check at exit's walk (on the thread
 * that runs it), so that what follows it (call stacks) must wait too. */
SOMA_INTERNAL int soma__debug_emit(debug_text_t *t);
SOMA_INTERNAL void soma__debug_stop(void);
SOMA_INTERNAL const char *soma__debug_api_name(unsigned api);
/* The names a program knows the calls by: the override's are the C library's. */
#ifdef SOMA_OVERRIDE
#define SOMA_FN(lib, libc) libc
#else
#define SOMA_FN(lib, libc) lib
#endif

/* ---- guard.c: guarded blocks (SOMA_GUARD_SAMPLE, SOMA_DEBUG=guard): each
 * on pages of its own against an inaccessible guard area, in one reserved
 * range ---- */
extern SOMA_INTERNAL uintptr_t soma__guard_base;
extern SOMA_INTERNAL size_t soma__guard_size; /* 0 while guarding is off */
static inline int soma__guard_holds(const void *p)
{
    return (uintptr_t)p - soma__guard_base < soma__guard_size;
}
/* Sampling (only while SOMA_GUARD_SAMPLE is on): a countdown per thread.
 * soma__guard_tick counts one allocation: 0 while the countdown runs; 1
 * when it has run out (or not started in this thread), and then
 * soma__guard_next says whether this allocation is the one picked, about
 * one in N, and starts the countdown again.  Split so that the common case
 * makes no call. */
extern __thread long soma__guard_countdown __attribute__((tls_model("initial-exec")));
static inline int soma__guard_tick(void)
{
    long left = soma__guard_countdown - 1;
    if (SOMA_LIKELY(left > 0)) {
        soma__guard_countdown = left;
        return 0;
    }
    return 1;
}
SOMA_INTERNAL int soma__guard_next(void);
static inline int soma__guard_sampled(void)
{
    return soma__guard_tick() && soma__guard_next();
}
/* A guarded block of n bytes (align: 0, or above 16), zeroed, with that
 * API and serial (0: the guarded blocks' own count) in its record; NULL
 * when it cannot be guarded (off, too large, no slot: the caller makes an
 * ordinary one). */
SOMA_INTERNAL void *soma__guard_malloc(size_t n, int api, size_t align, uint64_t serial);
/* p lies in the range (soma__guard_holds).  fn: the call, for a diagnosis. */
SOMA_INTERNAL void soma__guard_free(void *p, const char *fn);
/* 1 and its size asked if p is a live guarded block; else reported, 0. */
SOMA_INTERNAL int soma__guard_live(const void *p, const char *fn, size_t *n);
SOMA_INTERNAL void soma__guard_retag(void *p, int api); /* the API that made it */
/* Every live guarded block's slack checked (soma_debug_check); how many. */
SOMA_INTERNAL size_t soma__guard_check(const char *fn);
/* The guarded blocks' figures (soma_stats.guarded), under the guard lock. */
SOMA_INTERNAL void soma__guard_counts(soma_guarded_stats *g);

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
