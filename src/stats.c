/*
 * stats.c: statistics by walking the structures, as CPython does.
 *
 * Nothing on the malloc/free path counts anything.  When asked, we visit
 * every arena of the heap and every carved pool in it (the pools below the
 * arena's pool_address have headers; the ones above were never touched):
 *
 *   pool with count > 0   -> one pool of its class: count blocks in use,
 *                            capacity - count available (virgin ones too)
 *   pool with count == 0  -> empty: counted, with the never-carved pools, in
 *                            the arena's nfreepools ("unused pools")
 *
 * The six byte figures then account for every byte of every arena, which is
 * why Total equals arenas * arena size: a check on the walk itself.
 * The walk holds the heap lock, so the snapshot is exact for its instant.
 */
#include "internal.h"

static void walk_heap(heap_t *heap, soma_stats *st)
{
    for (arena_t *a = heap->all_arenas; a != NULL; a = a->next_all) {
        uintptr_t first = (a->address + SOMA_POOL_MASK) & ~(uintptr_t)SOMA_POOL_MASK;
        for (uintptr_t pa = first; pa < a->pool_address; pa += SOMA_POOL_SIZE) {
            const pool_t *pool = (const pool_t *)pa;
            if (pool->count == 0)
                continue;
            soma_class_stats *cs = &st->classes[pool->szidx];
            cs->num_pools++;
            cs->blocks_in_use += pool->count;
            cs->avail_blocks += soma__class_capacity(pool->szidx) - pool->count;
        }
        st->unused_pools += a->nfreepools;
        if (first != a->address)
            st->bytes_lost_to_arena_alignment += SOMA_POOL_SIZE;
    }
    st->arenas_allocated_total += heap->arenas_allocated_total;
    st->arenas_current += heap->arenas_current;
    st->arenas_highwater += heap->arenas_highwater;
}

void soma__heap_stats(heap_t *heap, soma_stats *st)
{
    pthread_mutex_lock(&heap->lock);
    walk_heap(heap, st);
    pthread_mutex_unlock(&heap->lock);
}

void soma_stats_get(soma_stats *st)
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

    soma__heap_stats(soma__default_heap(), st);

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

    soma__arena_map_counts(&st->arena_map_mid_nodes, &st->arena_map_bot_nodes,
                           &st->arena_map_root_bytes, &st->arena_map_mid_bytes,
                           &st->arena_map_bot_bytes);
    st->arena_map_total =
        st->arena_map_root_bytes + st->arena_map_mid_bytes + st->arena_map_bot_bytes;

    soma__types_snapshot(st);
}
