/*
 * test_seal: large mappings sealed at their free (src/malloc/large.c,
 * "Sealed mappings"), in normal mode.  The first freed mapping of each new
 * largest size from 128 KiB up is made inaccessible, its pages given
 * back, its addresses kept; the same size freed again is cached.  Each
 * mistake runs in a child (fresh: nothing freed before it), which must
 * stop at the access or the call:
 *
 *   - a read and a write after the free fault (SIGSEGV), also once a block
 *     of the same size was made after it (which must lie elsewhere);
 *   - free and realloc of the freed pointer (a double free after the
 *     block's size was made again, a realloc after free) stop with the
 *     diagnosis, for the block's start and for a pointer into it.
 *
 * And the policy itself, in this process: the sealed pages leave
 * (mincore); a size sealed once is cached the next time (the next request
 * gets the same pages back, their contents as left); smaller sizes and
 * sizes below 128 KiB are cached; a larger one is sealed again; the
 * oldest of more than 8 sealed ranges is unmapped; above 4 MiB nothing is
 * sealed.
 */
#include <signal.h>
#include <sys/wait.h>

#include "malloc/malloc.h"
#include "test.h"

#define KIB ((size_t)1024)

#if SOMA_MEDIUM_TAIL
static void read_after_free(void)
{
    volatile unsigned char *p = soma_malloc(256 * KIB);
    p[100] = 1;
    fprintf(stderr, "pointer %p\n", (void *)p);
    soma_free((void *)p);
    fprintf(stderr, "read %d\n", p[100]); /* faults */
}

static void write_after_reuse(void)
{
    unsigned char *p = soma_malloc(256 * KIB);
    soma_free(p);
    unsigned char *q = soma_malloc(256 * KIB);
    if (q == p || q == NULL)
        exit(2); /* the new block must lie elsewhere */
    fprintf(stderr, "pointer %p\n", (void *)p);
    memset(q, 'q', 256 * KIB);
    ((volatile unsigned char *)p)[8] = 'W'; /* faults */
    exit(3);
}

static void double_free_after_reuse(void)
{
    unsigned char *p = soma_malloc(300 * KIB);
    fprintf(stderr, "pointer %p\n", (void *)p);
    soma_free(p);
    void *q = soma_malloc(300 * KIB);
    if (q == p)
        exit(2);
    soma_free(p);
}

static void realloc_after_free(void)
{
    unsigned char *p = soma_malloc(200 * KIB);
    fprintf(stderr, "pointer %p\n", (void *)p);
    soma_free(p);
    (void)soma_realloc(p, 10);
}

static void free_inside(void)
{
    unsigned char *p = soma_malloc(200 * KIB);
    soma_free(p);
    fprintf(stderr, "pointer %p\n", (void *)(p + 5000));
    soma_free(p + 5000);
}

/* A child dies of SIGSEGV at the access (or, under a sanitizer, which
 * owns SIGSEGV, exits after reporting the SEGV). */
static void expect_fault(const char *name, void (*misuse)(void))
{
    char buf[2048];
    int st = test_run_captured(misuse, buf, sizeof buf);
    if (st == -1)
        return;
    int segv = WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV;
    const char *report = strstr(buf, "Sanitizer: SEGV on unknown address ");
    int sanitizer = WIFEXITED(st) && WEXITSTATUS(st) != 0 && report != NULL;
    if (!CHECK(segv || sanitizer))
        test_note("  %s: child status %#x, stderr:\n%s", name, (unsigned)st, buf);
    /* The sanitizer says where: in the freed block's first page. */
    void *p = NULL, *at = NULL;
    if (sanitizer && CHECK(sscanf(buf, "pointer %p", &p) == 1) &&
        CHECK(sscanf(report + strlen("Sanitizer: SEGV on unknown address "), "%p", &at) == 1))
        CHECK((uintptr_t)at - (uintptr_t)p < 4096);
}

/* Is the page at p mapped at all?  (mincore says ENOMEM for a hole.) */
static int mapped(const void *p)
{
    unsigned char v;
    return mincore((void *)((uintptr_t)p & ~(uintptr_t)4095), 1, &v) == 0;
}

/* The policy, in this process (nothing large freed before). */
static void policy(void)
{
    /* Below 128 KiB: cached, the pages come back. */
    unsigned char *a = soma_malloc(100 * KIB);
    memset(a, 'a', 100 * KIB);
    soma_free(a);
    unsigned char *a2 = soma_malloc(100 * KIB);
    CHECK_PTR_EQ(a2, a);
    CHECK_EQ(a2[777], 'a'); /* the same pages, contents as left */
    soma_free(a2);

    /* 512 KiB: sealed; its pages leave, its addresses stay reserved. */
    unsigned char *b = soma_malloc(512 * KIB);
    memset(b, 'b', 512 * KIB);
    CHECK_EQ(test_resident_pages((uintptr_t)b, 512 * KIB), 512 / 4);
    soma_free(b);
    CHECK_EQ(test_resident_pages((uintptr_t)b, 512 * KIB), 0);
    CHECK(mapped(b));
    unsigned char *b2 = soma_malloc(512 * KIB);
    CHECK(b2 != b);
    memset(b2, 'c', 512 * KIB);
    /* The same size again: cached now, handed back with its pages. */
    soma_free(b2);
    unsigned char *b3 = soma_malloc(512 * KIB);
    CHECK_PTR_EQ(b3, b2);
    CHECK_EQ(b3[4096 * 7], 'c');
    soma_free(b3);
    /* Smaller than the largest sealed: cached as well. */
    unsigned char *c = soma_malloc(300 * KIB);
    c[0] = 'd';
    soma_free(c);
    unsigned char *c2 = soma_malloc(300 * KIB);
    CHECK_PTR_EQ(c2, c);
    soma_free(c2);

    /* Larger ones are each sealed once; past 8 sealed ranges the oldest
     * goes back to the OS whole (b, sealed first of all). */
    unsigned char *last = NULL;
    for (size_t i = 1; i <= 8; i++) {
        unsigned char *d = soma_malloc((512 + 64 * i) * KIB);
        d[0] = 1;
        soma_free(d);
        CHECK_EQ(test_resident_pages((uintptr_t)d, (512 + 64 * i) * KIB), 0);
        CHECK(mapped(d));
        last = d;
    }
    CHECK(!mapped(b));
    CHECK(mapped(last));

    /* Above 4 MiB, never: cached, whatever its size (a seal costs the
     * next request of the size its pages' faults). */
    unsigned char *e = soma_malloc(5 << 20);
    e[12345] = 'e';
    soma_free(e);
    unsigned char *e2 = soma_malloc(5 << 20);
    CHECK_PTR_EQ(e2, e);
    CHECK_EQ(e2[12345], 'e');
    soma_free(e2);
}
#endif

int main(void)
{
    test_program_name = "test_seal";
#if SOMA_MEDIUM_TAIL
    expect_fault("read after free", read_after_free);
    expect_fault("write after the size was made again", write_after_reuse);
    test_expect_fatal("double free after reuse", double_free_after_reuse,
                      "not an allocated block: it lies in a large block's mapping that soma "
                      "sealed when the block was freed (a double free, or a pointer kept after "
                      "its block was freed)");
    test_expect_fatal("realloc after free", realloc_after_free,
                      "soma_realloc(0x"); /* the pointer follows, and the same text */
    test_expect_fatal("realloc after free", realloc_after_free,
                      "sealed when the block was freed");
    test_expect_fatal("a pointer into a sealed block", free_inside,
                      "sealed when the block was freed");
    policy();
#else
    /* Unhardened, or a checker's build: freed mappings are cached, as
     * before: the next request of the size gets the same one. */
    void *p = soma_malloc(256 * KIB);
    soma_free(p);
    void *q = soma_malloc(256 * KIB);
    CHECK_PTR_EQ(q, p);
    soma_free(q);
    test_note("no sealed mappings in this build");
#endif
    return test_summary();
}
