/*
 * base.h: what every file of soma stands on.
 *
 * The layers of src/, lowest first (src/README.md; tests/unit/test_layers.py
 * checks that no file calls up):
 *
 *   base/     constants, messages, output, options, start-up and fork hooks
 *   os/       mmap, the system allocator, soma's address range
 *   pool/     size classes, arenas, pools and their free lists
 *   heap/     heap records, each thread's heap, orphans
 *   malloc/   the malloc family: who serves a request; the fast paths
 *   stats/    the walk that takes a snapshot, and the one emitter
 *   runtime/  reports at exit, on a signal and by sampling; the override
 *
 * Glossary (the words are CPython's, see docs/DESIGN.md):
 *   block       the unit handed to the program; one size class, 16-byte aligned.
 *   size class  index c in 0..31 serving blocks of (c+1)*16 bytes (the small
 *               classes, CPython's), or 32.. a medium class (pool/sizeclass.c).
 *   pool        SOMA_POOL_SIZE bytes, pool-aligned: a header, then blocks of one
 *               class.  Found from any of its blocks by masking the address.
 *   arena       SOMA_ARENA_SIZE bytes, an arena-aligned slot of soma's reserved
 *               address range (os/region.c), cut into pools on demand.  Its
 *               bookkeeping (arena_t) lives outside it.
 *   heap        all the state one allocator instance owns: its used-pool lists,
 *               its arenas and their ordering, its lock.
 *   OS page     4 KiB; the unit of mmap.  Not the same thing as a pool.
 *
 * Names.  Everything shared between files is hidden from the library's
 * users and named soma__<module>_<name>, where <module> is the file (or
 * header) that defines it: soma__pool_refill is pool/pool.c's,
 * soma__fastpath_free is malloc/fastpath.h's.  A module's one principal
 * object may take the module's name alone (soma__options, soma__region,
 * soma__start).  Internal types are <name>_t (pool_t, heap_t, gate_t);
 * macros are SOMA_*.  Public names (soma.h) have a single underscore.
 */
#ifndef SOMA_BASE_H
#define SOMA_BASE_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/config.h"
#include "soma.h"

#define SOMA_LIKELY(x) __builtin_expect(!!(x), 1)
#define SOMA_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define SOMA_INTERNAL __attribute__((visibility("hidden")))

/* n * size into *total; 1 with errno = ENOMEM if it overflows (calloc,
 * reallocarray, and their debug forms). */
static inline int soma__base_mul_overflow(size_t n, size_t size, size_t *total)
{
    if (!__builtin_mul_overflow(n, size, total))
        return 0;
    errno = ENOMEM;
    return 1;
}

/* A check word (a tail, a fence, a header's word: a value soma writes
 * where a program's overflow or underflow would land, and compares later)
 * made from a secret x: every byte with its top bit set, so that text
 * (ASCII) and zeros, what programs write most, never leave it as it was;
 * a keyed byte alone would, once in 256 runs.  56 bits of the secret stay
 * (42 in a medium block's head, whose low 16 bits are the size). */
#define SOMA_CHECK_HIGH 0x8080808080808080ull
static inline uint64_t soma__base_check_word(uint64_t x)
{
    return x | SOMA_CHECK_HIGH;
}

/* The first byte (0..7, in memory order) at which two different words read
 * from the same place differ: where a write over a check word began. */
static inline size_t soma__base_first_diff(uint64_t a, uint64_t b)
{
    return (size_t)__builtin_ctzll(a ^ b) / 8;
}

/* ---- fatal.c: a clear message on stderr, then abort() ---- */
SOMA_INTERNAL _Noreturn void soma__fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* SOMA_BASE_H */
