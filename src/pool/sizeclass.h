/* sizeclass.h: the size classes (sizeclass.c), small (CPython's) and medium. */
#ifndef SOMA_SIZECLASS_H
#define SOMA_SIZECLASS_H

#include "base/base.h"

extern SOMA_INTERNAL const uint16_t soma__sizeclass_sizes[SOMA_NUM_ALL_CLASSES];
extern SOMA_INTERNAL _Atomic uint8_t soma__sizeclass_medium_lut[];
SOMA_INTERNAL unsigned soma__sizeclass_medium_slow(size_t n);

/* Which arenas serve a class: CPython's figures describe the small ones. */
enum { SOMA_KIND_SMALL, SOMA_KIND_MEDIUM, SOMA_NUM_KINDS };

/*
 * Which block of its pool a byte is in, without a division (the free fast
 * path asks whether a pointer starts a block: malloc/fastpath.h).  For a
 * class of size s (a multiple of 16, 16 <= s <= 8160) let
 *
 *     mul = floor(2^32 / s) + 1,   e = mul * s - 2^32   (1 <= e <= s)
 *
 * and, for a byte at offset o of the pool, x = o - 48 modulo 2^32 (the
 * offset from the first block) and P = x * mul in 64 bits.  Write
 * x = q * s + r (0 <= r < s), the block index q and the byte r in it.  Then
 *
 *     P = q * 2^32 + (q * e + r * mul),
 *
 * and the part in brackets is below 2^32 whenever o >= 48: q * e <= the
 * pool's size (16 KiB), r * mul <= (s - 1)(2^32 + e) / s, and together
 * they stay under 2^32 because (2^32 + e) / s >= 2^32 / 8160 > 526,000
 * exceeds e plus the pool size.  So, exactly:
 *   - P >> 32 is q, the block's index (soma__pool_block_start);
 *   - P mod 2^32 is q * e when the byte starts a block (r = 0), and at
 *     least mul (above 2^19) when it does not.
 * With cap blocks to a pool, "starts one of the pool's blocks" is then the
 * one unsigned comparison (uint32_t)P <= bound = (cap - 1) * e: it fails
 * for r > 0 (bound < cap * s < mul) and for the start of the block that
 * would follow the last one in the pool's tail (q = cap, e >= 1).  An
 * offset inside the pool header (o < 48, x wraps to 2^32 - 48 .. 2^32 - 1)
 * fails too, as does every offset when debug mode moves the origin to the
 * pool's end (min_offset, base/options.h); those cases are no algebra
 * worth writing down: tests/unit/test_recip.c checks every offset of every
 * class, of both geometries, against the division.
 */
typedef struct {
    uint32_t mul;   /* floor(2^32 / size) + 1 */
    uint16_t bound; /* (capacity - 1) * e, below the pool size */
    uint16_t size;  /* the class's (soma__sizeclass_sizes'), in the row the
                       owner's medium free reads anyway (malloc.c) */
} soma_recip_t;
#define SOMA_RECIP_MUL(s) ((uint32_t)(((uint64_t)1 << 32) / (s) + 1))
/* for pools of pool_size bytes (the tests check the other geometry too) */
#define SOMA_RECIP_BOUND_IN(s, pool_size)                                                          \
    ((uint16_t)((((pool_size) - SOMA_POOL_OVERHEAD) / (s) - 1) *                                  \
                ((uint64_t)SOMA_RECIP_MUL(s) * (s) - ((uint64_t)1 << 32))))
#define SOMA_RECIP_BOUND(s) SOMA_RECIP_BOUND_IN(s, SOMA_POOL_SIZE)
extern SOMA_INTERNAL const soma_recip_t soma__sizeclass_recip[SOMA_NUM_ALL_CLASSES];

static inline size_t soma__sizeclass_small(size_t n) /* 1 <= n <= threshold */
{
    /* with the twins, the tailed ones (n - 1 < 8 mod 16) even: config.h;
     * size_t throughout, so that the fast path's index needs no move */
    return (n - 1) >> SOMA_SMALL_CLASS_SHIFT;
}
/* The medium class from the lookup table, or 0 before it is filled. */
static inline unsigned soma__sizeclass_medium_lut_get(size_t n) /* threshold < n <= MEDIUM_MAX */
{
    return atomic_load_explicit(&soma__sizeclass_medium_lut[(n - SOMA_SMALL_THRESHOLD - 1) >> 4],
                                memory_order_relaxed);
}
static inline unsigned soma__sizeclass_medium(size_t n) /* threshold < n <= SOMA_MEDIUM_MAX */
{
    unsigned c = soma__sizeclass_medium_lut_get(n);
    return SOMA_LIKELY(c != 0) ? c : soma__sizeclass_medium_slow(n);
}
static inline unsigned soma__sizeclass_of(size_t n) /* 1 <= n <= SOMA_MEDIUM_MAX */
{
    return n <= SOMA_SMALL_THRESHOLD ? (unsigned)soma__sizeclass_small(n)
                                     : soma__sizeclass_medium(n);
}
static inline size_t soma__sizeclass_size(unsigned c)
{
    return soma__sizeclass_sizes[c];
}
/* Is c a small class whose blocks have a tail (base/config.h: the even
 * twins)? */
static inline int soma__sizeclass_small_tailed(unsigned c)
{
    return SOMA_SMALL_TAIL && c < SOMA_SMALL_CLASSES && (c & 1) == 0;
}
/* The most a block of class c holds: its size, less a medium block's tail
 * or a tailed small block's (base/config.h, pool/tail.h). */
static inline size_t soma__sizeclass_usable(unsigned c)
{
    return soma__sizeclass_sizes[c] - (c >= SOMA_SMALL_CLASSES      ? SOMA_MEDIUM_TAIL
                                       : soma__sizeclass_small_tailed(c) ? SOMA_SMALL_TAIL
                                                                         : 0);
}
/* Class c as the world knows it (statistics, diagnoses, soma.h): CPython's
 * small class, or SOMA_NUM_CLASSES + the medium class's place. */
static inline unsigned soma__sizeclass_public(unsigned c)
{
    return c < SOMA_SMALL_CLASSES ? c / SOMA_SMALL_TWINS
                                  : c - SOMA_SMALL_CLASSES + SOMA_NUM_CLASSES;
}
static inline size_t soma__sizeclass_capacity(unsigned c) /* blocks per pool */
{
    return (SOMA_POOL_SIZE - SOMA_POOL_OVERHEAD) / soma__sizeclass_size(c);
}
static inline unsigned soma__sizeclass_kind(unsigned c)
{
    return c < SOMA_SMALL_CLASSES ? SOMA_KIND_SMALL : SOMA_KIND_MEDIUM;
}

#endif /* SOMA_SIZECLASS_H */
