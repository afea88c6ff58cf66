/*
 * misuse.c: one memory mistake per run, named by argv[1], for
 * run_misuse.py to count which allocator stops which (issue 16's hardening
 * comparison; docs/BENCHMARKS.md#misuse).  A plain C program calling
 * malloc and free: the allocator under test is whatever is preloaded.
 *
 * What it says on stdout, with write(2) so that nothing waits in a buffer
 * when the process dies:
 *   MISUSE <case> <how>  just before the mistake: the setup went well
 *   MADE                 just after it (see misuse_now)
 *   NOT CAUGHT[: why]    the mistake, and the work a real program would do
 *                        after it, ran to the end: the allocator let it by
 *   REFUSED              impossible requests only: NULL and ENOMEM, which
 *                        is the right answer (the request is stopped)
 * A case is stopped when the process dies (a signal, or a non-zero exit)
 * before it writes NOT CAUGHT, or writes REFUSED.  A death after NOT CAUGHT
 * (a check at exit) is told apart by the runner.
 *
 * Built twice from this file: plain (-U_FORTIFY_SOURCE), with every case
 * but the fortify- ones, and with -O2 -D_FORTIFY_SOURCE=2 (MISUSE_FORTIFY),
 * with only the copies (memcpy, memset, strcpy) as fortify-* cases.  The
 * copies' destination is laundered, so the compiler cannot see the
 * object's size and glibc's _chk functions cannot help: only the
 * allocator can catch them.  The length is read from a volatile, so that
 * the copy stays a call (a constant one is inlined as moves).
 *
 * Sizes: each mistake that has one comes as -small (8 bytes), -medium
 * (4096) and -large (256 KiB), which are three different paths in most
 * allocators (a small class, a page-sized class, a mapping of its own).
 *
 * What follows a mistake that leaves the program alive (after_work): more
 * mallocs, callocs, reallocs and frees of many sizes, as a real program
 * would go on; many allocators see a corruption only at a later call.
 * Blocks damaged by direct writes are freed (a free is where most checks
 * run); blocks damaged by a copy are kept to the end, as a buffer that
 * lives as long as the program (only a check at the copy, or at exit,
 * can see those), while their neighbours are freed.
 */
#include <alloca.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* The mistakes are the point: the compilers' warnings about them stay quiet. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuse-after-free"
#pragma GCC diagnostic ignored "-Wfree-nonheap-object"
#pragma GCC diagnostic ignored "-Warray-bounds"
#pragma GCC diagnostic ignored "-Walloc-size-larger-than="
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#endif

#define KIB ((size_t)1024)
#define MIB ((size_t)1024 * 1024)
#define SMALL ((size_t)8)
#define MEDIUM ((size_t)4096)
#define LARGE (256 * KIB)

static void say(const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(STDOUT_FILENO, s, n);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

/* "MISUSE <case> <how>" just before the mistake, and "MADE" just after
 * it: a death between the two is at the mistake itself, a death after
 * MADE a later call's.  how: "access" when the mistake is the program's
 * own loads and stores (only a fault can stop it there: no allocator is
 * called), "call" when it is a call (free, realloc, a copy, ...). */
static const char *current;
static void misuse_now(const char *how)
{
    say("MISUSE ");
    say(current);
    say(" ");
    say(how);
    say("\n");
}

static void mistake_made(void)
{
    say("MADE\n");
}

/* The pointer, hidden from the compiler: it must neither warn about the
 * mistake nor prove it undefined and drop it. */
static void *launder(void *p)
{
    __asm__ volatile("" : "+r"(p));
    return p;
}

static size_t launder_size(size_t n)
{
    __asm__ volatile("" : "+r"(n));
    return n;
}

#ifndef MISUSE_FORTIFY
static volatile unsigned long sink;

/* Every byte of [p + from, p + from + len) written, one at a time. */
__attribute__((noinline)) static void write_range(void *p, long from, size_t len, unsigned char v)
{
    volatile unsigned char *b = (volatile unsigned char *)launder(p);
    for (size_t i = 0; i < len; i++)
        b[from + (long)i] = v;
}

__attribute__((noinline)) static void read_range(void *p, long from, size_t len)
{
    volatile unsigned char *b = (volatile unsigned char *)launder(p);
    unsigned long s = 0;
    for (size_t i = 0; i < len; i++)
        s += b[from + (long)i];
    sink += s;
}
#endif

/* A source for the copies, as long as the longest (1 MiB before a large
 * block and the block), and a string of 'S's as long as a large block.
 * Mapped on its own (see main), not in the program's bss: the heap of
 * glibc's malloc starts right after the bss, and a buffer there would be
 * what a 1 MiB underflow of the first blocks lands in. */
#define SOURCE_SIZE (MIB + LARGE + 64)
static char *source;
static char *string_of(size_t len)
{
    memset(source, 'S', len);
    source[len] = '\0';
    return source;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (p == NULL) {
        say("SETUP FAILED: malloc returned NULL\n");
        exit(3);
    }
    memset(p, 'b', n);
    return p;
}

/* The victim's neighbours: blocks of its size made just before and after
 * it, as a program's other objects would lie around it. */
#define NEIGHBOURS 4
struct victim {
    void *before[NEIGHBOURS];
    unsigned char *p;
    void *after[NEIGHBOURS];
    size_t n;
};

static void victim_make(struct victim *v, size_t n)
{
    v->n = n;
    for (int i = 0; i < NEIGHBOURS; i++)
        v->before[i] = xmalloc(n);
    v->p = xmalloc(n);
    for (int i = 0; i < NEIGHBOURS; i++)
        v->after[i] = xmalloc(n);
}

static void neighbours_free(struct victim *v)
{
    for (int i = 0; i < NEIGHBOURS; i++) {
        free(v->before[i]);
        free(v->after[i]);
    }
}

/* What a program does after the mistake, if it is still running: blocks
 * of many sizes made, written, grown, shrunk and freed, in several rounds.
 * With reuse == 0 it keeps away from the victim's size (a factor of 4 on
 * either side: the same class or bin in every allocator), so that a freed
 * victim's memory is not handed out again. */
static void after_work(size_t n, int reuse)
{
    static const size_t sizes[] = {24, 48, 100, 200, 300, 700, 1000, 2000, 3000, 6000, 20000, 70000,
                                   300000};
    enum { COUNT = 120 };
    void *blocks[COUNT];
    size_t nsizes = sizeof sizes / sizeof sizes[0];
    for (int round = 0; round < 4; round++) {
        int made = 0;
        for (size_t i = 0; made < COUNT; i++) {
            size_t s = sizes[(i * 7 + (size_t)round) % nsizes];
            if (!reuse && s >= n / 4 && s <= n * 4)
                continue;
            if (reuse && made % 5 == 0)
                s = n;
            unsigned char *b = (made % 9 == 0) ? calloc(1, s) : malloc(s);
            if (b == NULL)
                exit(4);
            memset(b, made & 0xff, s);
            blocks[made++] = b;
        }
        for (int i = 0; i < COUNT; i += 2) {
            free(blocks[i]);
            blocks[i] = NULL;
        }
        for (int i = 1; i < COUNT; i += 6) {
            size_t s = malloc_usable_size(blocks[i]);
            unsigned char *b = realloc(blocks[i], s + 100);
            if (b == NULL)
                exit(4);
            b[s + 99] = 1;
            blocks[i] = b;
        }
        for (int i = 0; i < COUNT; i++)
            free(blocks[i]);
    }
}

static void not_caught(const char *why)
{
    say(why == NULL ? "NOT CAUGHT\n" : "NOT CAUGHT: ");
    if (why != NULL) {
        say(why);
        say("\n");
    }
}

#ifndef MISUSE_FORTIFY
/* ---- overflows and underflows, by direct writes ---- */

/* Bytes [n, n + k) of the block written, then every block freed. */
static void overflow(size_t n, size_t k)
{
    struct victim v;
    victim_make(&v, n);
    misuse_now("access");
    write_range(v.p, (long)n, k, 'O');
    mistake_made();
    free(v.p);
    neighbours_free(&v);
    after_work(n, 1);
    not_caught(NULL);
}

/* Bytes [-k, 0) before the block written, then every block freed. */
static void underflow(size_t n, size_t k)
{
    struct victim v;
    victim_make(&v, n);
    misuse_now("access");
    write_range(v.p, -(long)k, k, 'U');
    mistake_made();
    free(v.p);
    neighbours_free(&v);
    after_work(n, 1);
    not_caught(NULL);
}

#endif

/* ---- the same by copies: the damaged block lives on to the end ---- */

enum copy { COPY_MEMCPY, COPY_MEMSET, COPY_STRCPY };

/* [dst, dst + len) filled by the copy of its kind (strcpy: a string of
 * len - 1 bytes and its terminator). */
__attribute__((noinline)) static void copy(enum copy how, char *dst, size_t len)
{
    dst = launder(dst);
    len = launder_size(len);
    switch (how) {
    case COPY_MEMCPY:
        memcpy(dst, source, len);
        break;
    case COPY_MEMSET:
        memset(dst, 'M', len);
        break;
    case COPY_STRCPY:
        strcpy(dst, string_of(len - 1));
        break;
    }
}

static void copy_overflow(enum copy how, size_t n, size_t k)
{
    struct victim v;
    victim_make(&v, n);
    misuse_now("call");
    copy(how, (char *)v.p, n + k);
    mistake_made();
    neighbours_free(&v);
    after_work(n, 1);
    not_caught(NULL);
}

/* A copy of the block's n bytes that starts k bytes early: the k bytes
 * before it and all but its last k bytes. */
static void copy_underflow(enum copy how, size_t n, size_t k)
{
    struct victim v;
    victim_make(&v, n);
    misuse_now("call");
    copy(how, (char *)v.p - k, n);
    mistake_made();
    neighbours_free(&v);
    after_work(n, 1);
    not_caught(NULL);
}

#ifndef MISUSE_FORTIFY

/* ---- double frees ---- */

/* Two blocks of the same size, made after a double free: an allocator
 * that let it by may hand out the same block twice.  Never freed twice
 * here, so that the program ends. */
static void same_block_twice(size_t n)
{
    unsigned char *a = malloc(n), *b = malloc(n);
    int same = a == b && a != NULL;
    free(a);
    if (!same)
        free(b);
    after_work(n, 1);
    not_caught(same ? "malloc returned the same block twice" : NULL);
}

static void double_free(size_t n)
{
    struct victim v;
    victim_make(&v, n);
    misuse_now("call");
    free(v.p);
    free(launder(v.p));
    mistake_made();
    neighbours_free(&v);
    same_block_twice(n);
}

/* The second free after 16 other blocks of its size were freed. */
static void double_free_delayed(size_t n)
{
    struct victim v;
    void *others[16];
    victim_make(&v, n);
    for (int i = 0; i < 16; i++)
        others[i] = xmalloc(n);
    misuse_now("call");
    free(v.p);
    for (int i = 0; i < 16; i++)
        free(others[i]);
    free(launder(v.p));
    mistake_made();
    neighbours_free(&v);
    same_block_twice(n);
}

/* free(p), free(q), free(p): the second free of p does not follow the
 * first, so "is it the last one freed?" does not see it. */
static void double_free_interleaved(size_t n)
{
    struct victim v;
    victim_make(&v, n);
    void *q = xmalloc(n);
    misuse_now("call");
    free(v.p);
    free(q);
    free(launder(v.p));
    mistake_made();
    neighbours_free(&v);
    same_block_twice(n);
}

/* The block is freed, made again by a malloc of its size (which may hand
 * it back), and the old pointer is freed again: if the new block is the
 * old one, the new owner's block is freed under it. */
static void double_free_reused(size_t n)
{
    struct victim v;
    victim_make(&v, n);
    misuse_now("call");
    free(v.p);
    unsigned char *q = xmalloc(n);
    free(launder(v.p));
    mistake_made();
    unsigned char *r = xmalloc(n); /* the new owner's block handed out again? */
    int shared = q == r;
    memset(q, 'q', n);
    int damaged = !shared && r[0] == 'q';
    neighbours_free(&v);
    free(q);
    if (!shared)
        free(r);
    after_work(n, 1);
    not_caught(shared    ? "a live block was handed out a second time"
               : damaged ? "two live blocks overlap"
                         : NULL);
}

/* ---- invalid frees ---- */

/* After an invalid free that was let by, the block it pointed into is
 * freed properly and the program goes on. */
static void free_at(size_t n, long offset)
{
    struct victim v;
    victim_make(&v, n);
    misuse_now("call");
    free(launder(v.p + offset));
    mistake_made();
    free(v.p);
    neighbours_free(&v);
    after_work(n, 1);
    not_caught(NULL);
}

/* Pointers into the block at odd offsets, freed one after the other. */
static void free_unaligned_repeat(size_t n)
{
    static const long offsets[] = {1, 3, 5, 7, 2};
    struct victim v;
    victim_make(&v, n);
    misuse_now("call");
    for (size_t i = 0; i < sizeof offsets / sizeof offsets[0]; i++)
        free(launder(v.p + offsets[i]));
    mistake_made();
    free(v.p);
    neighbours_free(&v);
    after_work(n, 1);
    not_caught(NULL);
}

/* Memory no malloc made.  Zeroed, as the bytes before it are too: an
 * allocator that reads a header there finds zeros, not luck. */
static void free_foreign(void *p)
{
    misuse_now("call");
    free(launder(p));
    mistake_made();
    after_work(64, 1);
    not_caught(NULL);
}

static void free_stack(void)
{
    char buf[256];
    memset(buf, 0, sizeof buf);
    free_foreign(buf + 64);
    sink += (unsigned long)buf[1];
}

static void free_alloca(void)
{
    char *buf = alloca(256);
    memset(buf, 0, 256);
    free_foreign(buf + 64);
    sink += (unsigned long)buf[1];
}

static _Alignas(64) char global[256];
static void free_global(void)
{
    free_foreign(global + 64);
}

/* A page of an anonymous mapping of the program's own, far from any heap. */
static void free_far(void)
{
    char *m = mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        exit(3);
    free_foreign(m + 4096 + 64);
}

/* realloc of a block already freed, and of the stack. */
static void realloc_freed(size_t n)
{
    struct victim v;
    victim_make(&v, n);
    misuse_now("call");
    free(v.p);
    unsigned char *q = realloc(launder(v.p), 2 * n);
    mistake_made();
    if (q != NULL)
        memset(q, 'r', 2 * n);
    free(q);
    neighbours_free(&v);
    after_work(n, 1);
    not_caught(NULL);
}

static void realloc_stack(void)
{
    char buf[256];
    memset(buf, 0, sizeof buf);
    misuse_now("call");
    char *q = realloc(launder(buf + 64), 1000);
    mistake_made();
    if (q != NULL && q != buf + 64) {
        memset(q, 'r', 1000);
        free(q);
    }
    after_work(64, 1);
    not_caught(NULL);
    sink += (unsigned long)buf[1];
}

/* ---- use after free ---- */

/* 8 bytes written at the start of the freed block, where most allocators
 * keep a free-list link.  reuse: then blocks of its size are made (and
 * written, and freed), which hands it out again; otherwise the program
 * keeps to other sizes and the write is seen only at exit, if at all. */
static void write_after_free(size_t n, int reuse)
{
    struct victim v;
    victim_make(&v, n);
    misuse_now("access");
    free(v.p);
    write_range(v.p, 0, 8, 'W');
    mistake_made();
    neighbours_free(&v);
    after_work(n, reuse);
    not_caught(NULL);
}

static void read_after_free(size_t n)
{
    struct victim v;
    victim_make(&v, n);
    misuse_now("access");
    free(v.p);
    read_range(v.p, 0, n < 64 ? n : 64);
    mistake_made();
    neighbours_free(&v);
    after_work(n, 1);
    not_caught(NULL);
}

/* The block is freed and made again by a malloc of its size; then the old
 * pointer writes.  Did the write land in the new owner's block? */
static void reuse_stale_write(size_t n)
{
    struct victim v;
    victim_make(&v, n);
    misuse_now("access");
    free(v.p);
    unsigned char *q = xmalloc(n);
    memset(q, 'q', n);
    write_range(v.p, 0, n < 16 ? n : 16, 'W');
    mistake_made();
    int damaged = 0;
    for (size_t i = 0; i < n; i++)
        damaged |= q[i] != 'q';
    free(q);
    neighbours_free(&v);
    after_work(n, 1);
    not_caught(damaged ? "the write landed in the block made after it" : "the new block is intact");
}

/* ---- zero-size blocks ---- */

static void zero_size(int write, size_t k)
{
    unsigned char *p = malloc(0);
    if (p == NULL) { /* allowed; then there is nothing to misuse */
        say("SETUP FAILED: malloc(0) returned NULL\n");
        exit(3);
    }
    misuse_now("access");
    if (write)
        write_range(p, 0, k, 'Z');
    else
        read_range(p, 0, k);
    mistake_made();
    free(p);
    after_work(16, 1);
    not_caught(NULL);
}

/* ---- impossible requests ---- */

/* The right answer is NULL with errno ENOMEM: REFUSED (stopped).  NULL
 * with another errno is refused too, but said (a conformance bug, not a
 * danger).  A block is NOT CAUGHT.  (The block is not written: writing
 * what the program believes it has would crash, and count as stopped, an
 * allocator that got the arithmetic wrong.) */
static void impossible(void *p, int err)
{
    if (p == NULL) {
        char why[80];
        snprintf(why, sizeof why, "REFUSED with errno %d, not ENOMEM\n", err);
        say(err == ENOMEM ? "REFUSED\n" : why);
        return;
    }
    not_caught("the allocator returned a block");
}

static void huge_malloc(size_t n)
{
    misuse_now("call");
    errno = 0;
    void *p = malloc(launder_size(n));
    impossible(p, errno);
}

static void huge_calloc(size_t count, size_t size)
{
    misuse_now("call");
    errno = 0;
    void *p = calloc(launder_size(count), launder_size(size));
    impossible(p, errno);
}

/* A failed realloc must leave the block as it was. */
static void huge_realloc(int array)
{
    unsigned char *p = xmalloc(100);
    memset(p, 'k', 100);
    misuse_now("call");
    errno = 0;
    void *q = array ? reallocarray(p, launder_size(SIZE_MAX / 4), 8)
                    : realloc(p, launder_size(SIZE_MAX - 16));
    int err = errno;
    if (q == NULL) {
        for (int i = 0; i < 100; i++)
            if (p[i] != 'k') {
                not_caught("the failed realloc changed the block");
                return;
            }
        free(p);
    }
    impossible(q, err);
}

static void huge_aligned(int which)
{
    misuse_now("call");
    errno = 0;
    void *p = NULL;
    int err = 0;
    if (which == 0) { /* posix_memalign answers with its result, not errno */
        err = posix_memalign(&p, 64, launder_size(SIZE_MAX - 32));
        if (err != 0)
            p = NULL;
    } else if (which == 1) {
        p = aligned_alloc(4096, launder_size(SIZE_MAX - 4095));
        err = errno;
    } else { /* rounded up to a page, this size wraps around to 0 */
        p = pvalloc(launder_size(SIZE_MAX - 100));
        err = errno;
    }
    impossible(p, err);
}

#endif /* !MISUSE_FORTIFY */

/* ---- the table ---- */

struct mistake {
    const char *name;
    void (*run)(size_t n, size_t k); /* for the sized ones */
    size_t k;
    void (*plain)(void); /* for the others */
};

static void memcpy_over(size_t n, size_t k) { copy_overflow(COPY_MEMCPY, n, k); }
static void memcpy_under(size_t n, size_t k) { copy_underflow(COPY_MEMCPY, n, k); }
static void memset_over(size_t n, size_t k) { copy_overflow(COPY_MEMSET, n, k); }
static void strcpy_over(size_t n, size_t k) { copy_overflow(COPY_STRCPY, n, k); }

#ifndef MISUSE_FORTIFY
static void dfree(size_t n, size_t k) { (void)k; double_free(n); }
static void dfree_delayed(size_t n, size_t k) { (void)k; double_free_delayed(n); }
static void dfree_interleaved(size_t n, size_t k) { (void)k; double_free_interleaved(n); }
static void dfree_reused(size_t n, size_t k) { (void)k; double_free_reused(n); }
static void free_close(size_t n, size_t k) { (void)k; free_at(n, 16); }
static void free_unaligned(size_t n, size_t k) { (void)k; free_at(n, 1); }
static void free_unaligned_rep(size_t n, size_t k) { (void)k; free_unaligned_repeat(n); }
static void realloc_after_free(size_t n, size_t k) { (void)k; realloc_freed(n); }
static void waf(size_t n, size_t k) { (void)k; write_after_free(n, 0); }
static void waf_reuse(size_t n, size_t k) { (void)k; write_after_free(n, 1); }
static void raf(size_t n, size_t k) { (void)k; read_after_free(n); }
static void reuse_write(size_t n, size_t k) { (void)k; reuse_stale_write(n); }
static void zero_write_1(void) { zero_size(1, 1); }
static void zero_write_32(void) { zero_size(1, 32); }
static void zero_read(void) { zero_size(0, 8); }
static void huge_max(void) { huge_malloc(SIZE_MAX); }
static void huge_max16(void) { huge_malloc(SIZE_MAX - 16); }
static void huge_ptrdiff(void) { huge_malloc((size_t)PTRDIFF_MAX + 1); }
static void huge_calloc_wrap(void) { huge_calloc(SIZE_MAX / 16 + 2, 16); }
static void huge_calloc_zero(void) { huge_calloc((size_t)1 << 32, (size_t)1 << 32); }
static void huge_realloc_plain(void) { huge_realloc(0); }
static void huge_reallocarray(void) { huge_realloc(1); }
static void huge_posix_memalign(void) { huge_aligned(0); }
static void huge_aligned_alloc(void) { huge_aligned(1); }
static void huge_pvalloc(void) { huge_aligned(2); }
#endif

/* No mistake: the setup and the work after it, which every allocator must
 * run to NOT CAUGHT (the runner's control: a false alarm there, and the
 * suite is broken, not the allocator). */
static void control(size_t n, size_t k)
{
    (void)k;
    struct victim v;
    victim_make(&v, n);
    misuse_now("call");
    mistake_made();
    free(v.p);
    neighbours_free(&v);
    after_work(n, 1);
    not_caught(NULL);
}

/* NAME-small, NAME-medium and NAME-large: one mistake in the three sizes. */
#define SIZED(name, fn, k) {name, fn, k, NULL}
static const struct mistake table[] = {
#ifndef MISUSE_FORTIFY
#define COPIES ""
#else
#define COPIES "fortify-"
#endif
    SIZED(COPIES "control", control, 0),
#ifndef MISUSE_FORTIFY
    SIZED("overflow-1", overflow, 1),
    SIZED("overflow-32", overflow, 32),
    SIZED("overflow-1M", overflow, MIB),
    SIZED("underflow-1", underflow, 1),
    SIZED("underflow-32", underflow, 32),
    SIZED("underflow-1M", underflow, MIB),
#endif
    SIZED(COPIES "memcpy-overflow-1", memcpy_over, 1),
    SIZED(COPIES "memcpy-overflow-32", memcpy_over, 32),
#ifndef MISUSE_FORTIFY
    SIZED("memcpy-overflow-1M", memcpy_over, MIB),
#endif
    SIZED(COPIES "memcpy-underflow-1", memcpy_under, 1),
#ifndef MISUSE_FORTIFY
    SIZED("memcpy-underflow-32", memcpy_under, 32),
    SIZED("memcpy-underflow-1M", memcpy_under, MIB),
#endif
    SIZED(COPIES "memset-overflow-32", memset_over, 32),
    SIZED(COPIES "strcpy-overflow-1", strcpy_over, 1),
#ifndef MISUSE_FORTIFY
    SIZED("double-free", dfree, 0),
    SIZED("double-free-delayed", dfree_delayed, 0),
    SIZED("double-free-interleaved", dfree_interleaved, 0),
    SIZED("double-free-reused", dfree_reused, 0),
    {"invalid-free-stack", NULL, 0, free_stack},
    {"invalid-free-alloca", NULL, 0, free_alloca},
    {"invalid-free-global", NULL, 0, free_global},
    {"invalid-free-far", NULL, 0, free_far},
    SIZED("invalid-free-close", free_close, 0),
    SIZED("invalid-free-unaligned", free_unaligned, 0),
    SIZED("invalid-free-unaligned-repeat", free_unaligned_rep, 0),
    SIZED("realloc-after-free", realloc_after_free, 0),
    {"realloc-stack", NULL, 0, realloc_stack},
    SIZED("write-after-free", waf, 0),
    SIZED("write-after-free-reuse", waf_reuse, 0),
    SIZED("read-after-free", raf, 0),
    SIZED("reuse-stale-write", reuse_write, 0),
    {"zero-size-write-1", NULL, 0, zero_write_1},
    {"zero-size-write-32", NULL, 0, zero_write_32},
    {"zero-size-read", NULL, 0, zero_read},
    {"huge-malloc-max", NULL, 0, huge_max},
    {"huge-malloc-max-16", NULL, 0, huge_max16},
    {"huge-malloc-ptrdiff", NULL, 0, huge_ptrdiff},
    {"huge-calloc-wrap", NULL, 0, huge_calloc_wrap},
    {"huge-calloc-wrap-zero", NULL, 0, huge_calloc_zero},
    {"huge-realloc", NULL, 0, huge_realloc_plain},
    {"huge-reallocarray", NULL, 0, huge_reallocarray},
    {"huge-posix-memalign", NULL, 0, huge_posix_memalign},
    {"huge-aligned-alloc", NULL, 0, huge_aligned_alloc},
    {"huge-pvalloc-wrap", NULL, 0, huge_pvalloc},
#endif
};

static const struct {
    const char *suffix;
    size_t n;
} sizes[] = {{"-small", SMALL}, {"-medium", MEDIUM}, {"-large", LARGE}};

int main(int argc, char **argv)
{
    char name[96];
    int list = argc == 2 && strcmp(argv[1], "--list") == 0;
    if (argc != 2) {
        fprintf(stderr, "usage: %s CASE | --list\n", argv[0]);
        return 64;
    }
    source = mmap(NULL, SOURCE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (source == MAP_FAILED)
        return 3;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        const struct mistake *m = &table[i];
        for (size_t s = 0; s < (m->run ? 3 : 1); s++) {
            snprintf(name, sizeof name, "%s%s", m->name, m->run ? sizes[s].suffix : "");
            if (list) {
                puts(name);
                continue;
            }
            if (strcmp(name, argv[1]) != 0)
                continue;
            current = argv[1];
            if (m->run)
                m->run(sizes[s].n, m->k);
            else
                m->plain();
            return 0;
        }
    }
    if (list)
        return 0;
    fprintf(stderr, "%s: unknown case %s\n", argv[0], argv[1]);
    return 64;
}
