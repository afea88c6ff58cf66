/*
 * walk.c: statistics by walking the structures, as CPython does.
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
#include "base/start.h"
#include "os/os.h"
#include "stats/stats.h"

/* A walk in progress: the figures, and the detail if one was asked for. */
typedef struct {
    soma_stats *st;
    detail_t *d; /* or NULL */
    uint32_t heapno;
    int sample; /* soma__walk_sample: change nothing, call nothing */
} walk_t;

/* Room for the next arena's view, or NULL (counted as dropped). */
static arena_view_t *next_view(walk_t *w, const arena_t *a, const heap_t *heap)
{
    detail_t *d = w->d;
    if (d == NULL)
        return NULL;
    if (d->narenas == d->cap) {
        d->dropped++;
        return NULL;
    }
    arena_view_t *v = &d->arenas[d->narenas++];
    v->address = a->address;
    v->heap = w->heapno;
    v->kind = (uint8_t)a->kind;
    v->explicit_heap = (uint8_t)(heap->explicit_heap != 0);
    v->npools = (uint16_t)a->ntotalpools;
    v->carved = 0;
    v->returned = 0;
    return v;
}

/* One set of arenas: classes[c - first] gets the pools of public class c
 * (soma__sizeclass_public). */
static void walk_set(walk_t *w, const heap_t *heap, const arena_set_t *set,
                     soma_class_stats *classes, unsigned first, size_t *unused_pools,
                     size_t *returned_pools, size_t *alignment_lost, size_t *empty_arenas)
{
    for (arena_t *a = set->all_arenas; a != NULL; a = a->next_all) {
        arena_view_t *v = next_view(w, a, heap);
        size_t carved = 0, in_use = 0;
        SOMA_POOL_FOREACH(pool, a) {
            size_t i = carved++;
            /* One read: the owner may be changing it right now. */
            unsigned n = soma__pool_count(pool);
            /* Written under the heap lock, which the walk holds. */
            int returned = n == 0 && pool->returned;
            if (v != NULL) {
                v->cls[i] = pool->szidx < SOMA_NUM_ALL_CLASSES
                                ? (uint16_t)soma__sizeclass_public(pool->szidx)
                                : pool->szidx;
                v->used[i] = (uint16_t)n;
                v->returned |= (uint64_t)returned << i;
                v->carved++;
            }
            if (n == 0) {
                (*unused_pools)++;
                *returned_pools += (size_t)returned;
                continue;
            }
            in_use++;
            /* (a small class's twins are one class to the world: config.h) */
            soma_class_stats *cs = &classes[soma__sizeclass_public(pool->szidx) - first];
            cs->num_pools++;
            cs->blocks_in_use += n;
            cs->avail_blocks += soma__sizeclass_capacity(pool->szidx) - n;
        }
        /* Empty pools were counted above rather than taken from nfreepools:
         * a pool whose last block was just freed is empty before its owner
         * (waiting for this lock) has given it back to the arena. */
        *unused_pools += a->ntotalpools - carved;
        *empty_arenas += in_use == 0;
        if (soma__pool_first(a) != a->address)
            *alignment_lost += SOMA_POOL_SIZE;
    }
}

static void walk_heap(heap_t *heap, void *arg)
{
    walk_t *w = arg;
    soma_stats *st = w->st;
    const arena_set_t *small = &heap->sets[SOMA_KIND_SMALL];
    const arena_set_t *medium = &heap->sets[SOMA_KIND_MEDIUM];
    size_t medium_alignment = 0; /* arenas are aligned: always 0, not reported */
    walk_set(w, heap, small, st->classes, 0, &st->unused_pools, &st->returned.pools,
             &st->bytes_lost_to_arena_alignment, &st->arenas_empty);
    walk_set(w, heap, medium, st->medium.classes, SOMA_NUM_CLASSES, &st->medium.unused_pools,
             &st->returned.medium_pools, &medium_alignment, &st->medium.arenas_empty);
    /* Per heap, for a heap's snapshot; the process's comes from the
     * process-wide counter (heaps destroyed keep no record). */
    st->returned.pools_total += small->pools_returned_total + medium->pools_returned_total;
    st->arenas_allocated_total += small->arenas_allocated_total;
    st->arenas_current += small->arenas_current;
    st->arenas_highwater += small->arenas_highwater;
    st->medium.arenas_allocated_total += medium->arenas_allocated_total;
    st->medium.arenas_current += medium->arenas_current;
    st->medium.arenas_highwater += medium->arenas_highwater;
    w->heapno++;
}

static void stats_begin(soma_stats *st)
{
    soma__start();
    memset(st, 0, sizeof *st);
    st->version = SOMA_STATS_VERSION;
    st->size = sizeof *st;
    st->threshold = SOMA_SMALL_THRESHOLD;
    st->num_classes = SOMA_NUM_CLASSES;
    st->pool_size = SOMA_POOL_SIZE;
    st->arena_size = SOMA_ARENA_SIZE;
    st->pool_overhead = SOMA_POOL_OVERHEAD;
    for (unsigned c = 0; c < SOMA_NUM_CLASSES; c++)
        st->classes[c].size = soma__sizeclass_size(c * SOMA_SMALL_TWINS);
    st->medium.max_size = SOMA_MEDIUM_MAX;
    st->medium_tail = SOMA_MEDIUM_TAIL;
    st->medium.num_classes = SOMA_NUM_MEDIUM_CLASSES;
    for (unsigned i = 0; i < SOMA_NUM_MEDIUM_CLASSES; i++)
        st->medium.classes[i].size = soma__sizeclass_size(SOMA_SMALL_CLASSES + i);
}

/* The byte lines of one table of classes; returns their sum. */
static size_t byte_lines(const soma_class_stats *classes, size_t n, size_t *allocated,
                         size_t *available, size_t *headers, size_t *quantization)
{
    for (size_t c = 0; c < n; c++) {
        const soma_class_stats *cs = &classes[c];
        *allocated += cs->blocks_in_use * cs->size;
        *available += cs->avail_blocks * cs->size;
        *headers += cs->num_pools * SOMA_POOL_OVERHEAD;
        *quantization += cs->num_pools * ((SOMA_POOL_SIZE - SOMA_POOL_OVERHEAD) % cs->size);
    }
    return *allocated + *available + *headers + *quantization;
}

/* The figures derived from the walk, and the arena map's. */
static void stats_finish(soma_stats *st)
{
    st->unused_pool_bytes = st->unused_pools * SOMA_POOL_SIZE;
    st->total = byte_lines(st->classes, SOMA_NUM_CLASSES, &st->bytes_in_allocated_blocks,
                           &st->bytes_in_available_blocks, &st->bytes_lost_to_pool_headers,
                           &st->bytes_lost_to_quantization) +
                st->unused_pool_bytes + st->bytes_lost_to_arena_alignment;
    st->arenas_reclaimed = st->arenas_allocated_total - st->arenas_current;
    st->arena_bytes = st->arenas_current * SOMA_ARENA_SIZE;

    soma_medium_stats *m = &st->medium;
    m->unused_pool_bytes = m->unused_pools * SOMA_POOL_SIZE;
    m->total = byte_lines(m->classes, SOMA_NUM_MEDIUM_CLASSES, &m->bytes_in_allocated_blocks,
                          &m->bytes_in_available_blocks, &m->bytes_lost_to_pool_headers,
                          &m->bytes_lost_to_quantization) +
               m->unused_pool_bytes;
    m->arenas_reclaimed = m->arenas_allocated_total - m->arenas_current;
    m->arena_bytes = m->arenas_current * SOMA_ARENA_SIZE;

    st->returned.pool_bytes = st->returned.pools * SOMA_POOL_SIZE;
    st->returned.medium_pool_bytes = st->returned.medium_pools * SOMA_POOL_SIZE;

    /* soma's map is a flat table (os/region.c): CPython's "root", with no
     * interior nodes. */
    soma__region_counts(&st->address_space_reserved, &st->arena_map_root_bytes);
    st->arena_map_mid_nodes = st->arena_map_bot_nodes = 0;
    st->arena_map_mid_bytes = st->arena_map_bot_bytes = 0;
    st->arena_map_total =
        st->arena_map_root_bytes + st->arena_map_mid_bytes + st->arena_map_bot_bytes;
}

/* The process's snapshot: every heap. */
static void take_all(walk_t *w)
{
    soma_stats *st = w->st;
    stats_begin(st);
    /* The caller's own pending cross-thread frees are collected first, so a
     * single-threaded program (or one whose other threads are done) gets
     * exact figures; exited threads' heaps are collected by the walk. */
    heap_t *mine = soma__heap_tls;
    if (mine != &soma__heap_empty && !w->sample)
        soma__heap_collect(mine);
    soma__heap_foreach(walk_heap, w, !w->sample);
    /* Arenas current stays the walked sum, which is what the byte figures
     * add up to.  Total and high-water come from the process-wide counters
     * (a sum of per-heap high-water marks would overstate the process's);
     * read after the walk, they cover every arena it saw. */
    size_t now;
    soma__arena_counts(SOMA_KIND_SMALL, &st->arenas_allocated_total, &now, &st->arenas_highwater);
    if (st->arenas_highwater < st->arenas_current)
        st->arenas_highwater = st->arenas_current;
    soma__large_counts(&st->large.blocks_in_use, &st->large.bytes_in_use,
                       &st->large.blocks_allocated_total);
    soma__large_map_counts(&st->large_map);
    soma__guard_counts(&st->guarded);
    st->returned.pools_total =
        soma__arena_returned_total(SOMA_KIND_SMALL) + soma__arena_returned_total(SOMA_KIND_MEDIUM);
    soma_medium_stats *m = &st->medium;
    soma__arena_counts(SOMA_KIND_MEDIUM, &m->arenas_allocated_total, &now, &m->arenas_highwater);
    if (m->arenas_highwater < m->arenas_current)
        m->arenas_highwater = m->arenas_current;
    stats_finish(st);
    if (!w->sample)
        soma__types_snapshot(st);
}

/* One explicit heap's snapshot. */
static void take_heap(walk_t *w, heap_t *heap)
{
    stats_begin(w->st);
    /* By contract the caller is the heap's one user at this moment, so it
     * may collect the heap's pending cross-thread frees. */
    soma__heap_collect(heap);
    pthread_mutex_lock(&heap->lock);
    walk_heap(heap, w);
    pthread_mutex_unlock(&heap->lock);
    /* Its large blocks too: asked of it, released with it. */
    soma__large_owned_counts(heap, &w->st->large.blocks_in_use, &w->st->large.bytes_in_use);
    stats_finish(w->st);
}

void soma__walk_detail_free(detail_t *d)
{
    if (d->arenas != NULL)
        soma__os_unmap(d->arenas, d->cap * sizeof *d->arenas);
    if (d->reclaimed != NULL)
        soma__os_unmap(d->reclaimed, d->reclaimed_cap * sizeof *d->reclaimed);
    memset(d, 0, sizeof *d);
}

/* Room for `arenas` views and as many reclaimed slots; 0 or -1. */
static int detail_map(detail_t *d, size_t arenas)
{
    soma__walk_detail_free(d);
    d->cap = d->reclaimed_cap = arenas;
    d->arenas = soma__os_map(arenas * sizeof *d->arenas);
    d->reclaimed = soma__os_map(arenas * sizeof *d->reclaimed);
    if (d->arenas == NULL || d->reclaimed == NULL) {
        soma__walk_detail_free(d);
        return -1;
    }
    return 0;
}

void soma__walk_take(soma_stats *st, heap_t *heap, detail_t *d)
{
    walk_t w = {st, d, 0, 0};
    if (d == NULL) {
        heap != NULL ? take_heap(&w, heap) : take_all(&w);
        return;
    }
    /* Arenas occupy distinct slots, so the slots used so far bound them;
     * threads may map more while we walk: then the walk is taken again
     * with room for them, a few times, before the excess is reported as
     * dropped. */
    memset(d, 0, sizeof *d);
    for (int attempt = 0;; attempt++) {
        size_t room = soma__region_slots_used() + 16 + ((size_t)attempt << 6);
        if (detail_map(d, room) != 0) {
            w.d = NULL; /* no memory for the detail: the figures alone */
            heap != NULL ? take_heap(&w, heap) : take_all(&w);
            return;
        }
        w.heapno = 0;
        heap != NULL ? take_heap(&w, heap) : take_all(&w);
        d->nheaps = w.heapno;
        if (d->dropped == 0 || attempt == 3)
            break;
    }
    /* Empty slots are the process's: a heap's snapshot has none of them. */
    d->nreclaimed = heap != NULL ? 0 : soma__region_reclaimed(d->reclaimed, d->reclaimed_cap);
    if (d->nreclaimed > d->reclaimed_cap)
        d->nreclaimed = d->reclaimed_cap;
}

void soma__walk_sample(soma_stats *st)
{
    walk_t w = {st, NULL, 0, 1};
    take_all(&w);
}

/* A snapshot into at most `size` bytes of *st (stats/stats.h says why a
 * caller may pass less than sizeof): taken whole into a mapping of its
 * own then, so that nothing past `size` is written. */
static void get_sized(soma_stats *st, heap_t *heap, size_t size)
{
    if (size >= sizeof *st) {
        soma__walk_take(st, heap, NULL);
        return;
    }
    soma_stats *whole = soma__os_map(sizeof *whole);
    if (whole == NULL) { /* no memory: the caller's part zeroed, version 0 */
        memset(st, 0, size);
        return;
    }
    soma__walk_take(whole, heap, NULL);
    whole->size = (uint32_t)size;
    memcpy(st, whole, size);
    soma__os_unmap(whole, sizeof *whole);
}

/* The functions behind soma.h's macros of the same names, for callers
 * that reach them without the header (dlsym, other languages). */
void(soma_stats_get)(soma_stats *st)
{
    get_sized(st, NULL, sizeof *st);
}

void soma_stats_get_sized(soma_stats *st, size_t size)
{
    get_sized(st, NULL, size);
}

void(soma_heap_stats_get)(soma_heap *h, soma_stats *st)
{
    get_sized(st, (heap_t *)h, sizeof *st);
}

void soma_heap_stats_get_sized(soma_heap *h, soma_stats *st, size_t size)
{
    get_sized(st, (heap_t *)h, size);
}
