/*
 * pool.h: the pool layer: pools, arenas and the heap record that holds
 * them.  pool.c hands blocks out of a heap's pools and takes them back,
 * arena.c gives pools to heaps and arenas back to the OS, check.c checks
 * every invariant written here.  Which thread owns a heap, and when heaps
 * are made and unmade, is the heap layer's (heap/heap.c).
 */
#ifndef SOMA_POOL_H
#define SOMA_POOL_H

#include "base/options.h"
#include "os/region.h"
#include "pool/link.h"
#include "pool/sizeclass.h"

typedef struct pool pool_t;
typedef struct heap heap_t;

/*
 * A pool's record.  The 16 KiB pool holds only blocks; its record lives in
 * its arena's record (arena_t.pools, indexed by the pool's place in the
 * arena), so that the records of an arena's 64 pools are contiguous.  Were
 * they at the start of each pool (CPython's layout), every record would sit
 * at a 16 KiB-aligned address, all in the same L1 set, and a free into a
 * random pool would miss on a line the block does not share; here a free
 * finds the record from the arena the arena map already gave it.  The first
 * SOMA_POOL_OVERHEAD (48) bytes of each pool, where CPython keeps its
 * header, stay unused: every class holds as many blocks per pool as
 * CPython's, and the dump's figures stay CPython's.
 *
 * A pool is in one of these states:
 *   used   1 <= count < capacity; on its heap's usedpools[szidx] list, and
 *          it has a free block (soma__pool_has_free).
 *   full   count == capacity; freeblock is the list's end (link.h:
 *          soma__link_end, not NULL).  Still on its class list
 *          ("listed") until malloc, looking for a pool with a free block,
 *          finds it full; then off it, with SOMA_POOL_UNLISTED set in
 *          `count`.  The head of a class list always has a free block (the
 *          invariant the malloc fast path relies on); the pools behind it
 *          may be full.  Why lazily: under random-order frees most full
 *          pools get a block back before malloc comes round to them, and
 *          such a free is then a plain push; relinking the pool at once
 *          made a fifth of all frees take the slow path (a cachegrind run
 *          of 1M random-order free/malloc pairs over 10,000 blocks of
 *          8..512 bytes: 219,000 slow frees).
 *   empty  count == 0; on its arena's freepools list; szidx still names the
 *          class it last served, so reusing it for that class skips the init.
 *          Or, with a decay, "parked": alone on its class list (pool.c).
 *          Or "returned": empty for the decay time, its pages given back to
 *          the OS (arena.c: purge_pools), on its arena's returned list; its
 *          memory reads as zeros, so putting it to work sets it up afresh.
 * Blocks not yet handed out since the pool was (re)initialised for its class
 * are "virgin": they lie at [nextoffset, soma__pool_max_offset] and are carved one at
 * a time, so a fresh pool touches only the pages it really uses.
 * Who touches what: only the thread that owns the pool's heap reads or
 * writes freeblock, the list links and the offsets.  `count` is written by
 * the owner and read by statistics walks (relaxed atomics).  `szidx` changes
 * only when an empty pool is put to work, under the heap lock, which walks
 * hold; `emptied_ms` and `returned` belong to the arena's lists and change
 * under the heap lock too (a pool on them has no block: no owner's path
 * touches it without the lock).  `base`, `heap` and `arena` never change once the pool is carved:
 * any thread may read them, which is how a free finds the owner.
 */
struct pool {
    void *freeblock;        /* first free block (soma__link_end(base): none); each free
                               block's first word links the next (link.h) */
    pool_t *nextpool;       /* used: circular list of the class; empty: next in arena freepools */
    pool_t *prevpool;       /* used: circular list of the class */
    arena_t *arena;         /* the arena this pool was carved from */
    heap_t *heap;           /* the heap that owns the arena (and so this pool) */
    char *base;             /* the pool's memory (pool-aligned); blocks from base + 48 */
    _Atomic uint16_t count; /* blocks in use, | SOMA_POOL_UNLISTED; written by the owner
                               only (relaxed, never a read-modify-write), read by
                               stats walks (soma__pool_count masks the flag) */
    uint8_t szidx;          /* size class index; SOMA_NO_CLASS before the first init */
    uint8_t returned;       /* empty, and its pages given back: on the returned list */
    uint16_t nextoffset;    /* offset of the next virgin block (the last offset at
                               which a whole block fits is the class's:
                               soma__pool_max_offset) */
    /* Its class's reciprocal (sizeclass.h: soma__sizeclass_recip), here
     * because the free fast path's test that a pointer starts a block
     * (soma__pool_fast_starts) then reads nothing but this line, which it
     * reads anyway for `heap`.  recip_fast is the class's bound + 1, or 0
     * where the fast path must let no block through: a medium pool of a
     * build with medium tails, whose free checks them out of line; or the
     * bound, where it must let the pool's last block alone through: a
     * tailed small pool's, whose last 8 bytes its free checks out of line
     * (pool/tail.h).  Set with szidx (soma__pool_set_class). */
    uint16_t recip_fast;
    uint32_t recip_mul;
    uint32_t emptied_ms; /* empty: when it went back to its arena (the low 32 bits
                            of soma__process_now_ms; ages are differences) */
} __attribute__((aligned(64))); /* a line each: no record straddles two */

#define SOMA_NO_CLASS 0xffu
/* In `count`: the pool is full and off its class list.  Above any count (a
 * pool holds at most 1,021 blocks), so the free fast path tests "empty
 * soon, or unlisted" with one comparison (soma__pool_push). */
#define SOMA_POOL_UNLISTED 0x8000u
_Static_assert(sizeof(pool_t) == 64, "a pool record is one cache line");

/*
 * An arena's bookkeeping, kept outside the arena so that all 64 pools are
 * usable, with the records of its pools.  On its heap's usable_arenas list (sorted by nfreepools, ascending)
 * while nfreepools > 0; on no usable list while every pool is taken.  Always
 * on its heap's list of all arenas, which the statistics walk.
 */
struct arena {
    /* pools[i]: the record of the pool at address + i * SOMA_POOL_SIZE;
     * those below pool_address are carved, the others all zero.  First, so
     * that a free finds a record with a shift, a mask and an add. */
    pool_t pools[SOMA_POOLS_PER_ARENA];
    uintptr_t address;      /* base of the mapping (arena-aligned) */
    uintptr_t pool_address; /* first never-carved pool; pools below it have headers */
    unsigned nfreepools;    /* empty pools + never-carved pools */
    unsigned ntotalpools;   /* pools that fit: 64 when aligned */
    pool_t *freepools;      /* empty carved pools still resident, LIFO through nextpool */
    pool_t *returned;       /* empty carved pools whose pages went back (purge_pools) */
    arena_t *nextarena;     /* usable_arenas links */
    arena_t *prevarena;
    arena_t *next_all; /* all arenas of the heap */
    arena_t *prev_all;
    heap_t *heap;
    unsigned kind;           /* SOMA_KIND_*: which of the heap's sets it is in */
    uint64_t empty_since_ms; /* when it last became wholly free (decay) */
    /* Its place in its set's order of making: the set's
     * arenas_allocated_total once it was counted (1, 2, ...), so that
     * all_arenas, newest first, is in decreasing serials.  A walk that
     * lets go of the heap lock between steps finds its place again by it
     * (stats/visit.c). */
    size_t serial;
};

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
    /* Slow-path counters (changed only when an arena is mapped or released,
     * or pools' pages are given back). */
    size_t pools_returned_total; /* pools whose pages went back, ever */
    size_t arenas_allocated_total;
    size_t arenas_current;
    size_t arenas_highwater;
} arena_set_t;

/*
 * A heap belongs to one thread at a time (heap/heap.c): only the owner touches
 * usedpools and its pools' free lists, without a lock.  `lock` guards what a
 * statistics walk reads from another thread (the arena lists and counters,
 * arena records, a pool's class while it is put to work): the owner takes it
 * on those slow paths, walkers for their walk.  `remote` is the one field
 * every thread writes: blocks of this heap freed by other threads, pushed
 * with a compare-and-swap and taken all at once by the owner.
 */
struct heap {
    /* usedpools[c]: first pool of the circular list of used pools of class c,
     * NULL when there is none.  The head is where malloc takes blocks from. */
    pool_t *usedpools[SOMA_NUM_ALL_CLASSES];
    _Atomic(void *) remote; /* cross-thread frees, linked through their first word */
    int explicit_heap;      /* made by soma_heap_new: never orphaned or adopted */
    int destroyed;          /* debug mode: soma_heap_destroy kept it as a tombstone (malloc/debug.c) */
    pthread_mutex_t lock;
    arena_set_t sets[SOMA_NUM_KINDS]; /* by soma__sizeclass_kind */
    /* Parked pools (pool.c): parked_ms[c] is when usedpools[c] emptied, valid
     * while that pool is alone on its list with count 0.  Owner only. */
    uint64_t parked_ms[SOMA_NUM_ALL_CLASSES];
    /* parked_mark[c]: 1 if class c parked a pool since the last walk
     * that found it not parked (set where a pool parks, the one way into
     * that state; a pool handed blocks again keeps its mark until
     * soma__pool_unpark's next walk clears it; a forked child's orphans
     * have every mark set: soma__pool_mark_parked_all).  Every parked
     * pool's class is marked, so the walk visits those alone, eight
     * marks a load: a thread's exit walked every class (93 with the
     * twins), two fifths of soma's instructions in mleak.  A byte, not a
     * bit: one store at a park, which is frequent.  Owner only. */
    uint8_t parked_mark[(SOMA_NUM_ALL_CLASSES + 7) / 8 * 8];
    uint64_t swept_ms; /* the last sweep of parked pools */
    /* Bytes of pools made resident (carved, or taken back from the
     * returned) since the large cache last gave back as much: counted by
     * soma__arena_take_pool, settled by soma__pool_malloc_slow.  Heap lock. */
    size_t grown;
    /* heap/heap.c's, under its heaps_lock */
    heap_t *next_heap; /* every heap ever made (heaps are never freed) */
    uint64_t serial;   /* when it was listed (1, 2, ...; the list is newest
                          first), 0 once unlisted: soma__heap_step's place */
    heap_t *next_orphan; /* heaps whose thread exited, waiting for a new one */
    _Atomic int orphaned; /* written under heaps_lock; read without it by frees */
    /* malloc/large.c's: the large blocks asked of this explicit heap and
     * still registered, and their bytes asked; changed under the registry
     * shard's lock of each block, read by statistics and destroy. */
    _Atomic size_t large_blocks, large_bytes;
};

/* The record of the pool that holds p, p in arena a (soma__region_arena).
 * Arenas are arena-aligned (os/region.c), so the pool's place in its arena
 * is a few bits of its address. */
static inline pool_t *soma__pool_in(arena_t *a, const void *p)
{
    _Static_assert(sizeof(pool_t) == 64 && offsetof(arena_t, pools) == 0, "pool records");
    /* &a->pools[(p >> POOL_BITS) % 64], as (p >> (POOL_BITS - 6)) & (63 << 6) */
    return (pool_t *)((char *)a + (((uintptr_t)p >> (SOMA_POOL_BITS - 6)) &
                                   ((SOMA_POOLS_PER_ARENA - 1) << 6)));
}
/* The same for any p in one of soma's arenas. */
static inline pool_t *soma__pool_of(const void *p)
{
    return soma__pool_in(soma__region_arena(p), p);
}
/* The first pool of an arena: its base, or the next pool boundary when
 * the arena is not pool-aligned (never, since the reservation aligns
 * arenas: os/region.c, and arena.c checks; the dump still has CPython's
 * line for it). */
static inline uintptr_t soma__pool_first(const arena_t *a)
{
    return (a->address + SOMA_POOL_MASK) & ~(uintptr_t)SOMA_POOL_MASK;
}
/* Does the pool have a free block on its list (its virgin blocks aside)? */
static inline int soma__pool_has_free(const pool_t *pool)
{
    /* != soma__link_end(pool->base), base being pool-aligned */
    return ((uintptr_t)pool->freeblock ^ (uintptr_t)pool->base) != SOMA_POOL_SIZE;
}
/* Is b (any address) inside the pool's memory? */
static inline int soma__pool_holds(const pool_t *pool, const void *b)
{
    return ((uintptr_t)b ^ (uintptr_t)pool->base) < SOMA_POOL_SIZE;
}

/* The start of the block of pool that holds the byte p (p in the pool:
 * soma__pool_holds), or NULL when p lies in the pool's header or in its
 * tail after the last whole block, or the pool serves no class.  A
 * multiply by the class's reciprocal, no division (sizeclass.h: exact for
 * every class and offset). */
static inline void *soma__pool_block_start(const pool_t *pool, const void *p)
{
    unsigned c = pool->szidx;
    if (c >= SOMA_NUM_ALL_CLASSES)
        return NULL;
    uint32_t x = (uint32_t)((uintptr_t)p - (uintptr_t)pool->base) - (uint32_t)SOMA_POOL_OVERHEAD;
    uint64_t q = ((uint64_t)x * soma__sizeclass_recip[c].mul) >> 32;
    size_t size = soma__sizeclass_size(c);
    /* o < 48 wraps x, and q with it, far past the pool */
    if (SOMA_POOL_OVERHEAD + (q + 1) * size > SOMA_POOL_SIZE)
        return NULL;
    return pool->base + SOMA_POOL_OVERHEAD + q * size;
}
/* Does p (in the pool) start one of the pool's blocks?  One multiply and
 * one compare (sizeclass.h): origin is the pool header's size, 48, or the
 * gate's min_offset, which debug mode moves to the pool's end so that
 * nothing passes.  A pool that serves no class passes p only at offset 48
 * (soma__pool_set_class), and its count, 0, sends that to the slow path's
 * diagnosis. */
static inline int soma__pool_starts_block(const pool_t *pool, const void *p, uint32_t origin)
{
    uint32_t x = (uint32_t)((uintptr_t)p & SOMA_POOL_MASK) - origin;
    unsigned c = pool->szidx;
    uint32_t bound = c < SOMA_NUM_ALL_CLASSES ? soma__sizeclass_recip[c].bound : 0;
    return (uint32_t)(x * pool->recip_mul) <= bound;
}
/* The free fast path's form of the same, from the pool's line alone: also
 * false for every block the fast path leaves to soma__malloc_free_owner
 * (a medium pool's, with tails; a tailed small pool's last: recip_fast). */
static inline uint32_t soma__pool_start_product(const pool_t *pool, const void *p, uint32_t origin)
{
    uint32_t x = (uint32_t)((uintptr_t)p & SOMA_POOL_MASK) - origin;
    return (uint32_t)(x * pool->recip_mul);
}
static inline int soma__pool_fast_starts(const pool_t *pool, const void *p, uint32_t origin)
{
    return soma__pool_start_product(pool, p, origin) < pool->recip_fast;
}
/* recip_fast for class c (pool_t). */
static inline uint16_t soma__pool_recip_fast(unsigned c)
{
    if (c >= SOMA_NUM_ALL_CLASSES)
        return 1; /* offset 48 alone, as soma__pool_starts_block */
    if (SOMA_MEDIUM_TAIL && c >= SOMA_SMALL_CLASSES)
        return 0;
    /* A tailed small pool's last block (the bound itself) is left out
     * too: its free reads its last 8 bytes out of line (tail.h) */
    return (uint16_t)(soma__sizeclass_recip[c].bound + !soma__sizeclass_small_tailed(c));
}
/* The pool serves class c (or SOMA_NO_CLASS) from now on. */
static inline void soma__pool_set_class(pool_t *pool, unsigned c)
{
    pool->szidx = (uint8_t)c;
    pool->recip_mul = c < SOMA_NUM_ALL_CLASSES ? soma__sizeclass_recip[c].mul : 1;
    pool->recip_fast = soma__pool_recip_fast(c);
}
/* The last offset at which a whole block of the pool's class fits. */
static inline size_t soma__pool_max_offset(const pool_t *pool)
{
    return SOMA_POOL_SIZE - soma__sizeclass_size(pool->szidx);
}

/*
 * The header's check word.  A pool's first 48 bytes hold no block (see
 * pool_t), so the first block's underflow (a write before its start, of
 * 1 to 48 bytes) lands there, where glibc keeps a chunk's size and catches
 * it at the chunk's free ("free(): invalid size").  The header's last word
 * holds a value the program cannot guess (link.h's key, mixed with the
 * pool's address), written when the pool is put to work (pool.c:
 * pool_start) and compared on the owner's slow path of a free
 * (soma__pool_free_slow: the pool empties, leaves full, or the block looks
 * free already), and by the heap check (check.c, soma_debug_check).
 * Nothing on the fast paths, nor on another thread's free (the header's
 * line is one the free does not touch otherwise; the owner's collection
 * of the block then passes through the same slow paths): a 1-byte
 * underflow of a pool's only block is caught at its free, that of a first
 * block among others when the pool next takes a slow path.  In a medium
 * pool, or a tailed small one, the word is the first block's head
 * (tail.h), checked at every free of that block instead.
 */
static inline uintptr_t *soma__pool_canary_slot(const pool_t *pool)
{
    return (uintptr_t *)(pool->base + SOMA_POOL_OVERHEAD - sizeof(uintptr_t));
}
static inline uintptr_t soma__pool_canary_value(const pool_t *pool)
{
    return soma__base_check_word(soma__link_key ^ (uintptr_t)pool->base);
}

#if SOMA_MEDIUM_TAIL
/* A medium block's tag (pool/tail.h: its head), here because a medium
 * pool's check word is its first block's head: the tails' secret and the
 * block's address, so that a program neither writes it by accident nor
 * finds it in another block.  (Not mixed further: it keeps a value from
 * being guessed, not from being read; a fence left behind in memory handed
 * out again can be read, which is why the secret is not the links' key:
 * link.c.) */
#define SOMA_TAIL_ASKED 0xffffu /* the head's bits for n (SOMA_MEDIUM_MAX fits) */
#define SOMA_TAG_MUL 0x61c88647u /* odd, and an imul's 32-bit immediate */
static inline uint64_t soma__tail_tag(const void *b)
{
    /* The address multiplied (as a small head's, below): the head keeps
     * only the tag's top 48 bits, which must differ between blocks of
     * one pool, and the product carries the low bits up there.  (The
     * address and itself shifted by 32, three instructions more, lost
     * bits 7, 15 and 23 under the check bits and the size: the blocks at
     * one offset of two pools 32 KiB apart had the same head.) */
    return ((uint64_t)(uintptr_t)b * SOMA_TAG_MUL ^ soma__tail_key) |
           soma__check_high; /* soma__base_check_word, the constant in memory */
}
/* A tailed small block's tag (pool/tail.h: its head), here for the same
 * reason: such a pool's check word is its first block's head.  Its
 * address and a secret of its own, every byte's top bit set
 * (soma__base_check_word's reason; the OR reads the constant from memory:
 * link.c).  The address keeps one block's head, copied over another's by
 * an overflow, from passing there.  It is multiplied by an odd constant
 * first, so that its bits reach the bytes' low seven: the OR covers bits
 * 7, 15, 23 ... of what it is given, and the plain address lost them
 * (two blocks 128 bytes apart, or two pools 32 KiB apart, had the same
 * heads).  One instruction, in place of the copy of the address that the
 * XOR needed (imul with three operands).  That no two blocks share a
 * head is not proven but counted: tests/debug/test_small_tail.c finds
 * none alike among the 16-byte blocks of an arena's 64 pools. */
static inline uint64_t soma__tail_small_tag_of(uintptr_t b, uint64_t key, uint64_t high)
{
    return ((uint64_t)b * SOMA_TAG_MUL ^ key) | high;
}
static inline uint64_t soma__tail_small_tag(const void *b)
{
    return soma__tail_small_tag_of((uintptr_t)b, soma__small_tail_key, soma__check_high);
}
/* Is w, read from the head of b, b's (its tag, whatever n)? */
static inline int soma__tail_ours(uint64_t w, const void *b)
{
    return ((w ^ soma__tail_tag(b)) & ~(uint64_t)SOMA_TAIL_ASKED) == 0;
}
/* Does the pool's check word hold its first block's head?  A medium
 * pool's: the 8 bytes before each medium block are its head (tail.h). */
static inline int soma__pool_headed(const pool_t *pool)
{
    return pool->szidx >= SOMA_SMALL_CLASSES && pool->szidx < SOMA_NUM_ALL_CLASSES;
}
#define SOMA_HEADED(pool) soma__pool_headed(pool)
/* Is the check word its first block's head, of a medium pool or a tailed
 * small one, which every free of that block checks? */
static inline int soma__pool_first_headed(const pool_t *pool)
{
    return soma__pool_headed(pool) || soma__sizeclass_small_tailed(pool->szidx);
}
#define SOMA_FIRST_HEADED(pool) soma__pool_first_headed(pool)
#else
#define SOMA_HEADED(pool) 0
#define SOMA_FIRST_HEADED(pool) 0
#endif
/* What the check word must hold, given that it reads w: the pool's value,
 * or its first block's head: in a medium pool, whatever size asked it says
 * (its own free checks that); in a tailed small pool, the block's tag. */
static inline uintptr_t soma__pool_canary_expect(const pool_t *pool, uintptr_t w)
{
#if SOMA_MEDIUM_TAIL
    if (soma__pool_headed(pool))
        return (soma__tail_tag(pool->base + SOMA_POOL_OVERHEAD) & ~(uint64_t)SOMA_TAIL_ASKED) |
               (w & SOMA_TAIL_ASKED);
    if (soma__sizeclass_small_tailed(pool->szidx))
        return soma__tail_small_tag(pool->base + SOMA_POOL_OVERHEAD);
#endif
    (void)w;
    return soma__pool_canary_value(pool);
}
/* Set when the pool is put to work (a tailed small pool's first block's
 * head: carve writes the others'); not in a medium pool with heads,
 * whose first block's head carve writes (its head, if the pool kept its
 * blocks, still says what its last malloc asked: a double free of it is
 * then told as one). */
static inline void soma__pool_canary_set(pool_t *pool)
{
    if (!SOMA_HEADED(pool))
        __atomic_store_n(soma__pool_canary_slot(pool), soma__pool_canary_expect(pool, 0),
                         __ATOMIC_RELAXED);
}
/* Read relaxed: in a medium pool the word is the first block's head, which
 * its holder, any thread, rewrites (realloc, usable_size). */
static inline uintptr_t soma__pool_canary_read(const pool_t *pool)
{
    return __atomic_load_n(soma__pool_canary_slot(pool), __ATOMIC_RELAXED);
}
static inline int soma__pool_canary_ok(const pool_t *pool)
{
    uintptr_t w = soma__pool_canary_read(pool);
    return w == soma__pool_canary_expect(pool, w);
}

/* Every carved pool of arena a, in address order (the pools below
 * a->pool_address have been put to work at least once; the others were
 * never touched): the one walk over an arena's pools, for the statistics
 * and the checks. */
#define SOMA_POOL_FOREACH(pool, a)                                                                 \
    for (pool_t *pool = (a)->pools;                                                                \
         pool < (a)->pools + ((a)->pool_address - (a)->address) / SOMA_POOL_SIZE; pool++)

/* ---- pool.c: blocks and pools of one heap ---- */
/* No used pool of class c: collect pending frees, or put a pool to work.
 * NULL with errno = ENOMEM when no arena can be mapped. */
SOMA_INTERNAL void *soma__pool_malloc_slow(heap_t *heap, unsigned c);
/* Pools made resident, SOMA_SHED_BATCH bytes at a time, are offered to
 * this: the large cache gives back as much of its idle mappings (set by
 * malloc/large.c at start-up, which this layer cannot call by name; NULL
 * until then).  Called with no lock held. */
#define SOMA_SHED_BATCH ((size_t)256 << 10)
extern SOMA_INTERNAL void (*_Atomic soma__pool_grew_hook)(size_t bytes);
SOMA_INTERNAL void *soma__pool_refill(heap_t *heap, pool_t *pool, void *bp);
SOMA_INTERNAL void soma__pool_free_slow(heap_t *heap, pool_t *pool, void *p);
/* The heap's pending cross-thread frees back to their pools (the owner,
 * or a holder of an orphan: heap/heap.c). */
SOMA_INTERNAL void soma__pool_collect(heap_t *heap);
SOMA_INTERNAL void soma__pool_unpark(heap_t *heap, int all); /* owner, or holder of an orphan */
/* In a forked child, a heap whose owner is gone: it may have been between
 * a pool's parking and its class's mark (heap_t: parked_mark), so the next
 * walk looks at every class. */
SOMA_INTERNAL void soma__pool_mark_parked_all(heap_t *heap);
/* A free of p, in pool, that is not the owner's own: checked, then pushed
 * on the owner's remote stack.  Stops the program if p is no block. */
SOMA_INTERNAL void soma__pool_free_other(pool_t *pool, void *p);
/* Stop the program: fn(p) names no block of pool, p in the pool (a pointer
 * into a block, into the pool header or tail, or into a pool that serves
 * no class).  The one message for every path that finds it so. */
SOMA_INTERNAL _Noreturn void soma__pool_fatal_not_block(const char *fn, const pool_t *pool,
                                                        const void *p);
/* fn(p) found a word of soma's in p, a block of pool, damaged: stop the
 * program with what is likelier, if p is no block in use (its pool has
 * none; or, asked by the pool's owner (`owner`), p lies past the carved
 * blocks or is on the pool's free list: a double free); return if p may
 * be in use. */
SOMA_INTERNAL void soma__pool_fatal_if_unused(const char *fn, const pool_t *pool, const void *p,
                                              int owner);
/* Stop the program if p lies past the pool's carved blocks: never handed
 * out in the pool's present class (the owner's to ask: the offsets are
 * its own). */
SOMA_INTERNAL _Noreturn void soma__pool_fatal_virgin(const char *fn, const pool_t *pool,
                                                     const void *p);
static inline void soma__pool_fatal_if_virgin(const char *fn, const pool_t *pool, const void *p)
{
    if (SOMA_UNLIKELY((size_t)((const char *)p - pool->base) >= pool->nextoffset))
        soma__pool_fatal_virgin(fn, pool, p);
}
/* Stop the program: the pool's header check word is overwritten
 * (soma__pool_canary_ok), found by fn(p). */
SOMA_INTERNAL _Noreturn void soma__pool_fatal_canary(const char *fn, const pool_t *pool,
                                                     const void *p);
/* Push p on its owner's remote stack (another thread's block, or any
 * block of an explicit heap): one compare-and-swap, no lock. */
SOMA_INTERNAL void soma__pool_free_remote(heap_t *owner, void *p);

/* count with its flag, for the owner's paths */
static inline unsigned soma__pool_count_raw(const pool_t *pool)
{
    return atomic_load_explicit(&pool->count, memory_order_relaxed);
}
/* Blocks in use. */
static inline unsigned soma__pool_count(const pool_t *pool)
{
    return soma__pool_count_raw(pool) & ~SOMA_POOL_UNLISTED;
}
static inline void soma__pool_set_count(pool_t *pool, unsigned n)
{
    atomic_store_explicit(&pool->count, (uint16_t)n, memory_order_relaxed);
}

/* The two steps the fast paths (malloc/fastpath.h) inline: take a block
 * from a used pool, give one back to the owner's pool. */
/* Pop a block of a used pool (the owner only).  Budget: a pop, a store, one
 * rarely taken branch.  bp: pool->freeblock, never the end at the head of
 * a class list, read by the caller (malloc.c's medium path writes into
 * the block first: read again after, as the compiler would, for it could
 * not tell those stores from one to the record). */
static inline void *soma__pool_pop_at(heap_t *heap, pool_t *pool, void *bp)
{
    void *next = soma__link_get(bp);
    soma__pool_set_count(pool, soma__pool_count_raw(pool) + 1); /* listed: no flag */
    pool->freeblock = next;
    /* Cleared only once bp is off the list (a compiler barrier keeps the
     * stores in this order; x86 keeps them so for other observers): a
     * fork that catches this thread here leaves the child a list whose
     * every link is whole. */
    atomic_signal_fence(memory_order_release);
    soma__link_clear(bp);
    /* The end of the list (soma__link_end), or a link out of the pool (a
     * corrupted one: link.h): the refill tells them apart. */
    if (SOMA_UNLIKELY(((uintptr_t)next ^ (uintptr_t)bp) >= SOMA_POOL_SIZE))
        return soma__pool_refill(heap, pool, bp); /* a tail call: no frame on the fast path */
    return bp;
}
static inline void *soma__pool_pop(heap_t *heap, pool_t *pool)
{
    return soma__pool_pop_at(heap, pool, pool->freeblock);
}

/* Push p on its pool, for the pool's owner. */
static inline void soma__pool_push(heap_t *heap, pool_t *pool, void *p)
{
    unsigned n = soma__pool_count_raw(pool);
    /* One test for the rare cases: the block is its pool's last (it
     * empties), the pool has no block at all (not allocated: a double
     * free), or the pool is full and unlisted (it must join its list);
     * then whether the block looks free already (a double free, probably:
     * link.h).  A full pool still listed takes the plain push. */
    if (SOMA_UNLIKELY(n - 2 > SOMA_POOL_UNLISTED - 3 || soma__link_looks_free(p))) {
        soma__pool_free_slow(heap, pool, p);
        return;
    }
    soma__link_set(p, pool->freeblock);
    pool->freeblock = p;
    soma__pool_set_count(pool, n - 1);
}

/* ---- arena.c: arenas and the usable-arena ordering (heap lock held) ---- */
SOMA_INTERNAL pool_t *soma__arena_take_pool(heap_t *heap, unsigned kind);
/* emptied_ms: when the pool's last block was freed (soma__process_now_ms();
 * 0: now), for the decay of its arena. */
SOMA_INTERNAL void soma__arena_return_pool(heap_t *heap, pool_t *pool, uint64_t emptied_ms);
/* What expired goes back to the OS: empty arenas kept longer than the
 * decay (all but the last, CPython's rule), then the pages of pools empty
 * that long.  `all` asks for more: SOMA_TRIM_ARENAS every empty arena,
 * the last one too (a heap nobody will use again); SOMA_TRIM_POOLS every
 * empty pool's pages now.  Without a decay pools' pages go back only when
 * asked (CPython's rule: an arena's memory goes back with the arena).
 * Takes the heap lock (soma__arena_trim_locked: held).  Returns the bytes
 * given back; *next_ms, if not NULL, is lowered to the earliest time
 * something kept will have expired (soma__process_now_ms's clock). */
/* SOMA_TRIM_TRY: for a caller that must never wait on a lock but the
 * heap's, which it tried (runtime/purge.c): an arena is released only if
 * the slab's and the region's locks are free at once; one left for that
 * is looked at again 10 ms later (*next_ms). */
enum { SOMA_TRIM_ARENAS = 1, SOMA_TRIM_POOLS = 2, SOMA_TRIM_TRY = 4 };
SOMA_INTERNAL size_t soma__arena_trim(heap_t *heap, unsigned all, uint64_t *next_ms);
SOMA_INTERNAL size_t soma__arena_trim_locked(heap_t *heap, unsigned all, uint64_t *next_ms);
SOMA_INTERNAL void soma__arena_release_all(heap_t *heap);
/* Up to `bytes` of the heap's empty pools give their pages back now,
 * whatever their age, from the arenas with the most free pools (the
 * usable list's tail: soma__arena_take_pool takes from the fullest, so
 * these are the last to be wanted again).  For the large blocks when they
 * take fresh memory (malloc/large.c: DESIGN.md, "Idle memory changes
 * sides").  The heap's lock is only tried; returns the bytes given back. */
SOMA_INTERNAL size_t soma__arena_shed(heap_t *heap, size_t bytes);
SOMA_INTERNAL void soma__arena_counts(unsigned kind, size_t *total, size_t *current,
                                      size_t *highwater);
/* Pools whose pages went back, ever, process-wide. */
SOMA_INTERNAL size_t soma__arena_returned_total(unsigned kind);

/* ---- check.c: every invariant of a heap, for tests (0 or -1 and why) ---- */
SOMA_INTERNAL int soma__check_heap(heap_t *heap, char *why, size_t whylen);
SOMA_INTERNAL int soma__check_heap_locked(heap_t *heap, char *why, size_t whylen);
/* Which carved blocks of a pool are on its free list: bit i of `bits` for
 * the block at index i (bits has SOMA_POOL_BITMAP_WORDS words).  Returns
 * the number of carved blocks (those below the virgin ones), or -1 if the
 * list is corrupted (a link to anything but a carved block, or to one
 * twice).  The pool's owner must not be changing it. */
#define SOMA_POOL_BITMAP_WORDS ((SOMA_POOL_SIZE / SOMA_ALIGNMENT + 63) / 64)
SOMA_INTERNAL long soma__check_free_map(const pool_t *pool, uint64_t *bits);
/* fn(pool, arg) for every carved pool of the heap that has served a class
 * (the heap's lock held, or the heap still). */
SOMA_INTERNAL void soma__check_pools(heap_t *heap, void (*fn)(pool_t *, void *), void *arg);

/* ---- peek.c: a pool read by a thread that is not its owner ---- */
/* Which carved blocks of a pool that serves a class are in use: bit i of
 * `used` (SOMA_POOL_BITMAP_WORDS words) for the block at index i, read
 * with the heap's lock held while the owner may be changing the pool.
 * Returns how many, or -1 if no consistent picture could be had (the
 * owner kept changing it, or its free list is corrupted). */
SOMA_INTERNAL long soma__peek_pool(const pool_t *pool, uint64_t *used);

#endif /* SOMA_POOL_H */
