/*
 * test_slab: soma's records from its own slabs (src/os/slab.c), the way
 * arena records (4,224 bytes) and heap records use them:
 *
 *   - every record taken is zeroed, lies in a 64 KiB-aligned slab, and
 *     overlaps no other record in use; contents written survive the other
 *     records' takes and gives;
 *   - records given back while others of their slab stay in use are taken
 *     again (the same addresses), zeroed;
 *   - a slab whose records are all given back gives its pages back to the
 *     OS but for the last (mincore), but for one slab kept whole (the
 *     spare); taking records again reuses those slabs before mapping new
 *     ones, and the records read zero.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "os/slab.h"
#include "test.h"

enum { N = 100, SIZE = 4224, SLAB = 64 * 1024 };

static unsigned char *rec[N];

static int zeroed(const unsigned char *p)
{
    for (size_t i = 0; i < SIZE; i++)
        if (p[i] != 0)
            return 0;
    return 1;
}

static int cmp(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (unsigned char *const *)a, y = (uintptr_t) * (unsigned char *const *)b;
    return x < y ? -1 : x > y;
}

static int in_old_slab(const unsigned char *p, unsigned char *const *old, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (((uintptr_t)p ^ (uintptr_t)old[i]) < SLAB)
            return 1;
    return 0;
}

int main(void)
{
    test_begin("test_slab");
    slab_t s = {.size = SIZE};
    for (int i = 0; i < N; i++) {
        rec[i] = soma__slab_take(&s);
        if (!CHECK(rec[i] != NULL))
            return test_summary();
        CHECK(zeroed(rec[i]));
        CHECK_EQ(((uintptr_t)rec[i] & (SLAB - 1)) % SIZE, 0); /* cut in order from the slab's start */
        memset(rec[i], i + 1, SIZE);
    }
    unsigned char *sorted[N];
    memcpy(sorted, rec, sizeof rec);
    qsort(sorted, N, sizeof sorted[0], cmp);
    for (int i = 1; i < N; i++)
        CHECK_LE((uintptr_t)sorted[i - 1] + SIZE, (uintptr_t)sorted[i]);

    /* Every other record back and taken again: the same ones, zeroed. */
    for (int i = 0; i < N; i += 2)
        soma__slab_give(&s, rec[i]);
    for (int i = 0; i < N; i += 2) {
        unsigned char *r = soma__slab_take(&s);
        if (!CHECK(r != NULL))
            return test_summary();
        CHECK(zeroed(r));
        CHECK(bsearch(&r, sorted, N, sizeof sorted[0], cmp) != NULL);
        rec[i] = r;
        memset(r, i + 1, SIZE);
    }
    for (int i = 0; i < N; i++) {
        CHECK_EQ(rec[i][0], (unsigned char)(i + 1));
        CHECK_EQ(rec[i][SIZE - 1], (unsigned char)(i + 1));
    }

    /* All back: the slabs' pages go, but each slab's last, and the first
     * slab to empty stays whole (the spare). */
    for (int i = 0; i < N; i++)
        soma__slab_give(&s, rec[i]);
    size_t slabs = 0, kept = 0, resident = 0;
    for (int i = 0; i < N; i++) {
        if (i > 0 && ((uintptr_t)sorted[i] ^ (uintptr_t)sorted[i - 1]) < SLAB)
            continue;
        uintptr_t base = (uintptr_t)sorted[i] & ~(uintptr_t)(SLAB - 1);
        size_t pages = test_resident_pages(base, SLAB - 4096);
        slabs++;
        if (pages > 0)
            kept++;
        else
            CHECK_EQ(test_resident_pages(base + SLAB - 4096, 4096), 1); /* the header's page */
        resident += pages;
    }
    test_note("%zu slabs, %zu kept whole, %zu record pages still resident", slabs, kept, resident);
    CHECK_EQ(slabs, (N + 14) / 15);
    CHECK_EQ(kept, 1);
    CHECK_LE(resident, (SLAB - 4096) / 4096);

    /* Taken again: from the same slabs, zero whatever they held. */
    for (int i = 0; i < N; i++) {
        rec[i] = soma__slab_take(&s);
        if (!CHECK(rec[i] != NULL))
            return test_summary();
        CHECK(zeroed(rec[i]));
        CHECK(in_old_slab(rec[i], sorted, N));
    }
    for (int i = 0; i < N; i++)
        soma__slab_give(&s, rec[i]);
    return test_summary();
}
