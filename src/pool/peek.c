/*
 * peek.c: which blocks of a pool are in use, read by a thread that is not
 * the pool's owner (the walk over every block in use, stats/visit.c).
 *
 * Only the owner changes a pool's free list, nextoffset and count, with no
 * lock (pool.c), so another thread may read them half changed: a block
 * just popped whose first word is already the program's data, a link to
 * blocks carved a moment ago.  The reader holds the heap's lock, and that
 * is what keeps the reading safe: the pool's arena is not released (arena.c
 * does that under the lock), so every byte of the pool stays mapped; its
 * class does not change (an empty pool is put to work
 * under the lock); and nextoffset only grows (carve).  So:
 *
 *   - nothing read is trusted before it is checked: the walk follows a
 *     link only to a carved block of the pool (an offset below the
 *     nextoffset read before the walk, on a block boundary), and to none
 *     twice, so it stays in the pool and ends within capacity steps
 *     whatever it reads;
 *   - count, nextoffset and freeblock are read before the walk and after
 *     it, and the picture is taken only if none moved and the blocks found
 *     free agree with the count (carved = free + in use, check.c's
 *     invariant);
 *   - otherwise it reads again, up to TRIES times, then gives up: the pool
 *     is then left out, rather than free blocks reported as in use.
 *
 * When the owner is still (the reader's own heap, an orphan read under
 * heaps_lock, an explicit heap whose user is the reader, any heap whose
 * thread is not allocating, everything in debug mode, whose lock the
 * reader holds) the first reading is the pool as it is: exact.
 *
 * The reads of what the owner changes are single volatile loads (an
 * aligned word is never torn; the compiler neither repeats nor drops
 * them), and the sanitizers do not see them: ThreadSanitizer would report
 * the race, which is real and checked for, and AddressSanitizer the read
 * of a free block's first word, which soma keeps poisoned (os/track.h).
 * The owner opens that word around its own accesses; the reader must not,
 * because the owner may hand the block out between an open and a close,
 * and the close would then poison the program's block.  memcheck is told
 * not to report them either.
 */
#include "pool/pool.h"

#define TRIES 16

/* The functions that read what the owner changes, unseen by the
 * sanitizers (above). */
#define UNCHECKED __attribute__((no_sanitize("address", "thread"), noinline))

/* What moves while the pool is read. */
typedef struct {
    unsigned count; /* with SOMA_POOL_UNLISTED */
    unsigned next;  /* nextoffset */
    uintptr_t first;
} look_t;

UNCHECKED static void look(const pool_t *pool, look_t *l)
{
    l->count = atomic_load_explicit(&pool->count, memory_order_relaxed);
    l->next = *(const volatile uint16_t *)&pool->nextoffset;
    l->first = (uintptr_t) * (void *const volatile *)&pool->freeblock;
    /* Loads stay in program order: the compiler keeps them so here, and
     * x86 keeps loads in order for other observers (pool.h's pop relies on
     * the same for its stores). */
    atomic_signal_fence(memory_order_seq_cst);
}

/* The free list as seen from l: bit i of `bits` for the free block at
 * index i.  Returns how many, or -1 at a link that names no carved block,
 * or a block twice. */
UNCHECKED static long free_map(const pool_t *pool, size_t size, const look_t *l, uint64_t *bits)
{
    for (size_t w = 0; w < SOMA_POOL_BITMAP_WORDS; w++)
        bits[w] = 0;
    uintptr_t base = (uintptr_t)pool->base;
    long nfree = 0;
    for (uintptr_t b = l->first; b != (uintptr_t)soma__link_end(pool->base);) {
        uintptr_t off = b - base; /* below base: wraps, and fails the test */
        if (off < SOMA_POOL_OVERHEAD || off >= l->next || (off - SOMA_POOL_OVERHEAD) % size != 0)
            return -1;
        size_t i = (off - SOMA_POOL_OVERHEAD) / size;
        uint64_t bit = (uint64_t)1 << (i % 64);
        if (bits[i / 64] & bit)
            return -1;
        bits[i / 64] |= bit;
        nfree++;
        uintptr_t word = *(const volatile uintptr_t *)b;
        b = (uintptr_t)soma__link_decode((const void *)b, word);
    }
    atomic_signal_fence(memory_order_seq_cst);
    return nfree;
}

long soma__peek_pool(const pool_t *pool, uint64_t *used)
{
    size_t size = soma__sizeclass_size(pool->szidx);
    size_t cap = soma__sizeclass_capacity(pool->szidx);
    uint64_t bits[SOMA_POOL_BITMAP_WORDS];
#if defined(SOMA_TRACK_VALGRIND)
    VALGRIND_DISABLE_ERROR_REPORTING; /* free blocks' words are NOACCESS */
#endif
    long in_use = -1;
    for (int t = 0; t < TRIES && in_use < 0; t++) {
        look_t before, after;
        look(pool, &before);
        long nfree = free_map(pool, size, &before, bits);
        look(pool, &after);
        if (nfree < 0 || before.count != after.count || before.next != after.next ||
            before.first != after.first || before.next < SOMA_POOL_OVERHEAD)
            continue;
        size_t carved = (before.next - SOMA_POOL_OVERHEAD) / size;
        unsigned count = before.count & ~SOMA_POOL_UNLISTED;
        if (carved > cap || (size_t)nfree + count != carved)
            continue;
        for (size_t w = 0; w < SOMA_POOL_BITMAP_WORDS; w++) {
            size_t lo = w * 64;
            uint64_t carved_bits = carved >= lo + 64 ? ~(uint64_t)0
                                   : carved > lo    ? ((uint64_t)1 << (carved - lo)) - 1
                                                    : 0;
            used[w] = carved_bits & ~bits[w];
        }
        in_use = (long)count;
    }
#if defined(SOMA_TRACK_VALGRIND)
    VALGRIND_ENABLE_ERROR_REPORTING;
#endif
    return in_use;
}
