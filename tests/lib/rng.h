/*
 * rng.h: the tests' random numbers, one small deterministic generator
 * (xorshift64*), good enough for tests.  test.h includes it; the fuzzing
 * harness, which has its own way of failing (it must abort for libFuzzer),
 * includes it alone.
 *
 *   test_rng r; test_rng_seed(&r, seed);   a seed of 0 is replaced
 *   test_rng_next(&r)                      64 random bits
 *   test_rng_below(&r, n)                  uniform-ish in [0, n), n > 0
 */
#ifndef SOMA_TEST_RNG_H
#define SOMA_TEST_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s;
} test_rng;

static inline void test_rng_seed(test_rng *r, uint64_t seed)
{
    r->s = seed ? seed : 0x9e3779b97f4a7c15ULL;
}

static inline uint64_t test_rng_next(test_rng *r)
{
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545f4914f6cdd1dULL;
}

/* Uniform-ish in [0, n), n > 0. */
static inline uint64_t test_rng_below(test_rng *r, uint64_t n)
{
    return test_rng_next(r) % n;
}

#endif /* SOMA_TEST_RNG_H */
