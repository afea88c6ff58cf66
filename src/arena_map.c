/*
 * arena_map.c: the O(1) answer to "is this pointer one of soma's?".
 *
 * free() and realloc() receive pointers from soma and from the system
 * allocator alike, so each one must be classified without touching memory
 * that may not be ours.  Every arena is arena-aligned (os.c), so the arena
 * number of an address, addr >> SOMA_ARENA_BITS, names at most one arena.
 * A three-level radix tree maps arena numbers to arena_t pointers:
 *
 *     address bits:  [ root: 16 ][ mid: M ][ bot: M ][ offset in arena ]
 *                                                    \- SOMA_ARENA_BITS -/
 *     root (static, 2^16 pointers) -> mid node (2^M) -> bot node (2^M) -> arena_t*
 *
 * with M = (64 - 16 - SOMA_ARENA_BITS) / 2 (14 for 1 MiB arenas), so the
 * whole 64-bit address space is covered (as CPython 3.11+ does, bpo-45526).
 * Interior nodes come from mmap (zeroed, never freed: an address range that
 * held an arena once is likely to hold one again).  The static root costs
 * address space only; its pages are touched as they are used.
 *
 * Concurrency: lookups take no lock.  Node pointers are published with
 * release stores after the node exists, and read with acquire loads; a leaf
 * is set when an arena is mapped (before any of its blocks can be handed out)
 * and cleared before the arena is unmapped.  Writers serialise on map_lock.
 */
#include "internal.h"

_Atomic(map_mid_t *) soma__map_root[MAP_ROOT_LEN]; /* static-sized: costs address space only */
static pthread_mutex_t map_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic size_t map_mid_count;
static _Atomic size_t map_bot_count;

/* The shape (MAP_* sizes, node types, index functions) and the lookup,
 * soma__arena_map_get, are in internal.h: the lookup runs on every free. */
#define root_index soma__map_root_index
#define mid_index soma__map_mid_index
#define bot_index soma__map_bot_index

void soma__arena_map_fork(int phase)
{
    soma__fork_lock(&map_lock, phase);
}

/* Find (creating if `create`) the bot node covering address a. */
static map_bot_t *bot_node(uintptr_t a, int create)
{
    map_mid_t *mid = atomic_load_explicit(&soma__map_root[root_index(a)], memory_order_acquire);
    if (mid == NULL) {
        if (!create)
            return NULL;
        mid = soma__os_map(sizeof(map_mid_t));
        if (mid == NULL)
            return NULL;
        atomic_store_explicit(&soma__map_root[root_index(a)], mid, memory_order_release);
        atomic_fetch_add_explicit(&map_mid_count, 1, memory_order_relaxed);
    }
    map_bot_t *bot = atomic_load_explicit(&mid->bots[mid_index(a)], memory_order_acquire);
    if (bot == NULL) {
        if (!create)
            return NULL;
        bot = soma__os_map(sizeof(map_bot_t));
        if (bot == NULL)
            return NULL;
        atomic_store_explicit(&mid->bots[mid_index(a)], bot, memory_order_release);
        atomic_fetch_add_explicit(&map_bot_count, 1, memory_order_relaxed);
    }
    return bot;
}

/* Record (arena != NULL) or forget (arena == NULL) the arena at base.
 * Returns 0, or -1 with errno = ENOMEM if a node could not be mapped. */
int soma__arena_map_set(uintptr_t base, arena_t *arena)
{
    pthread_mutex_lock(&map_lock);
    map_bot_t *bot = bot_node(base, arena != NULL);
    if (bot != NULL)
        atomic_store_explicit(&bot->arenas[bot_index(base)], arena, memory_order_release);
    pthread_mutex_unlock(&map_lock);
    return (bot == NULL && arena != NULL) ? -1 : 0;
}

void soma__arena_map_counts(size_t *mid_nodes, size_t *bot_nodes, size_t *root_bytes,
                            size_t *mid_bytes, size_t *bot_bytes)
{
    *mid_nodes = atomic_load_explicit(&map_mid_count, memory_order_relaxed);
    *bot_nodes = atomic_load_explicit(&map_bot_count, memory_order_relaxed);
    *root_bytes = sizeof(soma__map_root);
    *mid_bytes = *mid_nodes * sizeof(map_mid_t);
    *bot_bytes = *bot_nodes * sizeof(map_bot_t);
}
