/*
 * sizeclass.c: the size classes, small (CPython's 32) and medium (base/config.h).
 *
 *   class c < 32    (c + 1) * 16 bytes.  The class of n is (n - 1) >> 4,
 *                   computed inline on the malloc fast path.
 *   class 32 ...    medium: SOMA_MEDIUM_SIZE(k) bytes, k blocks per pool.
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

#define S4(c) (c + 1) * 16, (c + 2) * 16, (c + 3) * 16, (c + 4) * 16
#define M SOMA_MEDIUM_SIZE
const uint16_t soma__sizeclass_sizes[SOMA_NUM_ALL_CLASSES] = {
    S4(0),  S4(4),  S4(8),  S4(12), S4(16), S4(20), S4(24), S4(28),
#if defined(SOMA_GEOMETRY_PY38)
    M(7),   M(6),   M(5),   M(4),   M(3),   M(2),
#else
    M(30),  M(29),  M(28),  M(27),  M(26),  M(25),  M(24),  M(23),  M(22),  M(21),
    M(20),  M(19),  M(18),  M(17),  M(16),  M(15),  M(14),  M(13),  M(12),  M(11),
    M(10),  M(9),   M(8),   M(7),   M(6),   M(5),   M(4),   M(3),   M(2),
#endif
};
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
    unsigned c = SOMA_NUM_CLASSES;
    while (soma__sizeclass_sizes[c] < n)
        c++;
    return c;
}

static void sizeclass_init(void)
{
    /* Entry i covers requests threshold + 16i + 1 .. threshold + 16(i + 1);
     * class sizes are multiples of 16, so one class serves the whole span. */
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
