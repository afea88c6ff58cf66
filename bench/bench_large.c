/*
 * bench_large.c: large blocks in random order, for the allocators side by
 * side (run it with LD_PRELOAD=...):
 *
 *   bench_large [iterations] [min] [max] [live]
 *
 * Keeps `live` blocks (200) of random sizes from min to max bytes (8 KiB to
 * 256 KiB); each turn frees a random one and allocates another in its
 * place, and writes every byte of it, as a program fills a buffer it asked
 * for (so that a page the allocator hands out fresh is faulted in here).
 * Prints the turns per second; /usr/bin/time gives the peak RSS.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t rng = 88172645463325252ULL;

static uint64_t next(void) /* xorshift64: the same sequence for every allocator */
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

int main(int argc, char **argv)
{
    long turns = argc > 1 ? atol(argv[1]) : 100000;
    size_t lo = argc > 2 ? (size_t)atol(argv[2]) : 8192;
    size_t hi = argc > 3 ? (size_t)atol(argv[3]) : 262144;
    size_t live = argc > 4 ? (size_t)atol(argv[4]) : 200;
    char **slot = calloc(live, sizeof *slot);
    if (slot == NULL || hi < lo)
        return 1;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    unsigned sum = 0;
    for (long i = 0; i < turns; i++) {
        size_t k = next() % live, n = lo + next() % (hi - lo + 1);
        if (slot[k] != NULL)
            sum += (unsigned char)slot[k][0];
        free(slot[k]);
        slot[k] = malloc(n);
        if (slot[k] == NULL)
            return 1;
        memset(slot[k], (int)i, n);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    for (size_t k = 0; k < live; k++)
        free(slot[k]);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("%ld turns in %.3f s: %.0f turns/s (%u)\n", turns, s, (double)turns / s, sum & 1);
    free(slot);
    return 0;
}
