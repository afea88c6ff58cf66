/*
 * region.c: where arenas live, and the O(1) answer to "is this pointer
 * one of soma's?".
 *
 * free() and realloc() receive pointers from soma and from the system
 * allocator alike, and must classify each one without touching memory that
 * may not be ours.  soma makes that a subtraction and a compare: every arena
 * is carved from one range of address space reserved up front (PROT_NONE,
 * MAP_NORESERVE: it costs no memory and no commit charge, only addresses),
 * so "ours" means "inside the range", and the arena is found by its slot
 * number in a flat table:
 *
 *     base                                                      base + size
 *     | slot 0 | slot 1 | slot 2 | ...  (each SOMA_ARENA_SIZE, arena-aligned)
 *         |        |        |
 *     table[0] table[1] table[2] ...    arena_t *, NULL while the slot is empty
 *
 * Two loads on every free (the range, then the table entry) where a radix
 * tree over the whole address space (CPython's, and soma's before) needs three
 * dependent ones and their shifts.  The table is mapped NORESERVE too: only
 * the pages covering slots ever used are touched.
 *
 * An arena is mapped by replacing its slot's PROT_NONE pages with fresh
 * read-write ones (mmap MAP_FIXED), and released by replacing them back: the
 * memory returns to the OS at once, the addresses stay reserved, and a
 * stale pointer into a released arena finds NULL in the table (it is not
 * ours any more), exactly as an unmapped arena did.  Released slots are
 * reused first (a stack), so the used part of the range stays compact.
 *
 * The reservation is made when the first arena is needed: 1 TiB, less when
 * RLIMIT_AS is set (a quarter of the limit), halved until the kernel
 * agrees.  When every slot is taken, arena creation fails with ENOMEM and the
 * heap falls back to the system allocator (malloc/malloc.c).
 *
 * Concurrency: lookups take no lock.  `size` is published with a release
 * store after base and the table exist; a table entry is set (release)
 * before any block of the arena is handed out and cleared before its pages
 * are replaced.  Writers serialise on region_lock.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/resource.h>

#include "base/start.h"
#include "os/os.h"
#include "os/region.h"
#include "os/track.h"

region_t soma__region;
static pthread_mutex_t region_lock = PTHREAD_MUTEX_INITIALIZER;
static size_t nslots;          /* slots in the range */
static size_t next_slot;       /* slots below it have been used at least once */
static uint32_t *free_slots;   /* released slots, a stack */
static size_t nfree;

#define REGION_MAX ((size_t)1 << 40)
#define REGION_MIN ((size_t)16 * SOMA_ARENA_SIZE)

static void region_fork(int phase)
{
    soma__start_fork_lock(&region_lock, phase);
}
SOMA_HOOK(region, SOMA_ORDER_REGION, NULL, region_fork);

/* The first call: reserve the range and its tables (region_lock held). */
static int region_reserve(void)
{
    size_t want = REGION_MAX;
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur / 4 < want)
        want = (size_t)rl.rlim_cur / 4;
    for (; want >= REGION_MIN; want /= 2) {
        size_t size = want & ~(size_t)(SOMA_ARENA_SIZE - 1);
        size_t n = size >> SOMA_ARENA_BITS;
        /* One arena more than the range, to align it. */
        char *raw = soma__os_reserve(size + SOMA_ARENA_SIZE);
        if (raw == NULL)
            continue;
        /* The tables are NORESERVE too: only the pages touched count. */
        size_t tbytes = n * (sizeof(arena_t *) + sizeof(uint32_t));
        void *table = soma__os_map_sparse(tbytes);
        if (table == NULL) {
            soma__os_unmap(raw, size + SOMA_ARENA_SIZE);
            continue;
        }
        uintptr_t base = ((uintptr_t)raw + SOMA_ARENA_SIZE - 1) & ~(uintptr_t)(SOMA_ARENA_SIZE - 1);
        size_t head = base - (uintptr_t)raw;
        if (head)
            soma__os_unmap(raw, head);
        if (SOMA_ARENA_SIZE - head)
            soma__os_unmap((char *)base + size, SOMA_ARENA_SIZE - head);
        soma__region.arenas = table;
        free_slots = (uint32_t *)((arena_t **)table + n);
        nslots = n;
        atomic_store_explicit(&soma__region.base, base, memory_order_relaxed);
        atomic_store_explicit(&soma__region.size, size, memory_order_release);
        return 0;
    }
    return -1;
}

uintptr_t soma__region_map(arena_t *arena)
{
    static int reserve_failed; /* then every request would repeat the halving */
    pthread_mutex_lock(&region_lock);
    if (atomic_load_explicit(&soma__region.size, memory_order_relaxed) == 0 &&
        (reserve_failed || (reserve_failed = region_reserve() != 0)))
        goto fail;
    size_t slot;
    if (nfree > 0)
        slot = free_slots[--nfree];
    else if (next_slot < nslots)
        slot = next_slot++;
    else
        goto fail;
    uintptr_t base = atomic_load_explicit(&soma__region.base, memory_order_relaxed) +
                     (slot << SOMA_ARENA_BITS);
    if (soma__os_commit((void *)base, SOMA_ARENA_SIZE) != 0) {
        free_slots[nfree++] = (uint32_t)slot;
        goto fail;
    }
    soma__track_fresh((void *)base, SOMA_ARENA_SIZE); /* an old arena's poison is void */
    atomic_store_explicit(&soma__region.arenas[slot], arena, memory_order_release);
    pthread_mutex_unlock(&region_lock);
    return base;
fail:
    pthread_mutex_unlock(&region_lock);
    errno = ENOMEM;
    return 0;
}

/* soma__region_unmap's work, region_lock held. */
static void unmap_locked(uintptr_t base)
{
    size_t slot = (base - atomic_load_explicit(&soma__region.base, memory_order_relaxed)) >>
                  SOMA_ARENA_BITS;
    atomic_store_explicit(&soma__region.arenas[slot], NULL, memory_order_release);
    soma__os_decommit((void *)base, SOMA_ARENA_SIZE); /* the addresses stay ours */
    free_slots[nfree++] = (uint32_t)slot;
}

void soma__region_unmap(uintptr_t base)
{
    pthread_mutex_lock(&region_lock);
    unmap_locked(base);
    pthread_mutex_unlock(&region_lock);
}

int soma__region_unmap_try(uintptr_t base)
{
    if (pthread_mutex_trylock(&region_lock) != 0)
        return 0;
    unmap_locked(base);
    pthread_mutex_unlock(&region_lock);
    return 1;
}

void soma__region_counts(size_t *reserved, size_t *table_bytes)
{
    pthread_mutex_lock(&region_lock);
    *reserved = atomic_load_explicit(&soma__region.size, memory_order_relaxed);
    /* The table pages that slots in use so far have touched. */
    size_t page = 4096;
    *table_bytes = (next_slot * sizeof(arena_t *) + page - 1) / page * page;
    pthread_mutex_unlock(&region_lock);
}

size_t soma__region_slots_used(void)
{
    pthread_mutex_lock(&region_lock);
    size_t n = next_slot;
    pthread_mutex_unlock(&region_lock);
    return n;
}

size_t soma__region_reclaimed(uintptr_t *out, size_t cap)
{
    pthread_mutex_lock(&region_lock);
    uintptr_t base = atomic_load_explicit(&soma__region.base, memory_order_relaxed);
    for (size_t i = 0; i < nfree && i < cap; i++)
        out[i] = base + ((uintptr_t)free_slots[i] << SOMA_ARENA_BITS);
    size_t n = nfree;
    pthread_mutex_unlock(&region_lock);
    return n;
}
