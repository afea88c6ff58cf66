/*
 * stats.c: statistics by walking the structures, as CPython does.
 *
 * Nothing on the malloc/free path counts anything.  When asked, we visit
 * every arena of the heap and every carved pool in it (the pools below the
 * arena's pool_address have headers; the ones above were never touched):
 *
 *   pool with count > 0   -> one pool of its class: count blocks in use,
 *                            capacity - count available (virgin ones too)
 *   pool with count == 0  -> empty: counted, with the never-carved pools, as
 *                            "unused pools" (the arena's nfreepools, when quiet)
 *
 * The six byte figures then account for every byte of every arena, which is
 * why Total equals arenas * arena size: a check on the walk itself.
 * Each heap is walked under its lock, which its owner takes whenever it
 * changes an arena or puts a pool to work; block counts are read with
 * relaxed atomics while owners allocate.  So with other threads running, a
 * snapshot is a consistent picture of arenas and pools and a close one of
 * blocks; when they are quiet it is exact.  Blocks freed by one thread but
 * not yet collected by the owning thread still count as in use.
 */
#include "internal.h"

static void walk_heap(heap_t *heap, soma_stats *st)
{
    for (arena_t *a = heap->all_arenas; a != NULL; a = a->next_all) {
        uintptr_t first = (a->address + SOMA_POOL_MASK) & ~(uintptr_t)SOMA_POOL_MASK;
        size_t carved = 0;
        for (uintptr_t pa = first; pa < a->pool_address; pa += SOMA_POOL_SIZE, carved++) {
            const pool_t *pool = (const pool_t *)pa;
            /* One read: the owner may be changing it right now. */
            unsigned n = soma__pool_count(pool);
            if (n == 0) {
                st->unused_pools++;
                continue;
            }
            soma_class_stats *cs = &st->classes[pool->szidx];
            cs->num_pools++;
            cs->blocks_in_use += n;
            cs->avail_blocks += soma__class_capacity(pool->szidx) - n;
        }
        /* Empty pools were counted above rather than taken from nfreepools:
         * a pool whose last block was just freed is empty before its owner
         * (waiting for this lock) has given it back to the arena. */
        st->unused_pools += a->ntotalpools - carved;
        if (first != a->address)
            st->bytes_lost_to_arena_alignment += SOMA_POOL_SIZE;
    }
    st->arenas_allocated_total += heap->arenas_allocated_total;
    st->arenas_current += heap->arenas_current;
    st->arenas_highwater += heap->arenas_highwater;
}

static void walk_one(heap_t *heap, void *st)
{
    walk_heap(heap, st);
}

static void stats_begin(soma_stats *st)
{
    soma__init();
    memset(st, 0, sizeof *st);
    st->threshold = SOMA_SMALL_THRESHOLD;
    st->num_classes = SOMA_NUM_CLASSES;
    st->pool_size = SOMA_POOL_SIZE;
    st->arena_size = SOMA_ARENA_SIZE;
    st->pool_overhead = SOMA_POOL_OVERHEAD;
    for (unsigned c = 0; c < SOMA_NUM_CLASSES; c++)
        st->classes[c].size = soma__class_size(c);
}

/* The figures derived from the walk, and the arena map's. */
static void stats_finish(soma_stats *st)
{
    for (unsigned c = 0; c < SOMA_NUM_CLASSES; c++) {
        const soma_class_stats *cs = &st->classes[c];
        st->bytes_in_allocated_blocks += cs->blocks_in_use * cs->size;
        st->bytes_in_available_blocks += cs->avail_blocks * cs->size;
        st->bytes_lost_to_pool_headers += cs->num_pools * SOMA_POOL_OVERHEAD;
        st->bytes_lost_to_quantization +=
            cs->num_pools * ((SOMA_POOL_SIZE - SOMA_POOL_OVERHEAD) % cs->size);
    }
    st->arenas_reclaimed = st->arenas_allocated_total - st->arenas_current;
    st->arena_bytes = st->arenas_current * SOMA_ARENA_SIZE;
    st->unused_pool_bytes = st->unused_pools * SOMA_POOL_SIZE;
    st->total = st->bytes_in_allocated_blocks + st->bytes_in_available_blocks +
                st->unused_pool_bytes + st->bytes_lost_to_pool_headers +
                st->bytes_lost_to_quantization + st->bytes_lost_to_arena_alignment;

    /* soma's map is a flat table (region.c): CPython's "root", with no
     * interior nodes. */
    soma__region_counts(&st->address_space_reserved, &st->arena_map_root_bytes);
    st->arena_map_mid_nodes = st->arena_map_bot_nodes = 0;
    st->arena_map_mid_bytes = st->arena_map_bot_bytes = 0;
    st->arena_map_total =
        st->arena_map_root_bytes + st->arena_map_mid_bytes + st->arena_map_bot_bytes;
}

void soma_stats_get(soma_stats *st)
{
    stats_begin(st);
    /* The caller's own pending cross-thread frees are collected first, so a
     * single-threaded program (or one whose other threads are done) gets
     * exact figures; exited threads' heaps are collected by the walk. */
    heap_t *mine = soma__tls_heap;
    if (mine != &soma__empty_heap)
        soma__heap_collect(mine);
    soma__heaps_foreach(walk_one, st);
    /* Arenas current stays the walked sum, which is what the byte figures
     * add up to.  Total and high-water come from the process-wide counters
     * (a sum of per-heap high-water marks would overstate the process's);
     * read after the walk, they cover every arena it saw. */
    size_t now;
    soma__arena_counts(&st->arenas_allocated_total, &now, &st->arenas_highwater);
    if (st->arenas_highwater < st->arenas_current)
        st->arenas_highwater = st->arenas_current;
    stats_finish(st);
    soma__types_snapshot(st);
}

void soma_heap_stats_get(soma_heap *h, soma_stats *st)
{
    heap_t *heap = (heap_t *)h;
    stats_begin(st);
    /* By contract the caller is the heap's one user at this moment, so it
     * may collect the heap's pending cross-thread frees. */
    soma__heap_collect(heap);
    pthread_mutex_lock(&heap->lock);
    walk_heap(heap, st);
    pthread_mutex_unlock(&heap->lock);
    stats_finish(st);
}
