/*
 * pool.c: blocks and pools of one heap.
 *
 * Allocation of class c looks at usedpools[c], the first pool of the class
 * that has a free block (pool states: see pool_t in pool.h):
 *
 *   usedpools[c] --> [pool] <-> [pool] <-> [pool]   (circular; NULL if none)
 *                       |
 *                       freeblock -> blk -> blk -> end    (then virgin blocks)
 *
 *   1. Fast: pop the head pool's freeblock.  If that leaves the free list
 *      empty, link the virgin blocks of the pool's next OS page into it, or,
 *      if none is left, the pool is full: the head moves on to the next
 *      pool of the list that has a free block, and the full pools it meets
 *      on the way leave the list (rotate).  The pool that just filled stays
 *      listed, now last, gathering frees.
 *   2. Slow: no used pool: take an empty pool from the arenas (arena.c) and
 *      put it at the head.  Only its first OS page is touched.
 *
 * Free pushes the block on its pool's free list (the pool's record is
 * found from the arena map: pool.h).  A full pool still listed needs
 * nothing more.  An unlisted full pool that gets a block back goes second
 * on its class list, behind the pool in service (docs/DESIGN.md says why
 * not first); a pool that becomes empty goes back to its arena, unless it
 * is parked.
 *
 * Parking: with a decay (SOMA_ARENA_DECAY_MS > 0, the override's default), a
 * pool that empties while it is the only pool of its class stays on the
 * class list, empty (count 0), with its free list intact.  A class whose
 * live blocks go to zero and back (a loop that makes and drops a few
 * objects) then reuses the pool without the round trip through the arena
 * and its lock: on bench lifo1 that round trip was 9% of soma's
 * instructions, on mixed1 (medium pools hold 2..30 blocks) 10% of the
 * whole run's.  At most one pool per class is parked.  A parked pool that
 * stays unused for the decay time goes back to its arena at the next sweep
 * (a pool parking, going back to its arena or a fresh pool taken, at most
 * every quarter of the decay period),
 * and every parked pool goes back when its thread exits.  With no decay
 * (the library's default) nothing is parked: CPython's rule.
 *
 * Threads: each thread allocates from a heap of its own (heap/heap.c), so the
 * used-pool lists and the pools' free lists have a single writer, the owner,
 * and the fast paths (inline in malloc/fastpath.h) take no lock and no atomic
 * read-modify-write.  A block freed by another thread is pushed on its
 * heap's `remote` stack (one compare-and-swap) and handed back to its pool by
 * the owner, on its next slow path.  heap->lock is taken by the owner only
 * when it changes what a statistics walk reads: the arenas and the pools'
 * class (taking a pool, returning one, mapping or releasing an arena).
 */
#include "base/process.h"
#include "base/wake.h"
#include "pool/pool.h"
#include "pool/tail.h"

static void used_push_front(heap_t *heap, unsigned c, pool_t *pool)
{
    pool_t *head = heap->usedpools[c];
    if (head == NULL) {
        pool->nextpool = pool->prevpool = pool;
    } else {
        pool->nextpool = head;
        pool->prevpool = head->prevpool;
        head->prevpool->nextpool = pool;
        head->prevpool = pool;
    }
    heap->usedpools[c] = pool;
}

/* Behind the head: the head keeps serving until it is full, and the pool
 * waits meanwhile, gathering more frees. */
static void used_push_second(heap_t *heap, unsigned c, pool_t *pool)
{
    pool_t *head = heap->usedpools[c];
    if (head == NULL) {
        pool->nextpool = pool->prevpool = pool;
        heap->usedpools[c] = pool;
        return;
    }
    pool->prevpool = head;
    pool->nextpool = head->nextpool;
    head->nextpool->prevpool = pool;
    head->nextpool = pool;
}

static void rotate(heap_t *heap, unsigned c, pool_t *head);

static void used_unlink(heap_t *heap, unsigned c, pool_t *pool)
{
    if (pool->nextpool == pool) {
        heap->usedpools[c] = NULL;
        return;
    }
    pool->prevpool->nextpool = pool->nextpool;
    pool->nextpool->prevpool = pool->prevpool;
    if (heap->usedpools[c] == pool) {
        /* The head left (it emptied): the new head must have a block. */
        pool_t *head = heap->usedpools[c] = pool->nextpool;
        if (!soma__pool_has_free(head))
            rotate(heap, c, head);
    }
}

/* Link the virgin blocks that start in the same OS page as the next one
 * (at least that one) into the pool's free list, which is empty.  One page
 * at a time: the pages a pool never needs are never touched, and the fast
 * path meets the end of the list once per page instead of once per block. */
static void carve(pool_t *pool)
{
    size_t size = soma__sizeclass_size(pool->szidx);
    uintptr_t b = (uintptr_t)pool->base + pool->nextoffset;
    uintptr_t page_last = b | (SOMA_OS_PAGE_SIZE - 1);
    uintptr_t pool_last = (uintptr_t)pool->base + soma__pool_max_offset(pool);
    uintptr_t last = page_last < pool_last ? page_last : pool_last; /* last start allowed */
    void *first = (void *)b;
#if SOMA_MEDIUM_TAIL
    /* Every medium block has a head from the start (pool/tail.h), saying
     * 0 bytes asked until malloc writes it. */
    if (pool->szidx >= SOMA_SMALL_CLASSES)
        for (uintptr_t t = b; t <= last; t += size)
            soma__tail_set_carved((void *)t);
    /* A tailed small block's head is written here once (pool/tail.h),
     * for every block carved now (a pool's first block's is its check
     * word: pool_start writes it too), and, with the pool's last block,
     * the head of the block that would follow it, in that block's last 8
     * bytes: its overflow is found at its free (out of line: pool.h,
     * recip_fast) and by the heap check.  None for a block not yet
     * carved: a free of one fails its check (a pool's heads from another
     * class are gone: forget_heads). */
    else if (soma__sizeclass_small_tailed(pool->szidx))
        /* with the pool's last block, the head after it (last is the
         * start of that block then) */
        soma__tail_small_set_run(b, last == pool_last ? last + size : last, size);
#endif
    /* every block carved now starts in b's page: one mask (link.h) */
    _Static_assert(SOMA_OS_PAGE_SIZE == 4096, "a link's mask changes every 4 KiB");
    uintptr_t mask = soma__link_mask((void *)b);
    for (; b + size <= last; b += size)
        soma__link_set_masked((void *)b, (void *)(b + size), mask);
    soma__link_set_masked((void *)b, soma__link_end((void *)b), mask);
    /* Published once every link is written (a compiler barrier, as in
     * soma__pool_pop): a fork that catches this thread here leaves the
     * child a list that is whole or empty, never half linked. */
    atomic_signal_fence(memory_order_release);
    pool->freeblock = first;
    pool->nextoffset = (uint16_t)(b + size - (uintptr_t)pool->base);
}

/* The head pool of class c is full: the next pool with a free block
 * becomes the head, and the full pools before it leave the list (each
 * leaves once per time it fills, so the walk is paid for by the pops that
 * filled them).  The head itself stays, last, unless it is the only pool. */
static void unlist_full(heap_t *heap, unsigned c, pool_t *pool)
{
    used_unlink(heap, c, pool);
    soma__pool_set_count(pool, soma__pool_count_raw(pool) | SOMA_POOL_UNLISTED);
}

static void rotate(heap_t *heap, unsigned c, pool_t *head)
{
    pool_t *q = head->nextpool;
    while (q != head) {
        if (soma__pool_has_free(q)) {
            heap->usedpools[c] = q;
            return;
        }
        pool_t *next = q->nextpool;
        unlist_full(heap, c, q);
        q = next;
    }
    unlist_full(heap, c, head); /* alone now: the list empties */
}

/* The pool's free list just ran dry (bp, its last block, was taken):
 * refill it with the next page of virgin blocks, or, if the pool is carved
 * out, move the head on (rotate).  Returns bp. */
void *soma__pool_refill(heap_t *heap, pool_t *pool, void *bp)
{
    if (soma__pool_has_free(pool)) /* not the end: a link out of the pool */
        soma__fatal("soma_malloc: the free list of pool %p (class %u, %zu-byte blocks) is "
                    "corrupted: the free block %p links to %p, outside its pool; something "
                    "wrote to %p after it was freed (a use after free), or past the end of the "
                    "block before it",
                    (void *)pool->base, soma__sizeclass_public(pool->szidx),
                    soma__sizeclass_size(pool->szidx), bp, pool->freeblock, bp);
    if (pool->nextoffset <= soma__pool_max_offset(pool))
        carve(pool);
    else
        rotate(heap, pool->szidx, pool);
    return bp;
}

#if SOMA_MEDIUM_TAIL
/* The empty pool served another class, whose carved blocks had heads
 * (tail.h: a medium class, or a tailed small one): they go, before the
 * pool serves a new class.  A head is its block's tag, which is its
 * address's whatever the class: one left where the new class will have a
 * block that it has not carved yet would pass that block's check, and a
 * pointer kept from the old class's time, freed again now, would be
 * pushed and handed out twice (its first word, the double-free test's,
 * may hold anything by then).  One word per block of the old class, in
 * pages it had in use: 1,021 stores at most, when a pool changes class.
 * (A pool that keeps its class keeps its heads: they are its blocks'.) */
static void forget_heads(pool_t *pool)
{
    if (!soma__pool_first_headed(pool))
        return;
    size_t size = soma__sizeclass_size(pool->szidx);
    /* the first block's head is the header's check word (set afresh);
     * the pool's last block's last 8 bytes hold the head of the block
     * that would follow it (carve): up to the carved blocks' end */
    char *end = pool->base + pool->nextoffset;
    for (char *b = pool->base + SOMA_POOL_OVERHEAD + size; b <= end; b += size)
        __atomic_store_n((uint64_t *)b - 1, 0, __ATOMIC_RELAXED);
}
#endif

/* Put an empty pool to work for class c and return its first free block. */
static void *pool_start(heap_t *heap, pool_t *pool, unsigned c)
{
    /* Its blocks are all free: a checker must see no block there (track.h). */
    soma__track_noaccess(pool->base + SOMA_POOL_OVERHEAD, SOMA_POOL_SIZE - SOMA_POOL_OVERHEAD);
    used_push_front(heap, c, pool);
    soma__pool_set_count(pool, 0);
    /* A pool that served this class before it emptied keeps its free list
     * intact; any other is set up for the class, and so is one whose
     * pages went back (they read as zeros now). */
    if (pool->szidx != c || pool->returned) {
#if SOMA_MEDIUM_TAIL
        if (!pool->returned) /* (one whose pages went back reads as zeros) */
            forget_heads(pool);
#endif
        pool->returned = 0;
        /* Debug mode: old debug headers at other offsets must not pass
         * for released blocks of the new class (malloc/debug.c). */
        if (SOMA_UNLIKELY(soma__options.debug))
            memset(pool->base + SOMA_POOL_OVERHEAD, 0, SOMA_POOL_SIZE - SOMA_POOL_OVERHEAD);
        soma__pool_set_class(pool, c);
        pool->nextoffset = (uint16_t)SOMA_POOL_OVERHEAD;
        carve(pool);
    }
    soma__pool_canary_set(pool);
    return soma__pool_pop(heap, pool);
}

/* Hand the heap's pending cross-thread frees back to their pools (owner
 * only, or a holder of an orphan heap: see heap/heap.c). */
void soma__pool_collect(heap_t *heap)
{
    void *b = atomic_exchange_explicit(&heap->remote, NULL, memory_order_acquire);
    while (b != NULL) {
        void *next = soma__link_remote_next(b);
        soma__pool_push(heap, soma__pool_of(b), b);
        b = next;
    }
}

/* Is class c's pool parked (alone on its list, empty)? */
static int parked(const heap_t *heap, unsigned c)
{
    /* Alone, too: a list whose head has just emptied beside other pools
     * (a forked child's orphan, caught in the middle of a free, whose
     * every class the walk visits) is not a parked pool, and unpark would
     * drop the others from the list. */
    const pool_t *pool = heap->usedpools[c];
    return pool != NULL && soma__pool_count(pool) == 0 && pool->nextpool == pool;
}

/* Class c's parked pool goes back to its arena (its list becomes empty). */
static void unpark(heap_t *heap, unsigned c)
{
    pool_t *pool = heap->usedpools[c];
    heap->usedpools[c] = NULL; /* it was alone */
    pthread_mutex_lock(&heap->lock);
    soma__arena_return_pool(heap, pool, heap->parked_ms[c]);
    pthread_mutex_unlock(&heap->lock);
}

/* Return parked pools to their arenas: all of them, or those parked for
 * the decay time.  The arena learns when the pool really emptied, so its
 * own decay counts from then. */
void soma__pool_unpark(heap_t *heap, int all)
{
    uint64_t now = all ? 0 : soma__process_now_ms();
    for (unsigned w = 0; w < sizeof heap->parked_mark; w += 8) {
        uint64_t marks; /* eight marks, each 0 or 1: a bit each */
        memcpy(&marks, heap->parked_mark + w, sizeof marks);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        marks = __builtin_bswap64(marks); /* mark w + i at bit 8i, as below */
#endif
        for (; marks != 0; marks &= marks - 1) {
            unsigned c = w + (unsigned)__builtin_ctzll(marks) / 8;
            if (!parked(heap, c)) {
                heap->parked_mark[c] = 0; /* in use again */
            } else if (all || now - heap->parked_ms[c] >= (uint64_t)soma__options.decay_ms) {
                unpark(heap, c);
                heap->parked_mark[c] = 0;
            }
        }
    }
}

/* Every class marked (heap_t: parked_mark), for a walk that must not
 * trust the marks. */
void soma__pool_mark_parked_all(heap_t *heap)
{
    memset(heap->parked_mark, 1, SOMA_NUM_ALL_CLASSES);
}

/* At most every quarter decay period, on a pool transition (parked, returned
 * to its arena, or taken fresh): parked pools and
 * then empty arenas older than the decay go back.  (Arenas are otherwise
 * checked only when one empties; a parked pool means none may.) */
static inline __attribute__((always_inline)) void sweep_parked(heap_t *heap, uint64_t now)
{
    /* Every caller holds no lock of soma's and leaves the heap whole: a
     * point where the purge thread may be started (base/wake.h). */
    soma__wake_safe_point(now);
    /* A quarter of the decay apart: what expires is gone within 1.25
     * decays of its emptying, not up to two (the sweep is a few dozen
     * tests and a walk of the wholly free arenas). */
    if (4 * (now - heap->swept_ms) >= (uint64_t)soma__options.decay_ms) {
        heap->swept_ms = now;
        soma__pool_unpark(heap, 0);
        soma__arena_trim(heap, 0, NULL);
    }
}

void (*_Atomic soma__pool_grew_hook)(size_t bytes);

void *soma__pool_malloc_slow(heap_t *heap, unsigned c)
{
    /* Blocks that other threads gave back may refill this very class:
     * collect them before taking a fresh pool. */
    if (atomic_load_explicit(&heap->remote, memory_order_relaxed) != NULL) {
        soma__pool_collect(heap);
        pool_t *pool = heap->usedpools[c];
        if (pool != NULL)
            return soma__pool_pop(heap, pool);
    }
    /* soma__start has run: every heap is made after it (heap/heap.c), and
     * never under a heap lock: the start-up work may itself allocate. */
    if (soma__options.decay_ms > 0)
        sweep_parked(heap, soma__process_now_ms());
    pthread_mutex_lock(&heap->lock);
    pool_t *pool = soma__arena_take_pool(heap, soma__sizeclass_kind(c));
    void *bp = pool ? pool_start(heap, pool, c) : NULL;
    size_t grown = 0;
    if (heap->grown >= SOMA_SHED_BATCH) {
        grown = heap->grown;
        heap->grown = 0;
    }
    pthread_mutex_unlock(&heap->lock);
    if (grown != 0) {
        void (*hook)(size_t) = atomic_load_explicit(&soma__pool_grew_hook, memory_order_relaxed);
        if (hook != NULL)
            hook(grown);
    }
    return bp; /* NULL: no arena (errno = ENOMEM); malloc/malloc.c decides what then */
}

/* p lies in a pool with no block in use, or in one never handed out. */
static _Noreturn void fatal_not_allocated(const char *fn, const void *p, const pool_t *pool)
{
    if (pool->heap == NULL)
        soma__fatal("%s(%p): not an allocated block (a pointer into a part of an "
                    "arena that was never handed out)",
                    fn, p);
    soma__fatal("%s(%p): not an allocated block (double free, or a pointer "
                "into an empty pool)",
                fn, p);
}

void soma__pool_fatal_canary(const char *fn, const pool_t *pool, const void *p)
{
    /* How far before the first block the write began: the first byte of
     * the check word that differs (a write ends at the block's start). */
    uintptr_t w = soma__pool_canary_read(pool);
    size_t from = sizeof(uintptr_t) - soma__base_first_diff(w, soma__pool_canary_expect(pool, w));
    int more = from == sizeof(uintptr_t);
#if SOMA_MEDIUM_TAIL
    /* A medium pool's word is its first block's head: its low two bytes
     * are a size, not a check, so a write that reached the third may have
     * gone on (its caller saw the tag bytes changed). */
    if (soma__pool_headed(pool) && from >= sizeof(uintptr_t) - 2)
        more = 1, from = sizeof(uintptr_t) - 2;
#endif
    soma__fatal("%s(%p): the header of pool %p is overwritten from %zu%s byte%s before its "
                "first block %p (class %u, %zu bytes): a write before the start of that block "
                "(an underflow)",
                fn, p, (const void *)pool->base, from, more ? " or more" : "",
                from == 1 ? "" : "s",
                (const void *)(pool->base + SOMA_POOL_OVERHEAD),
                soma__sizeclass_public(pool->szidx), soma__sizeclass_size(pool->szidx));
}

void soma__pool_fatal_not_block(const char *fn, const pool_t *pool, const void *p)
{
    uintptr_t off = (uintptr_t)p & SOMA_POOL_MASK;
    if (off < SOMA_POOL_OVERHEAD)
        soma__fatal("%s(%p): not an allocated block (an address inside a pool header: "
                    "the first %zu bytes of a pool hold no block)",
                    fn, p, SOMA_POOL_OVERHEAD);
    if (pool->heap == NULL || pool->szidx >= SOMA_NUM_ALL_CLASSES)
        fatal_not_allocated(fn, p, pool);
    size_t size = soma__sizeclass_size(pool->szidx);
    const char *b = soma__pool_block_start(pool, p);
    if (b == NULL)
        soma__fatal("%s(%p): not an allocated block: it lies in the last %zu bytes of pool %p, "
                    "after its last %zu-byte block",
                    fn, p, (size_t)((SOMA_POOL_SIZE - SOMA_POOL_OVERHEAD) % size),
                    (const void *)pool->base, size);
    size_t into = (size_t)((const char *)p - b);
    soma__fatal("%s(%p): not the start of a block: %zu byte%s into the %zu-byte block at %p "
                "(class %u)",
                fn, p, into, into == 1 ? "" : "s", size, (const void *)b,
                soma__sizeclass_public(pool->szidx));
}

/* Is target on its pool's free list (NULL: the whole list, checked)?  The
 * walk is bounded by the pool's capacity and checks every link it follows
 * (a corrupted list is reported, for the free of p, never followed out of
 * the pool). */
static int on_free_list(const pool_t *pool, const void *target, const void *p, const char *fn)
{
    size_t cap = soma__sizeclass_capacity(pool->szidx), steps = 0;
    const void *end = soma__link_end(pool->base);
    for (const void *b = pool->freeblock; b != end; b = soma__link_get(b)) {
        if (b == target)
            return 1;
        if (!soma__pool_holds(pool, b) || ++steps > cap)
            soma__fatal("%s(%p): the free list of its pool %p (class %u) is corrupted "
                        "near %p (a write after free?)",
                        fn, p, (const void *)pool->base, soma__sizeclass_public(pool->szidx), b);
    }
    return 0;
}

void soma__pool_fatal_virgin(const char *fn, const pool_t *pool, const void *p)
{
    soma__fatal("%s(%p): not an allocated block (a double free, or a block of pool %p "
                "never handed out)",
                fn, p, (const void *)pool->base);
}

void soma__pool_fatal_if_unused(const char *fn, const pool_t *pool, const void *p, int owner)
{
    if (soma__pool_count(pool) == 0)
        fatal_not_allocated(fn, p, pool);
    if (!owner)
        return; /* the offsets and the free list are the owner's */
    soma__pool_fatal_if_virgin(fn, pool, p);
    if (soma__link_looks_free(p) && on_free_list(pool, p, p, fn))
        soma__fatal("%s(%p): double free: the %zu-byte block (class %u) is already "
                    "free, on its pool's free list",
                    fn, p, soma__sizeclass_size(pool->szidx), soma__sizeclass_public(pool->szidx));
}

/* Free p into a pool that is full and unlisted, or holds p as its last
 * block, or holds no block at all (then p was not allocated), or where p
 * looks free already (link.h). */
void soma__pool_free_slow(heap_t *heap, pool_t *pool, void *p)
{
    unsigned raw = soma__pool_count_raw(pool), n = raw & ~SOMA_POOL_UNLISTED;
    if (n == 0)
        fatal_not_allocated("soma_free", p, pool);
    /* (Not in a pool whose first block's head it is, a medium or a tailed
     * small one: that block's every free checks it, and this free has
     * checked its own head already.) */
    if (SOMA_UNLIKELY(!SOMA_FIRST_HEADED(pool) && !soma__pool_canary_ok(pool)))
        soma__pool_fatal_canary("soma_free", pool, p);
    if (soma__link_looks_free(p)) {
        /* Past the carved blocks, with a link in its first word: freed
         * before the pool emptied and took another class, and freed again
         * now (in a pool without heads: a plain twin's; a head there was
         * cleared with the class: forget_heads). */
        soma__pool_fatal_if_virgin("soma_free", pool, p);
        if (on_free_list(pool, p, p, "soma_free"))
            soma__fatal("soma_free(%p): double free: the %zu-byte block (class %u) is already "
                        "free, on its pool's free list",
                        p, soma__sizeclass_size(pool->szidx),
                        soma__sizeclass_public(pool->szidx));
    }
#if SOMA_MEDIUM_TAIL
    if (soma__sizeclass_small_tailed(pool->szidx))
        soma__tail_small_check_next(pool, p, "soma_free");
#endif
    soma__link_set(p, pool->freeblock);
    pool->freeblock = p;
    soma__pool_set_count(pool, n - 1);
    if (raw & SOMA_POOL_UNLISTED) {
        /* It was full, off its list.  A pool holds at least 2 blocks
         * (base/config.h), so it is not empty now: it becomes used, and
         * waits behind the pool in service.  A parked pool is parked only
         * while it is alone: it gives way, back to its arena. */
        if (parked(heap, pool->szidx))
            unpark(heap, pool->szidx);
        used_push_second(heap, pool->szidx, pool);
        return;
    }
    if (n > 1)
        return; /* here only because p looked free, and it was not */
    /* A medium pool just emptied: every block it has handed out is on its
     * free list now, and this is the last time the list is read before
     * the pool parks or goes back to its arena (pool_start sets it up
     * afresh).  A write after free that damaged a link is caught here, or
     * never if the program makes no more blocks of the class (glibc's
     * unlink check catches it when the neighbours coalesce).  At most 30
     * links, where the pool's blocks were just freed; small pools, with
     * up to 1,021, are left to the next pop. */
    if (soma__sizeclass_kind(pool->szidx) == SOMA_KIND_MEDIUM)
        (void)on_free_list(pool, NULL, p, "soma_free");
    if (soma__options.decay_ms > 0 && pool->nextpool == pool) {
        /* The last pool of its class: parked (see the top of this file). */
        uint64_t now = soma__process_now_ms();
        heap->parked_ms[pool->szidx] = now;
        heap->parked_mark[pool->szidx] = 1;
        sweep_parked(heap, now);
        return;
    }
    /* It is empty: back to its arena, which may now go back to the OS. */
    used_unlink(heap, pool->szidx, pool);
    /* One reading of the clock for both (a pool's emptying is frequent
     * where pools hold few blocks: medium ones); none without a decay. */
    uint64_t now = soma__options.decay_ms > 0 ? soma__process_now_ms() : 0;
    pthread_mutex_lock(&heap->lock);
    soma__arena_return_pool(heap, pool, now);
    pthread_mutex_unlock(&heap->lock);
    /* A pool going back is a transition too: without this sweep, arenas
     * that emptied earlier waited for a fresh pool to be taken, which a
     * program that churns the pools it has may never need (test_pages'
     * timeline caught it: 53 empty arenas kept for good). */
    if (now != 0)
        sweep_parked(heap, now);
}

void soma__pool_free_remote(heap_t *owner, void *p)
{
    /* Only the owner pops, and it takes the whole stack at once: no ABA. */
    void *head = atomic_load_explicit(&owner->remote, memory_order_relaxed);
    do {
        soma__link_remote_set(p, head);
    } while (!atomic_compare_exchange_weak_explicit(&owner->remote, &head, p,
                                                    memory_order_release, memory_order_relaxed));
}

/* A free the owner's fast path did not take, outside debug mode (which
 * malloc/malloc.c sends elsewhere): another thread's block or an explicit heap's,
 * or a pointer that is no block.  The last gets its pool checked before
 * anything is written: a pointer of unknown origin that happens to lie in
 * soma's range must start a block of a pool that soma carved and handed to
 * a heap, in the arena the arena map names. */
void soma__pool_free_other(pool_t *pool, void *p)
{
    if (((uintptr_t)p & SOMA_POOL_MASK) < SOMA_POOL_OVERHEAD)
        soma__pool_fatal_not_block("soma_free", pool, p);
    heap_t *owner = pool->heap;
    if (owner == NULL)
        fatal_not_allocated("soma_free", p, pool);
    if (SOMA_UNLIKELY(pool->arena != soma__region_arena(p) || pool->arena->heap != owner ||
                      pool->szidx >= SOMA_NUM_ALL_CLASSES))
        soma__fatal("soma_free(%p): the record of its pool %p is corrupted (it names arena "
                    "%p, heap %p, class %u; the arena map says arena %p): something wrote "
                    "over soma's own memory",
                    p, (void *)pool->base, (void *)pool->arena, (void *)owner, pool->szidx,
                    (void *)soma__region_arena(p));
    /* (Not checked: that p lies below the pool's virgin blocks.  The owner
     * may be carving them right now, and nextoffset is its own.) */
    if (SOMA_UNLIKELY(!soma__pool_starts_block(pool, p, SOMA_POOL_OVERHEAD)))
        soma__pool_fatal_not_block("soma_free", pool, p);
    /* (The owner's own free comes here only when the fast path found p
     * starting no block: the test above is the same, and stops it.) */
#if SOMA_MEDIUM_TAIL
    if (pool->szidx >= SOMA_SMALL_CLASSES)
        (void)soma__tail_check(pool, p, "soma_free");
    else
        soma__tail_small_check_out(pool, p, "soma_free", 0);
#endif
    soma__pool_free_remote(owner, p);
}
