/*
 * test_explicit_heap.c: soma_heap_new / _malloc / _calloc / _realloc /
 * _destroy and per-heap statistics.
 *
 *  - a heap's blocks live in its own arenas, apart from the thread's heap
 *    and from other heaps;
 *  - its snapshot counts exactly its blocks, and the process snapshot counts
 *    them too;
 *  - blocks freed with soma_free, by this thread or another, go back to it;
 *  - destroy releases everything at once: the process's blocks in use and
 *    arenas return to the baseline and the arenas are really unmapped;
 *  - medium blocks (513..8144 bytes) of a heap are counted in its medium
 *    figures, and destroy gives their arenas back too;
 *  - heaps made and destroyed in a loop do not accumulate memory;
 *  - large blocks asked of a heap (malloc, calloc, realloc up from a small
 *    block) are its own: its snapshot counts them, realloc keeps them its,
 *    and destroy unmaps them, three rounds of 100 blocks of 100 KiB
 *    leaving nothing resident (mincore) and the process's large figures
 *    back where they were.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "soma.h"
#include "test.h"

static uintptr_t arena_of(const void *p, const soma_stats *st)
{
    return (uintptr_t)p & ~(uintptr_t)(st->arena_size - 1);
}


enum { NB = 3000 };
static void *blocks[NB];

static void *free_half(void *arg)
{
    (void)arg;
    for (size_t i = 0; i < NB; i += 2)
        soma_free(blocks[i]);
    return NULL;
}

static void test_lifecycle(void)
{
    soma_stats base, hs, all, after;
    soma_stats_get(&base);
    void *mine = soma_malloc(64); /* the thread heap's */

    soma_heap *h = soma_heap_new();
    if (!CHECK(h != NULL))
        return;
    soma_heap_stats_get(h, &hs);
    CHECK_EQ(hs.arenas_current, 0);
    CHECK_EQ(test_blocks_in_use(&hs), 0);

    /* Known counts: block i of size 1 + i % 300, i.e. class (i % 300) / 16. */
    size_t want[SOMA_NUM_CLASSES] = {0};
    for (size_t i = 0; i < NB; i++) {
        size_t size = 1 + i % 300;
        blocks[i] = soma_heap_malloc(h, size);
        if (!CHECK(blocks[i] != NULL))
            return;
        memset(blocks[i], (int)(i & 0xff), size);
        want[(size - 1) / 16]++;
    }
    soma_heap_stats_get(h, &hs);
    for (unsigned c = 0; c < SOMA_NUM_CLASSES; c++)
        if (!CHECK_EQ(hs.classes[c].blocks_in_use, want[c]))
            test_note("  class %u", c);
    CHECK_EQ(hs.total, hs.arenas_current * hs.arena_size);
    CHECK_GE(hs.arenas_current, 1);
    soma_stats_get(&all);
    CHECK_EQ(test_blocks_in_use(&all), test_blocks_in_use(&base) + 1 + NB);

    /* Its blocks are in its own arenas. */
    for (size_t i = 0; i < NB; i++)
        if (!CHECK(arena_of(blocks[i], &hs) != arena_of(mine, &hs)))
            break;

    /* A second heap shares no arena with the first. */
    soma_heap *h2 = soma_heap_new();
    void *other = soma_heap_malloc(h2, 32);
    for (size_t i = 0; i < NB; i++)
        if (!CHECK(arena_of(blocks[i], &hs) != arena_of(other, &hs)))
            break;
    soma_heap_destroy(h2);

    /* calloc zeroes; realloc keeps contents and moves into the heap. */
    unsigned char *z = soma_heap_calloc(h, 10, 20);
    CHECK(z != NULL);
    for (int k = 0; z && k < 200; k++)
        if (!CHECK_EQ(z[k], 0))
            break;
    unsigned char *r = soma_heap_realloc(h, blocks[1], 400); /* 2 bytes -> 400 */
    if (CHECK(r != NULL)) {
        CHECK_EQ(r[0], 1);
        CHECK_EQ(r[1], 1);
        blocks[1] = r;
    }
    errno = 0;
    CHECK(soma_heap_calloc(h, SIZE_MAX / 2, 3) == NULL);
    CHECK_EQ(errno, ENOMEM);

    /* Half of the blocks are freed by another thread, the rest stay:
     * the heap's snapshot sees the frees. */
    pthread_t t;
    pthread_create(&t, NULL, free_half, NULL);
    pthread_join(t, NULL);
    soma_heap_stats_get(h, &hs);
    CHECK_EQ(test_blocks_in_use(&hs), NB / 2 + 1 /* z */);

    /* Destroy releases the rest at once, and unmaps the arenas. */
    uintptr_t arenas[64];
    size_t narenas = 0;
    for (size_t i = 1; i < NB && narenas < 64; i += 2) {
        uintptr_t a = arena_of(blocks[i], &hs);
        int seen = 0;
        for (size_t k = 0; k < narenas; k++)
            seen |= arenas[k] == a;
        if (!seen)
            arenas[narenas++] = a;
    }
    soma_heap_destroy(h);
    for (size_t k = 0; k < narenas; k++)
        if (!CHECK_EQ(test_resident_pages(arenas[k], hs.arena_size), 0))
            test_note("  arena %#lx still holds memory after destroy", (unsigned long)arenas[k]);
    soma_free(mine);
    soma_stats_get(&after);
    CHECK_EQ(test_blocks_in_use(&after), test_blocks_in_use(&base));
    CHECK_LE(after.arenas_current, base.arenas_current + 1);
}

static size_t medium_in_use(const soma_stats *st)
{
    size_t n = 0;
    for (size_t c = 0; c < st->medium.num_classes; c++)
        n += st->medium.classes[c].blocks_in_use;
    return n;
}

static void test_medium(void)
{
    soma_stats base, hs, after;
    soma_stats_get(&base);
    soma_heap *h = soma_heap_new();
    enum { NM = 600 };
    static unsigned char *m[NM];
    for (size_t i = 0; i < NM; i++) {
        size_t n = 513 + (i * 37) % (base.medium.max_size - 512);
        m[i] = soma_heap_malloc(h, n);
        if (!CHECK(m[i] != NULL))
            return;
        memset(m[i], (int)i, n);
    }
    soma_heap_stats_get(h, &hs);
    CHECK_EQ(medium_in_use(&hs), NM);
    CHECK_EQ(test_blocks_in_use(&hs), 0);
    CHECK_GE(hs.medium.arenas_current, 1);
    CHECK_EQ(hs.medium.total, hs.medium.arenas_current * hs.arena_size);
    size_t bad = 0;
    for (size_t i = 0; i < NM; i++) {
        size_t n = 513 + (i * 37) % (base.medium.max_size - 512);
        for (size_t k = 0; k < n; k++)
            bad += m[i][k] != (unsigned char)i;
    }
    CHECK_EQ(bad, 0);
    uintptr_t arena = (uintptr_t)m[0] & ~(uintptr_t)(hs.arena_size - 1);
    CHECK_GT(test_resident_pages(arena, hs.arena_size), 0);
    soma_heap_destroy(h);
    CHECK_EQ(test_resident_pages(arena, hs.arena_size), 0);
    soma_stats_get(&after);
    CHECK_EQ(medium_in_use(&after), medium_in_use(&base));
    CHECK_EQ(after.medium.arenas_current, base.medium.arenas_current);
}

static void test_print(void)
{
    soma_heap *h = soma_heap_new();
    void *p = soma_heap_malloc(h, 100);
    char buf[8192] = {0};
    FILE *f = fmemopen(buf, sizeof buf - 1, "w");
    CHECK_EQ(soma_heap_stats_print(h, f), 0);
    fclose(f);
    static const char first[] = "Small block threshold = 512, in 32 size classes.\n";
    CHECK(strncmp(buf, first, sizeof first - 1) == 0);
    /* One row: class 6 (112 bytes), one pool, one block in use. */
    CHECK(strstr(buf, "    6    112           1               1") != NULL);
    CHECK(strstr(buf, "# arenas allocated current         =                    1\n") != NULL);
    soma_free(p);
    soma_heap_destroy(h);
}

static void test_churn(void)
{
    soma_stats base, after;
    soma_stats_get(&base);
    for (int round = 0; round < 200; round++) {
        soma_heap *h = soma_heap_new();
        if (!CHECK(h != NULL))
            return;
        for (int i = 0; i < 500; i++)
            CHECK(soma_heap_malloc(h, 1 + (size_t)(i * 7 + round) % 512) != NULL);
        soma_heap_destroy(h); /* no frees: destroy releases them */
    }
    soma_stats_get(&after);
    CHECK_EQ(test_blocks_in_use(&after), test_blocks_in_use(&base));
    CHECK_EQ(after.arenas_current, base.arenas_current);
    CHECK_GE(after.arenas_reclaimed, base.arenas_reclaimed + 200);
}

/* 1 if no page of [p, p+n) is resident (or mapped at all). */
static int gone(void *p, size_t n)
{
    size_t pages = (n + 4095) / 4096;
    unsigned char v[128];
    if (pages > sizeof v)
        return 0;
    int rc = mincore((void *)((uintptr_t)p & ~(uintptr_t)4095), pages * 4096, v);
    if (rc != 0)
        return errno == ENOMEM; /* unmapped */
    for (size_t i = 0; i < pages; i++)
        if (v[i] & 1)
            return 0;
    return 1;
}

static void test_large_owned(void)
{
    enum { N = 100, ROUNDS = 3 };
    size_t n = 100 << 10;
    soma_stats before, hs, ps;
    soma_stats_get(&before);
    for (int round = 0; round < ROUNDS; round++) {
        soma_heap *h = soma_heap_new();
        if (!CHECK(h != NULL))
            return;
        unsigned char *p[N + 2];
        for (int i = 0; i < N; i++) {
            p[i] = round % 2 ? soma_heap_calloc(h, 1, n) : soma_heap_malloc(h, n);
            if (!CHECK(p[i] != NULL))
                return;
            memset(p[i], i, n); /* resident, all of it */
        }
        /* A small block grown past the medium classes: a large block of h. */
        p[N] = soma_heap_malloc(h, 100);
        p[N] = soma_heap_realloc(h, p[N], 50000);
        /* A large block of h grown: still h's. */
        p[N + 1] = soma_heap_malloc(h, 20000);
        p[N + 1] = soma_heap_realloc(h, p[N + 1], 300000);
        if (!CHECK(p[N] != NULL && p[N + 1] != NULL))
            return;
        memset(p[N], 1, 50000);
        memset(p[N + 1], 2, 300000);
        soma_heap_stats_get(h, &hs);
        CHECK_EQ(hs.large.blocks_in_use, N + 2);
        CHECK_EQ(hs.large.bytes_in_use, N * n + 50000 + 300000);
        soma_stats_get(&ps);
        CHECK_EQ(ps.large.blocks_in_use, before.large.blocks_in_use + N + 2);
        /* One freed by soma_free before the destroy: no longer the heap's. */
        soma_free(p[0]);
        soma_heap_stats_get(h, &hs);
        CHECK_EQ(hs.large.blocks_in_use, N + 1);
        soma_heap_destroy(h);
        for (int i = 1; i < N; i++)
            if (!CHECK(gone(p[i], n)))
                break;
        CHECK(gone(p[N], 50000));
        CHECK(gone(p[N + 1], 300000));
        soma_stats_get(&ps);
        CHECK_EQ(ps.large.blocks_in_use, before.large.blocks_in_use);
        CHECK_EQ(ps.large.bytes_in_use, before.large.bytes_in_use);
    }
    /* A thread heap's large block is no heap's: destroy leaves it alone. */
    soma_heap *h = soma_heap_new();
    void *mine = soma_malloc(n);
    if (CHECK(h != NULL && mine != NULL)) {
        memset(mine, 7, n);
        soma_heap_destroy(h);
        CHECK_EQ(((unsigned char *)mine)[n - 1], 7);
        soma_free(mine);
    }
}

int main(void)
{
    test_begin("test_explicit_heap");
    test_lifecycle();
    test_medium();
    test_print();
    test_churn();
    test_large_owned();
    return test_summary();
}
