/*
 * json_probe: a program whose allocations are known exactly, for
 * test_snapshots.py to check the JSON snapshots against.
 *
 *   json_probe snapshots OUT.json   1000 blocks of 48 bytes, 10 of 1500,
 *        2 large ones of 100000, an explicit heap with 50 blocks of 64 and a
 *        registered cache "Probe" of 7 objects; writes soma_stats_print_json,
 *        soma_heap_stats_print_json and soma_stats_fprint_json, then frees
 *        everything and writes soma_stats_print_json again.
 *   json_probe hold MS              1000 blocks of 48 bytes held for MS ms,
 *        then freed (the samples a sampling thread takes meanwhile must
 *        show exactly those).
 *   json_probe returned OUT.json    10 pools of 48-byte blocks and 4 of
 *        medium ones; the blocks of 5 small pools and 2 medium ones freed
 *        (their arenas stay); soma_stats_print_json, soma_purge(1),
 *        soma_stats_print_json again; prints the 7 emptied pools' addresses,
 *        one a line, small ones first.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "soma.h"

static size_t probe_count(void *ctx)
{
    (void)ctx;
    return 7;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* Allocates n blocks of `size` into b; empties the pools of the distinct
 * ones (in address order) whose index is in which[0..nwhich), and prints
 * their addresses.  Returns how many pools the blocks took. */
static size_t fill_and_empty(void **b, size_t n, size_t size, size_t pool_size,
                             const size_t *which, size_t nwhich)
{
    uintptr_t bases[64];
    size_t np = 0;
    for (size_t i = 0; i < n; i++)
        b[i] = soma_malloc(size);
    for (size_t i = 0; i < n; i++) {
        uintptr_t base = (uintptr_t)b[i] & ~(uintptr_t)(pool_size - 1);
        size_t at = 0;
        while (at < np && bases[at] < base)
            at++;
        if ((at < np && bases[at] == base) || np == 64)
            continue;
        memmove(&bases[at + 1], &bases[at], (np - at) * sizeof *bases);
        bases[at] = base;
        np++;
    }
    for (size_t k = 0; k < nwhich; k++) {
        for (size_t i = 0; i < n; i++)
            if (((uintptr_t)b[i] & ~(uintptr_t)(pool_size - 1)) == bases[which[k]])
                soma_free(b[i]);
        printf("0x%lx\n", (unsigned long)bases[which[k]]);
    }
    return np;
}

static int returned(const char *path)
{
    static void *b[10 * 400], *m[4 * 30];
    static const size_t gone[] = {1, 2, 3, 5, 6}, mgone[] = {1, 2};
    static soma_stats st;
    soma_stats_get(&st);
    size_t ps = st.pool_size, over = st.pool_overhead, mmax = st.medium.max_size;
    FILE *out = fopen(path, "w");
    if (out == NULL)
        return 1;
    size_t np = fill_and_empty(b, 10 * ((ps - over) / 48), 48, ps, gone, 5);
    size_t nmp = fill_and_empty(m, 4 * ((ps - over) / mmax), mmax - 100, ps, mgone, 2);
    int rc = soma_stats_print_json(out);
    soma_purge(1);
    rc |= soma_stats_print_json(out);
    return fclose(out) == 0 && rc == 0 && np == 10 && nmp == 4 ? 0 : 1;
}

int main(int argc, char **argv)
{
    static void *small[1000], *medium[10], *large[2], *inheap[50];
    if (argc >= 3 && strcmp(argv[1], "hold") == 0) {
        sleep_ms(30);
        for (int i = 0; i < 1000; i++)
            small[i] = soma_malloc(48);
        sleep_ms(atol(argv[2]));
        for (int i = 0; i < 1000; i++)
            soma_free(small[i]);
        sleep_ms(30);
        return 0;
    }
    if (argc >= 3 && strcmp(argv[1], "returned") == 0)
        return returned(argv[2]);
    if (argc < 3 || strcmp(argv[1], "snapshots") != 0) { /* more arguments: ignored */
        fprintf(stderr, "usage: json_probe snapshots OUT.json | json_probe hold MS | "
                        "json_probe returned OUT.json\n");
        return 2;
    }
    FILE *out = fopen(argv[2], "w");
    if (out == NULL)
        return 1;
    for (int i = 0; i < 1000; i++)
        small[i] = soma_malloc(48);
    for (int i = 0; i < 10; i++)
        medium[i] = soma_malloc(1500);
    for (int i = 0; i < 2; i++)
        large[i] = soma_malloc(100000);
    soma_heap *heap = soma_heap_new();
    for (int i = 0; i < 50; i++)
        inheap[i] = soma_heap_malloc(heap, 64);
    soma_stats_register_type("Probe", 40, probe_count, NULL);
    int rc = soma_stats_print_json(out);
    rc |= soma_heap_stats_print_json(heap, out);
    static soma_stats st;
    soma_stats_get(&st);
    rc |= soma_stats_fprint_json(out, &st);
    for (int i = 0; i < 1000; i++)
        soma_free(small[i]);
    for (int i = 0; i < 10; i++)
        soma_free(medium[i]);
    for (int i = 0; i < 2; i++)
        soma_free(large[i]);
    for (int i = 0; i < 50; i++)
        soma_free(inheap[i]);
    soma_heap_destroy(heap);
    soma_stats_unregister_type("Probe");
    rc |= soma_stats_print_json(out);
    return fclose(out) == 0 && rc == 0 ? 0 : 1;
}
