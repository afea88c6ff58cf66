/*
 * test_purge_arenas: the purge thread gives back whole arenas too, not
 * only pools' pages (runtime/purge.c's sweep; pool/arena.c's
 * release_expired with SOMA_TRIM_TRY).  A program that frees everything
 * and then makes no call into soma at all (build_drop.py's shape: the
 * arenas emptied, their pools' pages long gone, but 229 arena records of
 * 4 KiB each still resident) must see the arenas go: the arena map no
 * longer names them (soma__region_arena, read without a call into the
 * allocator), but for the one empty arena a heap keeps (CPython's rule),
 * and nothing of them is resident (mincore).  CTest sets
 * SOMA_ARENA_DECAY_MS=200 and SOMA_BACKGROUND_PURGE=1.
 */
#include <stdlib.h>

#include "pool/pool.h"
#include "test.h"
#include "purge.h"

enum { BLOCK = 64, NBLOCKS = (8 << 20) / BLOCK, MAX_ARENAS = 64 };

static unsigned char *blocks[NBLOCKS];

int main(void)
{
    test_begin("test_purge_arenas");
    long decay = (long)test_env_ull("SOMA_ARENA_DECAY_MS", 0);
    if (!CHECK_EQ(decay, 200) || !CHECK_EQ(test_env_ull("SOMA_BACKGROUND_PURGE", 0), 1))
        return test_summary(); /* CTest sets the environment */
    if (!CHECK(purge_thread_start(decay)))
        return test_summary();
    soma_stats st;
    soma_stats_get(&st);
    size_t arena_size = st.arena_size;

    /* A block of the class kept through the test, before the others: the
     * class always has a pool in use besides theirs, so none of theirs
     * parks when it empties (a parked pool stays, pool.c). */
    unsigned char *keep = soma_malloc(BLOCK);
    if (!CHECK(keep != NULL))
        return test_summary();
    uintptr_t arenas[MAX_ARENAS];
    size_t n = 0;
    for (size_t i = 0; i < NBLOCKS; i++) {
        blocks[i] = soma_malloc(BLOCK);
        if (!CHECK(blocks[i] != NULL))
            return test_summary();
        uintptr_t a = (uintptr_t)blocks[i] & ~(uintptr_t)(arena_size - 1);
        if (n == 0 || arenas[n - 1] != a) {
            if (!CHECK_LT(n, (size_t)MAX_ARENAS))
                return test_summary();
            arenas[n++] = a;
        }
    }
    /* The arenas the test filled from their start (the first may hold
     * blocks of before, and is not counted). */
    CHECK_GE(n, 8);
    for (size_t i = 0; i < NBLOCKS; i++)
        soma_free(blocks[i]);

    /* No call into soma from here: only the purge thread can act. */
    size_t named = n, resident = 0;
    for (int tries = 0; tries < 300; tries++) { /* up to 3 s beyond the decay */
        test_sleep_ms(tries == 0 ? decay : 10);
        named = 0;
        resident = 0;
        for (size_t i = 1; i < n; i++) {
            named += soma__region_arena((void *)arenas[i]) != NULL;
            resident += test_resident_pages(arenas[i], arena_size);
        }
        if (named <= 1 && resident == 0)
            break;
    }
    test_note("%zu arenas filled and emptied; %zu still mapped, %zu pages resident", n - 1, named,
              resident);
    CHECK_LE(named, 1); /* the one empty arena kept */
    CHECK_EQ(resident, 0);
    soma_free(keep);
    return test_summary();
}
