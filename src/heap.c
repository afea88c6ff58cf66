/*
 * heap.c: blocks and pools of one heap.
 *
 * Allocation of class c looks at usedpools[c], the first pool of the class
 * that has a free block (pool states: see pool_t in internal.h):
 *
 *   usedpools[c] --> [pool] <-> [pool] <-> [pool]   (circular; NULL if none)
 *                       |
 *                       freeblock -> blk -> blk -> NULL   (then virgin blocks)
 *
 *   1. Fast: pop the head pool's freeblock.  If that leaves the free list
 *      empty, carve the next virgin block into it, or, if none is left, the
 *      pool is full and leaves the list.
 *   2. Slow: no used pool: take an empty pool from the arenas (arena.c) and
 *      put it at the head.  Only its first two blocks are touched.
 *
 * Free pushes the block on its pool's free list (found by masking the
 * address).  A full pool that gets a block back goes to the head of its
 * class list, so the next allocation reuses the memory just freed (it is hot
 * in cache); a pool that becomes empty goes back to its arena.
 *
 * Locking: every field of the heap and of its pools and arenas is read and
 * written with heap->lock held.  There is one default heap today, shared by
 * all threads; per-thread heaps (each pool already knows its heap) will take
 * the lock off the fast path.
 */
#include <errno.h>

#include "internal.h"

static heap_t default_heap = {.lock = PTHREAD_MUTEX_INITIALIZER};

heap_t *soma__default_heap(void)
{
    return &default_heap;
}

void soma__heap_fork(int phase)
{
    soma__fork_lock(&default_heap.lock, phase);
}

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

static void used_unlink(heap_t *heap, unsigned c, pool_t *pool)
{
    if (pool->nextpool == pool) {
        heap->usedpools[c] = NULL;
        return;
    }
    pool->prevpool->nextpool = pool->nextpool;
    pool->nextpool->prevpool = pool->prevpool;
    if (heap->usedpools[c] == pool)
        heap->usedpools[c] = pool->nextpool;
}

/* The pool's free list just ran dry: refill it with one virgin block, or, if
 * the pool is carved out, take the (now full) pool off its used list. */
static void pool_refill(heap_t *heap, pool_t *pool)
{
    if (pool->nextoffset <= pool->maxnextoffset) {
        void *bp = (char *)pool + pool->nextoffset;
        pool->nextoffset = (uint16_t)(pool->nextoffset + soma__class_size(pool->szidx));
        *(void **)bp = NULL;
        pool->freeblock = bp;
        return;
    }
    used_unlink(heap, pool->szidx, pool);
}

/* Put an empty pool to work for class c and return its first free block. */
static void *pool_start(heap_t *heap, pool_t *pool, unsigned c)
{
    used_push_front(heap, c, pool);
    pool->count = 1;
    if (pool->szidx == c) {
        /* It served this class before it emptied: its free list is intact. */
        void *bp = pool->freeblock;
        pool->freeblock = *(void **)bp;
        if (pool->freeblock == NULL)
            pool_refill(heap, pool);
        return bp;
    }
    size_t size = soma__class_size(c);
    pool->szidx = (uint16_t)c;
    char *first = (char *)pool + SOMA_POOL_OVERHEAD;
    pool->freeblock = first + size;
    *(void **)pool->freeblock = NULL;
    pool->nextoffset = (uint16_t)(SOMA_POOL_OVERHEAD + 2 * size);
    pool->maxnextoffset = (uint16_t)(SOMA_POOL_SIZE - size);
    return first;
}

void *soma__heap_malloc_small(heap_t *heap, size_t size)
{
    unsigned c = soma__size_to_class(size);
    void *bp;
    pthread_mutex_lock(&heap->lock);
    pool_t *pool = heap->usedpools[c];
    if (SOMA_LIKELY(pool != NULL)) {
        /* Invariant: a used pool has a free block. */
        bp = pool->freeblock;
        pool->count++;
        pool->freeblock = *(void **)bp;
        if (SOMA_UNLIKELY(pool->freeblock == NULL))
            pool_refill(heap, pool);
    } else {
        pool = soma__arena_take_pool(heap);
        bp = pool ? pool_start(heap, pool, c) : NULL;
    }
    pthread_mutex_unlock(&heap->lock);
    return bp;
}

void soma__heap_free_small(pool_t *pool, void *p)
{
    heap_t *heap = pool->heap;
    if (SOMA_UNLIKELY(heap == NULL)) {
        /* The pool was never carved: its header is still the zero page the
         * arena was mapped with.  (Read without the lock: a live block's
         * pool has had its heap set since before the block was handed out.) */
        soma__fatal("soma_free(%p): not an allocated block (a pointer into a part of an "
                    "arena that was never handed out)",
                    p);
    }
    pthread_mutex_lock(&heap->lock);
    if (SOMA_UNLIKELY(pool->count == 0)) {
        /* No block of this pool is allocated, so p cannot be a live block.
         * Going on would wrap count and hand the block out twice. */
        soma__fatal("soma_free(%p): not an allocated block (double free, or a pointer "
                    "into an empty pool)",
                    p);
    }
    void *last = pool->freeblock;
    *(void **)p = last;
    pool->freeblock = p;
    pool->count--;
    if (SOMA_UNLIKELY(last == NULL)) {
        /* It was full.  A pool holds at least 7 blocks, so it is not empty
         * now: it becomes used, at the head of its list. */
        used_push_front(heap, pool->szidx, pool);
    } else if (SOMA_UNLIKELY(pool->count == 0)) {
        used_unlink(heap, pool->szidx, pool);
        soma__arena_return_pool(heap, pool);
    }
    pthread_mutex_unlock(&heap->lock);
}
