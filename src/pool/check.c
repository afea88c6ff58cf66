/*
 * check.c: a full consistency check of one heap, for tests and debugging.
 * It verifies every invariant the fast paths rely on without checking:
 *
 *   - each of the heap's two arena sets (small and medium classes) holds
 *     only arenas of its kind, and their pools serve only classes of it;
 *   - usable_arenas is sorted by nfreepools, ascending, doubly linked, and
 *     holds exactly the arenas with nfreepools > 0;
 *   - nfp2lasta[n] is the last arena on the list with n free pools, or NULL
 *     when there is none;
 *   - with no decay, at most one arena is wholly free, and it is the last
 *     usable one (with a decay, wholly free arenas are the list's tail);
 *   - an arena's nfreepools = its empty carved pools + its never-carved pools,
 *     and its freepools and returned lists together hold exactly its empty
 *     carved pools: those whose pages went back (returned set) on the
 *     second, the others on the first;
 *   - a used pool is not marked returned;
 *   - a pool with count 0 is on its arena's freepools, or parked: alone on
 *     its class list, and only with a decay;
 *   - every used pool (0 < count < capacity) is on usedpools[its class] and
 *     has a free block; a full pool is on its list unless marked unlisted;
 *     the head of a list has a free block; each pool's free list has
 *     capacity - count - (virgin blocks) entries, all inside the pool, aligned
 *     to the class size, and none twice;
 *   - the arena map knows every arena.
 *
 * Returns 0 when all hold; otherwise writes the first broken invariant into
 * `why` and returns -1.  Takes the heap lock (the _locked form: the caller
 * holds it); O(everything), never used on
 * an allocation path.
 */
#include <stdio.h>

#include "pool/pool.h"
#include "pool/tail.h"

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        snprintf(why, whylen, __VA_ARGS__);                                                        \
        return -1;                                                                                 \
    } while (0)

static int in_used_list(heap_t *heap, const pool_t *pool)
{
    const pool_t *head = heap->usedpools[pool->szidx];
    if (head == NULL)
        return 0;
    const pool_t *q = head;
    do {
        if (q == pool)
            return 1;
        q = q->nextpool;
    } while (q != head);
    return 0;
}

static int check_pool(heap_t *heap, const pool_t *pool, char *why, size_t whylen)
{
    if (pool->szidx >= SOMA_NUM_ALL_CLASSES)
        FAIL("pool %p with count %u has no class", (void *)pool->base, soma__pool_count(pool));
    if (soma__sizeclass_kind(pool->szidx) != pool->arena->kind)
        FAIL("pool %p of class %u is in an arena of the other kind", (void *)pool->base,
             soma__sizeclass_public(pool->szidx));
    size_t size = soma__sizeclass_size(pool->szidx);
    size_t cap = soma__sizeclass_capacity(pool->szidx);
    unsigned count = soma__pool_count(pool);
    int unlisted = (soma__pool_count_raw(pool) & SOMA_POOL_UNLISTED) != 0;
    if (count > cap)
        FAIL("pool %p: count %u above capacity %zu", (void *)pool->base, count, cap);
    size_t virgin = 0;
    if (pool->nextoffset <= soma__pool_max_offset(pool))
        virgin = (soma__pool_max_offset(pool) - pool->nextoffset) / size + 1;
    if (!soma__pool_canary_ok(pool))
        FAIL("pool %p: its header's check word is overwritten (an underflow of its first "
             "block %p?)",
             (void *)pool->base, (void *)(pool->base + SOMA_POOL_OVERHEAD));
#if SOMA_MEDIUM_TAIL
    /* A tailed small twin's carved blocks, free or in use, all keep their
     * head (tail.h): written once, at carve (the first block's is the
     * check word, just checked), and the pool's last block keeps the head
     * of the block that would follow it once the pool is carved whole. */
    if (soma__sizeclass_small_tailed(pool->szidx)) {
        size_t end = pool->nextoffset > soma__pool_max_offset(pool) ? pool->nextoffset
                                                                      : pool->nextoffset - size;
        for (size_t off = SOMA_POOL_OVERHEAD + size; off <= end; off += size)
            if (!soma__tail_small_ok(pool->base + off)) {
                if (off > soma__pool_max_offset(pool))
                    FAIL("pool %p (class %u): the last 8 bytes of its last block %p, soma's, "
                         "are overwritten (an overflow of that block)",
                         (void *)pool->base, soma__sizeclass_public(pool->szidx),
                         (void *)(pool->base + off - size));
                FAIL("pool %p (class %u): the 8 bytes before its block %p, soma's, are "
                     "overwritten (an underflow of that block, or an overflow of the one before "
                     "it, %p)",
                     (void *)pool->base, soma__sizeclass_public(pool->szidx),
                     (void *)(pool->base + off), (void *)(pool->base + off - size));
            }
    }
#endif
    if (pool->recip_mul != soma__sizeclass_recip[pool->szidx].mul ||
        pool->recip_fast != soma__pool_recip_fast(pool->szidx))
        FAIL("pool %p of class %u: its reciprocal (%u, %u) is not its class's",
             (void *)pool->base, soma__sizeclass_public(pool->szidx), pool->recip_mul,
             pool->recip_fast);
    uint64_t bits[SOMA_POOL_BITMAP_WORDS];
    if (soma__check_free_map(pool, bits) < 0)
        FAIL("pool %p: its free list names a block that is not carved, or one twice (a write "
             "after free, or a double free?)",
             (void *)pool->base);
    size_t nfree = 0;
    for (size_t w = 0; w < SOMA_POOL_BITMAP_WORDS; w++)
        nfree += (size_t)__builtin_popcountll(bits[w]);
    if (nfree + virgin + count != cap)
        FAIL("pool %p (class %u): %zu free + %zu virgin + %u in use != capacity %zu",
             (void *)pool->base, soma__sizeclass_public(pool->szidx), nfree, virgin, count, cap);
    int used = count < cap;
    if (used && !soma__pool_has_free(pool))
        FAIL("used pool %p has no free block", (void *)pool->base);
    if (unlisted && used)
        FAIL("pool %p (count %u of %zu) is marked full and unlisted", (void *)pool->base, count,
             cap);
    /* A full pool is on its list until malloc finds it full (pool.h). */
    if ((unlisted == 0) != in_used_list(heap, pool))
        FAIL("pool %p (count %u of %zu, %s) %s its class list", (void *)pool->base, count, cap,
             unlisted ? "unlisted" : "listed", unlisted ? "is wrongly on" : "is missing from");
    return 0;
}

static int check_arena(heap_t *heap, arena_t *a, char *why, size_t whylen)
{
    if (soma__region_arena((void *)a->address) != a)
        FAIL("arena %p is not in the arena map", (void *)a->address);
    if (a->heap != heap)
        FAIL("arena %p names another heap", (void *)a->address);
    size_t carved = (a->pool_address - soma__pool_first(a)) / SOMA_POOL_SIZE, empty = 0;
    SOMA_POOL_FOREACH(pool, a) {
        if (pool->arena != a || pool->heap != heap)
            FAIL("pool %p does not name its arena and heap", (void *)pool->base);
        if (soma__pool_count_raw(pool) == 0) {
            if (pool->szidx < SOMA_NUM_ALL_CLASSES &&
                heap->usedpools[pool->szidx] == pool) { /* parked */
                if (pool->nextpool != pool || soma__options.decay_ms == 0)
                    FAIL("empty pool %p is on its class list but not parked alone",
                         (void *)pool->base);
                if (heap->parked_mark[pool->szidx] != 1)
                    FAIL("parked pool %p's class is not marked parked: no sweep would see it",
                         (void *)pool->base);
            } else {
                empty++;
            }
        } else if (pool->returned) {
            FAIL("pool %p has blocks in use but is marked returned", (void *)pool->base);
        } else if (check_pool(heap, pool, why, whylen) != 0) {
            return -1;
        }
    }
    size_t listed = 0;
    for (int returned = 0; returned < 2; returned++) {
        const char *name = returned ? "returned" : "freepools";
        for (const pool_t *p = returned ? a->returned : a->freepools; p != NULL; p = p->nextpool) {
            if (soma__pool_count_raw(p) != 0 || p->arena != a)
                FAIL("arena %p: pool %p on %s is not empty", (void *)a->address, (void *)p, name);
            if (p->returned != returned)
                FAIL("arena %p: pool %p on %s is%s marked returned", (void *)a->address,
                     (void *)p, name, returned ? " not" : "");
            if (++listed > empty)
                FAIL("arena %p: freepools and returned longer than its empty pools",
                     (void *)a->address);
        }
    }
    if (listed != empty)
        FAIL("arena %p: %zu empty pools but %zu on freepools and returned", (void *)a->address,
             empty, listed);
    if (a->nfreepools != empty + (a->ntotalpools - carved))
        FAIL("arena %p: nfreepools %u != %zu empty + %zu never carved", (void *)a->address,
             a->nfreepools, empty, a->ntotalpools - carved);
    return 0;
}

static int check_usable(const arena_set_t *s, char *why, size_t whylen)
{
    size_t on_list = 0;
    arena_t *prev = NULL;
    for (arena_t *a = s->usable_arenas; a != NULL; prev = a, a = a->nextarena) {
        on_list++;
        if (a->prevarena != prev)
            FAIL("usable_arenas: broken back link at arena %p", (void *)a->address);
        if (a->nfreepools == 0)
            FAIL("usable_arenas holds the full arena %p", (void *)a->address);
        if (prev && prev->nfreepools > a->nfreepools)
            FAIL("usable_arenas out of order: %u free pools before %u", prev->nfreepools,
                 a->nfreepools);
        int last_of_run = a->nextarena == NULL || a->nextarena->nfreepools != a->nfreepools;
        if ((s->nfp2lasta[a->nfreepools] == a) != last_of_run)
            FAIL("nfp2lasta[%u] is wrong (arena %p)", a->nfreepools, (void *)a->address);
        if (a->nfreepools == a->ntotalpools && a->nextarena != NULL &&
            soma__options.decay_ms == 0)
            FAIL("wholly free arena %p is kept but is not the last usable one",
                 (void *)a->address);
    }
    for (unsigned n = 1; n <= SOMA_POOLS_PER_ARENA; n++) {
        arena_t *f = s->nfp2lasta[n];
        if (f != NULL && f->nfreepools != n)
            FAIL("nfp2lasta[%u] names an arena with %u free pools", n, f->nfreepools);
    }
    size_t with_free = 0;
    for (arena_t *a = s->all_arenas; a != NULL; a = a->next_all)
        with_free += a->nfreepools > 0;
    if (with_free != on_list)
        FAIL("%zu arenas have a free pool but %zu are on usable_arenas", with_free, on_list);
    return 0;
}

long soma__check_free_map(const pool_t *pool, uint64_t *bits)
{
    size_t size = soma__sizeclass_size(pool->szidx);
    memset(bits, 0, SOMA_POOL_BITMAP_WORDS * sizeof *bits);
    const char *end = soma__link_end(pool->base);
    for (const char *b = pool->freeblock; b != end; b = soma__link_get(b)) {
        size_t off = (size_t)(b - (const char *)pool->base);
        if (off < SOMA_POOL_OVERHEAD || off >= pool->nextoffset ||
            (off - SOMA_POOL_OVERHEAD) % size != 0)
            return -1; /* not a carved block (this test also keeps b in the pool) */
        size_t i = (off - SOMA_POOL_OVERHEAD) / size;
        uint64_t bit = (uint64_t)1 << (i % 64);
        if (bits[i / 64] & bit)
            return -1; /* twice: a cycle */
        bits[i / 64] |= bit;
    }
    return (long)((pool->nextoffset - SOMA_POOL_OVERHEAD) / size);
}

void soma__check_pools(heap_t *heap, void (*fn)(pool_t *, void *), void *arg)
{
    for (unsigned k = 0; k < SOMA_NUM_KINDS; k++)
        for (arena_t *a = heap->sets[k].all_arenas; a != NULL; a = a->next_all) {
            SOMA_POOL_FOREACH(pool, a)
                if (pool->szidx < SOMA_NUM_ALL_CLASSES)
                    fn(pool, arg);
        }
}

int soma__check_heap(heap_t *heap, char *why, size_t whylen)
{
    pthread_mutex_lock(&heap->lock);
    int rc = soma__check_heap_locked(heap, why, whylen);
    pthread_mutex_unlock(&heap->lock);
    return rc;
}

int soma__check_heap_locked(heap_t *heap, char *why, size_t whylen)
{
    int rc = 0;
    for (unsigned k = 0; k < SOMA_NUM_KINDS && rc == 0; k++) {
        const arena_set_t *s = &heap->sets[k];
        size_t n = 0;
        for (arena_t *a = s->all_arenas; a != NULL && rc == 0; a = a->next_all) {
            n++;
            if (a->kind != k) {
                snprintf(why, whylen, "arena %p is in the wrong set", (void *)a->address);
                rc = -1;
            } else {
                rc = check_arena(heap, a, why, whylen);
            }
        }
        if (rc == 0 && n != s->arenas_current) {
            snprintf(why, whylen, "%zu arenas listed, %zu counted", n, s->arenas_current);
            rc = -1;
        }
        if (rc == 0)
            rc = check_usable(s, why, whylen);
    }
    for (unsigned c = 0; c < SOMA_NUM_ALL_CLASSES && rc == 0; c++) {
        const pool_t *head = heap->usedpools[c], *q = head;
        if (head == NULL)
            continue;
        do {
            unsigned count = soma__pool_count_raw(q);
            int parked = count == 0 && q->nextpool == q && soma__options.decay_ms > 0;
            if (q->szidx != c || (count == 0 && !parked) || (count & SOMA_POOL_UNLISTED) ||
                q->nextpool->prevpool != q || (q == head && !soma__pool_has_free(q) && !parked)) {
                snprintf(why, whylen, "usedpools[%u] holds a bad pool %p", c, (void *)q);
                rc = -1;
                break;
            }
            q = q->nextpool;
        } while (q != head);
    }
    return rc;
}
