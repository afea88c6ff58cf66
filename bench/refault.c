/*
 * bench/refault.c [MIB [ROUNDS [GAP_MS]]]: what a page given back costs when
 * it is used again.  Each round allocates MIB (default 32) of 64-byte
 * blocks, writes them, frees them all and waits GAP_MS (default 1500); one
 * small block stays allocated throughout.  Prints the mean time of the
 * allocation phase and its minor faults per round, the first round left
 * out (it faults under every setting).  Run it with a decay shorter than
 * the gap (the memory goes back during the wait and faults back in) and
 * with one longer (it stays), e.g. SOMA_ARENA_DECAY_MS=1000 and 5000
 * under the override: docs/DESIGN.md quotes the difference.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static long faults(void)
{
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return r.ru_minflt;
}

int main(int argc, char **argv)
{
    size_t n = ((size_t)(argc > 1 ? atoi(argv[1]) : 32) << 20) / 64;
    int rounds = argc > 2 ? atoi(argv[2]) : 4, gap_ms = argc > 3 ? atoi(argv[3]) : 1500;
    void **v = malloc(n * sizeof *v), *keep = malloc(64);
    if (v == NULL || keep == NULL || rounds < 2)
        return 1;
    double t = 0;
    long f = 0;
    for (int r = 0; r < rounds; r++) {
        long f0 = faults();
        double t0 = now();
        for (size_t i = 0; i < n; i++) {
            if ((v[i] = malloc(64)) == NULL)
                return 1;
            memset(v[i], r, 64);
        }
        if (r > 0) {
            t += now() - t0;
            f += faults() - f0;
        }
        for (size_t i = 0; i < n; i++)
            free(v[i]);
        usleep((useconds_t)gap_ms * 1000);
    }
    printf("allocation phase after a %d ms gap: %.1f ms, %ld minor faults per round\n", gap_ms,
           t * 1e3 / (rounds - 1), f / (rounds - 1));
    free(keep);
    free(v);
    return 0;
}
