/*
 * large.c: soma's large blocks: requests above the medium classes and
 * alignments above 16, and the rare small request made when soma's address
 * range is full.  They are soma's blocks too, and the statistics count them
 * ("Large blocks").
 *
 * Where they come from:
 *
 *   above SOMA_MEDIUM_MAX      a mapping of soma's own (os.c), page-granular,
 *                              the block at its start; freed, it goes to the
 *                              cache below, and a later request of about its
 *                              size takes it back with its pages resident
 *   SOMA_MEDIUM_MAX or less    (the small fallback, and an alignment above
 *                              16 for a block that small) the system
 *                              allocator (sys.c): a page each would waste
 *                              most of it
 *   mmap fails                 the system allocator too (it may still have
 *                              memory, e.g. when the kernel's count of
 *                              mappings is exhausted)
 *
 * soma must tell them apart from foreign pointers (memory the program got
 * from malloc before soma was loaded, or that a library bound to glibc with
 * RTLD_DEEPBIND allocated, or any malloc'ed memory given to soma_free):
 * those go to the system allocator untouched and are not counted.  Reading
 * a header in front of the block cannot decide it: in front of a foreign
 * block there may be no memory at all (allocators that pack blocks without
 * headers, such as the sanitizers' or jemalloc's, start a slab on a fresh
 * page).  So soma keeps a registry of its large blocks: a hash set of
 * pointers (with each block's requested size and its mapping's size, 0 for
 * a system block), split into shards by address, each an open-addressing
 * table (linear probing, deletion by backward shift) under its own lock, in
 * memory mapped from the OS (soma cannot call malloc for its own
 * bookkeeping).  A table grows by doubling when it is half full.
 *
 * The cache.  Mapping a block costs a system call and then a page fault on
 * every page the program touches (a zeroed page each); a malloc/free loop
 * of 20 MiB would fault 5,120 pages a turn.  So a freed mapping is kept,
 * its pages resident, in one of CACHE_BINS bins by page count (one bin per
 * count up to EXACT pages, 256 KiB; four per doubling above).  A request
 * takes the smallest cached mapping that holds it (the first bin from its
 * own that has one) and leaves the rest of it cached: to soma a mapping is
 * a range of pages, and splitting one is bookkeeping, no system call.
 * Freed, a mapping merges with the cached ones it touches (ends
 * finds them), so that the rests of splits and the program's neighbouring
 * mappings become one range again, as a heap's free chunks coalesce.
 * When no cached mapping is large enough, the request is put together from
 * the largest ones with mremap (the page tables move; no page is faulted
 * or copied), and only what they lack is fresh.  Bounds: what would take
 * the large blocks in use back to the most they have had mapped at once
 * lately, but at least a third of that most (bound_now), within
 * CACHE_FLOOR and CACHE_MAX (128 MiB: with 64, the malloc-large
 * benchmark's loop over 5-25 MiB blocks faulted 2.5 times as many pages,
 * docs/DESIGN.md; glibc keeps as much in the free chunks of its heap), and
 * CACHE_SLOTS mappings, the oldest released first, on a free and when
 * the blocks in use grow by a system call (a fresh mapping, a realloc's
 * mremap); with a decay (SOMA_ARENA_DECAY_MS) a mapping unused that long
 * is released then too; with none (0, the library's default: give memory
 * back at once) one mapping is kept, as CPython keeps one empty arena.
 * Released means munmap: the pages go back at once.  A mapping larger
 * than CACHE_MAX is never cached, and in a hardened build the first freed
 * mapping of each new largest size from 128 KiB to 4 MiB is sealed instead
 * (below, "Sealed mappings": a use after free faults).  And idle memory
 * changes sides (with a decay): pools made resident take as much from the cache (large_shed),
 * a fresh mapping makes the thread's heap give back as much of its empty
 * pools' pages (pools_shed), so that soma's total grows only when neither
 * side has any to spare (DESIGN.md, "Idle memory changes sides").
 *
 * Locks: each shard's, and the cache's; never two at once (a request takes
 * from the cache, then enters the block; a free leaves the registry, then
 * puts the mapping in the cache), so the reuse path is two short critical
 * sections and no system call.  Fork takes them all (large_fork).
 */
#include <stdint.h>

#include "base/options.h"
#include "base/process.h"
#include "base/wake.h"
#include "base/start.h"
#include "malloc/malloc.h"
#include "os/os.h"
#include "os/track.h"

#define PAGE SOMA_OS_PAGE_SIZE

/* ---- the registry ---- */

#define SHARDS 16 /* few: fork holds them all at once, with every heap lock */
#define FIRST_SLOTS 256 /* per shard, a power of two */

typedef struct {
    uintptr_t p;       /* 0 = empty */
    size_t n;          /* bytes requested */
    size_t map;        /* bytes of the mapping that starts at p; 0: a system block */
    const void *owner; /* the explicit heap it was asked of, or NULL (a thread's) */
} entry_t;

typedef struct {
    _Alignas(64) pthread_mutex_t lock; /* a cache line or two of its own */
    entry_t *slots;
    size_t cap, used;
    size_t bytes;  /* requested bytes of the blocks in this shard */
    size_t mapped; /* their mappings' bytes */
} shard_t;

static shard_t shards[SHARDS] = {[0 ... SHARDS - 1] = {.lock = PTHREAD_MUTEX_INITIALIZER}};
static _Atomic size_t made_total;

/* The cache's bound follows these (see "the cache" above): the bytes of
 * the mappings of blocks in use (the shards' `mapped` summed, kept apart so
 * that a free need not take every shard's lock), and the highest that sum
 * has reached in the current window.  Written under a shard's lock by
 * enter and leave, read by cache_put; policy only, no statistic reads them,
 * so relaxed order is enough. */
static _Atomic size_t live_mapped, live_peak;
/* live_peak of the window before this one: written by bound_now under the
 * cache's lock, read there and by soma__large_peak without it. */
static _Atomic size_t peak_before;

/* live_mapped grew by `map`: raise live_peak to it if need be. */
static void live_grew(size_t map)
{
    size_t now = atomic_fetch_add_explicit(&live_mapped, map, memory_order_relaxed) + map;
    size_t peak = atomic_load_explicit(&live_peak, memory_order_relaxed);
    while (peak < now && !atomic_compare_exchange_weak_explicit(&live_peak, &peak, now,
                                                                 memory_order_relaxed,
                                                                 memory_order_relaxed))
        ;
}

/* The peak of this window and the one before (bound_now's `peak`), which
 * the purge thread's worth() reads with no lock of the cache's: a free
 * that starts a new window has taken its block out of live_mapped before
 * bound_now resets live_peak to it, so this window's peak alone would
 * forget a large block freed a decay or more after it was made. */
size_t soma__large_peak(void)
{
    size_t now = atomic_load_explicit(&live_peak, memory_order_relaxed);
    size_t before = atomic_load_explicit(&peak_before, memory_order_relaxed);
    return now > before ? now : before;
}

static inline size_t mix(uintptr_t p)
{
    uint64_t x = (uint64_t)p >> 4;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x;
}

static shard_t *shard_of(uintptr_t p)
{
    return &shards[mix(p) % SHARDS];
}

/* The table is never full (grow), so a probe that passes every slot
 * found it written over: a program's write far past a block of its own
 * (a 1 MiB overflow reaches the next mappings, this table's among them).
 * Said so, rather than a loop that never ends. */
static _Noreturn __attribute__((cold)) void damaged(const shard_t *s)
{
    soma__fatal("the large blocks' registry (%p, %zu slots) was written over: a write far "
                "outside a block reached soma's own memory",
                (void *)s->slots, s->cap);
}

/* The slot holding p, or the empty slot where it would go (lock held, cap > 0). */
static entry_t *find(shard_t *s, uintptr_t p)
{
    size_t i = (mix(p) / SHARDS) & (s->cap - 1);
    for (size_t probes = 0; s->slots[i].p != 0 && s->slots[i].p != p; probes++) {
        if (probes == s->cap)
            damaged(s);
        i = (i + 1) & (s->cap - 1);
    }
    return &s->slots[i];
}

static int grow(shard_t *s)
{
    size_t cap = s->cap ? 2 * s->cap : FIRST_SLOTS;
    entry_t *slots = soma__os_map(cap * sizeof(entry_t));
    if (slots == NULL)
        return -1;
    entry_t *old = s->slots;
    size_t oldcap = s->cap;
    s->slots = slots;
    s->cap = cap;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].p != 0)
            *find(s, old[i].p) = old[i];
    if (old != NULL)
        soma__os_unmap(old, oldcap * sizeof(entry_t));
    return 0;
}

/* ---- which large block holds an address (the checked copies) ----
 *
 * The registry finds a block by its start; a copy names any byte of it.
 * So each window of 4 GiB of addresses where mapped blocks have been has
 * a record (large_window_t, malloc.h: mapped when its first block is
 * entered, and kept): how many blocks overlap each MiB of it, and the
 * blocks' first and last pages marked in two bitmaps, one bit a page.
 * Changed under the block's shard lock, with atomic adds and or/and
 * (shards share them); read without a lock.  A byte in a MiB no block
 * overlaps is in none (soma__large_near: the test a copy to a library's
 * globals or a thread's stack stops at).  Otherwise the block that may
 * hold it is the nearest start at or below its page (blocks never
 * overlap, so no other can); it holds the byte when no end lies between
 * them, and a copy from there fits in it when no end lies before the
 * copy's last page.  For a live block nothing read there changes while
 * it is read, so the quick answer (soma__large_copy_fits) is exact for a
 * copy into a live block; the diagnosis asks the registry, under its
 * lock (soma__large_block_of).  The scan for a start looks back
 * MARKS_SCAN words (about 4 MiB of addresses): a byte further into a
 * larger block is not found (a copy there goes unchecked, never falsely
 * stopped).  System blocks (the small fallback) have no marks: they are
 * the system allocator's chunks. */
#define MARKS_PAGES ((size_t)1 << (SOMA_LARGE_WINDOW_BITS - 12))
#define MARKS_SCAN 16
_Static_assert(PAGE == 4096, "one bit per 4 KiB page");
/* a mapped block takes a page at least (two unless the medium classes
 * end below a page: the py38 geometry); a block's first and last page
 * may be one */
_Static_assert(((size_t)1 << SOMA_LARGE_MIB_BITS) / PAGE + 1 < 65536,
               "a MiB's count of blocks fits 16 bits");
_Atomic(large_window_t *) soma__large_windows[SOMA_LARGE_WINDOWS];

/* The last block a thread's quick answer found, [start, end), good while
 * no block has left the registry since (`left`, counted under the shard
 * locks): a program copying piece by piece into one large buffer (a
 * join, a file read in chunks) finds it again in a few instructions. */
static _Atomic uint64_t left;
static __thread struct {
    uintptr_t start, end;
    uint64_t left;
} seen __attribute__((tls_model("initial-exec")));

/* The window of addr, mapped if `make` and there is none yet (NULL if it
 * cannot be: the block goes unchecked). */
static large_window_t *window(uintptr_t addr, int make)
{
    size_t w = addr >> SOMA_LARGE_WINDOW_BITS;
    if (w >= SOMA_LARGE_WINDOWS)
        return NULL;
    large_window_t *win = atomic_load_explicit(&soma__large_windows[w], memory_order_acquire);
    if (win != NULL || !make)
        return win;
    large_window_t *fresh = soma__os_map(sizeof *fresh);
    if (fresh == NULL)
        return NULL;
    if (atomic_compare_exchange_strong_explicit(&soma__large_windows[w], &win, fresh,
                                                memory_order_acq_rel, memory_order_acquire))
        return fresh;
    soma__os_unmap(fresh, sizeof *fresh);
    return win;
}

static void mark(_Atomic uint64_t *bits, uintptr_t addr, int on)
{
    size_t page = (addr >> 12) & (MARKS_PAGES - 1);
    uint64_t bit = (uint64_t)1 << (page % 64);
    if (on)
        atomic_fetch_or_explicit(&bits[page / 64], bit, memory_order_release);
    else
        atomic_fetch_and_explicit(&bits[page / 64], ~bit, memory_order_release);
}

/* The MiBs [p, p + map) overlaps count one more (on) or one less: a block
 * entered or leaving, or a sealed mapping (copies into it are checked). */
static void mibs_count(uintptr_t p, size_t map, int on)
{
    uintptr_t last = p + map - 1;
    large_window_t *win;
    for (uintptr_t mib = p >> SOMA_LARGE_MIB_BITS; mib <= last >> SOMA_LARGE_MIB_BITS; mib++)
        if ((win = window(mib << SOMA_LARGE_MIB_BITS, on)) != NULL) {
            _Atomic uint16_t *n = &win->blocks[mib & (SOMA_LARGE_MIBS - 1)];
            if (on)
                atomic_fetch_add_explicit(n, 1, memory_order_release);
            else
                atomic_fetch_sub_explicit(n, 1, memory_order_release);
        }
}
/* The block [p, p + map) is entered (on) or leaves. */
static void marks_set(uintptr_t p, size_t map, int on)
{
    uintptr_t last = p + map - 1;
    large_window_t *win;
    if ((win = window(p, on)) != NULL)
        mark(win->starts, p, on);
    if ((win = window(last, on)) != NULL)
        mark(win->ends, last, on);
    mibs_count(p, map, on);
}

/* The nearest start at or below `page` in a window's starts, within the
 * scan's reach: 1 and its page in *at, or 0. */
static int nearest_start(_Atomic uint64_t *starts, size_t page, size_t *at)
{
    size_t i = page / 64;
    uint64_t m = atomic_load_explicit(&starts[i], memory_order_acquire) &
                 (~(uint64_t)0 >> (63 - page % 64)); /* page's bit and those below */
    for (unsigned k = 0; m == 0 && k < MARKS_SCAN && i > 0; k++)
        m = atomic_load_explicit(&starts[--i], memory_order_acquire);
    if (m == 0)
        return 0;
    *at = i * 64 + 63 - (size_t)__builtin_clzll(m);
    return 1;
}

/* Is any of the pages [lo, hi) marked in `bits`? */
static int any_marked(_Atomic uint64_t *bits, size_t lo, size_t hi)
{
    for (size_t i = lo / 64; lo < hi; i++, lo = i * 64) {
        uint64_t m = atomic_load_explicit(&bits[i], memory_order_acquire) >> (lo % 64);
        if (hi - lo < 64 - lo % 64)
            m &= ((uint64_t)1 << (hi - lo)) - 1;
        if (m != 0)
            return 1;
    }
    return 0;
}

/* An explicit heap's count of its large blocks, changed by `by` blocks of
 * `bytes` (a shard's lock held). */
static void owned_add(const void *owner, long by, size_t bytes)
{
    if (owner == NULL)
        return;
    heap_t *h = (heap_t *)owner;
    if (by > 0) {
        atomic_fetch_add_explicit(&h->large_blocks, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&h->large_bytes, bytes, memory_order_relaxed);
    } else {
        atomic_fetch_sub_explicit(&h->large_blocks, 1, memory_order_relaxed);
        atomic_fetch_sub_explicit(&h->large_bytes, bytes, memory_order_relaxed);
    }
}

/* Record p (n bytes asked, a mapping of `map` bytes or 0, asked of the
 * explicit heap `owner` or of none); 0, or -1 if the table could not grow
 * (no memory for it). */
static int enter(void *p, size_t n, size_t map, const void *owner)
{
    shard_t *s = shard_of((uintptr_t)p);
    pthread_mutex_lock(&s->lock);
    if (2 * (s->used + 1) > s->cap && grow(s) != 0) {
        pthread_mutex_unlock(&s->lock);
        return -1;
    }
    entry_t *e = find(s, (uintptr_t)p);
    *e = (entry_t){(uintptr_t)p, n, map, owner};
    s->used++;
    s->bytes += n;
    s->mapped += map;
    owned_add(owner, 1, n);
    if (map > 0)
        marks_set((uintptr_t)p, map, 1);
    pthread_mutex_unlock(&s->lock);
    if (map > 0)
        live_grew(map);
    atomic_fetch_add_explicit(&made_total, 1, memory_order_relaxed);
    return 0;
}

/* A system block, recorded and returned.  If it cannot be recorded it is
 * still returned: the block works, and is then neither counted nor
 * recognised, like a foreign one (the system frees it either way). */
static void *enter_sys(void *p, size_t n, const void *owner)
{
    if (p != NULL)
        (void)enter(p, n, 0, owner);
    return p;
}

/* Take the entry in slot `hole` out of shard s (its lock held) into *out.
 * Backward-shift deletion: later entries of the run move into the hole
 * when their home slot is at or before it, so no probe run is broken. */
static void remove_at(shard_t *s, size_t hole, entry_t *out)
{
    size_t mask = s->cap - 1;
    *out = s->slots[hole];
    s->bytes -= out->n;
    s->mapped -= out->map;
    s->used--;
    owned_add(out->owner, -1, out->n);
    if (out->map > 0) {
        marks_set(out->p, out->map, 0);
        atomic_fetch_add_explicit(&left, 1, memory_order_release);
    }
    size_t probes = 0;
    for (size_t j = (hole + 1) & mask; s->slots[j].p != 0; j = (j + 1) & mask) {
        if (++probes == s->cap)
            damaged(s);
        size_t home = (mix(s->slots[j].p) / SHARDS) & mask;
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            s->slots[hole] = s->slots[j];
            hole = j;
        }
    }
    s->slots[hole].p = 0;
    atomic_fetch_sub_explicit(&live_mapped, out->map, memory_order_relaxed);
}

/* Forget p if it is registered: 1 (its entry in *out), else 0. */
static int leave(uintptr_t p, entry_t *out)
{
    shard_t *s = shard_of(p);
    pthread_mutex_lock(&s->lock);
    if (s->cap == 0 || find(s, p)->p != p) {
        pthread_mutex_unlock(&s->lock);
        return 0;
    }
    remove_at(s, (size_t)(find(s, p) - s->slots), out);
    pthread_mutex_unlock(&s->lock);
    return 1;
}

/* p's entry, if p is registered: 1, else 0. */
static int lookup(uintptr_t p, entry_t *out)
{
    shard_t *s = shard_of(p);
    pthread_mutex_lock(&s->lock);
    int found = 0;
    if (s->cap > 0) {
        entry_t *e = find(s, p);
        if (e->p == p) {
            *out = *e;
            found = 1;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return found;
}

/* ---- the cache of freed mappings ---- */

#define CACHE_MAX ((size_t)128 << 20) /* bytes; see the top of the file */
#define CACHE_FLOOR ((size_t)256 << 10) /* bytes: the bound however little is in use */
#define CACHE_SLOTS 1024             /* mappings; slot numbers fit a uint16_t */
#define EXACT 64                     /* pages: bins 0..EXACT hold one count each */
#define CACHE_BINS 128
#define GONE_BATCH 16 /* mappings released per turn of the lock */
#define INDEX_CAP 4096 /* ends: two keys per slot, at most half full */
_Static_assert(INDEX_CAP >= 4 * CACHE_SLOTS, "ends stays at most half full");

/* The bin of a mapping of `pages` pages: the count itself up to EXACT,
 * then four bins per doubling, [4<<(k-2), 8<<(k-2)) split in quarters.  A
 * mapping above CACHE_MAX (32,768 pages, k = 15) is never cached: the
 * largest bin is 101; a request may be larger (its bin is no bin's). */
static unsigned bin_of(size_t pages)
{
    if (pages <= EXACT)
        return (unsigned)pages;
    unsigned k = 63u - (unsigned)__builtin_clzll((unsigned long long)pages); /* >= 6 */
    return EXACT + 1 + (k - 6) * 4 + (unsigned)((pages >> (k - 2)) & 3);
}
_Static_assert(EXACT + 1 + (15 - 6) * 4 + 3 < CACHE_BINS, "every cached size has a bin");
_Static_assert(CACHE_MAX / 4096 == (1u << 15), "bin_of's bound");

/* Slots are numbered 1..CACHE_SLOTS; 0 is none.  A slot in use is on its
 * bin's list (most recently freed first) and on the age list (young: the
 * most recently freed; old: the least, released first); a spare one is on
 * the spare list (through bnext). */
typedef struct {
    uintptr_t p;
    size_t pages;
    uint64_t since_ms; /* when freed (with a decay) */
    uint16_t bin;
    uint16_t bnext, bprev; /* bnext toward older, in the bin */
    uint16_t anext, aprev; /* anext toward older, in the age list */
} slot_t;

static struct {
    _Alignas(64) pthread_mutex_t lock;
    uint16_t head[CACHE_BINS];
    uint64_t nonempty[CACHE_BINS / 64]; /* bit b: head[b] != 0 */
    uint16_t young, old;
    uint16_t spare;  /* spare slots, once used */
    uint16_t carved; /* slots 1..carved have been used */
    size_t count, bytes;
    size_t bound;         /* bytes, as last set by cache_put (bound_now); 0: CACHE_FLOOR */
    uint64_t window_ms;   /* when this window began (with a decay) */
    slot_t slot[CACHE_SLOTS + 1];
} cache = {.lock = PTHREAD_MUTEX_INITIALIZER};
/* All zero, so in .bss, not .data: the loader reads .data from the file,
 * and its pages count in every program's RSS (one initialised field here
 * once put 110 KiB there). */
_Static_assert(sizeof cache < (64 << 10), "the cache's record stays small");

/* Every cached mapping's two ends, so that a freed mapping finds the
 * cached ones it touches (cache_put merges them): open addressing, linear
 * probing, deletion by backward shift.  Key: a start address, or an end
 * address with bit 0 set (both are page-aligned); 0 is empty.  Cache lock. */
static struct {
    uintptr_t key;
    uint16_t slot;
} ends[INDEX_CAP];
/* The index uses ends[0 .. INDEX_MIN << index_grown): it grows with the
 * cache (push_slot), so that a program with a handful of cached mappings
 * touches one page of it, not the 64 KiB its hashing would spread them
 * over.  Cache lock. */
#define INDEX_MIN 256 /* 2^8: end_home's shift */
_Static_assert(INDEX_MIN == 1 << 8 && INDEX_CAP == INDEX_MIN << 4,
               "end_home's shift (56 - index_grown) and push_slot's growth assume these");
static unsigned index_grown;

static size_t index_cap(void)
{
    return (size_t)INDEX_MIN << index_grown;
}

static _Atomic size_t maps_made, maps_reused, maps_released;

/* The first bin >= b that holds a mapping, or -1. */
static int next_bin(unsigned b)
{
    for (unsigned w = b / 64; w < CACHE_BINS / 64; w++) {
        uint64_t m = cache.nonempty[w];
        if (w == b / 64)
            m &= ~0ULL << (b % 64);
        if (m != 0)
            return (int)(w * 64 + (unsigned)__builtin_ctzll(m));
    }
    return -1;
}

/* The last bin < b that holds a mapping, or -1. */
static int prev_bin(unsigned b)
{
    for (int w = (int)(b / 64); w >= 0; w--) {
        uint64_t m = w < CACHE_BINS / 64 ? cache.nonempty[w] : 0;
        if ((unsigned)w == b / 64)
            m &= b % 64 ? ~0ULL >> (64 - b % 64) : 0;
        if (m != 0)
            return w * 64 + 63 - __builtin_clzll(m);
    }
    return -1;
}

static size_t end_home(uintptr_t key)
{
    return (size_t)(((uint64_t)key >> 12) * 0x9e3779b97f4a7c15ULL >> (56 - index_grown));
}

/* The slot whose start (or end, with bit 0 set) is key, or 0. */
static uint16_t end_find(uintptr_t key)
{
    size_t mask = index_cap() - 1;
    for (size_t i = end_home(key);; i = (i + 1) & mask) {
        if (ends[i].key == key)
            return ends[i].slot;
        if (ends[i].key == 0)
            return 0;
    }
}

static void end_add(uintptr_t key, uint16_t slot)
{
    size_t mask = index_cap() - 1;
    size_t i = end_home(key);
    while (ends[i].key != 0)
        i = (i + 1) & mask;
    ends[i].key = key;
    ends[i].slot = slot;
}

static void end_remove(uintptr_t key)
{
    size_t mask = index_cap() - 1;
    size_t i = end_home(key);
    while (ends[i].key != key) {
        if (ends[i].key == 0) /* every cached range has both ends in */
            soma__fatal("large cache index: no entry for %#lx", (unsigned long)key);
        i = (i + 1) & mask;
    }
    for (size_t j = (i + 1) & mask; ends[j].key != 0; j = (j + 1) & mask) {
        size_t home = end_home(ends[j].key);
        if (((j - home) & mask) >= ((j - i) & mask)) {
            ends[i] = ends[j];
            i = j;
        }
    }
    ends[i].key = 0;
}

/* Slot i off its bin's list / onto the head of its bin's (cache lock held). */
static void bin_out(uint16_t i)
{
    slot_t *s = &cache.slot[i];
    if (s->bprev != 0)
        cache.slot[s->bprev].bnext = s->bnext;
    else if ((cache.head[s->bin] = s->bnext) == 0)
        cache.nonempty[s->bin / 64] &= ~(1ULL << (s->bin % 64));
    if (s->bnext != 0)
        cache.slot[s->bnext].bprev = s->bprev;
}

static void bin_in(uint16_t i)
{
    slot_t *s = &cache.slot[i];
    unsigned b = bin_of(s->pages);
    s->bin = (uint16_t)b;
    s->bprev = 0;
    s->bnext = cache.head[b];
    if (s->bnext != 0)
        cache.slot[s->bnext].bprev = i;
    cache.head[b] = i;
    cache.nonempty[b / 64] |= 1ULL << (b % 64);
}

/* Take slot i off both lists and make it spare (cache lock held). */
static void unlink_slot(uint16_t i)
{
    slot_t *s = &cache.slot[i];
    bin_out(i);
    if (s->aprev != 0)
        cache.slot[s->aprev].anext = s->anext;
    else
        cache.young = s->anext;
    if (s->anext != 0)
        cache.slot[s->anext].aprev = s->aprev;
    else
        cache.old = s->aprev;
    cache.count--;
    cache.bytes -= s->pages * PAGE;
    end_remove(s->p);
    end_remove((s->p + s->pages * PAGE) | 1);
    s->bnext = cache.spare;
    cache.spare = i;
}

/*
 * A cached mapping's first word (a hardened build without a checker, as
 * the blocks' tails): `tail key ^ its address ^ FREED_WORD`, made a check
 * word (soma__base_check_word, base.h), written when the
 * range is cached or its start moves (a split), compared when the range is
 * taken, merged into another, or released.  So a write after free into
 * the first bytes of a freed large block (where a struct's first field, a
 * length or a count, lies) stops the program when the cache next touches
 * the range, instead of landing unseen or in the block's next owner's
 * data.  A store and a load a cached range, on a page the cache keeps
 * resident; nothing on the paths of live blocks.  Cache lock held.
 */
#define FREED_WORD 0x66726565646c6172ull
static uint64_t freed_word(uintptr_t p)
{
    return soma__base_check_word(soma__tail_key ^ p ^ FREED_WORD);
}
static void freed_set(uintptr_t p)
{
    if (SOMA_LARGE_TAIL)
        *(uint64_t *)p = freed_word(p);
}
/* `how`: what the cache was doing with the range at p when it found its
 * first word changed. */
static void freed_check(uintptr_t p, size_t pages, const char *how)
{
    if (!SOMA_LARGE_TAIL || SOMA_LIKELY(*(uint64_t *)p == freed_word(p)))
        return;
    uint64_t w = *(uint64_t *)p;
    size_t at = soma__base_first_diff(w, freed_word(p));
    soma__fatal("write after free: a large block freed at %p was written after its free (byte "
                "%zu of its first 8, in a range of %zu KiB soma keeps for reuse), found as the "
                "range was %s",
                (void *)p, at, pages * (size_t)(PAGE / 1024), how);
}

/* Put [p, p + pages) at the young end of both lists (cache lock held, a
 * slot to be had: the caller released one if none was spare). */
static void push_slot(uintptr_t p, size_t pages, uint64_t now)
{
    /* Two keys a mapping, the index at most half full.  Here the index
     * holds exactly the cached mappings' ends, so it can be built anew. */
    if (4 * (cache.count + 1) > index_cap()) { /* never past INDEX_CAP: count < CACHE_SLOTS */
        memset(ends, 0, index_cap() * sizeof ends[0]);
        index_grown++;
        for (uint16_t j = cache.young; j != 0; j = cache.slot[j].anext) {
            end_add(cache.slot[j].p, j);
            end_add((cache.slot[j].p + cache.slot[j].pages * PAGE) | 1, j);
        }
    }
    uint16_t i = cache.spare;
    if (i != 0)
        cache.spare = cache.slot[i].bnext;
    else
        i = ++cache.carved;
    slot_t *s = &cache.slot[i];
    *s = (slot_t){.p = p, .pages = pages, .since_ms = now};
    bin_in(i);
    s->anext = cache.young;
    if (s->anext != 0)
        cache.slot[s->anext].aprev = i;
    else
        cache.old = i;
    cache.young = i;
    cache.count++;
    cache.bytes += pages * PAGE;
    end_add(p, i);
    end_add((p + pages * PAGE) | 1, i);
}

/* The first `pages` pages of the mapping in slot i leave the cache (the
 * caller releases them); the rest stays, in its place among the ages
 * (cache lock held; fewer pages than the slot has). */
static void shrink_front(uint16_t i, size_t pages)
{
    slot_t *s = &cache.slot[i];
    freed_check(s->p, s->pages, "given back in part");
    bin_out(i);
    end_remove(s->p);
    s->p += pages * PAGE;
    freed_set(s->p);
    s->pages -= pages;
    cache.bytes -= pages * PAGE;
    end_add(s->p, i);
    bin_in(i);
}

/* The cache's bound at `now` (cache lock held).  `peak` is the most the
 * program's large blocks have had mapped at once lately (in this window of
 * SOMA_ARENA_DECAY_MS and the one before): a program that once had 60 MiB
 * of large blocks in use will likely want them again, one whose large
 * blocks peak at 3 MiB gains nothing from caching more, only RSS.  The
 * cache keeps what would take the blocks in use back to that peak, so
 * that mapped and cached together stay within it: a program that frees
 * its large blocks and then grows the rest of its heap (python's json
 * round: a 5 MiB text freed, then a parse into small objects) does not
 * keep the freed pages on top of its next peak.  But never less than a
 * third of the peak (the turnover room of a program that replaces blocks
 * of random sizes: bench_small's big, with less, mapped afresh most of
 * the time) nor than CACHE_FLOOR, nor more than CACHE_MAX. */
static size_t bound_now(uint64_t now)
{
    long decay = soma__options.decay_ms;
    /* now was read before the lock: another thread's later reading may
     * have set the window already (so now < window_ms, not a wrap). */
    if (decay > 0 && now > cache.window_ms && now - cache.window_ms >= (uint64_t)decay) {
        size_t live = atomic_load_explicit(&live_mapped, memory_order_relaxed);
        atomic_store_explicit(&peak_before,
                              atomic_exchange_explicit(&live_peak, live, memory_order_relaxed),
                              memory_order_relaxed);
        cache.window_ms = now;
    }
    size_t peak = soma__large_peak();
    size_t live = atomic_load_explicit(&live_mapped, memory_order_relaxed);
    size_t room = peak / 3;
    if (live < peak - room) /* peak - live > room; live may pass peak for a moment */
        room = peak - live;
    room = room > CACHE_FLOOR ? room : CACHE_FLOOR;
    return room < CACHE_MAX ? room : CACHE_MAX;
}

/* Has the mapping in slot i been cached longer than `decay` ms?  (lock
 * held; now may be older than the slot's time: read before the lock) */
static int older(uint16_t i, uint64_t now, uint64_t decay)
{
    return now > cache.slot[i].since_ms && now - cache.slot[i].since_ms >= decay;
}

static int due(uint16_t i, uint64_t now)
{
    long decay = soma__options.decay_ms;
    return decay > 0 && older(i, now, (uint64_t)decay);
}

/* How many bytes of the oldest cached mapping must go now (cache lock
 * held): all of it once it has aged out (a decay) or when only one mapping
 * may be kept (no decay); else what brings the cache within its bound,
 * which may be part of it (a merged mapping can be large: releasing all of
 * it would give back far more than the bound asks); 0: none. */
static size_t excess(uint64_t now)
{
    if (cache.old == 0)
        return 0;
    const slot_t *o = &cache.slot[cache.old];
    size_t all = o->pages * PAGE;
    long decay = soma__options.decay_ms;
    if ((decay == 0 && cache.count > 1) || due(cache.old, now))
        return all;
    if (cache.bytes <= cache.bound)
        return 0;
    size_t over = (cache.bytes - cache.bound + PAGE - 1) / PAGE * PAGE;
    return over < all ? over : all;
}

/* Give a mapping back to the OS; whatever a checker was told about its
 * addresses is void from now on. */
static void release(void *p, size_t map)
{
    soma__track_fresh(p, map);
    soma__os_unmap(p, map);
    atomic_fetch_add_explicit(&maps_released, 1, memory_order_relaxed);
}

/* Mappings, or the front of one, taken out of the cache under its lock and
 * released after it (cache_put, soma__large_trim). */
typedef struct {
    int k;
    struct {
        uintptr_t p;
        size_t size;
    } m[GONE_BATCH];
} gone_t;

/* The first x bytes of the oldest cached mapping (all of it, or part)
 * into g (cache lock held; g not full). */
static void gone_oldest(gone_t *g, size_t x)
{
    g->m[g->k].p = cache.slot[cache.old].p;
    g->m[g->k++].size = x;
    if (x < cache.slot[cache.old].pages * PAGE) {
        shrink_front(cache.old, x / PAGE);
    } else {
        freed_check(cache.slot[cache.old].p, cache.slot[cache.old].pages, "given back");
        unlink_slot(cache.old);
    }
}

/* Release what g holds (no lock held); its bytes. */
static size_t gone_release(const gone_t *g)
{
    size_t bytes = 0;
    for (int i = 0; i < g->k; i++) {
        release((void *)g->m[i].p, g->m[i].size);
        bytes += g->m[i].size;
    }
    return bytes;
}

/* Put the mapping [p, p + map) in the cache (p may be NULL: none; else no
 * block's any more, and a checker told so: soma__track_free) and
 * release what must go: the oldest while the cache is over its bounds.
 * The releases happen outside the lock, GONE_BATCH at a time. */
static void cache_put(void *p, size_t map)
{
    if (map > CACHE_MAX) {
        release(p, map);
        p = NULL;
    }
    uint64_t now = soma__options.decay_ms > 0 ? soma__process_now_ms() : 0;
    /* A mapping cached begins its decay: the purge thread must know, once
     * the mapping is there to be seen (base/wake.h). */
    int begins = p != NULL && now != 0;
    for (;;) {
        gone_t g = {0};
        pthread_mutex_lock(&cache.lock);
        cache.bound = bound_now(now);
        if (p != NULL) {
            /* The cached mappings it touches join it (one range of pages,
             * as young as its youngest part), so that the pieces splits
             * leave do not pile up as ranges too small for the next
             * request, and a program's freed mappings become one range
             * the way a heap's free chunks coalesce.  Not one past half
             * its decay: merged it would be young again, and a range a
             * neighbour keeps freshening would never age out; it goes
             * when due, as before.  None without a decay, where every
             * mapping but the newest goes at once. */
            uint64_t half = (uint64_t)soma__options.decay_ms / 2;
            uint16_t before = end_find((uintptr_t)p | 1), after = end_find((uintptr_t)p + map);
            if (before != 0 && (soma__options.decay_ms == 0 || older(before, now, half)))
                before = 0;
            if (after != 0 && (soma__options.decay_ms == 0 || older(after, now, half)))
                after = 0;
            int joined = 0; /* p joins the range before it, whose first word stays */
            if (before != 0 && cache.slot[before].pages * PAGE + map <= CACHE_MAX) {
                freed_check(cache.slot[before].p, cache.slot[before].pages, "merged");
                p = (char *)p - cache.slot[before].pages * PAGE;
                map += cache.slot[before].pages * PAGE;
                unlink_slot(before);
                joined = 1;
            }
            if (after != 0 && cache.slot[after].pages * PAGE + map <= CACHE_MAX) {
                freed_check(cache.slot[after].p, cache.slot[after].pages, "merged");
                map += cache.slot[after].pages * PAGE;
                unlink_slot(after);
            }
            if (!joined)
                freed_set((uintptr_t)p);
            if (cache.spare == 0 && cache.carved == CACHE_SLOTS)
                gone_oldest(&g, cache.slot[cache.old].pages * PAGE);
            push_slot((uintptr_t)p, map / PAGE, now);
            p = NULL;
        }
        for (size_t x; g.k < GONE_BATCH && (x = excess(now)) > 0;)
            gone_oldest(&g, x);
        pthread_mutex_unlock(&cache.lock);
        gone_release(&g);
        if (g.k < GONE_BATCH) {
            if (begins) {
                soma__wake();
                /* No lock of soma's held: the purge thread may start here
                 * (base/wake.h), as on the pools' slow paths. */
                soma__wake_safe_point(now);
            }
            return;
        }
    }
}

/*
 * Sealed mappings (a hardened build without a checker: SOMA_LARGE_TAIL).
 * glibc unmaps a freed chunk it had mapped (128 KiB or more), so a read or
 * a write after its free faults, and raises that threshold to the chunk's
 * size (M_MMAP_THRESHOLD adapts), so that a program freeing blocks of that
 * size again and again keeps them in its heap from then on.  soma's cache
 * keeps every freed mapping readable, and hands it to the next request of
 * its size: a use after free goes unseen, and a stale write lands in the
 * next owner's block.  So the first freed mapping of each new largest size
 * from SEAL_MIN to SEAL_MAX is sealed instead of cached: its pages go back
 * to the OS as munmap would give them, its addresses stay reserved and
 * inaccessible (so no later mapping lands there: a stale pointer faults,
 * rather than reaching the block made after), and seal_from rises past its
 * size, so that the next free of that size is cached as before: a program
 * pays one system call and one fresh mapping per new size, and none in a
 * loop (above SEAL_MAX the fresh mapping's faults cost too much: none).
 * The last SEALS sealed ranges are kept, the oldest unmapped when one more
 * is sealed; free or realloc of a pointer into one stops the
 * program (not_inside: a double free, or a pointer kept after its free).
 * Cache lock, which fork holds: seal_from is read without it first
 * (relaxed; checked again under it).  The seal's system call is made
 * under the lock, so that a range is in `sealed` exactly while it is
 * sealed: once per new size, not on a path that repeats.
 */
#define SEAL_MIN ((size_t)128 << 10) /* glibc's mmap threshold, as for tails */
/* A sealed mapping's pages are gone: the next request of its size faults
 * them in afresh.  bench_small huge (5 to 25 MiB) faulted 2.7 times as
 * many pages with every new largest size sealed, and ran 1.5 times as
 * long; up to 4 MiB a seal costs at most 1,024 faults. */
#define SEAL_MAX ((size_t)4 << 20)
#define SEALS 8
static _Atomic size_t seal_from = SEAL_MIN; /* .data: one word */
static struct {
    /* Written under the lock; the checked copies' quick answer and the
     * fault handler read them without it (soma__large_sealed_quick), so
     * atomics (relaxed: a torn pair only sends a copy to the full check,
     * which reads them locked). */
    _Atomic uintptr_t p[SEALS];
    _Atomic size_t map[SEALS];
    unsigned next; /* the slot sealed next: the oldest */
} sealed;

/* The freed mapping [p, p + map) sealed if it is the first of its size
 * (above): 1; else 0, and the caller caches it. */
static int seal(void *p, size_t map)
{
    if (!SOMA_LARGE_TAIL || map > SEAL_MAX ||
        map < atomic_load_explicit(&seal_from, memory_order_relaxed))
        return 0;
    uintptr_t old = 0;
    size_t old_map = 0;
    /* Its MiBs are counted as near while it is sealed (a copy into it is
     * checked: soma__large_near), in the windows its block was entered in:
     * windows are never unmapped, so the count taken here is given back
     * at its release.  Without them (their mapping failed when the block
     * was entered), no seal; none is mapped here. */
    if (window((uintptr_t)p, 0) == NULL || window((uintptr_t)p + map - 1, 0) == NULL)
        return 0;
    pthread_mutex_lock(&cache.lock);
    int done = 0;
    if (map >= atomic_load_explicit(&seal_from, memory_order_relaxed)) {
        /* Raised whether or not the kernel seals it: a refusal (the
         * count of mappings, a memory lock limit) is not retried by every
         * free of the size. */
        atomic_store_explicit(&seal_from, map + PAGE, memory_order_relaxed);
        done = soma__os_seal(p, map) == 0;
    }
    if (done) {
        mibs_count((uintptr_t)p, map, 1);
        unsigned i = sealed.next;
        old = atomic_load_explicit(&sealed.p[i], memory_order_relaxed);
        old_map = atomic_load_explicit(&sealed.map[i], memory_order_relaxed);
        atomic_store_explicit(&sealed.p[i], (uintptr_t)p, memory_order_relaxed);
        atomic_store_explicit(&sealed.map[i], map, memory_order_relaxed);
        sealed.next = (i + 1) % SEALS;
    }
    pthread_mutex_unlock(&cache.lock);
    if (old != 0) {
        mibs_count(old, old_map, 0);
        release((void *)old, old_map);
    }
    return done;
}

/* A freed mapping, no block's any more (a checker told so): sealed or
 * cached. */
static void retire(void *p, size_t map)
{
    if (!seal(p, map))
        cache_put(p, map);
}

/* Might a sealed range hold p?  1, with the range as read.  No lock: for
 * the checked copies' quick answer, which sends a copy that might to the
 * full check, and for the fault handler (guard.c), which cannot take one. */
int soma__large_sealed_quick(uintptr_t p, uintptr_t *start, size_t *map)
{
    for (unsigned i = 0; i < SEALS; i++) {
        uintptr_t at = atomic_load_explicit(&sealed.p[i], memory_order_relaxed);
        size_t size = atomic_load_explicit(&sealed.map[i], memory_order_relaxed);
        if (at != 0 && p - at < size) {
            *start = at;
            *map = size;
            return 1;
        }
    }
    return 0;
}

int soma__large_sealed(const void *p, uintptr_t *start, size_t *map)
{
    /* The quick look first (most callers ask of a pointer in none), then
     * the same under the lock, where no seal is halfway written. */
    if (!SOMA_LARGE_TAIL || !soma__large_sealed_quick((uintptr_t)p, start, map))
        return 0;
    pthread_mutex_lock(&cache.lock);
    int found = soma__large_sealed_quick((uintptr_t)p, start, map);
    pthread_mutex_unlock(&cache.lock);
    return found;
}

/* Not in malloc.h's SOMA_LARGE_TRIM_*: up to a budget of bytes from the
 * oldest mappings, whatever the bound (large_shed). */
#define TRIM_SHED 4

/* How much of the oldest cached mapping goes in this step (cache lock
 * held, a mapping cached): `left` is what remains of a TRIM_SHED budget. */
static size_t trim_amount(unsigned how, size_t left, uint64_t now)
{
    size_t all = cache.slot[cache.old].pages * PAGE;
    if (how & SOMA_LARGE_TRIM_ALL)
        return all;
    if (how & TRIM_SHED) {
        size_t want = (left + PAGE - 1) / PAGE * PAGE;
        return want < all ? want : all;
    }
    return excess(now);
}

/* soma__large_trim, and large_shed with TRIM_SHED and a budget. */
static size_t trim(unsigned how, size_t budget, uint64_t retry_ms, uint64_t *next_ms)
{
    uint64_t now = soma__process_now_ms();
    size_t bytes = 0;
    for (;;) {
        gone_t g = {0};
        if (!(how & SOMA_LARGE_TRIM_TRY)) {
            pthread_mutex_lock(&cache.lock);
        } else if (pthread_mutex_trylock(&cache.lock) != 0) {
            if (retry_ms < *next_ms)
                *next_ms = retry_ms;
            return bytes;
        }
        /* A shed leaves the bound as it was: it only takes from the cache,
         * and a bound lowered here would be one it did not keep to. */
        if (!(how & TRIM_SHED))
            cache.bound = bound_now(now);
        size_t taken = bytes;
        for (size_t x; g.k < GONE_BATCH && cache.old != 0 && (!(how & TRIM_SHED) || taken < budget) &&
                       (x = trim_amount(how, budget - taken, now)) > 0;
             taken += x)
            gone_oldest(&g, x);
        if (g.k < GONE_BATCH && cache.old != 0 && soma__options.decay_ms > 0) {
            uint64_t due_ms = cache.slot[cache.old].since_ms + (uint64_t)soma__options.decay_ms;
            if (due_ms < *next_ms)
                *next_ms = due_ms;
        }
        pthread_mutex_unlock(&cache.lock);
        bytes += gone_release(&g);
        if (g.k < GONE_BATCH)
            return bytes;
    }
}

/* The cached mappings that have aged out go back to the OS (every one with
 * SOMA_LARGE_TRIM_ALL); *next_ms is lowered to when the oldest one kept
 * will have.  With SOMA_LARGE_TRIM_TRY the cache's lock is only tried: a
 * busy cache is left, *next_ms lowered to `retry_ms` (the purge thread
 * must never wait on a lock: start.c's fork from a signal handler).
 * Returns the bytes given back.  For the purge (runtime/purge.c): without
 * it the cache sheds only when something is freed into it. */
size_t soma__large_trim(unsigned how, uint64_t retry_ms, uint64_t *next_ms)
{
    return trim(how, 0, retry_ms, next_ms);
}

/* Idle memory changes sides (DESIGN.md): the pools made `bytes` more
 * resident (soma__pool_grew_hook, no lock held), so as much of the cache's
 * oldest mappings goes back, whole pages, split where need be.  Only with
 * a decay: without one the cache keeps a single mapping. */
static void large_shed(size_t bytes)
{
    uint64_t ignored = UINT64_MAX;
    if (soma__options.decay_ms > 0)
        (void)trim(TRIM_SHED, bytes, 0, &ignored);
}

/* The other way: the large blocks took `bytes` of fresh memory from the
 * OS (a mapping, or a realloc's growth), so the calling thread's heap
 * gives back as much of its empty pools' pages (soma__arena_shed, which
 * only tries the heap's lock; no lock of the large layer is held here, at
 * most debug mode's, which comes before a heap's). */
static void pools_shed(size_t bytes)
{
    heap_t *h = soma__heap_tls;
    if (soma__options.decay_ms > 0 && h != &soma__heap_empty)
        (void)soma__arena_shed(h, bytes);
}

#define MAX_PIECES 8 /* cached mappings one request is assembled from, at most */

/* Cached mappings taken for one request: piece[0] the largest. */
typedef struct {
    int k;
    uintptr_t p[MAX_PIECES];
    size_t pages[MAX_PIECES];
} pieces_t;

/* Split the cached mapping in slot i: its first `pages` pages are taken,
 * the rest stays cached as a mapping of its own, with the same age (a
 * mapping is only a range of pages to soma: the kernel's mapping is not
 * split, no system call is made).  A rest of one page, which no large
 * request fits, goes with the pages taken, unless `exact` (a piece of an
 * assembly must end where the block does); a mapping of `pages` or fewer
 * is taken whole.  Cache lock held.  Returns the number of pages taken. */
static size_t take_slot(uint16_t i, size_t pages, int exact)
{
    slot_t s = cache.slot[i];
    freed_check(s.p, s.pages, "reused");
    unlink_slot(i);
    if (s.pages <= pages || (!exact && s.pages == pages + 1))
        return s.pages;
    freed_set(s.p + pages * PAGE);
    push_slot(s.p + pages * PAGE, s.pages - pages, s.since_ms);
    return pages;
}

/* Cached pages for a request of `pages` pages, taken out of the cache.
 * The first choice, no system call: the smallest cached mapping of at
 * least `pages` (the first bin from the request's that has one), split if
 * it is larger by more than a third.  Failing that, for a request above
 * EXACT pages, the largest ones, up to MAX_PIECES, until they add up to
 * `pages` (the last one split), which the caller puts together with
 * mremap: page tables move, no page is faulted or copied.  *out: one piece
 * for the first, several (or one too small) for the second; none if the
 * cache has nothing for it. */
static void cache_take(size_t pages, pieces_t *out)
{
    out->k = 0;
    pthread_mutex_lock(&cache.lock);
    for (int b = next_bin(bin_of(pages)); b >= 0; b = next_bin((unsigned)b + 1)) {
        /* Exact bins hold one size; a coarse bin's sizes vary: look at a
         * few, so that a lookup stays short. */
        int look = 8;
        for (uint16_t i = cache.head[b]; i != 0 && look-- > 0; i = cache.slot[i].bnext)
            if (cache.slot[i].pages >= pages) {
                /* Within a quarter of its size, a mapping goes whole: a
                 * split would leave a rest too small for most requests. */
                size_t keep = cache.slot[i].pages <= pages + pages / 3 ? cache.slot[i].pages : pages;
                out->p[0] = cache.slot[i].p;
                out->pages[0] = take_slot(i, keep, 0);
                out->k = 1;
                pthread_mutex_unlock(&cache.lock);
                return;
            }
    }
    size_t have = 0;
    if (pages <= EXACT)
        goto done; /* a few system calls cost more than faulting so few pages */
    for (int b = prev_bin(CACHE_BINS); b >= 0 && have < pages && out->k < MAX_PIECES;
         b = prev_bin((unsigned)b + 1)) {
        uint16_t i = cache.head[b];
        out->p[out->k] = cache.slot[i].p;
        out->pages[out->k] = take_slot(i, pages - have, 1);
        have += out->pages[out->k++];
    }
done:
    pthread_mutex_unlock(&cache.lock);
}

/* Move the cached pages in *pc to one mapping of `size` bytes: one of
 * them grown in place or moved (mremap; the largest, or the next if that
 * fails: a piece an earlier assembly made spans several of the kernel's
 * mappings, and the kernel grows only one), the others moved into its
 * tail (mremap to a fixed address replaces the fresh pages there).  If
 * none can grow, a fresh mapping takes them all.  A piece that cannot
 * move (on kernels before 6.17, one spanning several mappings) is
 * released, and its part of the block stays fresh pages (if the kernel
 * may have unmapped that part instead, the block is given up).  NULL if no
 * mapping could be had; the pieces are cached again then.  *reused: 1 if
 * any piece's pages are in the block. */
static void *assemble(pieces_t *pc, size_t size, int *reused)
{
    *reused = 0;
    for (int i = 0; i < pc->k; i++) /* whatever a checker knew of their addresses ends */
        soma__track_fresh((void *)pc->p[i], pc->pages[i] * PAGE);
    char *q = NULL;
    int base = 0;
    for (; base < pc->k && q == NULL; base++)
        q = soma__os_remap((void *)pc->p[base], pc->pages[base] * PAGE, size, 1);
    size_t off = 0;
    if (q != NULL) {
        base--;
        off = pc->pages[base] * PAGE;
        *reused = 1;
    } else {
        base = -1;
        q = soma__os_map(size);
        if (q == NULL) {
            for (int i = 0; i < pc->k; i++)
                cache_put((void *)pc->p[i], pc->pages[i] * PAGE);
            return NULL;
        }
        atomic_fetch_add_explicit(&maps_made, 1, memory_order_relaxed);
    }
    int hole = 0;
    for (int i = 0; i < pc->k; i++) {
        if (i == base)
            continue;
        size_t len = pc->pages[i] * PAGE;
        /* The pieces add up to `size` at most (cache_take splits the last
         * exactly): a move beyond would replace another mapping's pages. */
        int rc = hole || off + len > size ? -1 : soma__os_remap_fixed((void *)pc->p[i], len, q + off);
        if (rc == 0) {
            *reused = 1;
        } else {
            release((void *)pc->p[i], len);
            hole |= rc == -2;
        }
        off += len;
    }
    if (hole) {
        /* Part of q may be unmapped (os.c): it cannot be the block. */
        soma__os_unmap(q, size);
        errno = ENOMEM;
        return NULL;
    }
    soma__track_fresh(q, size);
    return q;
}

/* A mapping for n bytes (SOMA_MEDIUM_MAX < n), its start aligned to
 * `align` (a power of two; up to a page, any mapping is): its address,
 * its size in *map, and in *dirty how many bytes from its start may hold
 * old contents (a fresh mapping's are zero).  NULL: no memory. */
static void *map_block(size_t n, size_t align, size_t *map, size_t *dirty)
{
    if (n > SIZE_MAX / 2) { /* no such mapping; and page and alignment sums cannot overflow */
        errno = ENOMEM;
        return NULL;
    }
    size_t pages = (n + PAGE - 1) / PAGE, size = pages * PAGE;
    if (align <= PAGE && size <= CACHE_MAX) {
        pieces_t pc;
        cache_take(pages, &pc);
        if (pc.k == 1 && pc.pages[0] >= pages) { /* the reuse path: no system call */
            soma__track_fresh((void *)pc.p[0], pc.pages[0] * PAGE);
            atomic_fetch_add_explicit(&maps_reused, 1, memory_order_relaxed);
            *map = *dirty = pc.pages[0] * PAGE;
            return (void *)pc.p[0];
        }
        if (pc.k > 0) {
            int reused;
            size_t had = 0;
            for (int i = 0; i < pc.k; i++)
                had += pc.pages[i] * PAGE;
            void *p = assemble(&pc, size, &reused);
            if (p != NULL) {
                if (reused)
                    atomic_fetch_add_explicit(&maps_reused, 1, memory_order_relaxed);
                pools_shed(size - had); /* what the pieces lacked came fresh */
                *map = *dirty = size;
                return p;
            }
        }
    }
    size_t extra = align > PAGE ? align - PAGE : 0;
    char *m = soma__os_map(size + extra);
    if (m == NULL)
        return NULL;
    pools_shed(size);
    if (extra > 0) {
        /* Over-mapped by align - PAGE: an aligned start lies in the first
         * `extra` bytes; the head before it and the tail after the block go
         * back at once. */
        size_t head = (size_t)(-(uintptr_t)m & (align - 1));
        if (head > 0)
            soma__os_unmap(m, head);
        if (extra - head > 0)
            soma__os_unmap(m + head + size, extra - head);
        m += head;
    }
    atomic_fetch_add_explicit(&maps_made, 1, memory_order_relaxed);
    soma__track_fresh(m, size);
    *map = size;
    *dirty = 0;
    return m;
}

/*
 * A mapped block's tail (a hardened build, without a checker: base/config.h).
 * The last 8 bytes of the mapping are soma's whenever the block leaves
 * them free (n <= map - 8): a word of the tails' key (link.c), the block's address
 * and the mapping's size, checked when the block is freed or reallocated.
 * An overflow that runs off the block's end, or an underflow of the
 * mapping after it (soma's mappings lie side by side: the kernel places
 * them so, and the cache merges them), changes it, where glibc finds the
 * header of its mapped chunk damaged.  A request of TAIL_PAGE_MIN or more
 * that is a whole number of pages (within 8 bytes) takes one page more for
 * it, as glibc's 16-byte header makes its mapped chunks do; a smaller one
 * does not (a page more on an 8 KiB block is half its size again: such a
 * block simply has no tail).  Whether a block has one follows from its
 * entry (n and map), so nothing records it.  soma_usable_size is the
 * mapping less the tail.  The holder alone reads and writes it: no
 * neighbour's free looks at it.
 */
#define TAIL SOMA_LARGE_TAIL
#define TAIL_PAGE_MIN ((size_t)128 << 10) /* glibc's mmap threshold */

/* The tail's bytes of a block of n in a mapping of map: TAIL or 0. */
static size_t tail_in(size_t n, size_t map)
{
    return TAIL && map - n >= sizeof(uint64_t) ? TAIL : 0;
}
size_t soma__large_usable_of(size_t n, size_t map)
{
    return map - tail_in(n, map);
}
/* The bytes to ask of a mapping for a block of n. */
static size_t with_tail(size_t n)
{
    return TAIL && n >= TAIL_PAGE_MIN && n <= SIZE_MAX / 2 ? n + TAIL : n;
}
static uint64_t *tail_of(void *p, size_t map)
{
    return (uint64_t *)((char *)p + map - sizeof(uint64_t));
}
static uint64_t tail_value(const void *p, size_t map)
{
    return soma__base_check_word(soma__tail_key ^ (uintptr_t)p ^ map);
}
/* The mapping of `map` bytes at p now holds a block of n bytes. */
static void tail_set(void *p, size_t n, size_t map)
{
    if (tail_in(n, map))
        *tail_of(p, map) = tail_value(p, map);
}
/* fn(p) frees or reallocates the block at p, n bytes asked of a mapping
 * of map: stop the program if its tail is not as it was written. */
static void tail_check(void *p, size_t n, size_t map, const char *fn)
{
    if (!tail_in(n, map) || SOMA_LIKELY(*tail_of(p, map) == tail_value(p, map)))
        return;
    uint64_t w = *tail_of(p, map);
    size_t at = map - sizeof(uint64_t) + soma__base_first_diff(w, tail_value(p, map));
    soma__fatal("%s(%p): the last 8 bytes of the large block's mapping, soma's, are overwritten "
                "(B+%zu, B = the block: %zu bytes asked, %zu mapped): a write past the end of "
                "the block (an overflow), or before the start of the mapping after it (an "
                "underflow)",
                fn, p, at, n, map);
}

/* The block [p, p + n) of a mapping of `map` bytes is the program's: a
 * checker is told so, and that the rest of the mapping is no block's. */
static void hand_out(void *p, size_t n, size_t map)
{
    soma__track_alloc(p, n);
    if (map > n)
        soma__track_noaccess((char *)p + n, map - n);
}

/* A large block of soma's own mapping; the system's if none can be had. */
static void *large_block(size_t n, size_t align, int zero, const void *owner)
{
    size_t map, dirty;
    void *p = map_block(with_tail(n), align, &map, &dirty);
    if (p == NULL) {
        if (align <= SOMA_ALIGNMENT)
            return enter_sys(zero ? soma__sys_calloc(1, n) : soma__sys_malloc(n), n, owner);
        void *q = soma__sys_aligned_alloc(align, n);
        if (q != NULL && zero)
            memset(q, 0, n);
        return enter_sys(q, n, owner);
    }
    if (enter(p, n, map, owner) != 0) {
        /* Unrecorded, free would hand it to the system: a system block
         * instead, which works unrecorded. */
        release(p, map);
        return align <= SOMA_ALIGNMENT ? zero ? soma__sys_calloc(1, n) : soma__sys_malloc(n)
                                       : soma__sys_aligned_alloc(align, n);
    }
    hand_out(p, n, map);
    if (dirty == 0) /* a fresh mapping: a slow path, where the cache ages and keeps to its bound */
        cache_put(NULL, 0);
    if (zero && dirty > 0)
        memset(p, 0, n < dirty ? n : dirty);
    tail_set(p, n, map);
    return p;
}

/* ---- the malloc family's large paths (malloc.h) ---- */

void *soma__large_malloc(const void *owner, size_t n)
{
    if (n <= SOMA_MEDIUM_MAX) /* the fallback for a class's size: not worth a page */
        return enter_sys(soma__sys_malloc(n), n, owner);
    return large_block(n, 0, 0, owner);
}

void *soma__large_calloc(const void *owner, size_t n)
{
    if (n <= SOMA_MEDIUM_MAX)
        return enter_sys(soma__sys_calloc(1, n), n, owner);
    return large_block(n, 0, 1, owner);
}

void *soma__large_aligned_alloc(const void *owner, size_t alignment, size_t n)
{
    if (alignment <= SOMA_ALIGNMENT)
        return soma__large_malloc(owner, n);
    if (n <= SOMA_MEDIUM_MAX) /* a page or more per block of a few bytes: no */
        return enter_sys(soma__sys_aligned_alloc(alignment, n), n, owner);
    return large_block(n, alignment, 0, owner);
}

/* Does the cache hold the page at p (a mapping soma keeps free)?  A
 * walk of the cached mappings, under the cache's lock. */
static int cached(uintptr_t p)
{
    int found = 0;
    pthread_mutex_lock(&cache.lock);
    for (uint16_t i = cache.young; i != 0 && !found; i = cache.slot[i].anext)
        found = p - cache.slot[i].p < cache.slot[i].pages * PAGE;
    pthread_mutex_unlock(&cache.lock);
    return found;
}

int soma__large_freed(const void *p)
{
    uintptr_t start;
    size_t map;
    return cached((uintptr_t)p & ~(uintptr_t)(PAGE - 1))
               ? SOMA_LARGE_CACHED
               : soma__large_sealed(p, &start, &map) ? SOMA_LARGE_SEALED : 0;
}

/* p starts no block of soma's, and is about to go to the system
 * allocator as a foreign pointer: unless it lies inside one of soma's
 * mapped blocks (within soma__large_block_of's reach), or in a mapping
 * soma keeps free in its cache, which the system allocator would take
 * for a chunk of its own by the bytes in front of p (program data, or
 * those of the mapping before: glibc stops most, but may unmap a part of
 * the mapping for a header that looks right).  fn(p) stops the program
 * then.  The cache is walked only for a page-aligned p, the start a large
 * block had: a double free of one, or a realloc after its free. */
static void not_inside(const void *p, const char *fn)
{
    uintptr_t start;
    size_t n, map;
    if (SOMA_UNLIKELY(soma__large_block_of(p, &start, &n, &map))) {
        size_t into = (uintptr_t)p - start;
        soma__fatal("%s(%p): not the start of a block: %zu byte%s into the large block at %p "
                    "(%zu bytes asked, %zu mapped)",
                    fn, p, into, into == 1 ? "" : "s", (void *)start, n, map);
    }
    if (((uintptr_t)p & (PAGE - 1)) == 0 && SOMA_UNLIKELY(cached((uintptr_t)p)))
        soma__fatal("%s(%p): not an allocated block: it lies in a large mapping soma keeps free "
                    "(a double free, or a pointer kept after its block was freed)",
                    fn, p);
    if (SOMA_UNLIKELY(soma__large_sealed(p, &start, &map)))
        soma__fatal("%s(%p): not an allocated block: it lies in a large block's mapping that soma "
                    "sealed when the block was freed (a double free, or a pointer kept after its "
                    "block was freed)",
                    fn, p);
}

void soma__large_free(void *p)
{
    entry_t e;
    int found = leave((uintptr_t)p, &e);
    if (!found || e.map == 0) {
        if (!found)
            not_inside(p, "soma_free");
        soma__sys_free(p); /* a system block, or not soma's: the system frees it */
        return;
    }
    tail_check(p, e.n, e.map, "soma_free");
    soma__track_free(p, e.map); /* no access until a request takes it */
    retire(p, e.map);
}

size_t soma__large_usable_size(const void *p)
{
    entry_t e;
    int found = lookup((uintptr_t)p, &e);
    if (!found || e.map == 0) {
        if (!found)
            not_inside(p, "soma_usable_size");
        return soma__sys_usable_size(p);
    }
#if defined(SOMA_TRACK_ASAN)
    /* The program may use all it is told it has. */
    soma__track_alloc((void *)p, e.map);
#elif defined(SOMA_TRACK_VALGRIND)
    /* memcheck's own malloc says the size asked; so must soma under it. */
    return e.n;
#endif
    return soma__large_usable_of(e.n, e.map);
}

/* A mapped block's realloc: in place while the size fits the mapping and
 * wastes at most a quarter of it; shrunk in place (the tail's pages go
 * back); grown by mremap, in place when the addresses after it are free,
 * else moved without copying a byte.  e: p's entry, out of the registry. */
static void *realloc_mapped(void *p, entry_t e, size_t n)
{
    tail_check(p, e.n, e.map, "soma_realloc");
    size_t size = n > SIZE_MAX / 2 ? 0 : (with_tail(n) + PAGE - 1) / PAGE * PAGE;
    if (size != 0 && size <= e.map && 4 * (e.map - size) <= e.map) {
        soma__track_resize(p, e.n, n, e.map);
        tail_set(p, n, e.map); /* n may leave room for one now */
        (void)enter(p, n, e.map, e.owner); /* it had its entry: the table has room */
        atomic_fetch_sub_explicit(&made_total, 1, memory_order_relaxed); /* the same block */
        return p;
    }
    void *q = NULL;
    size_t map = e.map;
    if (size != 0) {
        /* The checker's books (os/track.h): the block at p ends here, its
         * bytes readable (they are moved or copied); the block at q begins
         * below, with the contents it kept defined. */
        soma__track_free(p, e.map);
        soma__track_fresh(p, e.map);
        q = soma__os_remap(p, e.map, size, size > e.map);
        if (q != NULL) {
            map = size;
            if (size > e.map)
                pools_shed(size - e.map);
        } else if (size < e.map) {
            q = p; /* could not shrink: the block keeps its mapping */
        } else if ((q = soma__os_map(size)) != NULL &&
                   soma__os_remap_fixed(p, e.map, q) == 0) {
            /* A block an assembly made spans several of the kernel's
             * mappings, which mremap cannot grow; kernels from 6.17 on
             * move it whole, without copying. */
            atomic_fetch_add_explicit(&maps_made, 1, memory_order_relaxed);
            map = size;
            pools_shed(size - e.map);
        } else {
            if (q != NULL)
                soma__os_unmap(q, size);
            size_t dirty;
            q = map_block(with_tail(n), 0, &map, &dirty);
            if (q != NULL) {
                memcpy(q, p, soma__large_usable_of(e.n, e.map)); /* all usable_size said */
                soma__track_noaccess(p, e.map);
                retire(p, e.map);
            }
        }
        if (q == NULL)
            soma__track_alloc(p, e.n); /* the block at p again, as it was */
    }
    if (q == NULL) {
        if (e.map > e.n)
            soma__track_noaccess((char *)p + e.n, e.map - e.n);
        (void)enter(p, e.n, e.map, e.owner); /* p untouched: still soma's (it had its entry) */
        atomic_fetch_sub_explicit(&made_total, 1, memory_order_relaxed);
        errno = ENOMEM;
        return NULL;
    }
    size_t kept = e.n < n ? e.n : n;
    if (enter(q, n, map, e.owner) != 0) {
        /* It cannot be recorded (no memory for the registry): its contents
         * go to a system block, which works unrecorded. */
        void *b = soma__sys_malloc(n);
        if (b != NULL)
            memcpy(b, q, kept);
        release(q, map);
        return b; /* NULL: the old contents are lost, only when out of memory */
    }
    atomic_fetch_sub_explicit(&made_total, 1, memory_order_relaxed); /* the same block */
    hand_out(q, n, map);
    soma__track_fresh(q, kept); /* the contents it kept are as they were */
    tail_set(q, n, map);
    if (map > e.map)
        cache_put(NULL, 0); /* grown by a system call: the cache keeps to its bound */
    return q;
}

void *soma__large_realloc(void *p, size_t n)
{
    entry_t e;
    if (!leave((uintptr_t)p, &e)) {
        not_inside(p, "soma_realloc");
        return soma__sys_realloc(p, n); /* not soma's: it stays the system's */
    }
    if (e.map != 0)
        return realloc_mapped(p, e, n);
    void *q = soma__sys_realloc(p, n);
    /* Either way the block is entered again; it is still the same block. */
    atomic_fetch_sub_explicit(&made_total, 1, memory_order_relaxed);
    if (q == NULL) {
        (void)enter(p, e.n, 0, e.owner); /* p untouched: still soma's */
        return NULL;
    }
    return enter_sys(q, n, e.owner);
}

/* ---- statistics and the walks ---- */

void soma__large_counts(size_t *count, size_t *bytes, size_t *total)
{
    *count = *bytes = 0;
    for (size_t i = 0; i < SHARDS; i++) {
        pthread_mutex_lock(&shards[i].lock);
        *count += shards[i].used;
        *bytes += shards[i].bytes;
        pthread_mutex_unlock(&shards[i].lock);
    }
    *total = atomic_load_explicit(&made_total, memory_order_relaxed);
}

void soma__large_owned_counts(const void *owner, size_t *count, size_t *bytes)
{
    const heap_t *h = owner;
    *count = atomic_load_explicit(&h->large_blocks, memory_order_relaxed);
    *bytes = atomic_load_explicit(&h->large_bytes, memory_order_relaxed);
}

/* An explicit heap destroyed: every large block asked of it goes, its
 * mapping straight back to the OS (not to the cache: destroy means the
 * memory leaves), a system block to the system.  Each shard's entries of
 * the heap are taken out under its lock, so that no other thread can
 * meanwhile free one and have its address handed to somebody else, then
 * released with no lock held; a shard is scanned again until a pass finds
 * none (a batch may be full, and the deletion's shifts move entries).  A
 * heap with no large block costs nothing.  The heap's user is the caller
 * (soma.h): nobody allocates in it meanwhile. */
void soma__large_release_owned(const void *owner)
{
    enum { BATCH = 64 };
    heap_t *h = (heap_t *)owner;
    for (size_t i = 0; i < SHARDS && atomic_load_explicit(&h->large_blocks, memory_order_relaxed) > 0;
         i++) {
        shard_t *s = &shards[i];
        for (;;) {
            entry_t got[BATCH];
            size_t k = 0;
            pthread_mutex_lock(&s->lock);
            for (size_t j = 0; j < s->cap && k < BATCH;) {
                if (s->slots[j].p != 0 && s->slots[j].owner == owner)
                    remove_at(s, j, &got[k++]); /* slot j may hold a shifted entry now */
                else
                    j++;
            }
            pthread_mutex_unlock(&s->lock);
            for (size_t m = 0; m < k; m++) {
                if (got[m].map == 0) {
                    soma__sys_free((void *)got[m].p);
                } else {
                    soma__track_free((void *)got[m].p, got[m].map);
                    release((void *)got[m].p, got[m].map);
                }
            }
            if (k == 0)
                break;
        }
    }
}

void soma__large_map_counts(soma_large_map_stats *m)
{
    size_t mapped = 0;
    for (size_t i = 0; i < SHARDS; i++) {
        pthread_mutex_lock(&shards[i].lock);
        mapped += shards[i].mapped;
        pthread_mutex_unlock(&shards[i].lock);
    }
    pthread_mutex_lock(&cache.lock);
    m->cached_blocks = cache.count;
    m->cached_bytes = cache.bytes;
    m->cache_max_bytes = cache.bound ? cache.bound : CACHE_FLOOR;
    pthread_mutex_unlock(&cache.lock);
    m->bytes_mapped = mapped + m->cached_bytes;
    m->maps_made_total = atomic_load_explicit(&maps_made, memory_order_relaxed);
    m->maps_reused_total = atomic_load_explicit(&maps_reused, memory_order_relaxed);
    m->maps_released_total = atomic_load_explicit(&maps_released, memory_order_relaxed);
}

int soma__large_lookup(const void *p, size_t *n)
{
    entry_t e;
    if (!lookup((uintptr_t)p, &e))
        return 0;
    *n = e.n;
    return 1;
}

int soma__large_block_of(const void *p, uintptr_t *start, size_t *n, size_t *map)
{
    uintptr_t u = (uintptr_t)p;
    size_t w = u >> SOMA_LARGE_WINDOW_BITS, at;
    large_window_t *win = window(u, 0);
    if (win == NULL || !nearest_start(win->starts, (u >> 12) & (MARKS_PAGES - 1), &at))
        return 0;
    uintptr_t s = (uintptr_t)w << SOMA_LARGE_WINDOW_BITS | (uintptr_t)at << 12;
    entry_t e;
    if (!lookup(s, &e) || e.map == 0 || u - s >= e.map)
        return 0;
    *start = s;
    *n = e.n;
    *map = e.map;
    return 1;
}

int soma__large_copy_fits(const void *p, size_t len)
{
    uintptr_t u = (uintptr_t)p, last;
    if (len == 0)
        return 1;
    if (__builtin_add_overflow(u, len - 1, &last))
        return 0;
    int debug = soma__options.debug != 0;
    uint64_t gone = atomic_load_explicit(&left, memory_order_acquire);
    if (u >= seen.start && last < seen.end && gone == seen.left && !debug)
        return 1;
    size_t w = u >> SOMA_LARGE_WINDOW_BITS, at;
    large_window_t *win = window(u, 0);
    size_t first = (u >> 12) & (MARKS_PAGES - 1);
    if (win == NULL || !nearest_start(win->starts, first, &at) ||
        any_marked(win->ends, at, first)) {
        /* p lies in no large block (the nearest one ends before it); a
         * sealed mapping's MiBs count as near too: a copy into one is
         * checked (a write after free) */
        uintptr_t sealed_at;
        size_t sealed_map;
        return SOMA_LARGE_TAIL == 0 || !soma__large_sealed_quick(u, &sealed_at, &sealed_map);
    }
    if (debug || last >> SOMA_LARGE_WINDOW_BITS != w)
        return 0;
    /* no block's end from p's page to the page before the copy's last */
    if (any_marked(win->ends, first, (last >> 12) & (MARKS_PAGES - 1)))
        return 0;
    /* it fits the block's pages; the block's end, less its tail (the
     * registry's word), for this copy and the next */
    uintptr_t start = (uintptr_t)w << SOMA_LARGE_WINDOW_BITS | (uintptr_t)at << 12;
    entry_t e;
    if (lookup(start, &e) && e.map > 0) {
        uintptr_t end = start + soma__large_usable_of(e.n, e.map);
        if (last >= end)
            return 0;
        seen.start = start;
        seen.end = end;
        seen.left = gone; /* read before the lookup: a block gone since is seen */
    }
    return 1;
}

void soma__large_foreach(void (*fn)(void *p, size_t n, void *arg), void *arg)
{
    for (size_t i = 0; i < SHARDS; i++) {
        shard_t *s = &shards[i];
        pthread_mutex_lock(&s->lock);
        for (size_t j = 0; j < s->cap; j++)
            if (s->slots[j].p != 0)
                fn((void *)s->slots[j].p, s->slots[j].n, arg);
        pthread_mutex_unlock(&s->lock);
    }
}

/* e into the batch `out` of k blocks (k < max: added; else in place of the
 * highest if it is lower), which is a max-heap by address: out[0] is the
 * highest, so the batch ends up with the lowest addresses it was shown. */
static size_t batch_add(large_block_t *out, size_t k, size_t max, large_block_t e)
{
    size_t i;
    if (k < max) {
        for (i = k++; i > 0 && out[(i - 1) / 2].p < e.p; i = (i - 1) / 2)
            out[i] = out[(i - 1) / 2];
        out[i] = e;
        return k;
    }
    if (e.p >= out[0].p)
        return k;
    for (i = 0;;) {
        size_t c = 2 * i + 1;
        if (c >= k)
            break;
        if (c + 1 < k && out[c + 1].p > out[c].p)
            c++;
        if (out[c].p <= e.p)
            break;
        out[i] = out[c];
        i = c;
    }
    out[i] = e;
    return k;
}

/* Each batch is the lowest addresses of its shard above the place: an
 * order that outlives the lock, unlike the table's slots, which move when
 * an entry is forgotten (the backward shift) or the table grows.  A scan
 * of the shard per batch: a walk costs (blocks / max) scans of each
 * shard's table. */
size_t soma__large_batch(large_place_t *at, large_block_t *out, size_t max,
                         int (*keep)(large_block_t *b))
{
    while (at->shard < SHARDS) {
        shard_t *s = &shards[at->shard];
        size_t k = 0;
        pthread_mutex_lock(&s->lock);
        for (size_t j = 0; j < s->cap; j++)
            if (s->slots[j].p > at->after)
                k = batch_add(out, k, max,
                              (large_block_t){s->slots[j].p, s->slots[j].n, s->slots[j].owner});
        if (k == max) {
            at->after = out[0].p; /* the shard may hold more above it */
        } else {
            at->shard++;
            at->after = 0;
        }
        size_t kept = 0;
        for (size_t i = 0; i < k; i++)
            if (keep == NULL || keep(&out[i]))
                out[kept++] = out[i];
        pthread_mutex_unlock(&s->lock);
        if (kept > 0)
            return kept;
    }
    return 0;
}

/* The shards, then the cache: the order is arbitrary (no path holds two of
 * them), but fixed. */
static void large_fork(int phase)
{
    if (phase != SOMA_FORK_PREPARE)
        soma__start_fork_lock(&cache.lock, phase);
    for (size_t i = 0; i < SHARDS; i++)
        soma__start_fork_lock(&shards[i].lock, phase);
    if (phase == SOMA_FORK_PREPARE)
        soma__start_fork_lock(&cache.lock, phase);
}
static void large_start(void)
{
    atomic_store_explicit(&soma__pool_grew_hook, large_shed, memory_order_relaxed);
}

SOMA_HOOK(large, SOMA_ORDER_LARGE, large_start, large_fork);
