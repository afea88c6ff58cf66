/*
 * config.h: soma's tunable constants, each with the reason for its value and
 * the invariants the rest of the code relies on (checked below with #error).
 *
 * The geometry is pymalloc's.  Two layouts can be chosen at build time:
 *
 *   SOMA_GEOMETRY_PY312 (default)   16 KiB pools, 1 MiB arenas   (CPython 3.10+)
 *   SOMA_GEOMETRY_PY38              4 KiB pools, 256 KiB arenas  (CPython 3.8)
 *
 * Either way an arena holds 64 pools, so nfp2lasta (see pool/arena.c) has 65 slots.
 */
#ifndef SOMA_CONFIG_H
#define SOMA_CONFIG_H

#include "soma.h"

/* Blocks are 16-byte aligned because that is what malloc promises on x86-64
 * (max_align_t) and what SSE loads of a block need.  The alignment is also
 * the spacing of the size classes: class i holds blocks of (i+1)*16 bytes. */
#define SOMA_ALIGNMENT_SHIFT 4

#if defined(SOMA_GEOMETRY_PY38)
/* 3.8: a pool is one 4 KiB OS page, 64 of them make a 256 KiB arena. */
#define SOMA_POOL_BITS 12
#define SOMA_ARENA_BITS 18
#else
/* 3.10+: pools of 16 KiB waste less to headers and quantization than 4 KiB
 * ones (48 B of header per 16 KiB) and halve the pool transitions; arenas of
 * 1 MiB keep the count of mappings low.  Bigger arenas would be given back to
 * the OS more rarely: one live block pins a whole arena. */
#define SOMA_POOL_BITS 14
#define SOMA_ARENA_BITS 20
#endif

#define SOMA_POOL_SIZE ((size_t)1 << SOMA_POOL_BITS)
#define SOMA_POOL_MASK (SOMA_POOL_SIZE - 1)
#define SOMA_ARENA_SIZE ((size_t)1 << SOMA_ARENA_BITS)
#define SOMA_POOLS_PER_ARENA (SOMA_ARENA_SIZE / SOMA_POOL_SIZE)
/* The pool header's size, rounded to the alignment: CPython's 48 bytes
 * (pool/pool.h checks it against pool_t; SOMA_MEDIUM_SIZE counts on it). */
#define SOMA_POOL_OVERHEAD ((size_t)48)

/*
 * Medium classes: soma's own classes above the 512-byte threshold, served
 * from pools exactly like the small ones, but in arenas of their own so that
 * CPython's figures (which describe the 512-byte layout) stay as they are.
 * pymalloc hands these sizes to the system allocator; measured with bench
 * `mixed1` (a quarter of the requests 513..4096 bytes), that left soma at
 * 1.5x mimalloc's time and 1.7x tcmalloc's (docs/DESIGN.md).
 *
 * A medium class is named by how many blocks share a pool: k blocks of
 * ((pool - header) / k) rounded down to 16 bytes.  So no pool loses more than
 * 16 * k bytes to its tail.  Neighbouring classes are about k / (k - 1)
 * apart: with 16 KiB pools at most 12.4% up to 2032 bytes (k >= 8), then
 * 14%, 17%, 20%, 25%, 33% and 50% for the last steps (to 2320, 2720, 3264,
 * 4080, 5440 and 8160 bytes).  The classes stop at two blocks per pool: a
 * one-block pool would be a page-granular allocation in disguise, which the
 * system allocator does as well; and the free path relies on every pool
 * holding at least two blocks (a free into a full pool never empties it).
 */
#define SOMA_MEDIUM_SIZE(k) ((((size_t)1 << SOMA_POOL_BITS) - 48) / (k) & ~(size_t)15)
#if defined(SOMA_GEOMETRY_PY38)
#define SOMA_NUM_MEDIUM_CLASSES 6 /* k = 7 .. 2: 576 .. 2016 bytes */
#else
#define SOMA_NUM_MEDIUM_CLASSES 29 /* k = 30 .. 2: 544 .. 8160 bytes */
#endif
/*
 * A medium block's last 16 bytes are soma's in a hardened build (pool/tail.h:
 * the size asked and a check word, where glibc keeps the next chunk's
 * header), so a medium class of s bytes holds requests of s - 16 at most.
 * Not in an unhardened build, nor in a checker's (ASan, valgrind: os/track.h),
 * which sees every byte past the size asked itself.
 */
#if (defined(SOMA_HARDEN) && !SOMA_HARDEN) || defined(SOMA_TRACK_VALGRIND) ||                     \
    defined(__SANITIZE_ADDRESS__)
#define SOMA_MEDIUM_TAIL 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SOMA_MEDIUM_TAIL 0
#endif
#endif
#ifndef SOMA_MEDIUM_TAIL
#define SOMA_MEDIUM_TAIL 16
#endif
/* The largest request the medium classes serve: the classes end at two
 * blocks per pool. */
#define SOMA_MEDIUM_MAX (SOMA_MEDIUM_SIZE(2) - SOMA_MEDIUM_TAIL)
/*
 * Small blocks' tails, in the same builds as the medium ones (pool/tail.h):
 * each of CPython's 32 small classes has two pool kinds, twins of one block
 * size.  A request of n bytes that leaves 8 free in its block (n <= s - 8
 * for a class of s bytes: 1..8, 17..24, ... 497..504) is served from the
 * tailed twin, whose blocks never hold their last 8 bytes: the next
 * block's head, a check word (a pool's first block's is in its header); the
 * others (9..16, 25..32, ...) from the plain twin, as before.  Internally
 * the twins are classes of their own (szidx, usedpools, the class table):
 * small class k serves requests 8k + 1 .. 8k + 8, in blocks of
 * (k / 2 + 1) * 16 bytes, with a head when k is even (the free fast path
 * checks the twins alike, without a branch: pool/tail.h); the medium
 * classes follow at SOMA_SMALL_CLASSES.  Outside soma (statistics,
 * diagnoses, soma.h) a class is CPython's: soma__sizeclass_public.
 * `cmake -DSOMA_SMALL_TAILS=OFF` (SOMA_SMALL_TAIL 0) builds a hardened soma
 * without them: CPython's 32 small classes, no small head, the medium
 * tails kept (docs/BENCHMARKS.md, "Hardening", weighs the two).
 */
#if !defined(SOMA_SMALL_TAIL) || !SOMA_MEDIUM_TAIL
#undef SOMA_SMALL_TAIL
#define SOMA_SMALL_TAIL (SOMA_MEDIUM_TAIL ? 8 : 0)
#elif SOMA_SMALL_TAIL != 0
#error "SOMA_SMALL_TAIL may only be set to 0 (cmake -DSOMA_SMALL_TAILS=OFF)"
#endif
#define SOMA_SMALL_TWINS (SOMA_SMALL_TAIL ? 2 : 1)
#define SOMA_SMALL_CLASSES (SOMA_NUM_CLASSES * SOMA_SMALL_TWINS) /* internal small classes */
#define SOMA_SMALL_CLASS_SHIFT (SOMA_ALIGNMENT_SHIFT - (SOMA_SMALL_TWINS - 1))
#define SOMA_NUM_ALL_CLASSES (SOMA_SMALL_CLASSES + SOMA_NUM_MEDIUM_CLASSES)

/* Virgin blocks are linked into a pool's free list one OS page at a time
 * (pool/pool.c: carve): a pool touches only the pages it uses. */
#define SOMA_OS_PAGE_SIZE ((uintptr_t)4096)

/* A wholly empty arena is given back to the OS (its pages returned, its
 * addresses kept reserved for a later arena: os/region.c) unless it is the last
 * arena on the usable list (CPython 3.9+, bpo-37257): a loop that fills and
 * empties one arena's worth of blocks would otherwise map and release an
 * arena on every turn.  With SOMA_ARENA_DECAY_MS = 0 (the library's default)
 * at most one empty arena is kept per heap and kind (small, medium); a decay
 * keeps the others for at least that long (pool/arena.c: release_expired). */
#define SOMA_KEEP_ONE_EMPTY_ARENA 1

#if SOMA_ALIGNMENT != (1 << SOMA_ALIGNMENT_SHIFT)
#error "SOMA_ALIGNMENT and SOMA_ALIGNMENT_SHIFT disagree"
#endif
#if SOMA_SMALL_THRESHOLD % SOMA_ALIGNMENT != 0 || SOMA_SMALL_THRESHOLD > 512
#error "the threshold must be a multiple of the alignment, at most 512"
#endif
#if SOMA_NUM_ALL_CLASSES >= 128 || (SOMA_SMALL_TAIL && SOMA_SMALL_CLASSES != 64)
#error "a class index is below 128, and the twins' test wants 64 small classes (sizeclass.h)"
#endif
#if SOMA_NUM_MEDIUM_CLASSES > SOMA_MAX_MEDIUM_CLASSES
#error "soma.h's SOMA_MAX_MEDIUM_CLASSES is too small for this geometry"
#endif
#if SOMA_POOL_BITS > 15
#error "pool offsets are kept in 16 bits: pools must be at most 32 KiB"
#endif
#if (((1 << SOMA_POOL_BITS) - 48) / SOMA_SMALL_THRESHOLD) < 2
#error "a pool must hold two blocks of the largest class (a free never empties a full pool)"
#endif
#if SOMA_ARENA_BITS - SOMA_POOL_BITS != 6
#error "an arena holds 64 pools (the usable-arena ordering assumes it)"
#endif

#endif /* SOMA_CONFIG_H */
