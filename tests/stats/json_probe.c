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
 */
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
    if (argc < 3 || strcmp(argv[1], "snapshots") != 0) { /* more arguments: ignored */
        fprintf(stderr, "usage: json_probe snapshots OUT.json | json_probe hold MS\n");
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
