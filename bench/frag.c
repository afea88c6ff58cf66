/* bench/frag.c: does freed memory go back to the operating system?
 *
 *   frag [SECONDS [MIB]]          (defaults: 3 seconds, 96 MiB)
 *
 * Allocates MIB MiB worth of 64-byte blocks and writes to every one, then
 * frees all of them but one in 4,096 (every 4096th, in allocation order):
 * the heap is left almost empty, yet sparsely pinned, one live block per
 * 256 KiB of blocks.  Then, for SECONDS, it keeps a little allocation going,
 * as a program that has dropped a large structure and carries on would:
 * every millisecond a few 64-byte and 200-byte blocks replace the oldest in
 * a ring of RING live ones.  An allocator that returns the pages of what was
 * freed shows it in the resident set while this runs; bench/memory_return.py
 * samples it from outside.
 *
 * Plain malloc and free, so any allocator can be preloaded.  The pointers
 * live in one anonymous mapping, not in the allocator under test (1/8 of the
 * blocks' own bytes, counted in the peak like the blocks); the few kept are
 * moved to its first page and the rest is unmapped once the frees are done,
 * so that what stays resident afterwards is the allocator's.
 *
 * stdout: one line, "checksum=X allocated=T freed=T", the two T being
 * CLOCK_MONOTONIC seconds (the clock Python's time.monotonic() reads) when
 * the blocks were all allocated and when the frees were done.
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS in plain C11 too */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define BLOCK 64
#define KEEP_EVERY 4096
#define RING 100
#define TICK_NS 1000000L /* one millisecond */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *must(void *p, size_t size)
{
    if (p == NULL) {
        fprintf(stderr, "frag: malloc(%zu) failed\n", size);
        exit(1);
    }
    return p;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 3.0;
    size_t mib = argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : 96;
    if (argc > 3 || seconds < 0 || mib == 0) {
        fprintf(stderr, "usage: frag [SECONDS [MIB]]\n");
        return 2;
    }
    size_t n = (mib << 20) / BLOCK;
    size_t array_bytes = n * sizeof(void *);
    void **blocks = mmap(NULL, array_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                         -1, 0);
    if (blocks == MAP_FAILED) {
        perror("frag: mmap");
        return 1;
    }

    /* The build-up: every block written, so that all of it is resident. */
    for (size_t i = 0; i < n; i++) {
        blocks[i] = must(malloc(BLOCK), BLOCK);
        memset(blocks[i], (int)(i & 0xff), BLOCK);
    }
    double allocated = now();

    /* The drop: all but every 4096th block, the kept ones moved to the
     * array's front (k <= i, so nothing is overwritten before it is read). */
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (i % KEEP_EVERY == 0)
            blocks[kept++] = blocks[i];
        else
            free(blocks[i]);
    }
    double freed = now();
    long page = sysconf(_SC_PAGESIZE);
    size_t front = ((kept * sizeof(void *) + (size_t)page - 1) / (size_t)page) * (size_t)page;
    if (front < array_bytes)
        munmap((char *)blocks + front, array_bytes - front);

    /* The carrying on: a little allocation every millisecond, a ring of
     * RING live blocks of 64 and 200 bytes, plus one short-lived block. */
    void *ring[RING] = {0};
    size_t next = 0;
    uint64_t sum = 0;
    struct timespec tick = {0, TICK_NS};
    for (unsigned long t = 0; now() - freed < seconds; t++) {
        for (int j = 0; j < 4; j++) {
            size_t size = j % 2 ? 200 : BLOCK;
            if (ring[next] != NULL) {
                sum += *(unsigned char *)ring[next];
                free(ring[next]);
            }
            ring[next] = must(malloc(size), size);
            memset(ring[next], (int)((t + (unsigned long)j) & 0xff), size);
            next = (next + 1) % RING;
        }
        unsigned char *brief = must(malloc(200), 200);
        memset(brief, 1, 200);
        sum += brief[199];
        free(brief);
        nanosleep(&tick, NULL);
    }

    /* The kept blocks and the ring are left to exit: freeing them here
     * could shrink the heap in the last instant and read as returned. */
    for (size_t k = 0; k < kept; k++)
        sum += ((unsigned char *)blocks[k])[BLOCK - 1];
    printf("checksum=%llu allocated=%.6f freed=%.6f\n", (unsigned long long)sum, allocated, freed);
    return 0;
}
