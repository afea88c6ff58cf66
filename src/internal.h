/*
 * internal.h: soma's internal types and the functions the source files share.
 *
 * Glossary (the words are CPython's, see docs/DESIGN.md):
 *   block       the unit handed to the program; one size class, 16-byte aligned.
 *   size class  index c in 0..31 serving blocks of (c+1)*16 bytes (the small
 *               classes, CPython's), or 32.. a medium class (sizeclass.c).
 *   pool        SOMA_POOL_SIZE bytes, pool-aligned: a header, then blocks of one
 *               class.  Found from any of its blocks by masking the address.
 *   arena       SOMA_ARENA_SIZE bytes, an arena-aligned slot of soma's reserved
 *               address range (region.c), cut into pools on demand.  Its
 *               bookkeeping (arena_t) lives outside it.
 *   heap        all the state one allocator instance owns: its used-pool lists,
 *               its arenas and their ordering, its counters, its lock.
 *   OS page     4 KiB; the unit of mmap.  Not the same thing as a pool.
 *
 * Internal functions are prefixed soma__<module>_; prototypes are grouped by
 * the file that defines them.
 */
#ifndef SOMA_INTERNAL_H
#define SOMA_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "config.h"
#include "link.h"
#include "sink.h"
#include "soma.h"

#define SOMA_LIKELY(x) __builtin_expect(!!(x), 1)
#define SOMA_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define SOMA_INTERNAL __attribute__((visibility("hidden")))

/*
 * The gate: the limits the fast paths compare against, read from memory
 * rather than built in, so that debug mode (debug.c) can close those paths
 * without a test of its own there.  Normally small_limit is the small
 * threshold, medium_limit the medium one and min_offset the pool header's
 * size, which are the tests the paths make anyway; in debug mode all are
 * set so that the tests always fail (every size is "not small", every address "inside a
 * header"), and the slow paths, which check soma__debug, take over.  Set
 * once, by soma__init, before any block exists that the change could
 * strand (the one allocation that runs soma__init is made a debug block:
 * heap.c).  Plain fields, not atomics: an atomic load costs an
 * instruction of its own on these paths, where a plain one folds into the
 * compare; they are written at most once, at start-up (load time, by
 * init.c's constructor, in practice before any other thread exists), and
 * only in debug mode.
 */
typedef struct {
    size_t small_limit; /* malloc: size - 1 < small_limit is the fast path */
    size_t medium_limit; /* and size - 1 < medium_limit the medium path */
    size_t min_offset;  /* free: an offset in the pool >= this is the fast path */
} soma__gate_t;
extern SOMA_INTERNAL soma__gate_t soma__gate;
/* 0: off; SOMA_DEBUG_ABORT or SOMA_DEBUG_REPORT (SOMA_DEBUG=1 or =report). */
enum { SOMA_DEBUG_OFF, SOMA_DEBUG_ABORT, SOMA_DEBUG_REPORT };
extern SOMA_INTERNAL int soma__debug;

typedef struct soma__pool pool_t;
typedef struct soma__arena arena_t;
typedef struct soma__heap heap_t;

/*
 * The pool header, at the start of every carved pool (48 bytes, like
 * CPython's).  A pool is in one of three states:
 *   used   1 <= count < capacity; on its heap's usedpools[szidx] list, and
 *          freeblock != NULL (the invariant the malloc fast path relies on:
 *          a pool on a used list always has a block to give).
 *   full   count == capacity; on no list; freeblock == NULL.
 *   empty  count == 0; on its arena's freepools list; szidx still names the
 *          class it last served, so reusing it for that class skips the init.
 *          Or, with a decay, "parked": alone on its class list (heap.c).
 * Blocks not yet handed out since the pool was (re)initialised for its class
 * are "virgin": they lie at [nextoffset, maxnextoffset] and are carved one at
 * a time, so a fresh pool touches only the pages it really uses.
 * Who touches what: only the thread that owns the pool's heap reads or
 * writes freeblock, the list links and the offsets.  `count` is written by
 * the owner and read by statistics walks (relaxed atomics).  `szidx` changes
 * only when an empty pool is put to work, under the heap lock, which walks
 * hold.  `heap` and `arena` never change once the pool is carved: any thread
 * may read them, which is how a free finds the owner.
 */
struct soma__pool {
    void *freeblock;        /* first free block; each free block's first word links the next */
    pool_t *nextpool;       /* used: circular list of the class; empty: next in arena freepools */
    pool_t *prevpool;       /* used: circular list of the class */
    arena_t *arena;         /* the arena this pool was carved from */
    heap_t *heap;           /* the heap that owns the arena (and so this pool) */
    _Atomic uint16_t count; /* blocks in use; written by the owner only (relaxed,
                               never a read-modify-write), read by stats walks */
    uint16_t szidx;         /* size class index; SOMA_NO_CLASS before the first init */
    uint16_t nextoffset;    /* offset of the next virgin block */
    uint16_t maxnextoffset; /* last offset at which a whole block fits */
};

#define SOMA_NO_CLASS 0xffffu
#define SOMA_POOL_OVERHEAD                                                                         \
    ((sizeof(pool_t) + SOMA_ALIGNMENT - 1) & ~(size_t)(SOMA_ALIGNMENT - 1))

/*
 * An arena's bookkeeping, kept outside the arena so that all 64 pools are
 * usable.  On its heap's usable_arenas list (sorted by nfreepools, ascending)
 * while nfreepools > 0; on no usable list while every pool is taken.  Always
 * on its heap's list of all arenas, which the statistics walk.
 */
struct soma__arena {
    uintptr_t address;      /* base of the mapping (arena-aligned) */
    uintptr_t pool_address; /* first never-carved pool; pools below it have headers */
    unsigned nfreepools;    /* empty pools + never-carved pools */
    unsigned ntotalpools;   /* pools that fit: 64 when aligned */
    pool_t *freepools;      /* empty carved pools, LIFO through nextpool */
    arena_t *nextarena;     /* usable_arenas links */
    arena_t *prevarena;
    arena_t *next_all; /* all arenas of the heap; also the slab free list */
    arena_t *prev_all;
    heap_t *heap;
    unsigned kind;           /* SOMA_KIND_*: which of the heap's sets it is in */
    uint64_t empty_since_ms; /* when it last became wholly free (decay) */
};

/* Which arenas serve a class: CPython's figures describe the small ones. */
enum { SOMA_KIND_SMALL, SOMA_KIND_MEDIUM, SOMA_NUM_KINDS };

/*
 * One kind of arenas of a heap (small or medium classes): the arenas that
 * still have a free pool, sorted (arena.c), and all of them, for the walks.
 */
typedef struct {
    arena_t *usable_arenas; /* arenas with a free pool, fullest first */
    /* nfp2lasta[n]: the last arena on usable_arenas with exactly n free pools,
     * or NULL; it makes re-sorting an arena O(1) (CPython's bpo-37029). */
    arena_t *nfp2lasta[SOMA_POOLS_PER_ARENA + 1];
    arena_t *all_arenas;
    /* Slow-path counters (changed only when an arena is mapped or released). */
    size_t arenas_allocated_total;
    size_t arenas_current;
    size_t arenas_highwater;
} arena_set_t;

/*
 * A heap belongs to one thread at a time (thread.c): only the owner touches
 * usedpools and its pools' free lists, without a lock.  `lock` guards what a
 * statistics walk reads from another thread (the arena lists and counters,
 * arena records, a pool's class while it is put to work): the owner takes it
 * on those slow paths, walkers for their walk.  `remote` is the one field
 * every thread writes: blocks of this heap freed by other threads, pushed
 * with a compare-and-swap and taken all at once by the owner.
 */
struct soma__heap {
    /* usedpools[c]: first pool of the circular list of used pools of class c,
     * NULL when there is none.  The head is where malloc takes blocks from. */
    pool_t *usedpools[SOMA_NUM_ALL_CLASSES];
    _Atomic(void *) remote; /* cross-thread frees, linked through their first word */
    int explicit_heap;      /* made by soma_heap_new: never orphaned or adopted */
    int destroyed;          /* debug mode: soma_heap_destroy kept it as a tombstone (debug.c) */
    pthread_mutex_t lock;
    arena_set_t sets[SOMA_NUM_KINDS]; /* by soma__class_kind */
    /* Parked pools (heap.c): parked_ms[c] is when usedpools[c] emptied, valid
     * while that pool is alone on its list with count 0.  Owner only. */
    uint64_t parked_ms[SOMA_NUM_ALL_CLASSES];
    uint64_t swept_ms; /* the last sweep of parked pools */
    /* thread.c, under its heaps_lock */
    heap_t *next_heap; /* every heap ever made (heaps are never freed) */
    heap_t *next_orphan; /* heaps whose thread exited, waiting for a new one */
    int orphaned;
};

/* ---- sizeclass.c: the classes ---- */
extern SOMA_INTERNAL const uint16_t soma__class_sizes[SOMA_NUM_ALL_CLASSES];
extern SOMA_INTERNAL _Atomic uint8_t soma__medium_lut[];
SOMA_INTERNAL unsigned soma__medium_class_slow(size_t n);
SOMA_INTERNAL void soma__sizeclass_init(void);

static inline unsigned soma__size_to_class(size_t n) /* 1 <= n <= threshold */
{
    return (unsigned)((n - 1) >> SOMA_ALIGNMENT_SHIFT);
}
static inline unsigned soma__medium_class(size_t n) /* threshold < n <= SOMA_MEDIUM_MAX */
{
    unsigned c = atomic_load_explicit(&soma__medium_lut[(n - SOMA_SMALL_THRESHOLD - 1) >> 4],
                                      memory_order_relaxed);
    return SOMA_LIKELY(c != 0) ? c : soma__medium_class_slow(n);
}
static inline unsigned soma__class_of(size_t n) /* 1 <= n <= SOMA_MEDIUM_MAX */
{
    return n <= SOMA_SMALL_THRESHOLD ? soma__size_to_class(n) : soma__medium_class(n);
}
static inline size_t soma__class_size(unsigned c)
{
    return soma__class_sizes[c];
}
static inline size_t soma__class_capacity(unsigned c) /* blocks per pool */
{
    return (SOMA_POOL_SIZE - SOMA_POOL_OVERHEAD) / soma__class_size(c);
}
static inline unsigned soma__class_kind(unsigned c)
{
    return c < SOMA_NUM_CLASSES ? SOMA_KIND_SMALL : SOMA_KIND_MEDIUM;
}
static inline pool_t *soma__pool_of(const void *p)
{
    return (pool_t *)((uintptr_t)p & ~(uintptr_t)SOMA_POOL_MASK);
}

/* n * size into *total; 1 with errno = ENOMEM if it overflows (calloc,
 * reallocarray). */
static inline int soma__mul_overflow(size_t n, size_t size, size_t *total)
{
    if (!__builtin_mul_overflow(n, size, total))
        return 0;
    errno = ENOMEM;
    return 1;
}

/* ---- fatal.c: a clear message on stderr, then abort() ---- */
SOMA_INTERNAL _Noreturn void soma__fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- os.c: the only system calls ---- */
SOMA_INTERNAL void *soma__os_map(size_t size);
SOMA_INTERNAL void soma__os_unmap(void *p, size_t size);
SOMA_INTERNAL void *soma__os_reserve(size_t size); /* addresses only; NULL on failure */
SOMA_INTERNAL void *soma__os_map_sparse(size_t size); /* read-write, NORESERVE */
SOMA_INTERNAL int soma__os_commit(void *p, size_t size);
SOMA_INTERNAL void soma__os_decommit(void *p, size_t size);

/* ---- region.c: the address range arenas are carved from ---- */
typedef struct {
    _Atomic size_t size;     /* bytes reserved; 0 until the first arena */
    _Atomic uintptr_t base;  /* arena-aligned */
    _Atomic(arena_t *) *arenas; /* by slot: (address - base) >> SOMA_ARENA_BITS */
} soma_region_t;
extern SOMA_INTERNAL soma_region_t soma__region;

/* The arena holding p, or NULL if p is not in one of soma's arenas: a range
 * check and one table load, no lock (region.c says why it is safe).  Here so
 * that it is inlined into every free. */
static inline arena_t *soma__arena_map_get(const void *p)
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
SOMA_INTERNAL void soma__region_counts(size_t *reserved, size_t *table_bytes);
/* Slots used so far (an upper bound on arenas), and the bases of the used
 * slots that hold no arena now: at most cap of them into out; returns how
 * many there are. */
SOMA_INTERNAL size_t soma__region_slots_used(void);
SOMA_INTERNAL size_t soma__region_reclaimed(uintptr_t *out, size_t cap);

/* ---- arena.c: arenas and the usable-arena ordering (heap lock held) ---- */
SOMA_INTERNAL pool_t *soma__arena_take_pool(heap_t *heap, unsigned kind);
/* emptied_ms: when the pool's last block was freed (soma__now_ms(); 0: now),
 * for the decay of its arena. */
SOMA_INTERNAL void soma__arena_return_pool(heap_t *heap, pool_t *pool, uint64_t emptied_ms);
SOMA_INTERNAL uint64_t soma__now_ms(void); /* a coarse monotonic clock */
SOMA_INTERNAL void soma__arena_trim(heap_t *heap, int all); /* takes the heap lock */
SOMA_INTERNAL void soma__arena_release_all(heap_t *heap);
SOMA_INTERNAL void soma__arena_counts(unsigned kind, size_t *total, size_t *current,
                                      size_t *highwater);

/* ---- thread.c: which heap a thread uses ---- */
/* The calling thread's heap; &soma__empty_heap (no pools, so every malloc
 * takes the slow path, which gives the thread a real heap) until then. */
extern __thread heap_t *soma__tls_heap __attribute__((tls_model("initial-exec")));
extern SOMA_INTERNAL heap_t soma__empty_heap;
SOMA_INTERNAL heap_t *soma__thread_heap_acquire(void);
SOMA_INTERNAL heap_t *soma__thread_heap(void); /* acquires one if needed; NULL on OOM */
SOMA_INTERNAL heap_t *soma__heap_create_explicit(void);
SOMA_INTERNAL void soma__heap_destroy(heap_t *heap); /* unlist + release */
SOMA_INTERNAL void soma__heap_unlist(heap_t *heap);  /* no walk reaches it any more */
SOMA_INTERNAL void soma__heap_release(heap_t *heap); /* its arenas and record go back */
/* Every heap, for statistics: fn(heap, arg) with the heap's lock held (and,
 * if tidy_orphans, orphan heaps' pending frees collected first and their
 * empty arenas released). */
SOMA_INTERNAL void soma__heaps_foreach(void (*fn)(heap_t *, void *), void *arg,
                                       int tidy_orphans);

/* ---- heap.c: pools and blocks of one heap ---- */
SOMA_INTERNAL void *soma__heap_malloc_slow(heap_t *heap, unsigned c);
SOMA_INTERNAL void *soma__pool_refill(heap_t *heap, pool_t *pool, void *bp);
SOMA_INTERNAL void soma__heap_free_slow(heap_t *heap, pool_t *pool, void *p);
SOMA_INTERNAL void soma__heap_collect(heap_t *heap);
SOMA_INTERNAL void soma__heap_unpark(heap_t *heap, int all); /* owner, or holder of an orphan */
SOMA_INTERNAL _Noreturn void soma__fatal_not_allocated(void *p, const pool_t *pool);
SOMA_INTERNAL void soma__free_other(pool_t *pool, void *p);
/* Push p on its owner's remote stack (another thread's block, or any
 * block of an explicit heap): one compare-and-swap, no lock. */
SOMA_INTERNAL void soma__heap_free_remote(heap_t *owner, void *p);

static inline unsigned soma__pool_count(const pool_t *pool)
{
    return atomic_load_explicit(&pool->count, memory_order_relaxed);
}
static inline void soma__pool_set_count(pool_t *pool, unsigned n)
{
    atomic_store_explicit(&pool->count, (uint16_t)n, memory_order_relaxed);
}

/* The fast paths.  Budget: a TLS load, a list head, a pop, a store, one
 * rarely taken branch.  Owner thread only. */
static inline void *soma__pool_pop(heap_t *heap, pool_t *pool)
{
    void *bp = pool->freeblock; /* never NULL on a used pool */
    void *next = soma__link_get(bp);
    soma__pool_set_count(pool, soma__pool_count(pool) + 1);
    pool->freeblock = next;
    /* Cleared only once bp is off the list (a compiler barrier keeps the
     * stores in this order; x86 keeps them so for other observers): a
     * fork that catches this thread here leaves the child a list whose
     * every link is whole. */
    atomic_signal_fence(memory_order_release);
    soma__link_clear(bp);
    /* The end of the list (NULL), or a link out of the pool (a corrupted
     * one: link.h): the refill tells them apart. */
    if (SOMA_UNLIKELY(((uintptr_t)next ^ (uintptr_t)bp) >= SOMA_POOL_SIZE))
        return soma__pool_refill(heap, pool, bp); /* a tail call: no frame on the fast path */
    return bp;
}

static inline void *soma__heap_malloc_class(heap_t *heap, size_t c)
{
    pool_t *pool = heap->usedpools[c];
    if (SOMA_LIKELY(pool != NULL))
        return soma__pool_pop(heap, pool);
    return soma__heap_malloc_slow(heap, (unsigned)c);
}

static inline void *soma__heap_malloc(heap_t *heap, size_t size) /* 1 <= size <= threshold */
{
    return soma__heap_malloc_class(heap, (size - 1) >> SOMA_ALIGNMENT_SHIFT);
}

static inline void soma__heap_free_local(heap_t *heap, pool_t *pool, void *p)
{
    unsigned n = soma__pool_count(pool);
    void *last = pool->freeblock;
    /* One test for the rare cases: the pool is full (it must join its
     * list), the block is its last (it empties), the pool has no block at
     * all (not allocated: a double free), or the block looks free already
     * (a double free, probably: link.h). */
    if (SOMA_UNLIKELY(last == NULL || n <= 1 || soma__link_looks_free(p))) {
        soma__heap_free_slow(heap, pool, p);
        return;
    }
    soma__link_set(p, last);
    pool->freeblock = p;
    soma__pool_set_count(pool, n - 1);
}

/* p lies in one of soma's arenas, pool is soma__pool_of(p).  The common
 * case, a block of the calling thread's heap, is one test; everything else
 * (another thread's block, an address inside a pool header, a pool never
 * handed out) goes to soma__free_other. */
static inline void soma__free_small(pool_t *pool, void *p)
{
#if SOMA_TRACKING
    if (pool->szidx < SOMA_NUM_ALL_CLASSES)
        soma__track_free(p, soma__class_size(pool->szidx));
#endif
    heap_t *owner = pool->heap;
    if (SOMA_LIKELY(owner == soma__tls_heap &&
                    ((uintptr_t)p & SOMA_POOL_MASK) >= soma__gate.min_offset)) {
        soma__heap_free_local(owner, pool, p);
        return;
    }
    soma__free_other(pool, p);
}

/* ---- large.c: soma's blocks from the system allocator, tagged and counted ---- */
SOMA_INTERNAL void *soma__large_malloc(size_t n);
SOMA_INTERNAL void *soma__large_calloc(size_t n); /* n: the product, checked */
SOMA_INTERNAL void *soma__large_aligned_alloc(size_t alignment, size_t n);
SOMA_INTERNAL void *soma__large_realloc(void *p, size_t n); /* p: not in an arena */
SOMA_INTERNAL void soma__large_free(void *p);                /* p: not in an arena */
SOMA_INTERNAL size_t soma__large_usable_size(const void *p);
SOMA_INTERNAL void soma__large_counts(size_t *count, size_t *bytes, size_t *total);
SOMA_INTERNAL void soma__large_fork(int phase);
/* Is p one of soma's large blocks?  1 and its requested size in *n. */
SOMA_INTERNAL int soma__large_lookup(const void *p, size_t *n);
/* fn(p, n, arg) for every large block, one shard locked at a time (fn must
 * not allocate or free a large block). */
SOMA_INTERNAL void soma__large_foreach(void (*fn)(void *p, size_t n, void *arg), void *arg);

/* ---- debug.c: SOMA_DEBUG, blocks with a header, guards and fill patterns ---- */
/* The allocation API a debug block came from (its header records it). */
enum {
    SOMA_API_MALLOC = 1,
    SOMA_API_CALLOC,
    SOMA_API_REALLOC,
    SOMA_API_ALIGNED,
    SOMA_API_HEAP_MALLOC,
    SOMA_API_HEAP_CALLOC,
    SOMA_API_HEAP_REALLOC,
    SOMA_API_END
};
/* heap: the heap asked (soma__tls_heap for the malloc family, maybe still
 * &soma__empty_heap); align: 0, or an alignment above 16. */
SOMA_INTERNAL void *soma__debug_malloc(heap_t *heap, size_t n, int api, size_t align);
SOMA_INTERNAL void *soma__debug_calloc(heap_t *heap, size_t nmemb, size_t size, int api);
SOMA_INTERNAL void *soma__debug_realloc(heap_t *heap, void *p, size_t n, int api);
SOMA_INTERNAL void soma__debug_free(void *p);
SOMA_INTERNAL size_t soma__debug_usable_size(const void *p);
SOMA_INTERNAL void soma__debug_heap_destroy(heap_t *heap);
SOMA_INTERNAL void soma__debug_pool_init(pool_t *pool); /* a pool put to work for a new class */
SOMA_INTERNAL void soma__debug_fork(int phase);
SOMA_INTERNAL void soma__debug_set_quarantine(size_t bytes); /* SOMA_DEBUG_QUARANTINE */
/* In debug mode, hold debug.c's lock (recursive) around work that changes
 * pools outside a debug call (a thread's exit, collecting pending frees),
 * so that soma_debug_check never walks a pool while it changes.  Nothing
 * without debug mode. */
SOMA_INTERNAL void soma__debug_enter(void);
SOMA_INTERNAL void soma__debug_leave(void);

/* ---- sys.c: the system allocator, for what soma does not serve ---- */
SOMA_INTERNAL void *soma__sys_malloc(size_t size);
SOMA_INTERNAL void *soma__sys_calloc(size_t n, size_t size);
SOMA_INTERNAL void *soma__sys_realloc(void *p, size_t size);
SOMA_INTERNAL void soma__sys_free(void *p);
SOMA_INTERNAL size_t soma__sys_usable_size(const void *p);
SOMA_INTERNAL void *soma__sys_aligned_alloc(size_t alignment, size_t size);
#ifdef SOMA_OVERRIDE
#include <malloc.h>
#include <stdio.h>
SOMA_INTERNAL struct mallinfo2 soma__sys_mallinfo2(void);
SOMA_INTERNAL void soma__sys_malloc_stats(void);
SOMA_INTERNAL int soma__sys_malloc_info(int options, FILE *out);
SOMA_INTERNAL int soma__sys_mallopt(int param, int value);
SOMA_INTERNAL int soma__sys_malloc_trim(size_t pad);
#endif

/* ---- stats.c / stats_print.c / stats_json.c / types.c ---- */
SOMA_INTERNAL void soma__types_snapshot(soma_stats *out);

/* What a snapshot saw of one arena (the JSON detail): its pools in address
 * order, cls/used for the `carved` first ones (cls is the class a pool
 * serves, or last served if used == 0: an empty pool); the rest were never
 * carved. */
typedef struct {
    uintptr_t address;
    uint32_t heap; /* the heap's number in this walk (0 = the first heap) */
    uint8_t kind;  /* SOMA_KIND_* */
    uint8_t explicit_heap;
    uint16_t npools;
    uint16_t carved;
    uint16_t cls[SOMA_POOLS_PER_ARENA];
    uint16_t used[SOMA_POOLS_PER_ARENA];
} soma__arena_view;

/* The detail of a snapshot, in memory soma maps for it (never malloc: the
 * sampling thread must not allocate).  Arenas are in walk order (by heap);
 * `reclaimed` are the arena slots that held an arena and hold none now. */
typedef struct {
    soma__arena_view *arenas;
    size_t narenas, cap;
    size_t dropped; /* arenas made during the walk that found no room */
    uint32_t nheaps;
    uintptr_t *reclaimed;
    size_t nreclaimed, reclaimed_cap;
} soma__detail;

/* A snapshot of the process (heap == NULL) or of one explicit heap, and,
 * if d != NULL, its detail (d is mapped here; soma__detail_free it). */
SOMA_INTERNAL void soma__stats_take(soma_stats *st, heap_t *heap, soma__detail *d);
/* A sample: the process's figures, read only.  Unlike a snapshot it
 * collects no pending frees, releases nothing and calls no registered
 * count function (which might allocate, or not expect another thread), so
 * taking it changes nothing and allocates nothing; num_types is 0. */
SOMA_INTERNAL void soma__stats_sample(soma_stats *st);
SOMA_INTERNAL void soma__detail_free(soma__detail *d);
/* The JSON form (stats_json.c) of st and, if d != NULL, its detail; reason
 * is "exit", "signal", "sample" or "request", scope "process", "heap" or
 * "snapshot"; one_line: the whole value on one line (samples).  Flushes;
 * 0 or -1. */
SOMA_INTERNAL int soma__stats_write_json(soma__sink *s, const soma_stats *st,
                                         const soma__detail *d, const char *reason,
                                         const char *scope, int one_line);

/* ---- check.c: every invariant of a heap, for tests (0 or -1 and why) ---- */
SOMA_INTERNAL int soma__heap_check(heap_t *heap, char *why, size_t whylen);
SOMA_INTERNAL int soma__heap_check_locked(heap_t *heap, char *why, size_t whylen);
/* Which carved blocks of a pool are on its free list: bit i of `bits` for
 * the block at index i (bits has SOMA_POOL_BITMAP_WORDS words).  Returns
 * the number of carved blocks (those below the virgin ones), or -1 if the
 * list is corrupted (a link to anything but a carved block, or to one
 * twice).  The pool's owner must not be changing it. */
#define SOMA_POOL_BITMAP_WORDS ((SOMA_POOL_SIZE / SOMA_ALIGNMENT + 63) / 64)
SOMA_INTERNAL long soma__pool_free_map(const pool_t *pool, uint64_t *bits);
/* fn(pool, arg) for every carved pool of the heap that has served a class
 * (the heap's lock held, or the heap still). */
SOMA_INTERNAL void soma__heap_pools(heap_t *heap, void (*fn)(pool_t *, void *), void *arg);


/* ---- options.c ---- */
SOMA_INTERNAL void soma__options_read(void);
SOMA_INTERNAL void soma__options_start(void); /* after start-up: threads the options need */

/* The options in force (options.c reads them, once, before main). */
typedef struct {
    int show_stats;        /* SOMA_SHOW_STATS */
    char stats_file[1024]; /* SOMA_STATS_FILE; "" = stderr */
    int stats_signal;      /* SOMA_STATS_SIGNAL; 0 = none */
    int json;              /* SOMA_STATS_FORMAT=json */
    long interval_ms;      /* SOMA_STATS_INTERVAL_MS; 0 = no sampling */
} soma__options_t;
extern SOMA_INTERNAL soma__options_t soma__opt;

/* ---- report.c: dumps at exit, on a signal, and samples ---- */
SOMA_INTERNAL void soma__report_at_exit(void);
SOMA_INTERNAL int soma__report_parse_signal(const char *name);
SOMA_INTERNAL void soma__report_start(void); /* the thread the signal or sampling needs */
SOMA_INTERNAL void soma__command_line(char *out, size_t len); /* /proc/self/cmdline, one line */
SOMA_INTERNAL void soma__report_fork(int phase);
extern SOMA_INTERNAL long soma__arena_decay_ms; /* SOMA_ARENA_DECAY_MS */

/* ---- init.c: once per process, before the first arena or snapshot ---- */
SOMA_INTERNAL void soma__init(void);
SOMA_INTERNAL double soma__elapsed_ms(void); /* since soma started in this process */

/* fork() safety: every module with a lock takes it before fork and releases
 * it after, in parent and child (phase: SOMA_FORK_PREPARE, _PARENT, _CHILD),
 * so the child never inherits a lock held by a thread that does not exist
 * there.  init.c calls them in lock order. */
enum { SOMA_FORK_PREPARE, SOMA_FORK_PARENT, SOMA_FORK_CHILD };
SOMA_INTERNAL void soma__heaps_fork(int phase);
SOMA_INTERNAL void soma__arena_fork(int phase);
SOMA_INTERNAL void soma__region_fork(int phase);
SOMA_INTERNAL void soma__types_fork(int phase);
SOMA_INTERNAL void soma__stats_print_fork(int phase);
SOMA_INTERNAL void soma__stats_json_fork(int phase);

static inline void soma__fork_lock(pthread_mutex_t *m, int phase)
{
    if (phase == SOMA_FORK_PREPARE)
        pthread_mutex_lock(m);
    else
        pthread_mutex_unlock(m); /* the child's one thread is the one that locked it */
}

#endif /* SOMA_INTERNAL_H */
