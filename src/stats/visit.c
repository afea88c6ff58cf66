/*
 * visit.c: soma_blocks_visit, a callback for every block in use.
 *
 * Which blocks are in use is read from the same structures as the
 * statistics (walk.c), one level down: a pool's count says how many, its
 * free list and its virgin region say which.  A carved block (below
 * nextoffset) is in use unless it is on the pool's free list; the virgin
 * blocks above were never handed out.  So for each pool with a block in
 * use the walk takes a bitmap of its free list (pool/peek.c, which also
 * copes with an owner changing the pool as it is read), and the blocks not
 * in it are the pool's blocks in use.  Their number is the pool's count,
 * which is why, when nothing moves, the visit's counts are the
 * statistics' to the block.  The large blocks are the registry's
 * (malloc/large.c).
 *
 * The program's callback may do anything soma allows: allocate and free,
 * into the very heap being walked, take statistics, visit again.  So it is
 * never called with a lock of soma's held, and the walk is in batches:
 *
 *   lock      heaps_lock and a heap's lock (and debug mode's lock)
 *   gather    the blocks in use of the heap's next pool that has any, into
 *             the batch on the stack (at most one pool's: 1,021 pointers
 *             with 16 KiB pools; the walk allocates nothing)
 *   unlock
 *   call back once per block of the batch, then lock again and go on
 *
 * Between two batches anything may change: the heap may be destroyed, its
 * arenas released and their records reused, new ones made.  So the walk's
 * place is kept in terms that outlive the locks: the heap by its serial
 * (soma__heap_step), the arena by its serial in its set, with the set's
 * count of arenas released since (while it has not moved, the arena
 * remembered is still listed), and the pool by its index in the arena.
 * Heaps and arenas are listed newest first, so a place lost to a release
 * is found again as the first one older than it; what was made during the
 * walk lies before the place and is not visited.  The large blocks are
 * batched too, their place an address (soma__large_batch).
 *
 * At the start, the caller's own pending cross-thread frees and those of
 * exited threads' heaps are collected, as soma_stats_get does, so that
 * both count the same blocks as in use.
 *
 * Debug mode: the program's blocks are the debug blocks inside soma's.
 * Each batch is gathered under debug mode's lock, which every call takes
 * there, so the pools are still while they are read; a block in use in its
 * pool is reported if its header says live, as the pointer the program
 * was given and the size it asked for (soma__debug_visible).
 */
#include "base/start.h"
#include "stats/stats.h"

/* The most blocks a pool holds: one batch. */
#define POOL_MAX ((SOMA_POOL_SIZE - SOMA_POOL_OVERHEAD) / SOMA_ALIGNMENT)
#define LARGE_MAX 256 /* large blocks per batch */

typedef struct {
    /* The place in the heap being walked (what outlives the locks). */
    unsigned kind;    /* the arena set */
    arena_t *arena;   /* the arena of the last batch; NULL: none yet in this set */
    size_t serial;    /* its serial */
    size_t released;  /* its set's arenas released then */
    unsigned pool;    /* the next pool's index in it */
    int debug;
    /* The batch: one pool's blocks in use, or large blocks. */
    const void *heap;
    int cls;
    size_t n;
    union {
        struct {
            void *block[POOL_MAX];
            uint16_t size[POOL_MAX]; /* debug mode: the sizes asked */
        } pool;
        large_block_t large[LARGE_MAX];
    } u;
} visit_t;

_Static_assert(SOMA_MEDIUM_MAX <= UINT16_MAX, "a pool block's size fits the batch");

static size_t released(const arena_set_t *s)
{
    return s->arenas_allocated_total - s->arenas_current;
}

/* The arena to go on from in set s (heap lock held): the one remembered,
 * if no arena of the set has been released since (so it is still listed);
 * else the first one not newer than it, from its first pool unless it is
 * the same one. */
static arena_t *resume(const arena_set_t *s, visit_t *v)
{
    if (v->arena == NULL) {
        v->pool = 0;
        return s->all_arenas;
    }
    if (released(s) == v->released)
        return v->arena;
    arena_t *a = s->all_arenas;
    while (a != NULL && a->serial > v->serial)
        a = a->next_all;
    if (a == NULL || a->serial != v->serial)
        v->pool = 0;
    return a;
}

/* The blocks in use of pool into the batch; how many. */
static size_t take(visit_t *v, const pool_t *pool)
{
    uint64_t used[SOMA_POOL_BITMAP_WORDS];
    if (pool->szidx >= SOMA_NUM_ALL_CLASSES || soma__pool_count(pool) == 0 ||
        soma__peek_pool(pool, used) <= 0)
        return 0;
    size_t size = soma__sizeclass_size(pool->szidx);
    char *first = pool->base + SOMA_POOL_OVERHEAD;
    size_t n = 0;
    for (size_t w = 0; w < SOMA_POOL_BITMAP_WORDS; w++) {
        for (uint64_t bits = used[w]; bits != 0; bits &= bits - 1) {
            char *b = first + (w * 64 + (size_t)__builtin_ctzll(bits)) * size;
            if (!v->debug) {
                v->u.pool.block[n++] = b;
                continue;
            }
            void *user;
            size_t asked;
            if (soma__debug_visible(b, size, 0, &user, &asked)) {
                v->u.pool.block[n] = user;
                v->u.pool.size[n++] = (uint16_t)asked;
            }
        }
    }
    v->cls = pool->szidx;
    return n;
}

/* One step in heap (its lock held): the next pool with blocks in use, from
 * the place, into the batch.  1 if one was found (the place is then past
 * it: stay on this heap), 0 if the heap has no more. */
static int gather(heap_t *heap, int again, void *arg)
{
    visit_t *v = arg;
    if (!again) {
        v->kind = 0;
        v->arena = NULL;
    }
    v->heap = heap;
    v->n = 0;
    for (; v->kind < SOMA_NUM_KINDS; v->kind++, v->arena = NULL) {
        const arena_set_t *s = &heap->sets[v->kind];
        for (arena_t *a = resume(s, v); a != NULL; a = a->next_all, v->pool = 0) {
            size_t carved = (a->pool_address - a->address) / SOMA_POOL_SIZE;
            while (v->pool < carved) {
                v->n = take(v, &a->pools[v->pool++]);
                if (v->n > 0) {
                    v->arena = a;
                    v->serial = a->serial;
                    v->released = released(s);
                    return 1;
                }
            }
        }
    }
    return 0;
}

/* The batch, to the program (no lock held). */
static int call_back(const visit_t *v, int large, soma_visit_fn fn, void *arg)
{
    if (v->n == 0) /* a step that left a heap */
        return 0;
    size_t size = large ? 0 : soma__sizeclass_size((unsigned)v->cls);
    for (size_t i = 0; i < v->n; i++) {
        soma_block_info b;
        if (large) {
            b = (soma_block_info){(void *)v->u.large[i].p, v->u.large[i].n, -1,
                                  v->u.large[i].owner};
        } else {
            b = (soma_block_info){v->u.pool.block[i], v->debug ? v->u.pool.size[i] : size,
                                  (int)soma__sizeclass_public((unsigned)v->cls), v->heap};
        }
        int rc = fn(&b, arg);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static void debug_lock(const visit_t *v)
{
    if (v->debug)
        soma__heap_debug_lock();
}

static void debug_unlock(const visit_t *v)
{
    if (v->debug)
        soma__heap_debug_unlock();
}

/* soma__heap_foreach's tidying of orphans is the work; nothing more. */
static void tidied(heap_t *heap, void *arg)
{
    (void)heap, (void)arg;
}

/* Debug mode: a large block as the program has it (shard lock held). */
static int large_visible(large_block_t *b)
{
    void *user;
    size_t asked;
    if (!soma__debug_visible((void *)b->p, b->n, 1, &user, &asked))
        return 0;
    b->p = (uintptr_t)user;
    b->n = asked;
    return 1;
}

/* The registry's large blocks, batch by batch: all of them (only NULL),
 * or those asked of the explicit heap `only`. */
static int visit_large(visit_t *v, const heap_t *only, soma_visit_fn fn, void *arg)
{
    large_place_t place = {0, 0};
    for (;;) {
        debug_lock(v);
        size_t n = soma__large_batch(&place, v->u.large, LARGE_MAX, v->debug ? large_visible : NULL);
        debug_unlock(v);
        if (n == 0)
            return 0;
        v->n = 0;
        for (size_t i = 0; i < n; i++)
            if (only == NULL || v->u.large[i].owner == only)
                v->u.large[v->n++] = v->u.large[i];
        int rc = call_back(v, 1, fn, arg);
        if (rc != 0)
            return rc;
    }
}

static int visit_all(visit_t *v, soma_visit_fn fn, void *arg)
{
    /* What soma_stats_get collects first (walk.c): the caller's pending
     * cross-thread frees, and exited threads' (soma__heap_foreach's tidy). */
    heap_t *mine = soma__heap_tls;
    if (mine != &soma__heap_empty)
        soma__heap_collect(mine);
    soma__heap_foreach(tidied, NULL, 1);

    heap_place_t at = {0};
    for (;;) {
        debug_lock(v);
        v->n = 0;
        int more = soma__heap_step(&at, gather, v);
        debug_unlock(v);
        if (!more)
            break;
        int rc = call_back(v, 0, fn, arg);
        if (rc != 0)
            return rc;
    }
    return visit_large(v, NULL, fn, arg);
}

/* One explicit heap, whose user the caller is (soma.h): no other thread
 * changes its pools, and it stays listed unless the callback destroys it,
 * which soma.h forbids. */
static int visit_heap(visit_t *v, heap_t *heap, soma_visit_fn fn, void *arg)
{
    soma__heap_collect(heap);
    v->kind = 0;
    v->arena = NULL;
    for (;;) {
        debug_lock(v);
        pthread_mutex_lock(&heap->lock);
        int more = gather(heap, 1, v);
        pthread_mutex_unlock(&heap->lock);
        debug_unlock(v);
        if (!more)
            break;
        int rc = call_back(v, 0, fn, arg);
        if (rc != 0)
            return rc;
    }
    /* Its large blocks: the registry's, those asked of it (no walk of the
     * registry when it has none). */
    if (atomic_load_explicit(&heap->large_blocks, memory_order_relaxed) == 0)
        return 0;
    return visit_large(v, heap, fn, arg);
}

int soma_blocks_visit(soma_heap *h, soma_visit_fn fn, void *arg)
{
    heap_t *heap = (heap_t *)h;
    if (fn == NULL || (heap != NULL && (!heap->explicit_heap || heap->destroyed))) {
        errno = EINVAL;
        return -1;
    }
    soma__start();
    visit_t v;
    v.debug = soma__options.debug != 0;
    return heap != NULL ? visit_heap(&v, heap, fn, arg) : visit_all(&v, fn, arg);
}
