/*
 * classes.h: the tests' model of soma's size classes, written from the
 * rules soma.h documents (src/pool/sizeclass.c implements them), so that a test
 * can predict where each request goes and what soma reports for it.  One
 * model for stress.h, the fuzzing harness and test_sizeclass, which checks
 * it against soma's own table.
 *
 *   small    a request of 0 .. SOMA_SMALL_THRESHOLD (512) bytes: class
 *            (n - 1) / 16 (0 for 0), whose blocks have (class + 1) * 16
 *            usable bytes; but in a build with tails (a medium tail, 16)
 *            a request that leaves 8 of them free (n - 1) / 8 even, 0
 *            counting as 1) gets a block of the class's tailed twin, which
 *            holds 8 bytes less: the block's "twin", kept through a
 *            realloc in place;
 *   medium   up to the largest medium class less its tail: the medium
 *            classes are the sizes ((pool size - 48) / k) & ~15 above 512,
 *            for k = 2, 3, ..., each block's last `tail` bytes soma's
 *            (soma_stats.medium_tail: 16 hardened, else 0); a request goes
 *            to the smallest that holds it, class SOMA_NUM_CLASSES + its
 *            rank, and its usable size is what the class holds (its size
 *            less the tail);
 *   large    above that: the system's block (CLASSES_LARGE), whose usable
 *            size is at least the request;
 *   realloc  of soma's block to n > 0 bytes stays in place when n fits the
 *            block (what it holds: its class and twin) and either keeps more
 *            than 3/4 of that or is of the same class; otherwise the block
 *            moves to n's class (and twin).
 *
 * The medium classes depend on the pool size and the tail:
 * classes_init(pool size, tail) computes them.  Until it is called there are none, and every request
 * above 512 bytes is the system's (a run on the C library's malloc).
 *
 * Each test program is one .c file that includes this header once.
 */
#ifndef SOMA_TEST_CLASSES_H
#define SOMA_TEST_CLASSES_H

#include <stddef.h>
#include <stdio.h>

#include "soma.h"

#define CLASSES_POOL_OVERHEAD 48 /* a pool's header: soma_stats.pool_overhead */

/* The class of a request soma hands to the system. */
enum { CLASSES_LARGE = -1 };

/* The medium classes' block sizes, smallest first, and the largest. */
static size_t classes_medium[SOMA_MAX_MEDIUM_CLASSES];
static size_t classes_nmedium;
static size_t classes_medium_max = SOMA_SMALL_THRESHOLD; /* the largest request */
static size_t classes_tail;
static size_t classes_small_tail; /* 8 with tails, else 0 */
/* SOMA_TEST_SMALL_TAILS: whether a hardened build gives small blocks heads
 * (cmake's SOMA_SMALL_TAILS, which tests/CMakeLists.txt passes to every
 * test, and CMakeLists.txt to the fuzzer) */

/* The medium classes of pools of pool_size bytes, blocks with a tail of
 * `tail` bytes.  0, or -1 when there would be more than
 * SOMA_MAX_MEDIUM_CLASSES (the model keeps the first). */
static inline int classes_init(size_t pool_size, size_t tail)
{
    size_t room = pool_size - CLASSES_POOL_OVERHEAD;
    classes_nmedium = 0;
    classes_medium_max = SOMA_SMALL_THRESHOLD;
    classes_tail = tail;
    /* small tails come with the medium ones, unless the build left them out */
    classes_small_tail = tail && SOMA_TEST_SMALL_TAILS ? 8 : 0;
    for (size_t k = room / SOMA_SMALL_THRESHOLD; k >= 2; k--) {
        size_t size = (room / k) & ~(size_t)15;
        if (size <= SOMA_SMALL_THRESHOLD ||
            (classes_nmedium > 0 && size == classes_medium[classes_nmedium - 1]))
            continue;
        if (classes_nmedium == SOMA_MAX_MEDIUM_CLASSES)
            return -1;
        classes_medium[classes_nmedium++] = size;
        classes_medium_max = size - tail;
    }
    return 0;
}

/* How many classes there are: the small ones, then the medium ones. */
static inline size_t classes_count(void)
{
    return SOMA_NUM_CLASSES + classes_nmedium;
}

/* The class of an n-byte request, or CLASSES_LARGE. */
static inline int classes_of(size_t n)
{
    if (n <= SOMA_SMALL_THRESHOLD)
        return n == 0 ? 0 : (int)((n - 1) / 16);
    for (size_t i = 0; i < classes_nmedium; i++)
        if (classes_medium[i] - classes_tail >= n)
            return SOMA_NUM_CLASSES + (int)i;
    return CLASSES_LARGE;
}

/* The block size of class cls (not CLASSES_LARGE). */
static inline size_t classes_size(int cls)
{
    return cls < SOMA_NUM_CLASSES ? (size_t)(cls + 1) * 16 : classes_medium[cls - SOMA_NUM_CLASSES];
}

/* The twin of an n-byte request: 1 for a small block with a tail (the
 * request leaves it 8 bytes), else 0. */
static inline int classes_twin_of(size_t n)
{
    return classes_small_tail != 0 && n <= SOMA_SMALL_THRESHOLD &&
           ((n == 0 ? 0 : n - 1) / 8) % 2 == 0;
}

/* The most a block of class cls and twin `twin` holds: its size, less a
 * medium block's tail or a tailed small block's. */
static inline size_t classes_holds_twin(int cls, int twin)
{
    return classes_size(cls) - (cls >= SOMA_NUM_CLASSES ? classes_tail
                                : twin                  ? classes_small_tail
                                                        : 0);
}

/* The most the block made for an n-byte request holds. */
static inline size_t classes_holds_for(size_t n)
{
    return classes_holds_twin(classes_of(n), classes_twin_of(n));
}

/* Whether the block of class cls and twin `twin` (cls negative: the
 * system's, for n requested bytes) may have `usable` usable bytes: exactly
 * what it holds, or at least n for the system's. */
static inline int classes_usable_ok(int cls, int twin, size_t n, size_t usable)
{
    return cls >= 0 ? usable == classes_holds_twin(cls, twin) : usable >= n;
}

/* Whether realloc to n > 0 bytes leaves a block of class cls and twin
 * `twin` (soma's) in place. */
static inline int classes_realloc_in_place(int cls, int twin, size_t n)
{
    size_t have = classes_holds_twin(cls, twin);
    return n <= have && (4 * n > 3 * have || classes_of(n) == cls);
}

/* A snapshot's figures for class cls, small or medium. */
static inline const soma_class_stats *classes_stats(const soma_stats *st, int cls)
{
    return cls < SOMA_NUM_CLASSES ? &st->classes[cls] : &st->medium.classes[cls - SOMA_NUM_CLASSES];
}

/* The model (after classes_init) against soma's own table in a snapshot:
 * 0 when they agree, else -1 and the first difference in why. */
static inline int classes_agree(const soma_stats *st, char *why, size_t len)
{
    if (st->pool_overhead != CLASSES_POOL_OVERHEAD) {
        snprintf(why, len, "pool overhead %zu, not %d", st->pool_overhead,
                 CLASSES_POOL_OVERHEAD);
        return -1;
    }
    for (int c = 0; c < SOMA_NUM_CLASSES; c++)
        if (st->classes[c].size != classes_size(c)) {
            snprintf(why, len, "class %d: soma says %zu bytes, the model %zu", c,
                     st->classes[c].size, classes_size(c));
            return -1;
        }
    if (classes_nmedium != st->medium.num_classes || classes_medium_max != st->medium.max_size ||
        classes_tail != st->medium_tail) {
        snprintf(why, len, "medium classes: soma has %zu up to %zu bytes, the model %zu up to %zu",
                 st->medium.num_classes, st->medium.max_size, classes_nmedium,
                 classes_medium_max);
        return -1;
    }
    for (size_t i = 0; i < classes_nmedium; i++)
        if (st->medium.classes[i].size != classes_medium[i]) {
            snprintf(why, len, "medium class %zu: soma says %zu bytes, the model %zu", i,
                     st->medium.classes[i].size, classes_medium[i]);
            return -1;
        }
    return 0;
}

#endif /* SOMA_TEST_CLASSES_H */
