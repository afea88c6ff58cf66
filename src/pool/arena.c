/*
 * arena.c: arenas, and the order in which a heap takes pools from them.
 *
 * A heap keeps its arenas that still have a free pool on `usable_arenas`, a
 * doubly linked list sorted by nfreepools, ascending:
 *
 *   usable_arenas -> [A: 1 free] <-> [B: 3 free] <-> [C: 3 free] <-> [D: 64 free]
 *                                                     ^ nfp2lasta[3]   ^ nfp2lasta[64]
 *
 * New pools always come from the head, the fullest arena, so allocation packs
 * into busy arenas and the nearly empty ones get the chance to drain and be
 * given back.  That ordering is what lets a program's memory go back down.
 * An arena with no free pool is on no list; one whose pools are all free is
 * given back to the OS, at once unless it is the last on the list
 * (SOMA_KEEP_ONE_EMPTY_ARENA) or SOMA_ARENA_DECAY_MS keeps it for a while.
 * Giving an arena back returns its memory and keeps its addresses: its slot
 * of soma's reserved range (os/region.c) waits there for a later arena.
 *
 * A heap has two such sets of arenas (arena_set_t): one for the small
 * classes, one for the medium classes (base/config.h).  They never share an
 * arena, so CPython's figures, computed from the small set, stay pymalloc's.
 *
 * Keeping the order costs O(1) per change: an arena's count moves by one at a
 * time, so it only ever has to hop over the run of arenas that share its old
 * count, and nfp2lasta[n] names the last arena of the run with n free pools.
 *
 * arena_t records live outside the arenas, in slabs of metadata mapped from
 * the OS (soma cannot call malloc for its own bookkeeping: in the override it
 * is malloc).
 * All functions here run with the heap's lock held; the slab has its own lock
 * because heaps share it.
 */
#include <errno.h>
#include <time.h>

#include "base/process.h"
#include "base/start.h"
#include "base/wake.h"
#include "os/os.h"
#include "os/slab.h"
#include "pool/pool.h"

/* ---- arena_t records ---- */

static pthread_mutex_t slab_lock = PTHREAD_MUTEX_INITIALIZER;

/* Process-wide arena counters, one set per kind, changed only when an arena
 * is mapped or given back (each heap keeps its own too, under its lock). */
static _Atomic size_t arenas_total[SOMA_NUM_KINDS], arenas_now[SOMA_NUM_KINDS],
    arenas_peak[SOMA_NUM_KINDS], returned_total[SOMA_NUM_KINDS];

size_t soma__arena_returned_total(unsigned kind)
{
    return atomic_load_explicit(&returned_total[kind], memory_order_relaxed);
}

void soma__arena_counts(unsigned kind, size_t *total, size_t *current, size_t *highwater)
{
    *total = atomic_load_explicit(&arenas_total[kind], memory_order_relaxed);
    *current = atomic_load_explicit(&arenas_now[kind], memory_order_relaxed);
    *highwater = atomic_load_explicit(&arenas_peak[kind], memory_order_relaxed);
}
static slab_t records = {.size = sizeof(arena_t)}; /* slab_lock */

static arena_t *record_new(void)
{
    pthread_mutex_lock(&slab_lock);
    arena_t *a = soma__slab_take(&records);
    pthread_mutex_unlock(&slab_lock);
    return a;
}

static void record_free(arena_t *a)
{
    pthread_mutex_lock(&slab_lock);
    soma__slab_give(&records, a);
    pthread_mutex_unlock(&slab_lock);
}

/* ---- making arenas and giving them back ---- */

static void arena_fork(int phase)
{
    soma__start_fork_lock(&slab_lock, phase);
}
SOMA_HOOK(arena, SOMA_ORDER_ARENA, NULL, arena_fork);

static arena_t *arena_new(heap_t *heap, unsigned kind)
{
    arena_set_t *s = &heap->sets[kind];
    arena_t *a = record_new();
    if (a == NULL)
        return NULL;
    a->heap = heap; /* before the arena is published: a free may read it */
    a->kind = kind;
    a->address = soma__region_map(a);
    if (a->address == 0) {
        record_free(a);
        return NULL;
    }
    /* A block finds its pool's record from a few bits of its address
     * (pool.h: soma__pool_in): the arena must be arena-aligned, as the
     * reservation makes it (os/region.c). */
    if (a->address & (SOMA_ARENA_SIZE - 1))
        soma__fatal("arena %p is not %zu-byte aligned", (void *)a->address, SOMA_ARENA_SIZE);
    a->pool_address = a->address;
    a->ntotalpools = (unsigned)SOMA_POOLS_PER_ARENA;
    a->nfreepools = a->ntotalpools;
    a->next_all = s->all_arenas;
    if (s->all_arenas)
        s->all_arenas->prev_all = a;
    s->all_arenas = a;
    a->serial = ++s->arenas_allocated_total;
    if (++s->arenas_current > s->arenas_highwater)
        s->arenas_highwater = s->arenas_current;
    atomic_fetch_add_explicit(&arenas_total[kind], 1, memory_order_relaxed);
    size_t now = atomic_fetch_add_explicit(&arenas_now[kind], 1, memory_order_relaxed) + 1;
    size_t peak = atomic_load_explicit(&arenas_peak[kind], memory_order_relaxed);
    while (now > peak && !atomic_compare_exchange_weak_explicit(&arenas_peak[kind], &peak, now,
                                                                memory_order_relaxed,
                                                                memory_order_relaxed))
        ;
    return a;
}

/* Give the arena back: its pages return to the OS, its slot stays reserved
 * for a later arena (soma__region_unmap), its record goes back to the slab.
 * The caller takes it off the usable list (soma__arena_release_all drops the
 * whole list instead). */
static void arena_forget(heap_t *heap, arena_t *a)
{
    arena_set_t *s = &heap->sets[a->kind];
    if (a->prev_all)
        a->prev_all->next_all = a->next_all;
    else
        s->all_arenas = a->next_all;
    if (a->next_all)
        a->next_all->prev_all = a->prev_all;
    s->arenas_current--;
    atomic_fetch_sub_explicit(&arenas_now[a->kind], 1, memory_order_relaxed);
}

static void arena_release(heap_t *heap, arena_t *a)
{
    soma__region_unmap(a->address);
    arena_forget(heap, a);
    record_free(a);
}

/* The same for a caller that must never wait on a lock (the purge
 * thread), in two steps: arena_unmap_try tries the slab's lock and the
 * region's (in their order) and gives the arena's memory back only if
 * both were free (1; the slab's lock stays held), else does nothing (0);
 * arena_release_tried then drops the record and the lock. */
static int arena_unmap_try(arena_t *a)
{
    if (pthread_mutex_trylock(&slab_lock) != 0)
        return 0;
    if (!soma__region_unmap_try(a->address)) {
        pthread_mutex_unlock(&slab_lock);
        return 0;
    }
    return 1;
}

static void arena_release_tried(heap_t *heap, arena_t *a)
{
    arena_forget(heap, a);
    soma__slab_give(&records, a);
    pthread_mutex_unlock(&slab_lock);
}

/* ---- decay: how wholly free arenas go back to the OS ---- */


static void usable_unlink(arena_set_t *s, arena_t *a);

/* Wholly free arenas sit at the tail of usable_arenas (the list is sorted
 * by free pools), and nfp2lasta[n] names the tail when it is one.  Walk
 * back from there and give back those that have been empty for the decay
 * time (all of them if `all`), keeping the last one unless `all` (CPython's
 * rule: one empty arena stops a loop that fills and empties an arena's worth
 * of blocks from making and releasing an arena on every turn).  Called when
 * an arena has just become wholly free, so it runs only while the program
 * frees, and by the trims.  `try`: arenas go only if the slab's and the
 * region's locks are free at once (arena_unmap_try); returns 1 if one
 * could not go for that. */
static int release_expired(heap_t *heap, arena_set_t *s, int all, int try)
{
    arena_t *a = s->nfp2lasta[SOMA_POOLS_PER_ARENA];
    if (a == NULL || a->nfreepools != a->ntotalpools)
        return 0;
    uint64_t now = soma__process_now_ms();
    int keep = !all && SOMA_KEEP_ONE_EMPTY_ARENA;
    while (a != NULL && a->nfreepools == a->ntotalpools) {
        arena_t *prev = a->prevarena;
        int last = a->nextarena == NULL;
        if (all || ((!last || !keep) && now - a->empty_since_ms >= (uint64_t)soma__options.decay_ms)) {
            if (try && !arena_unmap_try(a))
                return 1; /* busy: the arena stays, for the next sweep */
            if (s->nfp2lasta[a->nfreepools] == a)
                s->nfp2lasta[a->nfreepools] =
                    (prev && prev->nfreepools == a->nfreepools) ? prev : NULL;
            usable_unlink(s, a);
            if (try)
                arena_release_tried(heap, a);
            else
                arena_release(heap, a);
        }
        a = prev;
    }
    return 0;
}

/* ---- the usable list ---- */

static void usable_unlink(arena_set_t *s, arena_t *a)
{
    if (a->prevarena)
        a->prevarena->nextarena = a->nextarena;
    else
        s->usable_arenas = a->nextarena;
    if (a->nextarena)
        a->nextarena->prevarena = a->prevarena;
}

static void usable_insert_after(arena_set_t *s, arena_t *at, arena_t *a)
{
    a->prevarena = at;
    if (at) {
        a->nextarena = at->nextarena;
        at->nextarena = a;
    } else {
        a->nextarena = s->usable_arenas;
        s->usable_arenas = a;
    }
    if (a->nextarena)
        a->nextarena->prevarena = a;
}

/* A pool for the heap: from the fullest usable arena, mapping a new arena
 * only when none has a free pool.  Returns NULL with errno = ENOMEM. */
pool_t *soma__arena_take_pool(heap_t *heap, unsigned kind)
{
    arena_set_t *s = &heap->sets[kind];
    arena_t *a = s->usable_arenas;
    if (a == NULL) {
        a = arena_new(heap, kind);
        if (a == NULL)
            return NULL;
        usable_insert_after(s, NULL, a);
        s->nfp2lasta[a->nfreepools] = a;
    }
    /* The head has the fewest free pools, so after losing one it is the only
     * arena with nf - 1 and stays at the head: only the fingers change. */
    unsigned nf = a->nfreepools;
    if (s->nfp2lasta[nf] == a)
        s->nfp2lasta[nf] = NULL;
    if (nf > 1)
        s->nfp2lasta[nf - 1] = a;

    /* A resident empty pool first, then one whose pages went back (as
     * untouched as a never-carved one, and it keeps the arena compact). */
    pool_t *pool = a->freepools;
    if (pool != NULL) {
        a->freepools = pool->nextpool;
    } else if ((pool = a->returned) != NULL) {
        a->returned = pool->nextpool;
        heap->grown += SOMA_POOL_SIZE;
    } else {
        heap->grown += SOMA_POOL_SIZE;
        pool = soma__pool_in(a, (void *)a->pool_address);
        pool->base = (char *)a->pool_address;
        a->pool_address += SOMA_POOL_SIZE;
        pool->arena = a;
        pool->heap = heap;
        soma__pool_set_class(pool, SOMA_NO_CLASS);
        pool->returned = 0;
        soma__pool_set_count(pool, 0);
    }
    if (--a->nfreepools == 0)
        usable_unlink(s, a);
    return pool;
}

/* The pool just became empty (its last block was freed) and is off its used
 * list: cache it in its arena, re-sort the arena, give the arena back to the
 * OS if every pool in it is now free (and the rules above allow it). */
void soma__arena_return_pool(heap_t *heap, pool_t *pool, uint64_t emptied_ms)
{
    arena_t *a = pool->arena;
    arena_set_t *s = &heap->sets[a->kind];
    pool->nextpool = a->freepools;
    a->freepools = pool;
    /* Its decay begins: the purge thread, if it sleeps with nothing to
     * wait for, must learn of it (a load, and rarely a signal).  Without
     * a decay its age is never read (pools' pages go back only when all
     * are asked for), nor is the clock. */
    if (soma__options.decay_ms > 0) {
        if (emptied_ms == 0)
            emptied_ms = soma__process_now_ms();
        pool->emptied_ms = (uint32_t)emptied_ms;
        soma__wake();
        soma__wake_pool_emptied();
    }

    unsigned nf = a->nfreepools;
    /* a leaves the run of arenas with nf free pools; if it was that run's
     * last, the finger moves back to its predecessor when that one is in the
     * run too (nf == 0: a is on no list and no finger names it). */
    if (nf > 0 && s->nfp2lasta[nf] == a) {
        arena_t *prev = a->prevarena;
        s->nfp2lasta[nf] = (prev && prev->nfreepools == nf) ? prev : NULL;
    }
    arena_t *lastnf = s->nfp2lasta[nf]; /* after the fix: a run a may hop over */
    a->nfreepools = ++nf;

    if (nf == a->ntotalpools) {
        if (soma__options.decay_ms == 0 && (a->nextarena != NULL || !SOMA_KEEP_ONE_EMPTY_ARENA)) {
            /* Wholly free and not the last usable arena: give it back.  No
             * finger names it (its count just became nf). */
            usable_unlink(s, a); /* nf - 1 >= 1: it was on the list */
            arena_release(heap, a);
            return;
        }
        /* Kept for now; release_expired gives it back once it has stayed
         * empty for the decay time.  A whole arena waiting is worth the
         * purge thread at once (base/wake.h). */
        a->empty_since_ms = emptied_ms ? emptied_ms : soma__process_now_ms();
        soma__wake_make_urgent();
    }
    if (nf == 1) {
        /* It was full, on no list.  One free pool is the smallest count
         * there is: it goes to the head, ahead of any other arena with 1. */
        usable_insert_after(s, NULL, a);
        if (s->nfp2lasta[1] == NULL)
            s->nfp2lasta[1] = a;
        return;
    }
    if (a->nextarena != NULL && a->nextarena->nfreepools < nf) {
        /* The next arena has the old count nf - 1: hop over that run. */
        usable_unlink(s, a);
        usable_insert_after(s, lastnf, a);
    }
    if (s->nfp2lasta[nf] == NULL)
        s->nfp2lasta[nf] = a;
    if (nf == a->ntotalpools)
        (void)release_expired(heap, s, 0, 0);
}

/* The pages of arena a's empty pools that have stayed empty for the decay
 * (every one if `all`), `limit` pools at most, go back to the OS; the
 * pools move to their arena's returned list and are put to work again like
 * any empty pool (pool.c: pool_start sets them up afresh).  Pools that
 * touch go back in one call.  Heap lock held.  Returns how many pools;
 * *next_ms is lowered to the earliest expiry of the pools kept. */
static size_t purge_arena(arena_t *a, uint64_t now, int all, uint64_t *next_ms, size_t limit)
{
    uint32_t decay = (uint32_t)soma__options.decay_ms, now32 = (uint32_t)now;
    uint64_t gone = 0; /* bit i: pools[i] */
    size_t n = 0;
    for (pool_t *pool = a->freepools; pool != NULL && n < limit; pool = pool->nextpool) {
        uint32_t age = now32 - pool->emptied_ms;
        if (!all && age < decay) {
            if (now + (decay - age) < *next_ms)
                *next_ms = now + (decay - age);
            continue;
        }
        gone |= (uint64_t)1 << (pool - a->pools);
        n++;
    }
    /* A pool is returned only if its pages went: the kernel refuses locked
     * ones (a program's mlock of a block), which keep their bytes, and
     * pool_start trusts a returned pool to read as zeros (no heads of an
     * old class left: pool.c, forget_heads). */
    uint64_t done = 0;
    while (gone != 0) {
        unsigned first = (unsigned)__builtin_ctzll(gone), end = first;
        while (end < SOMA_POOLS_PER_ARENA && (gone >> end & 1))
            end++;
        uint64_t run = (end < 64 ? ((uint64_t)1 << end) - 1 : ~(uint64_t)0) &
                       ~(((uint64_t)1 << first) - 1);
        if (soma__os_purge(a->pools[first].base, (size_t)(end - first) * SOMA_POOL_SIZE) == 0)
            done |= run;
        gone &= ~run;
    }
    n = 0;
    for (pool_t **at = &a->freepools; *at != NULL;) {
        pool_t *pool = *at;
        if (!(done >> (pool - a->pools) & 1)) {
            at = &pool->nextpool;
            continue;
        }
        *at = pool->nextpool;
        pool->nextpool = a->returned;
        a->returned = pool;
        pool->returned = 1;
        n++;
    }
    return n;
}

/* purge_arena over every arena of set s (heap lock held). */
static size_t purge_pools(arena_set_t *s, uint64_t now, int all, uint64_t *next_ms)
{
    size_t n = 0;
    for (arena_t *a = s->usable_arenas; a != NULL; a = a->nextarena)
        n += purge_arena(a, now, all, next_ms, SIZE_MAX);
    s->pools_returned_total += n;
    return n;
}

#define SHED_ARENAS 256

size_t soma__arena_shed(heap_t *heap, size_t bytes)
{
    if (pthread_mutex_trylock(&heap->lock) != 0)
        return 0;
    uint64_t now = soma__process_now_ms(), ignored = UINT64_MAX;
    size_t want = (bytes + SOMA_POOL_SIZE - 1) / SOMA_POOL_SIZE, n = 0;
    for (unsigned k = 0; k < SOMA_NUM_KINDS && n < want; k++) {
        arena_set_t *s = &heap->sets[k];
        /* The list's tail: the last of the run with the most free pools
         * (the list is sorted by them; nfp2lasta names each run's last). */
        arena_t *a = NULL;
        for (unsigned nf = SOMA_POOLS_PER_ARENA; nf > 0 && a == NULL; nf--)
            a = s->nfp2lasta[nf];
        /* At most SHED_ARENAS of them: a large heap whose empty pools have
         * mostly gone back already must not pay a walk of every arena at
         * each fresh large mapping (what is found by then is shed). */
        size_t m = 0;
        for (unsigned seen = 0; a != NULL && n + m < want && seen < SHED_ARENAS;
             a = a->prevarena, seen++)
            m += purge_arena(a, now, 1, &ignored, want - n - m);
        s->pools_returned_total += m;
        atomic_fetch_add_explicit(&returned_total[k], m, memory_order_relaxed);
        n += m;
    }
    pthread_mutex_unlock(&heap->lock);
    return n * SOMA_POOL_SIZE;
}

/* The earliest expiry among the wholly free arenas release_expired kept
 * (but the last, which stays), into *next_ms (heap lock held). */
static void arenas_next(const arena_set_t *s, uint64_t *next_ms)
{
    uint64_t decay = (uint64_t)soma__options.decay_ms;
    for (const arena_t *a = s->nfp2lasta[SOMA_POOLS_PER_ARENA];
         a != NULL && a->nfreepools == a->ntotalpools; a = a->prevarena)
        if ((a->nextarena != NULL || !SOMA_KEEP_ONE_EMPTY_ARENA) &&
            a->empty_since_ms + decay < *next_ms)
            *next_ms = a->empty_since_ms + decay;
}

#define TRY_AGAIN_MS 10

size_t soma__arena_trim_locked(heap_t *heap, unsigned all, uint64_t *next_ms)
{
    uint64_t now = soma__process_now_ms(), ignored = UINT64_MAX;
    if (next_ms == NULL)
        next_ms = &ignored;
    size_t bytes = 0;
    for (unsigned k = 0; k < SOMA_NUM_KINDS; k++) {
        arena_set_t *s = &heap->sets[k];
        size_t before = s->arenas_current;
        int busy = release_expired(heap, s, (all & SOMA_TRIM_ARENAS) != 0, (all & SOMA_TRIM_TRY) != 0);
        bytes += (before - s->arenas_current) * SOMA_ARENA_SIZE;
        if (soma__options.decay_ms > 0 || (all & SOMA_TRIM_POOLS)) {
            size_t n = purge_pools(s, now, (all & SOMA_TRIM_POOLS) != 0, next_ms);
            atomic_fetch_add_explicit(&returned_total[k], n, memory_order_relaxed);
            bytes += n * SOMA_POOL_SIZE;
        }
        if (busy) {
            /* an expired arena stayed for a busy lock: look again soon, not
             * at once (arenas_next would name a time already past) */
            if (now + TRY_AGAIN_MS < *next_ms)
                *next_ms = now + TRY_AGAIN_MS;
        } else if (soma__options.decay_ms > 0) {
            arenas_next(s, next_ms);
        }
    }
    return bytes;
}

/* Give back what a heap keeps for reuse and has expired (pool.h); with
 * SOMA_TRIM_ARENAS, for a heap whose thread has exited and so has nobody
 * to reuse them, every empty arena. */
size_t soma__arena_trim(heap_t *heap, unsigned all, uint64_t *next_ms)
{
    pthread_mutex_lock(&heap->lock);
    size_t bytes = soma__arena_trim_locked(heap, all, next_ms);
    pthread_mutex_unlock(&heap->lock);
    return bytes;
}

/* soma_heap_destroy: give back every arena of the heap, small and medium;
 * its pools, blocks and pending frees go with them (the memory returns to the
 * OS, the slots stay reserved for later arenas).  The heap is left empty, as
 * if new. */
void soma__arena_release_all(heap_t *heap)
{
    pthread_mutex_lock(&heap->lock);
    for (unsigned k = 0; k < SOMA_NUM_KINDS; k++) {
        arena_set_t *s = &heap->sets[k];
        while (s->all_arenas != NULL)
            arena_release(heap, s->all_arenas);
        s->usable_arenas = NULL;
        memset(s->nfp2lasta, 0, sizeof s->nfp2lasta);
    }
    memset(heap->usedpools, 0, sizeof heap->usedpools);
    atomic_store_explicit(&heap->remote, NULL, memory_order_relaxed);
    pthread_mutex_unlock(&heap->lock);
}
