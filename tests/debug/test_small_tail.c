/*
 * test_small_tail: a small block's head (src/pool/tail.h, the twins of
 * base/config.h), in normal mode.  A request that leaves its block 8 bytes
 * free (1..8, 17..24, ... 497..504 bytes) gets a block of its class's
 * tailed twin, which holds 8 bytes less than the class's size; its last 8
 * are the next block's head, a check word (a pool's first block's head is
 * the pool header's); a request that fills the block gets the plain twin,
 * as before.  Each mistake is made in a child process, which must stop at
 * the call named, with the message expected, naming the block:
 *
 *   - a write 1 byte past what the block holds (soma_usable_size), and 32
 *     past an 8-byte block (into its neighbours), found at the free of the
 *     block after it, whose head it changed; or at its own free, when that
 *     empties its pool;
 *   - the same found by a free from another thread, and by realloc;
 *   - a write 1 byte before a block, found at its own free; before a
 *     pool's first block, into the pool header;
 *   - a write past a pool's last block, into its last 8 bytes, which its
 *     own free checks (from its thread or another), and the heap check;
 *   - a block the pool has not carved yet, freed: refused;
 *   - a block's head damaged and the block never freed, or damaged after
 *     its free: found by soma_debug_check, which walks every carved block
 *     of a tailed twin;
 *   - a block freed twice: the double free said, also when its pool
 *     emptied and gave its pages back in between (the head reads zeros).
 *
 * And no false alarm: the last block of an arena freed (the check reads
 * nothing past it); every small size, its block filled to what
 * soma_usable_size says, grown and shrunk by realloc with its contents
 * kept, freed by its thread and by another; the twins' usable sizes and
 * pools as documented.
 *
 * A mistake is made with ^= (every byte changes, whatever it held: see
 * test_tail).
 */
#include <pthread.h>
#include <sys/mman.h>

#include "malloc/malloc.h"
#include "test.h"

#if SOMA_SMALL_TAIL
/* Two blocks of n bytes, b right after a (a fresh child's fresh pool). */
static void pair(size_t n, unsigned char **a, unsigned char **b)
{
    *a = soma_malloc(n);
    *b = soma_malloc(n);
    if ((size_t)(*b - *a) != (n + 15) / 16 * 16) {
        fprintf(stderr, "blocks %p and %p are not neighbours\n", (void *)*a, (void *)*b);
        exit(2); /* not the abort expected: the test fails */
    }
}

/* p's free reads p's head, whole: the block after it, q, finds the
 * mistake in its own. */
static void over_1(void)
{
    unsigned char *p, *q;
    pair(20, &p, &q);
    fprintf(stderr, "pointer %p\n", (void *)p);
    if (soma_usable_size(p) != 24)
        exit(2);
    memset(p, 1, 24); /* allowed: what it holds */
    p[24] ^= 'O';     /* the mistake */
    soma_free(p);
    soma_free(q);
}

/* The misuse suite's overflow-32-small: an 8-byte block, 32 bytes past it. */
static void over_32_of_8(void)
{
    unsigned char *a, *b;
    pair(8, &a, &b);
    fprintf(stderr, "pointer %p\n", (void *)a);
    for (size_t i = 8; i < 40; i++)
        a[i] ^= 'O';
    soma_free(a);
    soma_free(b);
}

/* A pool's only block, its neighbours free (the misuse suite's
 * zero-size-write-32): its free empties the pool, and that slow path reads
 * its last 8 bytes too. */
static void over_only(void)
{
    unsigned char *p = soma_malloc(0); /* a fresh child's: the pool's only block */
    fprintf(stderr, "pointer %p\n", (void *)p);
    for (size_t i = 0; i < 32; i++)
        p[i] ^= 'Z';
    soma_free(p);
}

/* A pool's last block: no block after it reads its last 8 bytes as a
 * head; its own free does (out of the fast path), from its thread or
 * another, and so does the heap check.  A fresh child's 512-byte pool
 * (500 bytes asked: the tailed twin; 31 blocks, 7 in py38's 4 KiB pools). */
static unsigned char *pool_last_block(void)
{
    enum { CAP = (SOMA_POOL_SIZE - SOMA_POOL_OVERHEAD) / 512 };
    unsigned char *b = NULL;
    for (int i = 0; i < CAP; i++)
        b = soma_malloc(500);
    if (((uintptr_t)b & SOMA_POOL_MASK) != SOMA_POOL_OVERHEAD + (CAP - 1) * 512)
        exit(2);
    fprintf(stderr, "pointer %p\n", (void *)b);
    return b;
}
static void over_last(void)
{
    unsigned char *b = pool_last_block();
    b[504] ^= 'O';
    soma_free(b);
}
static void *free_arg(void *p)
{
    soma_free(p);
    return NULL;
}
static void over_last_remote(void)
{
    unsigned char *b = pool_last_block();
    b[505] ^= 'O';
    pthread_t t;
    pthread_create(&t, NULL, free_arg, b);
    pthread_join(t, NULL);
}
static void over_last_never_freed(void)
{
    unsigned char *b = pool_last_block();
    b[511] ^= 'O';
    if (soma_debug_check() != 0)
        abort();
}

/* A block a fresh pool has not carved yet, freed (its first page's blocks
 * are carved, a block of its second is not): no head was written for it,
 * so its free is refused, on the fast path too, and it is never handed
 * out twice.  (Pools of more than a page: not py38's.) */
static void free_uncarved(void)
{
    unsigned char *a = soma_malloc(8), *b = soma_malloc(8), *c = soma_malloc(8);
    char *base = (char *)((uintptr_t)a & ~(uintptr_t)SOMA_POOL_MASK);
    /* the first block of the second page: the next one carve will make */
    unsigned char *v = (unsigned char *)base + SOMA_POOL_OVERHEAD + 16 * 253;
    fprintf(stderr, "pointer %p\n", (void *)v);
    soma_free(v);
    soma_free(a);
    soma_free(b);
    soma_free(c);
}

static unsigned char *victim, *next;
static void *free_next(void *arg)
{
    (void)arg;
    soma_free(next);
    return NULL;
}
static void over_freed_remotely(void)
{
    pair(100, &victim, &next); /* 112-byte class, holds 104 */
    fprintf(stderr, "pointer %p\n", (void *)victim);
    victim[104] ^= 'O';
    pthread_t t;
    pthread_create(&t, NULL, free_next, NULL);
    pthread_join(t, NULL);
}

static void over_realloc(void)
{
    unsigned char *p, *q;
    pair(500, &p, &q); /* 512-byte class, holds 504 */
    fprintf(stderr, "pointer %p\n", (void *)p);
    p[507] ^= 'O';
    q = soma_realloc(q, 501); /* it would stay in place */
    soma_free(q);
}

/* 1 byte before b: b's head, found at b's free. */
static void under_1(void)
{
    unsigned char *a, *b;
    pair(40, &a, &b);
    fprintf(stderr, "pointer %p\n", (void *)b);
    b[-1] ^= 'U';
    soma_free(a);
    soma_free(b);
}

/* An overflow of a block that writes, over the next block's head, the
 * head of a block 128 bytes on (a copy between two blocks of one class,
 * made 8 bytes too long, carries the source's neighbour's head): found at
 * the next block's free, since no two blocks share a head.  (When the tag
 * was the address with every byte's top bit forced, bit 7 was lost, and
 * the copied head passed.) */
static void head_copied(void)
{
    unsigned char *b[16];
    for (int i = 0; i < 16; i++)
        b[i] = soma_malloc(8); /* a fresh child's 16-byte blocks, in order */
    /* the first block after b[0] whose address has bit 7 clear: its head
     * and the head 128 bytes on differ in that bit of the address alone */
    int i = 1;
    while (i < 8 && ((uintptr_t)b[i] & 128) != 0)
        i++;
    if (i == 8 || b[i + 8] != b[i] + 128)
        exit(2); /* not the abort expected: the test fails */
    fprintf(stderr, "pointer %p\n", (void *)b[i]);
    memcpy(b[i] - 8, b[i + 8] - 8, 8); /* b[i - 1]'s overflow */
    soma_free(b[i]);
}

/* Every block of a tailed pool, and the same offsets in every pool of
 * its arena: no two heads alike. */
static void heads_differ(void)
{
    void *p = soma_malloc(8);
    uintptr_t arena = (uintptr_t)p & ~(uintptr_t)(SOMA_ARENA_SIZE - 1);
    size_t per_pool = (SOMA_POOL_SIZE - SOMA_POOL_OVERHEAD) / 16, n = 0;
    size_t total = per_pool * (SOMA_ARENA_SIZE / SOMA_POOL_SIZE);
    uint64_t *tags = malloc(total * sizeof *tags);
    if (!CHECK(tags != NULL)) {
        soma_free(p);
        return;
    }
    for (uintptr_t pool = arena; pool < arena + SOMA_ARENA_SIZE; pool += SOMA_POOL_SIZE)
        for (size_t k = 0; k < per_pool; k++)
            tags[n++] = soma__tail_small_tag((void *)(pool + SOMA_POOL_OVERHEAD + 16 * k));
    size_t same = test_repeats(tags, n);
    if (!CHECK_EQ(same, 0))
        test_note("  %zu of %zu 16-byte blocks' heads repeat another's", same, n);
    free(tags);
    soma_free(p);
}

/* 1 byte before a pool's first block: its head is the pool header's
 * check word. */
static void under_first(void)
{
    unsigned char *a = soma_malloc(24); /* a fresh child's first 32-byte block */
    fprintf(stderr, "pointer %p\n", (void *)a);
    if (((uintptr_t)a & SOMA_POOL_MASK) != SOMA_POOL_OVERHEAD)
        exit(2);
    a[-1] ^= 'U';
    soma_free(a);
}

/* Freed twice, its pool emptied and its pages given back in between: the
 * head reads as zeros then, and the message must say what happened. */
static void double_free_after_purge(void)
{
    unsigned char *keep = soma_malloc(100); /* another pool: the arena stays */
    unsigned char *p = soma_malloc(8);
    fprintf(stderr, "pointer %p\n", (void *)p);
    soma_free(p);
    soma_purge(1);
    soma_free(p);
    soma_free(keep);
}

/* A pointer kept from a pool's first class, freed after the pool served
 * another and then the first again: the block lies past those the pool
 * has carved since, and the head its first life wrote must not pass.
 * (The second class wrote the block's first word, not its head.) */
static int lock_pools; /* free_across_classes: lock the pool, purge between */

static void free_across_classes(void)
{
    /* 16-byte blocks, past the pool's first page; x, the last, not at the
     * start of a 208-byte block (their heads are carve's) */
    enum { N = 290 };
    static unsigned char *a[N], *b[N];
    /* another pool of the arena, in use throughout: a purge then gives
     * back the pool's pages, not the whole arena */
    unsigned char *keep = soma_malloc(100);
    for (int i = 0; i < N; i++)
        a[i] = soma_malloc(8);
    unsigned char *x = a[N - 1];
    char *base = (char *)((uintptr_t)x & ~(uintptr_t)SOMA_POOL_MASK);
    if ((uintptr_t)a[0] - (uintptr_t)base != SOMA_POOL_OVERHEAD)
        exit(2); /* not a fresh pool: the test proves nothing */
    /* Locked pages (a program locking a secret's buffer): the kernel
     * refuses to take them back, and the pool, which keeps its bytes, must
     * not pass for one that reads as zeros. */
    if (lock_pools && mlock(base, SOMA_POOL_SIZE) != 0)
        exit(3);
    for (int i = 0; i < N; i++)
        soma_free(a[i]); /* the pool empties, back to its arena */
    if (lock_pools)
        soma_purge(1);
    int k = 0; /* 200 bytes: class 24, 208-byte blocks, until one covers x */
    for (; k < N; k++) {
        b[k] = soma_malloc(200);
        if (b[k] <= x && x < b[k] + 200)
            break;
    }
    if (k == N || ((uintptr_t)b[k] & ~(uintptr_t)SOMA_POOL_MASK) != (uintptr_t)base ||
        x - 8 < b[k] + 8)
        exit(2); /* not the same pool, or x's head not in the block's data past its first word */
    memset(x, 0x11, 8); /* the program's data, where x's link was */
    for (int i = 0; i <= k; i++)
        soma_free(b[i]);
    if (lock_pools)
        soma_purge(1);
    unsigned char *c = soma_malloc(8), *d = soma_malloc(8); /* class 0 again */
    if (((uintptr_t)c & ~(uintptr_t)SOMA_POOL_MASK) != (uintptr_t)base)
        exit(2);
    fprintf(stderr, "pointer %p\n", (void *)x);
    soma_free(x); /* the mistake */
    soma_free(c);
    soma_free(d);
    soma_free(keep);
}

/* Freed twice, its pool still in use: the head is whole, the push's
 * double-free test says it. */
static void double_free(void)
{
    unsigned char *keep = soma_malloc(8), *p = soma_malloc(8);
    fprintf(stderr, "pointer %p\n", (void *)p);
    soma_free(p);
    soma_free(p);
    soma_free(keep);
}

/* A free block's last 8 bytes written (after its free), never handed out
 * again: the heap check walks free blocks' heads too. */
static void free_block_damaged(void)
{
    unsigned char *keep = soma_malloc(40), *p = soma_malloc(40);
    fprintf(stderr, "pointer %p\n", (void *)p);
    soma_free(p);
    p[41] ^= 'W';
    if (soma_debug_check() != 0)
        abort();
    soma_free(keep);
}

/* Never freed: the heap check finds it. */
static void never_freed(void)
{
    unsigned char *p = soma_malloc(200); /* 208-byte class, holds 200 */
    fprintf(stderr, "pointer %p\n", (void *)p);
    p[203] ^= 'O';
    if (soma_debug_check() != 0)
        abort(); /* what the test expects, once the check has said why */
}

static void *free_all(void *arg)
{
    unsigned char **v = arg;
    for (size_t i = 0; v[i] != NULL; i++)
        soma_free(v[i]);
    return NULL;
}

/* What the block for an n-byte request holds. */
static size_t holds(size_t n)
{
    return (n + 15) / 16 * 16 - ((n - 1) / 8 % 2 == 0 ? 8 : 0);
}

/* The last block of an arena: 16-byte blocks fill their pools exactly
 * (1,021 blocks), so the last one ends where the arena does, and what
 * follows may be no memory at all.  The free's branch-free check reads the
 * word before the block for both twins (when it read the block's last
 * word, a version that read word c + 1 for every class read one past a
 * plain block, and python3 died of SIGSEGV on such a free).  Both twins
 * (8 and 16 bytes asked), freed by their thread and by another. */
static void *free_one(void *p)
{
    soma_free(p);
    return NULL;
}
static void arena_end(size_t asked, int remote)
{
    enum { MAX = 200000 };
    static void *v[MAX];
    size_t n = 0, ends = 0, last = 0;
    for (; n < MAX && ends < 2; n++) {
        v[n] = soma_malloc(asked);
        if (!CHECK(v[n] != NULL))
            break;
        memset(v[n], 0xee, asked);
        if (((uintptr_t)v[n] + 16) % SOMA_ARENA_SIZE == 0) {
            ends++;
            last = n;
        }
    }
    CHECK_EQ(ends, 2); /* two arenas filled to their last byte */
    if (remote) {
        pthread_t t;
        pthread_create(&t, NULL, free_one, v[last]);
        pthread_join(t, NULL);
        v[last] = NULL;
    }
    for (size_t i = n; i-- > 0;)
        soma_free(v[i]);
    CHECK_EQ(soma_debug_check(), 0);
}

/* Every block of whole pools of tailed classes (the pool's last block's
 * last 8 bytes are a check word too), freed by their thread and by
 * another: no alarm. */
static void whole_pools(void)
{
    static const size_t asked[] = {1, 20, 40, 100, 200, 330, 500};
    enum { MAX = 1100 };
    static void *v[MAX + 1];
    for (size_t k = 0; k < sizeof asked / sizeof asked[0]; k++)
        for (int remote = 0; remote < 2; remote++) {
            size_t n = 0, cap = (SOMA_POOL_SIZE - SOMA_POOL_OVERHEAD) / ((asked[k] + 15) / 16 * 16);
            /* two pools' worth: at least one whole pool */
            for (; n < 2 * cap && n < MAX; n++) {
                v[n] = soma_malloc(asked[k]);
                memset(v[n], 0x5a, soma_usable_size(v[n]));
            }
            CHECK_EQ(soma_debug_check(), 0);
            v[n] = NULL;
            if (remote) {
                pthread_t t;
                pthread_create(&t, NULL, free_all, v);
                pthread_join(t, NULL);
            } else
                free_all(v);
            CHECK_EQ(soma_debug_check(), 0);
        }
}

static void no_false_alarm(void)
{
    enum { N = SOMA_SMALL_THRESHOLD };
    static unsigned char *v[2 * N + 1];
    size_t k = 0;
    for (size_t n = 1; n <= N; n++)
        for (int twice = 0; twice < 2; twice++) {
            unsigned char *p = soma_malloc(n);
            if (!CHECK(p != NULL))
                return;
            size_t u = soma_usable_size(p);
            if (!CHECK_EQ(u, holds(n)))
                test_note("  %zu bytes asked", n);
            memset(p, (int)(n & 0xff), u);
            v[k++] = p;
        }
    /* The twins: 8 and 16 bytes asked share a class, not a pool. */
    unsigned char *e = soma_malloc(8), *s = soma_malloc(16);
    CHECK(((uintptr_t)e ^ (uintptr_t)s) >= (uintptr_t)SOMA_POOL_SIZE);
    CHECK_EQ(soma__pool_of(e)->szidx / 2, soma__pool_of(s)->szidx / 2);
    soma_free(e);
    soma_free(s);
    CHECK_EQ(soma_debug_check(), 0);
    /* grown and shrunk by realloc within what they hold, then past it */
    size_t bad = 0;
    for (size_t i = 0; i < k; i++) {
        size_t n = i / 2 + 1, u = holds(n);
        unsigned char *q = soma_realloc(v[i], u);
        for (size_t j = 0; j < u; j++)
            bad += q[j] != (unsigned char)(n & 0xff);
        if (i % 2 == 0 && n < N) {
            size_t m = u + 1; /* moves to the plain twin, or up a class */
            unsigned char *r = soma_realloc(q, m);
            CHECK(r != q);
            CHECK_GE(soma_usable_size(r), m);
            q = r;
            for (size_t j = 0; j < u; j++)
                bad += q[j] != (unsigned char)(n & 0xff);
            memset(q, 'r', soma_usable_size(q));
        }
        v[i] = q;
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ(soma_debug_check(), 0);
    /* half freed here, half by another thread */
    v[k] = NULL;
    pthread_t t;
    pthread_create(&t, NULL, free_all, v + k / 2);
    for (size_t i = 0; i < k / 2; i++)
        soma_free(v[i]);
    pthread_join(t, NULL);
    CHECK_EQ(soma_debug_check(), 0);
}

/* soma_debug_check says it (and returns -1: the child then aborts) */
static void heap_check_finds(const char *name, void (*misuse)(void), const char *cls)
{
    char buf[2048], ptr[64] = "", want[96];
    int st = test_run_captured(misuse, buf, sizeof buf);
    if (st == -1)
        return;
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    snprintf(want, sizeof want, "%s: the 8 bytes before its block ", cls);
    if (!CHECK(sscanf(buf, "pointer %63s", ptr) == 1 &&
               strstr(buf, "soma_debug_check found heap") != NULL && strstr(buf, want) != NULL &&
               strstr(strstr(buf, "its block ") ?: buf, ptr) != NULL))
        test_note("  %s: %s", name, buf);
}
#endif

int main(void)
{
    test_program_name = "test_small_tail";
#if SOMA_SMALL_TAIL
    test_expect_fatal("1 byte past what it holds", over_1,
                      "the 8 bytes before the 32-byte block (class 1), soma's, are overwritten "
                      "(B-8: ");
    test_expect_fatal("1 byte past what it holds", over_1,
                      "or past the 24 bytes the block before it holds (0x");
    test_expect_fatal("32 bytes past an 8-byte block", over_32_of_8,
                      "the 8 bytes before the 16-byte block (class 0), soma's, are overwritten");
    test_expect_fatal("32 bytes past a pool's only block", over_only,
                      "buffer overflow: the last 8 bytes of the 16-byte block (class 0), the next "
                      "block's head, soma's, are overwritten (B+8: ");
    test_expect_fatal("a pool's last block, 1 byte past", over_last,
                      "buffer overflow: the last 8 bytes of the 512-byte block (class 31), its "
                      "pool's last, soma's, are overwritten (B+504: ");
    test_expect_fatal("a pool's last block, 1 byte past", over_last,
                      "a write past the 504 bytes it holds (an overflow)\n");
    test_expect_fatal("a pool's last block, freed by another thread", over_last_remote,
                      "the last 8 bytes of the 512-byte block (class 31), its pool's last");
    if (SOMA_POOL_SIZE > SOMA_OS_PAGE_SIZE)
        test_expect_fatal("a block not carved yet, freed", free_uncarved,
                          "not an allocated block (a double free, or a block of pool");
    test_expect_fatal("freed by another thread", over_freed_remotely,
                      "soma_free(0x");
    test_expect_fatal("freed by another thread", over_freed_remotely,
                      "the 8 bytes before the 112-byte block (class 6), soma's, are overwritten "
                      "(B-8: ");
    test_expect_fatal("reallocated", over_realloc,
                      "soma_realloc(0x");
    test_expect_fatal("reallocated", over_realloc,
                      "the 8 bytes before the 512-byte block (class 31), soma's, are overwritten");
    test_expect_fatal("1 byte before the block", under_1,
                      "the 8 bytes before the 48-byte block (class 2), soma's, are overwritten "
                      "(B-8: ");
    test_expect_fatal("1 byte before the block", under_1,
                      "a write before its start (an underflow)");
    test_expect_fatal("a head copied from 128 bytes on", head_copied,
                      "the 8 bytes before the 16-byte block (class 0), soma's, are overwritten "
                      "(B-8: ");
    heads_differ();
    test_expect_fatal("1 byte before a pool's first block", under_first,
                      "is overwritten from 1 byte before its first block");
    test_expect_fatal("freed twice, its pool emptied and purged between",
                      double_free_after_purge, "not an allocated block (double free");
    if (SOMA_POOL_SIZE > SOMA_OS_PAGE_SIZE) {
        test_expect_fatal("freed after its pool served another class and its own again",
                          free_across_classes, "not an allocated block (a double free, or a block "
                                               "of pool");
        /* the same, the pool's pages locked and purged between (if this
         * process may lock a pool's worth: RLIMIT_MEMLOCK) */
        void *probe = aligned_alloc(SOMA_OS_PAGE_SIZE, SOMA_POOL_SIZE);
        if (probe != NULL && mlock(probe, SOMA_POOL_SIZE) == 0) {
            munlock(probe, SOMA_POOL_SIZE);
            lock_pools = 1;
            test_expect_fatal("the same, its pages locked and purged between",
                              free_across_classes,
                              "not an allocated block (a double free, or a block of pool");
            lock_pools = 0;
        } else
            test_note("mlock refused: the locked pool's case not run");
        free(probe);
    }
    test_expect_fatal("freed twice", double_free,
                      "double free: the 16-byte block (class 0) is already free");
    heap_check_finds("never freed: soma_debug_check", never_freed, "(class 12)");
    {
        char buf[2048], ptr[64] = "";
        int st = test_run_captured(over_last_never_freed, buf, sizeof buf);
        if (st != -1) {
            CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
            if (!CHECK(sscanf(buf, "pointer %63s", ptr) == 1 &&
                       strstr(buf, "(class 31): the last 8 bytes of its last block ") != NULL &&
                       strstr(strstr(buf, "its last block ") ?: buf, ptr) != NULL))
                test_note("  a pool's last block, never freed: %s", buf);
        }
    }
    heap_check_finds("a free block's neighbour's head: soma_debug_check", free_block_damaged, "(class 2)");
    arena_end(16, 0);
    arena_end(8, 0);
    arena_end(16, 1);
    arena_end(8, 1);
    no_false_alarm();
    whole_pools();
#else
    test_note("no small heads in this build (unhardened, or a checker's)");
#endif
    return test_summary();
}
