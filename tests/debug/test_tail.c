/*
 * test_tail: a medium block's head and fence (src/pool/tail.h), and a
 * large block's tail (src/malloc/large.c), in normal mode.  Each
 * mistake is made in a child process, which must stop at the call named,
 * with the message expected, naming the block:
 *
 *   - a write 1 byte past the size asked (a multiple of 8: the fence sits
 *     right there), and 8 bytes past one that is not (the fence at the next
 *     multiple of 8), found at the block's free; and 1 byte past what
 *     soma_usable_size said, once the program asked;
 *   - the same found by a free from another thread, and by realloc;
 *   - a write of 1 byte before a block: its head, found at its free;
 *   - a write before a pool's first block: its head, the pool header's
 *     check word;
 *   - a write past a block's end that skips its fence: the head of the
 *     block after it, found at that block's free (the first block's own
 *     free finds nothing);
 *   - a large block's mapping written past its usable size (its last 8
 *     bytes: src/malloc/large.c), found by free and by realloc;
 *   - a large block written after its free (its mapping's first word, in
 *     the cache), found when the cache hands the mapping out again.
 *
 * And no false alarm: blocks of every medium size filled to the size
 * asked, grown and shrunk in place by realloc with their contents kept,
 * filled to what soma_usable_size then says (what the class holds: the
 * fence moves there), freed by their thread and by another.
 *
 * Blocks made one after the other in a fresh child's fresh pool lie one
 * after the other (carve links them in address order): the test checks
 * that before it relies on it.
 *
 * A mistake is made with ^= (spoil: every byte changes, whatever it held):
 * a check word's bytes are keyed, and a plain store of a given value
 * leaves one as it was once in 256 runs (the test failed so 2% of runs).
 */
#include <pthread.h>

#include "malloc/malloc.h"
#include "test.h"

#if SOMA_MEDIUM_TAIL
static soma_stats st;

/* The class size of a medium request of n bytes. */
static size_t class_size(size_t n)
{
    for (size_t c = 0; c < st.medium.num_classes; c++)
        if (st.medium.classes[c].size - st.medium_tail >= n)
            return st.medium.classes[c].size;
    return 0;
}

/* Two blocks of n bytes, b right after a (in a fresh child); the one the
 * message must name is printed ("pointer P"). */
static void pair(size_t n, unsigned char **a, unsigned char **b)
{
    *a = soma_malloc(n);
    *b = soma_malloc(n);
    if ((size_t)(*b - *a) != class_size(n)) {
        fprintf(stderr, "blocks %p and %p are not neighbours\n", (void *)*a, (void *)*b);
        exit(2); /* not the abort expected: the test fails */
    }
}

/* The mistake: [p, p + n) written, every byte changed. */
static void spoil(unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] ^= 'O';
}

static void over_1_aligned(void)
{
    unsigned char *p = soma_malloc(1000), *q = soma_malloc(1000);
    fprintf(stderr, "pointer %p\n", (void *)p);
    memset(p, 1, 1000); /* allowed */
    p[1000] ^= 'O';      /* the mistake */
    soma_free(q);
    soma_free(p);
}

/* After soma_usable_size, the block may be used to its class's end (1072
 * bytes for 1000 asked): only a write past that stops. */
static void over_usable(void)
{
    unsigned char *p = soma_malloc(1000);
    fprintf(stderr, "pointer %p\n", (void *)p);
    size_t usable = soma_usable_size(p);
    if (usable != class_size(1000) - 16)
        exit(2);
    memset(p, 1, usable); /* allowed: no stop here */
    p = soma_realloc(p, usable); /* in place: checked, allowed */
    p[usable] ^= 'O';
    soma_free(p);
}

static void over_8_unaligned(void)
{
    unsigned char *p = soma_malloc(1001);
    fprintf(stderr, "pointer %p\n", (void *)p);
    spoil(p + 1001, 8); /* bytes 1001..1008: the fence starts at 1008 */
    soma_free(p);
}

static unsigned char *victim;
static void *free_victim(void *arg)
{
    (void)arg;
    soma_free(victim);
    return NULL;
}
static void over_freed_remotely(void)
{
    victim = soma_malloc(1904); /* medium in both geometries */
    fprintf(stderr, "pointer %p\n", (void *)victim);
    spoil(victim + 1904, 32);
    pthread_t t;
    pthread_create(&t, NULL, free_victim, NULL);
    pthread_join(t, NULL);
}

static void over_realloc(void)
{
    unsigned char *p = soma_malloc(2000);
    fprintf(stderr, "pointer %p\n", (void *)p);
    spoil(p + 2000, 8); /* the fence */
    p = soma_realloc(p, 1900); /* it would stay in place */
    soma_free(p);
}

static void under_1(void)
{
    unsigned char *a, *b;
    pair(1000, &a, &b);
    fprintf(stderr, "pointer %p\n", (void *)b);
    b[-1] ^= 'U';
    soma_free(b); /* its head */
}

/* a's last 8 bytes, which it never holds (class size - 16): b's head.  a's
 * free finds its fence whole; b's free says it. */
static void over_past_end(void)
{
    unsigned char *a, *b;
    pair(1000, &a, &b);
    fprintf(stderr, "pointer %p\n", (void *)b);
    spoil(a + class_size(1000) - 8, 8);
    soma_free(a);
    soma_free(b);
}

/* An overflow past a's fence into the low 2 bytes of b's head alone: n,
 * not the tag.  b's free must not read a fence 64 KiB on (out of soma's
 * mappings, for a pool at the end of its arena: the pair is taken
 * there), but say that b's head is overwritten.  The largest class, two
 * blocks a pool. */
static void over_size_bytes(void)
{
    size_t ask = st.medium.max_size, s = class_size(ask);
    enum { N = 256 };
    static unsigned char *p[N];
    int k = -1;
    for (int i = 0; i < N && k < 0; i++) {
        p[i] = soma_malloc(ask);
        uintptr_t off = (uintptr_t)p[i] & (SOMA_ARENA_SIZE - 1);
        if (i > 0 && p[i] == p[i - 1] + s && off >= SOMA_ARENA_SIZE - SOMA_POOL_SIZE)
            k = i - 1;
    }
    if (k < 0)
        exit(2);
    fprintf(stderr, "pointer %p\n", (void *)p[k + 1]);
    p[k][s - 8] = 0xff; /* b's head's n, both bytes */
    p[k][s - 7] = 0xff;
    soma_free(p[k + 1]);
}

static void under_first_block(void)
{
    unsigned char *p = soma_malloc(1800); /* a fresh class: the pool's first block */
    fprintf(stderr, "pointer %p\n", (void *)p);
    if (((uintptr_t)p & (st.pool_size - 1)) != st.pool_overhead)
        exit(2);
    p[-3] ^= 'U';
    soma_free(p);
}

/* A double free after the block's pool emptied and went to another class
 * whose blocks start where the old ones did (1088 bytes, twice 544): the
 * block, past the new class's carved ones, still holds its old head and
 * fence, which pass; that it lies past them says it.  (A review found it
 * accepted, and the block handed out twice.) */
static void double_free_after_class_change(void)
{
    void *v[9];
    for (int i = 0; i < 9; i++)
        v[i] = soma_malloc(520);
    fprintf(stderr, "pointer %p\n", v[8]);
    for (int i = 0; i < 9; i++)
        soma_free(v[i]); /* the pool empties, back to its arena */
    unsigned char *a = soma_malloc(1000); /* the same pool, for the class twice as large */
    if (((uintptr_t)a ^ (uintptr_t)v[0]) >= st.pool_size)
        exit(2);
    soma_free(v[8]);
}

/* A free of a medium block never handed out (carved: its head says 0
 * bytes asked): no block in use, not an overflow. */
static void never_handed_out(void)
{
    unsigned char *a, *b;
    pair(1000, &a, &b); /* b's class size apart: the next one is carved too */
    unsigned char *c = b + (b - a);
    fprintf(stderr, "pointer %p\n", (void *)c);
    if (((uintptr_t)c ^ (uintptr_t)b) >= st.pool_size)
        exit(2);
    soma_free(c);
}

/* A large block: the last 8 bytes of its mapping (src/malloc/large.c),
 * just past what soma_usable_size allows. */
static void large_over(void)
{
    unsigned char *p = soma_malloc(256 << 10); /* a whole number of pages: one more for the tail */
    fprintf(stderr, "pointer %p\n", (void *)p);
    size_t usable = soma_usable_size(p);
    if (usable != (256 << 10) + 4096 - 8)
        exit(2);
    memset(p, 1, usable); /* allowed */
    p[usable + 7] ^= 'O';
    soma_free(p);
}
static void large_over_realloc(void)
{
    unsigned char *p = soma_malloc(100000);
    fprintf(stderr, "pointer %p\n", (void *)p);
    spoil(p + 100000, soma_usable_size(p) + 8 - 100000);
    p = soma_realloc(p, 200000);
    soma_free(p);
}

/* A large block written after its free: its mapping's first word, which
 * the cache checks when it hands the pages out again. */
static void large_written_after_free(void)
{
    /* The first freed mapping of its size is sealed, not cached
     * (test_seal): this one raises the bar past 300000. */
    soma_free(soma_malloc(300000));
    unsigned char *p = soma_malloc(300000);
    fprintf(stderr, "pointer %p\n", (void *)p);
    soma_free(p);
    p[3] ^= 'W'; /* the mistake */
    void *q = soma_malloc(300000); /* the same pages, from the cache */
    soma_free(q);
}

/* Every block of every medium class, in every pool of an arena: no two
 * heads alike (the head keeps the tag's top 48 bits). */
static void heads_differ(void)
{
    void *p = soma_malloc(1000);
    uintptr_t arena = (uintptr_t)p & ~(uintptr_t)(SOMA_ARENA_SIZE - 1);
    size_t pools = SOMA_ARENA_SIZE / SOMA_POOL_SIZE;
    for (unsigned c = SOMA_SMALL_CLASSES; c < SOMA_NUM_ALL_CLASSES; c++) {
        size_t size = soma__sizeclass_size(c), per_pool = (SOMA_POOL_SIZE - SOMA_POOL_OVERHEAD) / size;
        uint64_t *heads = malloc(pools * per_pool * sizeof *heads);
        if (!CHECK(heads != NULL))
            break;
        size_t n = 0;
        for (uintptr_t pool = arena; pool < arena + SOMA_ARENA_SIZE; pool += SOMA_POOL_SIZE)
            for (size_t k = 0; k < per_pool; k++)
                heads[n++] = soma__tail_tag((void *)(pool + SOMA_POOL_OVERHEAD + k * size)) &
                             ~(uint64_t)SOMA_TAIL_ASKED;
        size_t same = test_repeats(heads, n);
        if (!CHECK_EQ(same, 0))
            test_note("  class %u (%zu bytes): %zu of %zu heads repeat another's", c, size, same, n);
        free(heads);
    }
    soma_free(p);
}

static void *free_all(void *arg)
{
    unsigned char **v = arg;
    for (size_t i = 0; v[i] != NULL; i++)
        soma_free(v[i]);
    return NULL;
}
#endif

/* Should this build have tails?  Told apart from base/config.h's own test,
 * so that a build that lost them fails here: a hardened build, unless a
 * checker's (ASan, valgrind). */
static int tails_expected(void)
{
#if defined(__SANITIZE_ADDRESS__) || defined(SOMA_TRACK_VALGRIND)
    return 0;
#else
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
    return 0;
#endif
#endif
    return SOMA_HARDEN;
#endif
}

int main(void)
{
    test_program_name = "test_tail";
    {
        soma_stats s;
        soma_stats_get(&s);
        CHECK_EQ(s.medium_tail, tails_expected() ? 16 : 0);
        CHECK_EQ(s.medium.max_size, s.medium.classes[s.medium.num_classes - 1].size - s.medium_tail);
    }
#if SOMA_MEDIUM_TAIL
    soma_stats_get(&st);
    CHECK_EQ(st.medium_tail, 16);
    test_expect_fatal("1 byte past the size asked", over_1_aligned,
                      "buffer overflow: the block holds 1000 bytes (the size asked, or what "
                      "malloc_usable_size said), and B+1000 past them is overwritten");
    static char usable[160];
    snprintf(usable, sizeof usable, "the block holds %zu bytes (the size asked, or what "
             "malloc_usable_size said), and B+%zu past them is overwritten",
             class_size(1000) - 16, class_size(1000) - 16);
    test_expect_fatal("past the usable size", over_usable, usable);
    test_expect_fatal("8 bytes past a size not a multiple of 8", over_8_unaligned,
                      "the block holds 1001 bytes (the size asked, or what malloc_usable_size said), "
                      "and B+1008 past them is overwritten");
    test_expect_fatal("freed by another thread", over_freed_remotely,
                      "the block holds 1904 bytes (the size asked, or what malloc_usable_size said), "
                      "and B+1904 past them");
    test_expect_fatal("reallocated", over_realloc,
                      "buffer overflow: the block holds 2000 bytes (the size asked, or what "
                      "malloc_usable_size said), and B+2000 past them is overwritten");
    static char head[128];
    snprintf(head, sizeof head, "the 8 bytes before the %zu-byte block (class", class_size(1000));
    test_expect_fatal("1 byte before the block", under_1, head);
    test_expect_fatal("1 byte before the block", under_1, "a write before its start (an underflow)");
    test_expect_fatal("past the block's end, not through its fence", over_past_end, head);
    test_expect_fatal("past the block's end, not through its fence", over_past_end,
                      "or past the end of the block before it (0x");
    {
        static char last[128];
        snprintf(last, sizeof last, "the 8 bytes before the %zu-byte block (class",
                 class_size(st.medium.max_size));
        test_expect_fatal("past the block's end, into the next head's size alone",
                          over_size_bytes, last);
    }
    if (class_size(1000) == 2 * class_size(520) && st.pool_size > 4096)
        test_expect_fatal("a double free after its pool changed class",
                          double_free_after_class_change,
                          "not an allocated block (a double free, or a block of pool");
    heads_differ();
    test_expect_fatal("before a pool's first block", under_first_block,
                      "is overwritten from 3 bytes before its first block");
    test_expect_fatal("a block never handed out", never_handed_out,
                      "not an allocated block: the ");
    test_expect_fatal("a block never handed out", never_handed_out, "was never handed out");
    test_expect_fatal("past a large block's mapping", large_over,
                      "the last 8 bytes of the large block's mapping, soma's, are overwritten "
                      "(B+266239, B = the block: 262144 bytes asked, 266240 mapped)");
    test_expect_fatal("a large block reallocated", large_over_realloc,
                      "the last 8 bytes of the large block's mapping, soma's, are overwritten");
    test_expect_fatal("a large block written after its free", large_written_after_free,
                      "was written after its free (byte 3 of its first 8, in a range of 296 KiB "
                      "soma keeps for reuse), found as the range was reused");

    /* No false alarms: every medium size, filled to its size asked, then
     * (after soma_usable_size) to what its class holds. */
    enum { MAXN = 8200 };
    static unsigned char *v[MAXN + 1];
    size_t k = 0;
    for (size_t n = SOMA_SMALL_THRESHOLD + 1; n <= st.medium.max_size; n += 7) {
        unsigned char *p = soma_malloc(n);
        if (!CHECK(p != NULL))
            break;
        memset(p, (int)(n & 0xff), n);
        v[k++] = p;
    }
    /* grown and shrunk in place, contents kept; then used to the end */
    size_t bad = 0, moved = 0;
    for (size_t i = 0, n = SOMA_SMALL_THRESHOLD + 1; i < k; i++, n += 7) {
        size_t m = n + 5 <= class_size(n) - 16 ? n + 5 : n - 5;
        unsigned char *q = soma_realloc(v[i], m);
        moved += q != v[i];
        for (size_t j = 0; j < (m < n ? m : n); j++)
            bad += q[j] != (unsigned char)(n & 0xff);
        memset(q, 'r', m);
        size_t usable = soma_usable_size(q);
        CHECK_EQ(usable, class_size(m) - 16);
        memset(q, 'u', usable);
        v[i] = q;
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ(moved, 0);
    /* half freed here, half by another thread */
    v[k] = NULL;
    pthread_t t;
    pthread_create(&t, NULL, free_all, v + k / 2);
    for (size_t i = 0; i < k / 2; i++)
        soma_free(v[i]);
    pthread_join(t, NULL);
    CHECK_EQ(soma_debug_check(), 0);
#else
    test_note("no medium tails in this build (unhardened, or a checker's)");
#endif
    return test_summary();
}
