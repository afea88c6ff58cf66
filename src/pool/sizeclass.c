/*
 * sizeclass.c: the size classes, small (CPython's 32) and medium (base/config.h).
 *
 *   class c < 32    (c + 1) * 16 bytes.  The class of n is (n - 1) >> 4,
 *                   computed inline on the malloc fast path.  In a build
 *                   with small tails, 64 classes, twins: class c of
 *                   (c / 2 + 1) * 16 bytes, tailed when c is even, and
 *                   the class of n is (n - 1) >> 3 (base/config.h).
 *   class 32 ...    medium (64 ... with the twins): SOMA_MEDIUM_SIZE(k)
 *                   bytes, k blocks per pool.
 *                   The class of n comes from medium_lut: one byte per 16
 *                   bytes of request size, filled once at start-up.
 *
 * The lookup table is filled by a constructor and by soma__start, whichever
 * runs first (another library may allocate before our constructor runs);
 * until then soma__sizeclass_medium_slow scans the sizes, so an early request is
 * served correctly, only more slowly.  Entries are relaxed atomics: a reader
 * sees 0 ("not filled yet") or the right class, never a torn value.
 */
#include "base/start.h"
#include "pool/pool.h"

/* Every class's size, smallest first, as F(size) for each: the one list
 * both tables below are made from. */
#define SZ(c) ((c) + 1) * 16
#if SOMA_SMALL_TWINS == 2
#define TW(F, s) F(s), F(s) /* the tailed twin, then the plain one */
#else
#define TW(F, s) F(s)
#endif
#define S4(F, c) TW(F, SZ(c)), TW(F, SZ(c + 1)), TW(F, SZ(c + 2)), TW(F, SZ(c + 3))
#define M SOMA_MEDIUM_SIZE
#if defined(SOMA_GEOMETRY_PY38)
#define SIZES(F)                                                                                   \
    S4(F, 0), S4(F, 4), S4(F, 8), S4(F, 12), S4(F, 16), S4(F, 20), S4(F, 24), S4(F, 28),           \
    F(M(7)), F(M(6)), F(M(5)), F(M(4)), F(M(3)), F(M(2))
#else
#define SIZES(F)                                                                                   \
    S4(F, 0), S4(F, 4), S4(F, 8), S4(F, 12), S4(F, 16), S4(F, 20), S4(F, 24), S4(F, 28),           \
    F(M(30)), F(M(29)), F(M(28)), F(M(27)), F(M(26)), F(M(25)), F(M(24)), F(M(23)), F(M(22)),      \
    F(M(21)), F(M(20)), F(M(19)), F(M(18)), F(M(17)), F(M(16)), F(M(15)), F(M(14)), F(M(13)),      \
    F(M(12)), F(M(11)), F(M(10)), F(M(9)), F(M(8)), F(M(7)), F(M(6)), F(M(5)), F(M(4)), F(M(3)),   \
    F(M(2))
#endif
#define SIZE(s) (s)
const uint16_t soma__sizeclass_sizes[SOMA_NUM_ALL_CLASSES] = {SIZES(SIZE)};
/* sizeclass.h: soma__sizeclass_recip; constants, so that a free made
 * before any constructor has run finds them. */
#define RECIP(s) {SOMA_RECIP_MUL(s), SOMA_RECIP_BOUND(s), (s)}
const soma_recip_t soma__sizeclass_recip[SOMA_NUM_ALL_CLASSES] = {SIZES(RECIP)};
_Static_assert(sizeof soma__sizeclass_sizes / sizeof soma__sizeclass_sizes[0] == SOMA_NUM_ALL_CLASSES,
               "the class table and SOMA_NUM_MEDIUM_CLASSES disagree");
/* SOMA_MEDIUM_SIZE (base/config.h) counts on a 48-byte header, so that class k
 * holds exactly k blocks. */
_Static_assert(SOMA_POOL_OVERHEAD == 48, "SOMA_MEDIUM_SIZE assumes 48-byte pool headers");

#define LUT_LEN ((SOMA_MEDIUM_MAX - SOMA_SMALL_THRESHOLD + 15) / 16)
_Atomic uint8_t soma__sizeclass_medium_lut[LUT_LEN];

/* The smallest class whose blocks hold n bytes (threshold < n <= medium max). */
unsigned soma__sizeclass_medium_slow(size_t n)
{
    unsigned c = SOMA_SMALL_CLASSES;
    while (soma__sizeclass_usable(c) < n)
        c++;
    return c;
}

static void sizeclass_init(void)
{
    /* Entry i covers requests threshold + 16i + 1 .. threshold + 16(i + 1);
     * what a class holds is a multiple of 16 (its size, less a 16-byte
     * tail), so one class serves the whole span. */
    for (size_t i = 0; i < LUT_LEN; i++)
        atomic_store_explicit(&soma__sizeclass_medium_lut[i],
                              (uint8_t)soma__sizeclass_medium_slow(SOMA_SMALL_THRESHOLD + 16 * i + 1),
                              memory_order_relaxed);
}

SOMA_HOOK(sizeclass, SOMA_ORDER_SIZECLASS, sizeclass_init, NULL);

__attribute__((constructor(101))) static void sizeclass_start(void)
{
    sizeclass_init();
}
