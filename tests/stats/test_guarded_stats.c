/*
 * test_guarded_stats: guarded blocks (SOMA_GUARD_SAMPLE=1: every block on
 * pages of its own, src/malloc/guard.c) are counted in soma_stats.guarded
 * and nowhere else, equal to hand counts: the blocks made, those live,
 * the bytes asked of them, and their pages (a block of n bytes ends at its
 * guard page, its 16-byte-rounded size on pages of its own); in the text
 * dump's section and the JSON's "guarded" object; zero in an explicit
 * heap's snapshot, whose blocks are never guarded.  CTest sets
 * SOMA_GUARD_SAMPLE=1.
 */
#include <stdio.h>

#include "os/track.h"
#include "test.h"

#define PAGE ((size_t)4096)

/* A guarded block's pages: its size rounded up to 16, then to pages. */
static size_t pages_of(size_t n)
{
    size_t r = (n + 15) & ~(size_t)15;
    return (r + PAGE - 1) / PAGE * PAGE;
}

/* The text of a snapshot, printed by fn into a buffer. */
static char *printed(int (*fn)(FILE *, const soma_stats *), const soma_stats *st)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL)
        return NULL;
    fn(f, st);
    fclose(f);
    return buf;
}

int main(void)
{
    test_begin("test_guarded_stats");
    soma_stats s0, s1;
    soma_stats_get(&s0);
#if SOMA_TRACKING
    test_note("guarded blocks are off in a memory checker's build");
    CHECK_EQ(s0.guarded.blocks_allocated_total, 0);
    return test_summary();
#endif
    if (!CHECK_EQ(test_env_ull("SOMA_GUARD_SAMPLE", 0), 1))
        return test_summary(); /* CTest sets the environment */

    enum { N = 40 };
    static const size_t sizes[] = {1, 16, 100, 4000, 4096, 5000, 20000, 300000};
    void *p[N];
    size_t asked = 0, mapped = 0;
    for (size_t i = 0; i < N; i++) {
        size_t n = sizes[i % (sizeof sizes / sizeof sizes[0])] + i;
        p[i] = soma_malloc(n);
        if (!CHECK(p[i] != NULL))
            return test_summary();
        memset(p[i], 0x5a, n);
        asked += n;
        mapped += pages_of(n);
    }
    soma_stats_get(&s1);
    CHECK_EQ(s1.guarded.blocks_allocated_total - s0.guarded.blocks_allocated_total, N);
    CHECK_EQ(s1.guarded.blocks_in_use - s0.guarded.blocks_in_use, N);
    CHECK_EQ(s1.guarded.bytes_in_use - s0.guarded.bytes_in_use, asked);
    CHECK_EQ(s1.guarded.bytes_mapped - s0.guarded.bytes_mapped, mapped);
    /* Counted nowhere else: no pool block and no large block more. */
    CHECK_EQ(s1.large.blocks_in_use, s0.large.blocks_in_use);
    CHECK_EQ(s1.bytes_in_allocated_blocks, s0.bytes_in_allocated_blocks);

    /* The dump's section and the JSON object say the same. */
    char line[128];
    char *text = printed(soma_stats_fprint, &s1);
    snprintf(line, sizeof line, "# guarded blocks in use            =%21zu\n",
             s1.guarded.blocks_in_use);
    if (CHECK(text != NULL)) {
        CHECK(strstr(text, "\nGuarded blocks (soma's own: each on pages of its own against an "
                           "inaccessible guard page).\n") != NULL);
        CHECK(strstr(text, line) != NULL);
    }
    free(text);
    char *json = printed(soma_stats_fprint_json, &s1);
    char want[256];
    snprintf(want, sizeof want,
             "\"guarded\": {\"blocks_allocated_total\": %zu, \"blocks_in_use\": %zu, "
             "\"bytes_in_use\": %zu, \"bytes_mapped\": %zu, \"blocks_unguarded_total\": %zu}",
             s1.guarded.blocks_allocated_total, s1.guarded.blocks_in_use,
             s1.guarded.bytes_in_use, s1.guarded.bytes_mapped, s1.guarded.blocks_unguarded_total);
    if (CHECK(json != NULL) && !CHECK(strstr(json, want) != NULL))
        test_note("no %s in the JSON", want);
    free(json);

    /* Half freed: their bytes and pages leave the counts. */
    size_t freed_asked = 0, freed_mapped = 0;
    for (size_t i = 0; i < N; i += 2) {
        size_t n = sizes[i % (sizeof sizes / sizeof sizes[0])] + i;
        freed_asked += n;
        freed_mapped += pages_of(n);
        soma_free(p[i]);
    }
    soma_stats st;
    soma_stats_get(&st);
    CHECK_EQ(st.guarded.blocks_allocated_total, s1.guarded.blocks_allocated_total);
    CHECK_EQ(st.guarded.blocks_in_use, s1.guarded.blocks_in_use - N / 2);
    CHECK_EQ(st.guarded.bytes_in_use, s1.guarded.bytes_in_use - freed_asked);
    CHECK_EQ(st.guarded.bytes_mapped, s1.guarded.bytes_mapped - freed_mapped);

    /* calloc, and a realloc (a new guarded block, the old one freed). */
    unsigned char *c = soma_calloc(10, 30);
    soma_stats sc;
    soma_stats_get(&sc);
    CHECK_EQ(sc.guarded.blocks_allocated_total, st.guarded.blocks_allocated_total + 1);
    CHECK_EQ(sc.guarded.blocks_in_use, st.guarded.blocks_in_use + 1);
    CHECK_EQ(sc.guarded.bytes_in_use, st.guarded.bytes_in_use + 300);
    CHECK_EQ(sc.guarded.bytes_mapped, st.guarded.bytes_mapped + pages_of(300));
    c = soma_realloc(c, 9000);
    if (CHECK(c != NULL))
        CHECK_EQ(c[299], 0); /* contents kept */
    soma_stats_get(&sc);
    CHECK_EQ(sc.guarded.blocks_in_use, st.guarded.blocks_in_use + 1);
    CHECK_EQ(sc.guarded.bytes_in_use, st.guarded.bytes_in_use + 9000);
    CHECK_EQ(sc.guarded.bytes_mapped, st.guarded.bytes_mapped + pages_of(9000));
    soma_free(c);
    soma_stats_get(&sc);
    CHECK_EQ(sc.guarded.blocks_in_use, st.guarded.blocks_in_use);
    CHECK_EQ(sc.guarded.bytes_mapped, st.guarded.bytes_mapped);
    st = sc;

    /* An explicit heap's blocks are never guarded; its snapshot has none. */
    soma_heap *h = soma_heap_new();
    if (CHECK(h != NULL)) {
        void *q = soma_heap_malloc(h, 100);
        soma_stats hs, after;
        soma_heap_stats_get(h, &hs);
        CHECK_EQ(hs.guarded.blocks_in_use, 0);
        CHECK_EQ(hs.guarded.blocks_allocated_total, 0);
        soma_stats_get(&after);
        CHECK_EQ(after.guarded.blocks_allocated_total, st.guarded.blocks_allocated_total);
        soma_free(q);
        soma_heap_destroy(h);
    }

    for (size_t i = 1; i < N; i += 2)
        soma_free(p[i]);
    soma_stats_get(&st);
    CHECK_EQ(st.guarded.blocks_in_use, s0.guarded.blocks_in_use);
    CHECK_EQ(st.guarded.bytes_in_use, s0.guarded.bytes_in_use);
    CHECK_EQ(st.guarded.bytes_mapped, s0.guarded.bytes_mapped);

    /* Past 16,384 live guarded blocks, blocks are made as usual, and
     * counted so. */
    enum { LIMIT = 16384, OVER = 25 };
    static void *many[LIMIT + OVER];
    for (size_t i = 0; i < LIMIT + OVER; i++)
        many[i] = soma_malloc(24);
    soma_stats_get(&sc);
    size_t before = st.guarded.blocks_in_use; /* none, unless something else is live */
    CHECK_EQ(sc.guarded.blocks_in_use, LIMIT);
    CHECK_EQ(sc.guarded.blocks_unguarded_total - st.guarded.blocks_unguarded_total,
             OVER + before);
    CHECK_EQ(sc.guarded.bytes_in_use - st.guarded.bytes_in_use, (LIMIT - before) * 24);
    for (size_t i = 0; i < LIMIT + OVER; i++)
        soma_free(many[i]);
    return test_summary();
}
