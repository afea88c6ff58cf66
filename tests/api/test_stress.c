/*
 * test_stress: a few million random malloc/calloc/realloc/free operations on
 * a table of slots, against a shadow model (stress.h):
 *
 *   - every block's full contents are verified at each free and realloc;
 *   - every SWEEP_EVERY operations, and at the end: all live blocks intact,
 *     no two live blocks overlap, and the per-class blocks-in-use of
 *     soma_stats_get (minus the baseline) equal the model's live soma blocks;
 *   - the traffic alternates between filling and draining the table, so the
 *     live set swings and arenas are mapped and unmapped all along;
 *   - every DRAIN_EVERY operations the whole table is freed (and the run
 *     goes on): the counts go back to the baseline and at most one empty
 *     arena stays mapped;
 *   - after freeing everything at the end: back to the baseline, at most one empty arena
 *     more than at the start.
 *
 * SOMA_STRESS_OPS (default 2,000,000), SOMA_STRESS_SEED and
 * SOMA_STRESS_SLOTS (default 16384) change the run; the seed is printed.
 *
 * Built twice: test_stress calls soma_* (linked), test_stress_preload calls
 * malloc & co. and runs with the override preloaded, checking the same
 * things through the soma_stats_get the override exports; the latter also
 * runs under glibc, where only the contents are checked.
 */
#include <time.h>

#include "stress.h"

#define SWEEP_EVERY (1u << 16)
#define PHASE_LEN (1u << 18) /* operations between filling and draining */
#define DRAIN_EVERY (1u << 20) /* operations between freeing everything */

static soma_stats base, now;

/* A snapshot into *st; 0 when there are no statistics (glibc). */
static int snapshot(soma_stats *st)
{
    if (stress_stats_get == NULL)
        return 0;
    stress_stats_get(st);
    return 1;
}

int main(void)
{
    test_begin("test_stress");
    unsigned long long ops = test_env_ull("SOMA_STRESS_OPS", 2000000);
    unsigned long long seed = test_env_ull("SOMA_STRESS_SEED", 20240601);
    size_t nslots = (size_t)test_env_ull("SOMA_STRESS_SLOTS", 16384);
    if (nslots == 0)
        nslots = 1;
    test_note("seed %llu (SOMA_STRESS_SEED), %llu operations (SOMA_STRESS_OPS), %zu slots", seed,
              ops, nslots);

    stress_setup();
    static stress_table table;
    stress_table *tables[1] = {&table};
    if (!CHECK(stress_init(&table, nslots, 1, seed)))
        return test_summary();
    /* After the table: preloaded, its slots are one of soma's large blocks. */
    if (!snapshot(&base))
        test_note("no soma_stats_get: not soma, contents are checked but not statistics");

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t max_arenas = 0;
    size_t min_arenas = (size_t)-1;
    unsigned drains = 0;
    for (unsigned long long k = 1; k <= ops; k++) {
        if (k % PHASE_LEN == 1)
            stress_phase(&table, (int)((k / PHASE_LEN) & 1));
        stress_step(&table);
        if (k % DRAIN_EVERY == 0 && k != ops) {
            /* Free everything now and then: the arenas must go back. */
            stress_drain(&table);
            if (snapshot(&now)) {
                stress_compare_stats(tables, 1, &base, &now);
                if (!CHECK_LE(now.arenas_current, base.arenas_current + 1))
                    test_note("  %zu arenas mapped with no block in use (after %llu operations)",
                              now.arenas_current, k);
            }
            drains++;
        }
        if (k % SWEEP_EVERY == 0 || k == ops) {
            stress_sweep(tables, 1);
            if (snapshot(&now)) {
                if (now.arenas_current > max_arenas)
                    max_arenas = now.arenas_current;
                if (now.arenas_current < min_arenas)
                    min_arenas = now.arenas_current;
                if (!stress_compare_stats(tables, 1, &base, &now))
                    test_note("  after %llu operations", k);
            }
        }
        if (table.errors > 20) {
            FAIL("too many errors; stopping after %llu operations", k);
            break;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;

    size_t live_soma = 0;
    for (unsigned c = 0; c < SOMA_NUM_CLASSES; c++)
        live_soma += table.live_soma[c];
    test_note("%llu ops in %.2f s: %llu mallocs, %llu callocs, %llu reallocs, %llu frees; "
              "%llu bytes verified; at the end %zu soma blocks and %zu system blocks live; "
              "arenas between %zu and %zu, %zu reclaimed (%u full drains)",
              table.ops, secs, table.mallocs, table.callocs, table.reallocs, table.frees,
              table.checked_bytes, live_soma, table.live_sys, min_arenas, max_arenas,
              now.arenas_reclaimed - base.arenas_reclaimed, drains);

    stress_drain(&table);
    int have = snapshot(&now); /* before the table goes: the baseline had it */
    free(table.slots);
    if (!have)
        return test_summary();
    stress_compare_stats(tables, 1, &base, &now);
    for (unsigned c = 0; c < SOMA_NUM_CLASSES; c++) {
        CHECK_EQ(now.classes[c].blocks_in_use, base.classes[c].blocks_in_use);
        CHECK_EQ(now.classes[c].num_pools, base.classes[c].num_pools);
    }
    CHECK_LE(now.arenas_current, base.arenas_current + 1);
    CHECK_EQ(now.arenas_reclaimed, now.arenas_allocated_total - now.arenas_current);
    return test_summary();
}
