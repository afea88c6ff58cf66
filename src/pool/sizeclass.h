/* sizeclass.h: the size classes (sizeclass.c), small (CPython's) and medium. */
#ifndef SOMA_SIZECLASS_H
#define SOMA_SIZECLASS_H

#include "base/base.h"

extern SOMA_INTERNAL const uint16_t soma__sizeclass_sizes[SOMA_NUM_ALL_CLASSES];
extern SOMA_INTERNAL _Atomic uint8_t soma__sizeclass_medium_lut[];
SOMA_INTERNAL unsigned soma__sizeclass_medium_slow(size_t n);

/* Which arenas serve a class: CPython's figures describe the small ones. */
enum { SOMA_KIND_SMALL, SOMA_KIND_MEDIUM, SOMA_NUM_KINDS };

static inline unsigned soma__sizeclass_small(size_t n) /* 1 <= n <= threshold */
{
    return (unsigned)((n - 1) >> SOMA_ALIGNMENT_SHIFT);
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
    return n <= SOMA_SMALL_THRESHOLD ? soma__sizeclass_small(n) : soma__sizeclass_medium(n);
}
static inline size_t soma__sizeclass_size(unsigned c)
{
    return soma__sizeclass_sizes[c];
}
static inline size_t soma__sizeclass_capacity(unsigned c) /* blocks per pool */
{
    return (SOMA_POOL_SIZE - SOMA_POOL_OVERHEAD) / soma__sizeclass_size(c);
}
static inline unsigned soma__sizeclass_kind(unsigned c)
{
    return c < SOMA_NUM_CLASSES ? SOMA_KIND_SMALL : SOMA_KIND_MEDIUM;
}

#endif /* SOMA_SIZECLASS_H */
