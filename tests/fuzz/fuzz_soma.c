/*
 * fuzz_soma.c: a libFuzzer harness for soma's malloc family, its explicit
 * heaps and its cross-thread frees, checked against a shadow model.
 *
 * The input is a small bytecode, read one op at a time until it runs out
 * (a missing byte reads as 0, so every input is a valid program):
 *
 *   op % 17   operands                    what it does
 *   0 MALLOC  slot size                   soma_malloc into the slot (freeing what was there)
 *   1 CALLOC  slot split size             soma_calloc (nmemb * size split four ways, or an
 *                                         overflowing product: NULL and ENOMEM)
 *   2 REALLOC slot size                   soma_realloc (NULL when the slot is empty; 0 frees)
 *   3 FREE    slot                        soma_free (soma_free(NULL) on an empty slot)
 *   4 ALIGNED slot align size             soma_aligned_alloc, alignments 1..4096 and invalid ones
 *   5 HMALLOC heap slot size              soma_heap_malloc in explicit heap 0..2
 *   6 HCALLOC heap slot split size        soma_heap_calloc
 *   7 HREALLOC heap slot size             soma_heap_realloc (moves blocks between heaps)
 *   8 HDESTROY heap                       soma_heap_destroy: the heap's blocks leave the model
 *   9 BURST   where start count size      many blocks of one size into empty slots (by
 *                                         malloc, calloc or aligned_alloc: large blocks)
 *  10 DRAIN   start count stride          free every stride-th live block of a range
 *  11 XFREE   mode start count stride size   a second thread checks and frees (or reallocs)
 *                                         a batch of live blocks: soma's remote-free path
 *  12 XALLOC  where start count size      a second thread allocates blocks the main thread
 *                                         then owns (frees from here are remote frees)
 *  13 CHECK                               the full check below
 *  14 BANK    bank                        single-slot ops address slots bank*256 + slot
 *  15 USABLE  slot                        write the block's whole usable size (soma's blocks)
 *  16 FOREIGN slot size                   a block from the C library's malloc, which
 *                                         soma_free, _realloc and _usable_size must accept
 *
 * Sizes come from one byte (and one or two more): every small class 1..512,
 * every class's boundary (size - 1, size, size + 1), every medium class,
 * 0, tiny sizes, any medium size, sizes around the medium maximum and large
 * ones up to 4.5 MiB (live large bytes are capped, so an input stays fast).
 *
 * The model: a table of slots, each with its block, the bytes requested and
 * the bytes patterned, a fill (from the slot and a counter: it picks where
 * in a random 4093-byte cycle the block's pattern starts, so neighbours
 * differ everywhere), the class it must be in (from the size, by the
 * tests' model of the classes, tests/lib/classes.h, as config.h and
 * sizeclass.c define them: (n - 1) / 16 up to 512, then the smallest of
 * ((pool - 48) / k) & ~15 that holds it; none above the medium maximum, or
 * a block of the C library's that soma never saw), and the
 * heap it must belong to (the main thread's, a worker thread's, one of
 * three explicit heaps, or none for the system's blocks).
 * Every block placed is checked at once: alignment, soma_usable_size (the
 * class size exactly, or >= the request for the system's), the pool it
 * lies in names the predicted heap and class, calloc memory is zero,
 * realloc kept the prefix and moved exactly when soma's rule says it must.
 * The full check (op CHECK, every 512 ops, and at the end of each input):
 * every live block's contents, usable size and owner; no two live blocks
 * overlap; soma_heap_stats_get of every heap (the explicit ones, and the
 * main and worker thread heaps through the same call) reports exactly the
 * model's blocks per class and the large blocks asked of it; soma_stats_get reports the
 * model's blocks per class over all heaps, and its large blocks and bytes;
 * the byte figures of every snapshot add up; soma__check_heap (src/pool/check.c)
 * passes on every heap.  At the end of each input every block is freed and
 * the explicit heaps destroyed, and the process's figures must be back to
 * zero blocks, so inputs are independent.
 *
 * Any mismatch prints what broke, the op and the last ops, and aborts.
 * SOMA_FUZZ_TRACE=1 prints every op as it runs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classes.h"
#include "malloc/malloc.h"
#include "rng.h"
#include "soma.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum {
    NSLOTS = 2048,      /* slots of the model */
    NBANKS = NSLOTS / 256,
    NHEAPS = 3,         /* explicit heaps */
    MAXJOB = 256,       /* blocks handed to a worker at once */
    MAXWORKERHEAPS = 8, /* distinct worker heaps ever seen (one orphan is reused) */
    CHECK_EVERY = 512,  /* ops between full checks */
    PAT = 4093,         /* length of the pattern cycle (prime: not a multiple of 16) */
    RING = 16,          /* last ops printed on a failure */
};
#define LARGE_BUDGET ((size_t)16 << 20) /* live bytes of the system's blocks */
#define BURST_BUDGET ((size_t)4 << 20) /* bytes one BURST allocates */

/* Blocks of the system allocator: soma's large blocks (requests above the
 * medium classes, alignments above 16), counted in soma_stats.large; and
 * foreign ones, from the C library's malloc, which soma must only pass on. */
enum { CLS_LARGE = CLASSES_LARGE, CLS_FOREIGN = -2 };
#define FOREIGN_ALIGN 8 /* what the sanitizers' malloc promises (glibc's gives 16) */

typedef struct {
    unsigned char *p; /* NULL: empty */
    size_t req;       /* bytes requested (what soma records for a large block) */
    size_t size;      /* bytes patterned (req, or the usable size after USABLE) */
    size_t align;     /* alignment promised */
    uint32_t fill;    /* pattern offset */
    int cls;          /* model class, or CLS_LARGE, CLS_FOREIGN */
    int twin;         /* a small block of its class's tailed twin (classes.h) */
    heap_t *heap;     /* the heap it must be in; for a large block, the explicit heap
                       * it was asked of (its stats count it, destroy releases it), or NULL */
} slot_t;

static slot_t slots[NSLOTS];
static soma_heap *heaps[NHEAPS];
static heap_t *main_heap;
static heap_t *worker_heaps[MAXWORKERHEAPS];
static size_t nworker_heaps;
static size_t large_live; /* sum of req over the system's blocks (large and foreign) */
static uint32_t counter;
static unsigned bank;

/* The geometry soma reports; the classes are classes.h's, from its pool
 * size (checked against soma's own table). */
static size_t pool_size, arena_size, pool_overhead;

static unsigned char pat[2 * PAT];
static int trace;
static soma_stats st_a, st_b; /* snapshots are large: kept static */

/* ---- failure reports ---- */

typedef struct {
    unsigned long opno;
    unsigned op, a;
    size_t n;
} ring_t;
static ring_t ring[RING];
static unsigned long opno;
enum { NOPS = 17 };
static const char *op_names[NOPS] = {
    "MALLOC", "CALLOC", "REALLOC", "FREE", "ALIGNED", "HMALLOC", "HCALLOC", "HREALLOC", "HDESTROY",
    "BURST", "DRAIN", "XFREE", "XALLOC", "CHECK", "BANK", "USABLE", "FOREIGN"};

static _Noreturn void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static _Noreturn void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz_soma: CHECK FAILED at op %lu: ", opno);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fprintf(stderr, "fuzz_soma: the last ops (number, op, operand, size):\n");
    for (unsigned k = 1; k <= RING; k++) {
        const ring_t *r = &ring[(opno + k) % RING];
        if (r->opno != 0)
            fprintf(stderr, "  %lu %s %u %zu\n", r->opno, op_names[r->op % NOPS], r->a, r->n);
    }
    fflush(stderr);
    abort();
}

static void note_op(unsigned op, unsigned a, size_t n)
{
    ring_t *r = &ring[opno % RING];
    r->opno = opno;
    r->op = op;
    r->a = a;
    r->n = n;
    if (trace)
        fprintf(stderr, "op %lu: %s %u %zu\n", opno, op_names[op % NOPS], a, n);
}

/* ---- the pattern ---- */

static void fill_block(unsigned char *p, size_t n, uint32_t fill)
{
    size_t off = fill % PAT;
    for (size_t j = 0; j < n;) {
        size_t k = n - j < PAT ? n - j : PAT;
        memcpy(p + j, pat + off, k);
        j += k;
        off = (off + k) % PAT;
    }
}

/* The offset of the first byte of p[0..n) that is not fill's pattern, or n. */
static size_t first_bad(const unsigned char *p, size_t n, uint32_t fill)
{
    size_t off = fill % PAT;
    for (size_t j = 0; j < n;) {
        size_t k = n - j < PAT ? n - j : PAT;
        if (memcmp(p + j, pat + off, k) != 0) {
            for (size_t b = 0; b < k; b++)
                if (p[j + b] != pat[off + b])
                    return j + b;
        }
        j += k;
        off = (off + k) % PAT;
    }
    return n;
}

static void verify(const unsigned char *p, size_t n, uint32_t fill, const char *what, size_t slot)
{
    size_t bad = first_bad(p, n, fill);
    if (bad != n)
        fail("%s: slot %zu, block %p of %zu patterned bytes: byte %zu is 0x%02x, the pattern "
             "says 0x%02x (overwritten, handed out twice, or moved without its contents)",
             what, slot, (const void *)p, n, bad, p[bad], pat[(fill % PAT + bad) % PAT]);
}

/* The offset of the first byte of p[0..n) that is not zero, or n. */
static size_t first_nonzero(const unsigned char *p, size_t n)
{
    static const unsigned char zero[4096];
    for (size_t j = 0; j < n; j += sizeof zero) {
        size_t k = n - j < sizeof zero ? n - j : sizeof zero;
        if (memcmp(p + j, zero, k) != 0)
            for (size_t b = 0; b < k; b++)
                if (p[j + b] != 0)
                    return j + b;
    }
    return n;
}

static uint32_t next_fill(size_t slot)
{
    counter++;
    return (uint32_t)(slot * 2654435761u) ^ (counter * 40503u);
}

/* ---- the model of classes ---- */

static void model_init(void)
{
    test_rng rng;
    test_rng_seed(&rng, 0x2545f4914f6cdd1dULL);
    for (size_t i = 0; i < PAT; i++)
        pat[i] = pat[i + PAT] = (unsigned char)(test_rng_next(&rng) >> 24);
    const char *t = getenv("SOMA_FUZZ_TRACE");
    trace = t != NULL && *t != '\0' && *t != '0';

    soma_stats *st = &st_a;
    soma_stats_get(st);
    pool_size = st->pool_size;
    arena_size = st->arena_size;
    pool_overhead = st->pool_overhead;
    /* The medium classes from the pool size; then the whole model against
     * soma's table (the pool overhead of 48 that SOMA_MEDIUM_SIZE in
     * config.h counts on, each class's size). */
    if (classes_init(pool_size, st->medium_tail) != 0)
        fail("more medium classes than SOMA_MAX_MEDIUM_CLASSES");
    char why[160];
    if (classes_agree(st, why, sizeof why) != 0)
        fail("%s", why);
}

/* The heap an allocation lands in: `target` for soma's classes, none above. */
static heap_t *heap_for(int cls, heap_t *target)
{
    if (cls >= 0)
        return target;
    return cls == CLS_LARGE && target != NULL && target->explicit_heap ? target : NULL;
}

/* ---- the input ---- */

typedef struct {
    const uint8_t *d;
    size_t n, i;
} input_t;

static unsigned byte(input_t *in)
{
    return in->i < in->n ? in->d[in->i++] : 0;
}

static unsigned u16(input_t *in)
{
    unsigned lo = byte(in);
    return lo | byte(in) << 8;
}

static size_t draw_size(input_t *in)
{
    unsigned b = byte(in), lo = b & 31;
    switch (b >> 5) {
    case 0: /* any size of small class lo */
        return lo * 16 + 1 + byte(in) % 16;
    case 1: { /* around a small class's end: 15, 16, 17 ... 511, 512, 513;
               * or around its twins' boundary: 7, 8, 9 ... 503, 504, 505 */
        unsigned k = byte(in);
        return (lo + 1) * 16 - (k & 4 ? 8 : 0) + k % 3 - 1;
    }
    case 2: /* around a medium class's end */
        return classes_holds_twin(SOMA_NUM_CLASSES + (int)(lo % classes_nmedium), 0) +
               byte(in) % 3 - 1;
    case 3: /* any medium size */
        return SOMA_SMALL_THRESHOLD + 1 + u16(in) % (classes_medium_max - SOMA_SMALL_THRESHOLD);
    case 4: /* 0 and tiny sizes */
        return lo;
    case 5: /* around the medium maximum, and above it */
        return lo < 8 ? classes_medium_max - 3 + lo : classes_medium_max + 1 + u16(in);
    case 6: /* large: 8 KiB .. 200 KiB (one bin per page count), then 512 KiB .. 4.5 MiB */
        if (lo < 24)
            return (size_t)(lo + 1) * 8192 + u16(in) % 8192;
        return (size_t)(lo - 23) * 512 * 1024 + (size_t)u16(in) * 8;
    default: /* anything up to 64 KiB */
        return u16(in);
    }
}

/* 0: an invalid alignment (EINVAL expected). */
static size_t draw_align(input_t *in, int *valid)
{
    static const size_t bad[] = {0, 3, 24, 48, 100, 4095, 4097};
    unsigned b = byte(in) % 20;
    *valid = b < 13;
    return b < 13 ? (size_t)1 << b : bad[b - 13];
}

static size_t slot_of(input_t *in)
{
    return bank * 256 + byte(in);
}

static heap_t *explicit_heap(unsigned h)
{
    if (heaps[h] == NULL) {
        heaps[h] = soma_heap_new();
        if (heaps[h] == NULL)
            fail("soma_heap_new returned NULL");
    }
    return (heap_t *)heaps[h];
}

static int over_budget(int cls, size_t n)
{
    return cls < 0 && large_live + n > LARGE_BUDGET;
}

/* ---- placing and removing blocks ---- */

/* Record the block p of n requested bytes in empty slot i and check it:
 * alignment, usable size, the heap and class of its pool.  The caller
 * fills it. */
static void place(size_t i, void *p, size_t n, size_t align, int cls, int twin, heap_t *heap,
                  const char *what)
{
    if (p == NULL)
        fail("%s of %zu bytes returned NULL (errno %d)", what, n, errno);
    if ((uintptr_t)p % align != 0)
        fail("%s of %zu bytes: %p is not %zu-byte aligned", what, n, p, align);
    size_t usable = soma_usable_size(p);
    arena_t *arena = soma__region_arena(p);
    if (cls >= 0) {
        if (!classes_usable_ok(cls, twin, n, usable))
            fail("%s of %zu bytes: usable size %zu, the model's class %d (twin %d) holds %zu",
                 what, n, usable, cls, twin, classes_holds_twin(cls, twin));
        if (arena == NULL)
            fail("%s of %zu bytes: %p is not in soma's arenas (model class %d)", what, n, p, cls);
        const pool_t *pool = soma__pool_of(p);
        if (soma__sizeclass_public(pool->szidx) != (unsigned)cls ||
            soma__sizeclass_small_tailed(pool->szidx) != twin || pool->heap != heap)
            fail("%s of %zu bytes: %p is in a pool of class %u (internal %u), heap %p; the "
                 "model says class %d, twin %d, heap %p",
                 what, n, p, soma__sizeclass_public(pool->szidx), pool->szidx,
                 (void *)pool->heap, cls, twin, (void *)heap);
    } else {
        if (!classes_usable_ok(cls, 0, n, usable))
            fail("%s of %zu bytes: usable size %zu is smaller", what, n, usable);
        if (arena != NULL)
            fail("%s of %zu bytes: %p is in soma's arenas, the model says the system's", what, n,
                 p);
        large_live += n;
    }
    slot_t *s = &slots[i];
    s->p = p;
    s->req = n;
    s->size = n;
    s->align = align;
    s->cls = cls;
    s->twin = twin;
    s->heap = heap;
    s->fill = next_fill(i);
}

/* Forget slot i's block (freed by the caller, or gone with its heap). */
static void forget(size_t i)
{
    if (slots[i].cls < 0)
        large_live -= slots[i].req;
    memset(&slots[i], 0, sizeof slots[i]);
}

static void free_slot(size_t i, const char *what)
{
    slot_t *s = &slots[i];
    verify(s->p, s->size, s->fill, what, i);
    errno = 4242;
    soma_free(s->p);
    if (errno != 4242)
        fail("soma_free(%p) changed errno to %d", (void *)s->p, errno);
    forget(i);
}

/* A realloc of slot i's block to n > 0 bytes returned q, as called in
 * `target` (the heap a moved block goes to).  Checks where it went against
 * soma's rule and that the prefix survived; updates the model. */
static void realloc_done(size_t i, const slot_t *old, void *q, size_t n, heap_t *target,
                         const char *what)
{
    if (q == NULL)
        fail("%s of %p (%zu bytes) to %zu bytes returned NULL", what, (void *)old->p, old->req, n);
    int cls = old->cls, twin = 0; /* a large block stays large, and keeps its owner */
    heap_t *heap = old->cls < 0 ? old->heap : NULL;
    if (old->cls >= 0) {
        size_t have = classes_holds_twin(old->cls, old->twin);
        int stays = classes_realloc_in_place(old->cls, old->twin, n);
        if (stays != ((uintptr_t)q == (uintptr_t)old->p))
            fail("%s of a %zu-byte block (class %d, %zu bytes) to %zu: soma's rule says it %s, "
                 "but %p -> %p",
                 what, old->req, old->cls, have, n, stays ? "stays in place" : "moves",
                 (void *)old->p, q);
        cls = stays ? old->cls : classes_of(n);
        twin = stays ? old->twin : classes_twin_of(n);
        heap = stays ? old->heap : heap_for(cls, target);
    }
    size_t keep = old->size < n ? old->size : n;
    size_t bad = first_bad(q, keep, old->fill);
    if (bad != keep)
        fail("%s of slot %zu from %p (%zu bytes) to %p (%zu bytes) lost its contents at byte %zu",
             what, i, (void *)old->p, old->size, q, n, bad);
    if (old->cls < 0)
        large_live -= old->req;
    memset(&slots[i], 0, sizeof slots[i]);
    place(i, q, n, cls == CLS_FOREIGN ? FOREIGN_ALIGN : SOMA_ALIGNMENT, cls, twin, heap, what);
    fill_block(q, n, slots[i].fill);
}

/* realloc(p, n) from this thread, in the thread heap or an explicit one. */
static void do_realloc(size_t i, size_t n, soma_heap *h)
{
    heap_t *target = h ? (heap_t *)h : main_heap;
    const char *what = h ? "soma_heap_realloc" : "soma_realloc";
    slot_t *s = &slots[i];
    if (s->p == NULL) {
        int cls = classes_of(n);
        if (over_budget(cls, n))
            return;
        void *p = h ? soma_heap_realloc(h, NULL, n) : soma_realloc(NULL, n);
        place(i, p, n, SOMA_ALIGNMENT, cls, classes_twin_of(n), heap_for(cls, target), what);
        fill_block(p, n, s->fill);
        return;
    }
    verify(s->p, s->size, s->fill, "before realloc", i);
    if (n == 0) {
        void *q = h ? soma_heap_realloc(h, s->p, 0) : soma_realloc(s->p, 0);
        if (q != NULL)
            fail("%s(%p, 0) returned %p, not NULL", what, (void *)s->p, q);
        forget(i);
        return;
    }
    slot_t old = *s;
    int moves_large = (old.cls >= 0 && classes_of(n) < 0) || old.cls < 0;
    if (moves_large && large_live - (old.cls < 0 ? old.req : 0) + n > LARGE_BUDGET)
        return;
    void *q = h ? soma_heap_realloc(h, s->p, n) : soma_realloc(s->p, n);
    realloc_done(i, &old, q, n, target, what);
}

/* calloc split: nmemb * size == n, or an overflowing product. */
static void do_calloc(size_t i, unsigned split, size_t n, soma_heap *h)
{
    const char *what = h ? "soma_heap_calloc" : "soma_calloc";
    if (split % 8 == 7) {
        size_t a = ((size_t)1 << 33) + split, b = ((size_t)1 << 31) + n + 1;
        errno = 0;
        void *p = h ? soma_heap_calloc(h, a, b) : soma_calloc(a, b);
        if (p != NULL || errno != ENOMEM)
            fail("%s(%zu, %zu) overflows: returned %p, errno %d (NULL and ENOMEM expected)", what,
                 a, b, p, errno);
        return;
    }
    size_t nmemb = 1, each = n;
    if (split % 4 == 1) {
        nmemb = n;
        each = 1;
    } else if (split % 4 == 2 && n % 16 == 0) {
        nmemb = 16;
        each = n / 16;
    } else if (split % 4 == 3) {
        nmemb = 0; /* 0 elements of n bytes: 0 bytes */
        n = 0;
    }
    int cls = classes_of(n);
    if (over_budget(cls, n))
        return;
    if (slots[i].p != NULL)
        free_slot(i, "before calloc");
    void *p = h ? soma_heap_calloc(h, nmemb, each) : soma_calloc(nmemb, each);
    place(i, p, n, SOMA_ALIGNMENT, cls, classes_twin_of(n),
          heap_for(cls, h ? (heap_t *)h : main_heap), what);
    size_t b = first_nonzero(p, n);
    if (b != n)
        fail("%s(%zu, %zu): byte %zu of %p is 0x%02x, not zero", what, nmemb, each, b, p,
             ((unsigned char *)p)[b]);
    fill_block(p, n, slots[i].fill);
}

static void do_malloc(size_t i, size_t n, soma_heap *h)
{
    int cls = classes_of(n);
    if (over_budget(cls, n))
        return;
    if (slots[i].p != NULL)
        free_slot(i, "before malloc");
    void *p = h ? soma_heap_malloc(h, n) : soma_malloc(n);
    place(i, p, n, SOMA_ALIGNMENT, cls, classes_twin_of(n),
          heap_for(cls, h ? (heap_t *)h : main_heap), h ? "soma_heap_malloc" : "soma_malloc");
    fill_block(p, n, slots[i].fill);
}

static void do_aligned(size_t i, size_t align, int valid, size_t n)
{
    if (!valid) {
        errno = 0;
        void *p = soma_aligned_alloc(align, n);
        if (p != NULL || errno != EINVAL)
            fail("soma_aligned_alloc(%zu, %zu): returned %p, errno %d (NULL and EINVAL expected)",
                 align, n, p, errno);
        return;
    }
    /* Up to 16: soma_malloc; above: the system's, whatever the size. */
    int cls = align <= SOMA_ALIGNMENT ? classes_of(n) : CLS_LARGE;
    if (over_budget(cls, n))
        return;
    if (slots[i].p != NULL)
        free_slot(i, "before aligned_alloc");
    void *p = soma_aligned_alloc(align, n);
    place(i, p, n, align < SOMA_ALIGNMENT ? SOMA_ALIGNMENT : align, cls,
          cls >= 0 ? classes_twin_of(n) : 0, heap_for(cls, main_heap), "soma_aligned_alloc");
    fill_block(p, n, slots[i].fill);
}

/* A block of the C library's malloc: soma never saw it, and must hand it
 * back to the system (free, realloc, usable size) without counting it. */
static void do_foreign(size_t i, size_t n)
{
    if (large_live + n > LARGE_BUDGET)
        return;
    if (slots[i].p != NULL)
        free_slot(i, "before the C library's malloc");
    void *p = malloc(n);
    place(i, p, n, FOREIGN_ALIGN, CLS_FOREIGN, 0, NULL, "the C library's malloc");
    fill_block(p, n, slots[i].fill);
}

static void destroy_heap(unsigned h, const char *why)
{
    if (heaps[h] == NULL)
        return;
    heap_t *heap = (heap_t *)heaps[h];
    char msg[256];
    if (soma__check_heap(heap, msg, sizeof msg) != 0)
        fail("soma__check_heap of explicit heap %u before it is destroyed (%s): %s", h, why, msg);
    soma_heap_destroy(heaps[h]);
    heaps[h] = NULL;
    /* Its blocks are gone, of every size: the large ones asked of it too. */
    for (size_t i = 0; i < NSLOTS; i++)
        if (slots[i].p != NULL && slots[i].heap == heap)
            forget(i);
}

/* ---- a second thread ---- */

enum { JOB_FREE, JOB_REALLOC, JOB_ALLOC };

typedef struct {
    int what;
    size_t slot;
    unsigned char *p; /* in: the block (FREE, REALLOC); out: the new one */
    size_t size;      /* patterned bytes of p */
    uint32_t fill;
    size_t n;         /* REALLOC, ALLOC: the new size */
    uint32_t nfill;   /* the new block's fill */
    int zeroed;       /* ALLOC: by calloc */
} job_item;

typedef struct {
    job_item items[MAXJOB];
    size_t n;
    soma_heap *heap;  /* ALLOC in an explicit heap, or NULL: the worker's own */
    heap_t *own_heap; /* out: the worker's thread heap */
} job_t;

static job_t job;

static void *worker(void *arg)
{
    job_t *j = arg;
    int allocates = 0;
    for (size_t k = 0; k < j->n; k++) {
        job_item *it = &j->items[k];
        switch (it->what) {
        case JOB_FREE:
            verify(it->p, it->size, it->fill, "worker, before a cross-thread free", it->slot);
            soma_free(it->p);
            it->p = NULL;
            break;
        case JOB_REALLOC:
            allocates = 1;
            /* The prefix is checked by the main thread after the join. */
            verify(it->p, it->size, it->fill, "worker, before a cross-thread realloc", it->slot);
            it->p = soma_realloc(it->p, it->n);
            if (it->p == NULL)
                fail("worker: soma_realloc to %zu bytes returned NULL", it->n);
            break;
        case JOB_ALLOC:
            allocates = 1;
            if (it->zeroed)
                it->p = j->heap ? soma_heap_calloc(j->heap, 1, it->n) : soma_calloc(1, it->n);
            else
                it->p = j->heap ? soma_heap_malloc(j->heap, it->n) : soma_malloc(it->n);
            if (it->p == NULL)
                fail("worker: allocation of %zu bytes returned NULL", it->n);
            if (it->zeroed && first_nonzero(it->p, it->n) != it->n)
                fail("worker: calloc of %zu bytes: byte %zu is not zero", it->n,
                     first_nonzero(it->p, it->n));
            fill_block(it->p, it->n, it->nfill);
            break;
        }
    }
    /* Asked only now: a thread's first allocation finds no heap and takes
     * the slow path that gives it one (adopting an orphan). */
    if (allocates)
        j->own_heap = soma__heap_current();
    return NULL;
}

static void run_worker(void)
{
    pthread_t t;
    job.own_heap = NULL;
    if (pthread_create(&t, NULL, worker, &job) != 0)
        fail("pthread_create failed");
    if (pthread_join(t, NULL) != 0)
        fail("pthread_join failed");
    if (job.own_heap == NULL)
        return; /* it only freed */
    size_t w = 0;
    while (w < nworker_heaps && worker_heaps[w] != job.own_heap)
        w++;
    if (w == nworker_heaps) {
        if (nworker_heaps == MAXWORKERHEAPS)
            fail("more than %d worker heaps: orphans are not adopted", MAXWORKERHEAPS);
        worker_heaps[nworker_heaps++] = job.own_heap;
    }
}

/* XFREE: mode 0 frees, 1 reallocs, 2 alternates. */
static void do_xfree(unsigned mode, size_t start, size_t count, size_t stride, size_t n)
{
    job.n = 0;
    job.heap = NULL;
    size_t budget = large_live;
    for (size_t k = 0; k < count && job.n < MAXJOB; k += stride) {
        size_t i = (start + k) % NSLOTS;
        slot_t *s = &slots[i];
        if (s->p == NULL)
            continue;
        job_item *it = &job.items[job.n++];
        memset(it, 0, sizeof *it);
        it->slot = i;
        it->p = s->p;
        it->size = s->size;
        it->fill = s->fill;
        it->what = (mode % 3 == 0 || (mode % 3 == 2 && job.n % 2)) ? JOB_FREE : JOB_REALLOC;
        /* A realloc must not take the large blocks over the budget, nor
         * free a block: size 0 would (that is REALLOC's business). */
        size_t nn = n ? n : 1;
        if (it->what == JOB_REALLOC && (s->cls < 0 || classes_of(nn) < 0)) {
            if (budget + nn > LARGE_BUDGET)
                it->what = JOB_FREE;
            else
                budget += nn;
        }
        it->n = nn;
        it->nfill = next_fill(i);
    }
    if (job.n == 0)
        return;
    run_worker();
    for (size_t k = 0; k < job.n; k++) {
        job_item *it = &job.items[k];
        if (it->what == JOB_FREE) {
            forget(it->slot);
        } else {
            slot_t old = slots[it->slot];
            realloc_done(it->slot, &old, it->p, it->n, job.own_heap, "cross-thread soma_realloc");
        }
    }
}

/* XALLOC: where 0 the worker's own heap, 1..3 explicit heap where-1. */
static void do_xalloc(unsigned where, size_t start, size_t count, size_t n, int zeroed, int vary)
{
    job.n = 0;
    job.heap = where % 4 ? (soma_heap *)explicit_heap(where % 4 - 1) : NULL;
    size_t budget = large_live;
    for (size_t k = 0; k < count && job.n < MAXJOB; k++) {
        size_t i = (start + k) % NSLOTS;
        if (slots[i].p != NULL)
            continue;
        size_t nn = vary ? n + 7 * k : n;
        if (classes_of(nn) < 0) {
            if (budget + nn > LARGE_BUDGET)
                break;
            budget += nn;
        }
        job_item *it = &job.items[job.n++];
        memset(it, 0, sizeof *it);
        it->what = JOB_ALLOC;
        it->slot = i;
        it->n = nn;
        it->zeroed = zeroed;
        it->nfill = next_fill(i);
    }
    if (job.n == 0)
        return;
    run_worker();
    heap_t *target = job.heap ? (heap_t *)job.heap : job.own_heap;
    for (size_t k = 0; k < job.n; k++) {
        job_item *it = &job.items[k];
        int cls = classes_of(it->n);
        place(it->slot, it->p, it->n, SOMA_ALIGNMENT, cls, classes_twin_of(it->n),
              heap_for(cls, target),
              "allocation by the worker");
        slots[it->slot].fill = it->nfill; /* the worker filled it so */
        verify(it->p, it->n, it->nfill, "after the worker's allocation", it->slot);
    }
}

/* ---- the full check ---- */

typedef struct {
    uintptr_t lo, hi;
    size_t slot;
} span_t;

static int span_cmp(const void *a, const void *b)
{
    const span_t *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static span_t spans[NSLOTS];

/* The byte lines of a snapshot add up, per class the pools hold exactly
 * their blocks, and Total is the arenas' bytes. */
static void check_figures(const soma_stats *st, const char *scope)
{
    size_t cap_bytes = pool_size - pool_overhead;
    size_t alloc = 0, avail = 0, headers = 0, quant = 0;
    for (size_t c = 0; c < SOMA_NUM_CLASSES; c++) {
        const soma_class_stats *cs = &st->classes[c];
        if (cs->blocks_in_use + cs->avail_blocks != cs->num_pools * (cap_bytes / cs->size))
            fail("%s: class %zu: %zu in use + %zu available != %zu pools of %zu blocks", scope, c,
                 cs->blocks_in_use, cs->avail_blocks, cs->num_pools, cap_bytes / cs->size);
        alloc += cs->blocks_in_use * cs->size;
        avail += cs->avail_blocks * cs->size;
        headers += cs->num_pools * pool_overhead;
        quant += cs->num_pools * (cap_bytes % cs->size);
    }
    if (alloc != st->bytes_in_allocated_blocks || avail != st->bytes_in_available_blocks ||
        headers != st->bytes_lost_to_pool_headers || quant != st->bytes_lost_to_quantization)
        fail("%s: the small byte lines disagree with the class table", scope);
    size_t sum = st->bytes_in_allocated_blocks + st->bytes_in_available_blocks +
                 st->unused_pool_bytes + st->bytes_lost_to_pool_headers +
                 st->bytes_lost_to_quantization + st->bytes_lost_to_arena_alignment;
    if (sum != st->total || st->total != st->arena_bytes ||
        st->arena_bytes != st->arenas_current * arena_size)
        fail("%s: small arenas: lines add up to %zu, total %zu, arena bytes %zu, %zu arenas", scope,
             sum, st->total, st->arena_bytes, st->arenas_current);
    if (st->arenas_empty > st->arenas_current)
        fail("%s: %zu empty arenas of %zu", scope, st->arenas_empty, st->arenas_current);
    const soma_medium_stats *m = &st->medium;
    alloc = avail = 0;
    for (size_t i = 0; i < classes_nmedium; i++) {
        const soma_class_stats *cs = &m->classes[i];
        if (cs->blocks_in_use + cs->avail_blocks != cs->num_pools * (cap_bytes / cs->size))
            fail("%s: medium class %zu: %zu in use + %zu available != %zu pools of %zu blocks",
                 scope, i, cs->blocks_in_use, cs->avail_blocks, cs->num_pools,
                 cap_bytes / cs->size);
        alloc += cs->blocks_in_use * cs->size;
        avail += cs->avail_blocks * cs->size;
    }
    sum = m->bytes_in_allocated_blocks + m->bytes_in_available_blocks + m->unused_pool_bytes +
          m->bytes_lost_to_pool_headers + m->bytes_lost_to_quantization;
    if (alloc != m->bytes_in_allocated_blocks || avail != m->bytes_in_available_blocks ||
        sum != m->total || m->total != m->arena_bytes ||
        m->arena_bytes != m->arenas_current * arena_size)
        fail("%s: medium arenas: lines add up to %zu, total %zu, arena bytes %zu, %zu arenas",
             scope, sum, m->total, m->arena_bytes, m->arenas_current);
}

/* The snapshot's blocks per class against the model's (heap NULL: all). */
static void check_counts(const soma_stats *st, heap_t *heap, int all, const char *scope)
{
    size_t want[SOMA_NUM_CLASSES + SOMA_MAX_MEDIUM_CLASSES] = {0};
    size_t nlarge = 0, large_bytes = 0, sys_bytes = 0;
    for (size_t i = 0; i < NSLOTS; i++) {
        const slot_t *s = &slots[i];
        if (s->p == NULL)
            continue;
        if (s->cls < 0)
            sys_bytes += s->req;
        if (s->cls == CLS_LARGE) {
            if (all || s->heap == heap) {
                nlarge++;
                large_bytes += s->req;
            }
        } else if (s->cls >= 0 && (all || s->heap == heap)) {
            want[s->cls]++;
        }
    }
    for (size_t c = 0; c < classes_count(); c++) {
        size_t got = classes_stats(st, (int)c)->blocks_in_use;
        if (got != want[c])
            fail("%s: class %zu (%zu bytes): %zu blocks in use, the model has %zu", scope, c,
                 classes_size((int)c), got, want[c]);
    }
    if (st->large.blocks_in_use != nlarge || st->large.bytes_in_use != large_bytes)
        fail("%s: %zu large blocks of %zu bytes in use, the model has %zu of %zu bytes", scope,
             st->large.blocks_in_use, st->large.bytes_in_use, nlarge, large_bytes);
    if (sys_bytes != large_live)
        fail("model: the system's blocks hold %zu bytes, counted %zu", sys_bytes, large_live);
    /* The large blocks' mappings: the cache within its bound, and the
     * mappings in use hold at least the bytes asked of them but for the
     * system's few (none above the medium maximum). */
    const soma_large_map_stats *m = &st->large_map;
    if (all && (m->cached_bytes > m->cache_max_bytes || m->cached_bytes > m->bytes_mapped ||
                m->cached_bytes % 4096 != 0 || m->bytes_mapped % 4096 != 0))
        fail("%s: large mappings: %zu bytes mapped, %zu cached, bound %zu", scope, m->bytes_mapped,
             m->cached_bytes, m->cache_max_bytes);
}

static void check_heap(heap_t *heap, const char *scope, const char *when)
{
    char why[256], what[96];
    snprintf(what, sizeof what, "%s (%s)", scope, when);
    soma_heap_stats_get((soma_heap *)heap, &st_b); /* also collects its pending frees */
    check_figures(&st_b, what);
    check_counts(&st_b, heap, 0, what);
    if (soma__check_heap(heap, why, sizeof why) != 0)
        fail("soma__check_heap of %s: %s", what, why);
}

static void full_check(const char *when)
{
    /* Every live block: contents, usable size, where it lies. */
    size_t m = 0;
    for (size_t i = 0; i < NSLOTS; i++) {
        slot_t *s = &slots[i];
        if (s->p == NULL)
            continue;
        /* Where it lies first: a block of an arena that went away must be
         * reported, not read. */
        if (s->cls >= 0 &&
            (soma__region_arena(s->p) == NULL || soma__pool_of(s->p)->heap != s->heap ||
             soma__sizeclass_public(soma__pool_of(s->p)->szidx) != (unsigned)s->cls ||
             soma__sizeclass_small_tailed(soma__pool_of(s->p)->szidx) != s->twin))
            fail("%s: slot %zu: %p is no longer in a pool of class %d of heap %p", when, i,
                 (void *)s->p, s->cls, (void *)s->heap);
        if (s->cls < 0 && soma__region_arena(s->p) != NULL)
            fail("%s: slot %zu: the system's block %p is in soma's arenas", when, i,
                 (void *)s->p);
        verify(s->p, s->size, s->fill, when, i);
        size_t usable = soma_usable_size(s->p);
        if (!classes_usable_ok(s->cls, s->twin, s->size, usable))
            fail("%s: slot %zu: usable size of %p is now %zu (class %d, %zu patterned bytes)",
                 when, i, (void *)s->p, usable, s->cls, s->size);
        if ((uintptr_t)s->p % s->align != 0)
            fail("%s: slot %zu: %p is not %zu-aligned", when, i, (void *)s->p, s->align);
        spans[m].lo = (uintptr_t)s->p;
        spans[m].hi = (uintptr_t)s->p + (usable ? usable : 1);
        spans[m].slot = i;
        m++;
    }
    /* No two blocks overlap. */
    qsort(spans, m, sizeof spans[0], span_cmp);
    for (size_t k = 1; k < m; k++)
        if (spans[k].lo < spans[k - 1].hi)
            fail("%s: slots %zu [%#lx, %#lx) and %zu [%#lx, %#lx) overlap", when,
                 spans[k - 1].slot, (unsigned long)spans[k - 1].lo,
                 (unsigned long)spans[k - 1].hi, spans[k].slot, (unsigned long)spans[k].lo,
                 (unsigned long)spans[k].hi);
    /* Each heap's figures, exact (and its pending frees collected), then
     * the process's. */
    char scope[64];
    for (unsigned h = 0; h < NHEAPS; h++)
        if (heaps[h] != NULL) {
            snprintf(scope, sizeof scope, "explicit heap %u", h);
            check_heap((heap_t *)heaps[h], scope, when);
        }
    check_heap(main_heap, "the main thread's heap", when);
    for (size_t w = 0; w < nworker_heaps; w++) {
        snprintf(scope, sizeof scope, "worker heap %zu", w);
        check_heap(worker_heaps[w], scope, when);
    }
    soma_stats_get(&st_a);
    snprintf(scope, sizeof scope, "process (%s)", when);
    check_figures(&st_a, scope);
    check_counts(&st_a, NULL, 1, scope);
}

/* ---- one input ---- */

static void run_op(input_t *in)
{
    unsigned op = byte(in) % NOPS;
    switch (op) {
    case 0: { /* MALLOC */
        size_t i = slot_of(in), n = draw_size(in);
        note_op(op, (unsigned)i, n);
        do_malloc(i, n, NULL);
        break;
    }
    case 1: { /* CALLOC */
        size_t i = slot_of(in);
        unsigned split = byte(in);
        size_t n = draw_size(in);
        note_op(op, (unsigned)i, n);
        do_calloc(i, split, n, NULL);
        break;
    }
    case 2: { /* REALLOC */
        size_t i = slot_of(in), n = draw_size(in);
        note_op(op, (unsigned)i, n);
        do_realloc(i, n, NULL);
        break;
    }
    case 3: { /* FREE */
        size_t i = slot_of(in);
        note_op(op, (unsigned)i, 0);
        if (slots[i].p != NULL) {
            free_slot(i, "before free");
        } else {
            errno = 4242;
            soma_free(NULL);
            if (errno != 4242 || soma_usable_size(NULL) != 0)
                fail("soma_free(NULL) changed errno, or soma_usable_size(NULL) is not 0");
        }
        break;
    }
    case 4: { /* ALIGNED */
        size_t i = slot_of(in);
        int valid;
        size_t align = draw_align(in, &valid), n = draw_size(in);
        note_op(op, (unsigned)align, n);
        do_aligned(i, align, valid, n);
        break;
    }
    case 5:
    case 6:
    case 7: { /* HMALLOC, HCALLOC, HREALLOC */
        unsigned h = byte(in) % NHEAPS;
        size_t i = slot_of(in);
        unsigned split = op == 6 ? byte(in) : 0;
        size_t n = draw_size(in);
        note_op(op, (unsigned)i, n);
        soma_heap *heap = (soma_heap *)explicit_heap(h);
        if (op == 5)
            do_malloc(i, n, heap);
        else if (op == 6)
            do_calloc(i, split, n, heap);
        else
            do_realloc(i, n, heap);
        break;
    }
    case 8: { /* HDESTROY */
        unsigned h = byte(in) % NHEAPS;
        note_op(op, h, 0);
        destroy_heap(h, "HDESTROY");
        break;
    }
    case 9: { /* BURST */
        unsigned where = byte(in);
        size_t start = (size_t)byte(in) * 8, count = 1 + (size_t)byte(in) * 8;
        size_t n = draw_size(in);
        note_op(op, (unsigned)count, n);
        soma_heap *h = where % 4 ? (soma_heap *)explicit_heap(where % 4 - 1) : NULL;
        /* where & 8: aligned_alloc, 32 to 4096 (the system's blocks, even
         * tiny ones: many of them fill soma's table of large blocks). */
        size_t align = (size_t)32 << (where >> 4) % 8;
        int cls = where & 8 ? CLS_LARGE : classes_of(n);
        for (size_t k = 0, bytes = 0; k < count && bytes <= BURST_BUDGET; k++) {
            size_t i = (start + k) % NSLOTS;
            if (slots[i].p == NULL) {
                if (over_budget(cls, n))
                    break;
                bytes += n + 16;
                if (where & 8)
                    do_aligned(i, align, 1, n);
                else if (where & 4)
                    do_calloc(i, 0, n, h);
                else
                    do_malloc(i, n, h);
            }
        }
        break;
    }
    case 10: { /* DRAIN */
        size_t start = (size_t)byte(in) * 8, count = 1 + (size_t)byte(in) * 8;
        size_t stride = 1 + byte(in) % 8;
        note_op(op, (unsigned)count, stride);
        for (size_t k = 0; k < count; k += stride) {
            size_t i = (start + k) % NSLOTS;
            if (slots[i].p != NULL)
                free_slot(i, "before a drain's free");
        }
        break;
    }
    case 11: { /* XFREE */
        unsigned mode = byte(in);
        size_t start = (size_t)byte(in) * 8, count = 1 + (size_t)byte(in) * 4;
        size_t stride = 1 + byte(in) % 4, n = draw_size(in);
        note_op(op, mode % 3, count);
        do_xfree(mode, start, count, stride, n);
        break;
    }
    case 12: { /* XALLOC */
        unsigned where = byte(in);
        size_t start = (size_t)byte(in) * 8, count = 1 + byte(in) % 64;
        size_t n = draw_size(in);
        note_op(op, where % 4, n);
        do_xalloc(where, start, count, n, (where & 4) != 0, (where & 8) != 0);
        break;
    }
    case 13: /* CHECK */
        note_op(op, 0, 0);
        full_check("CHECK");
        break;
    case 14: /* BANK */
        bank = byte(in) % NBANKS;
        note_op(op, bank, 0);
        break;
    case 15: { /* USABLE: write the whole usable size */
        size_t i = slot_of(in);
        note_op(op, (unsigned)i, 0);
        slot_t *s = &slots[i];
        if (s->p == NULL)
            break;
        verify(s->p, s->size, s->fill, "before USABLE", i);
        /* soma's blocks only: past the size asked, the system's bytes are
         * the sanitizers' business (TSan calls a 0-byte block's one usable
         * byte freed memory). */
        if (s->cls >= 0)
            s->size = soma_usable_size(s->p);
        s->fill = next_fill(i);
        fill_block(s->p, s->size, s->fill);
        break;
    }
    default: { /* FOREIGN */
        size_t i = slot_of(in), n = draw_size(in);
        note_op(op, (unsigned)i, n);
        do_foreign(i, n);
        break;
    }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        model_init();
        ready = 1;
    }
    main_heap = soma__heap_current();
    if (main_heap == NULL)
        fail("soma__heap_current returned NULL");
    bank = 0;
    opno = 0;
    memset(ring, 0, sizeof ring);
    input_t in = {data, size, 0};
    while (in.i < in.n) {
        opno++;
        run_op(&in);
        if (opno % CHECK_EVERY == 0)
            full_check("periodic");
    }
    full_check("end of input");

    /* Everything back: every block freed, the heaps destroyed, the
     * process's figures at zero blocks. */
    for (size_t i = 0; i < NSLOTS; i++)
        if (slots[i].p != NULL)
            free_slot(i, "before the final free");
    for (unsigned h = 0; h < NHEAPS; h++)
        destroy_heap(h, "end of input");
    full_check("after the final free");
    if (st_a.large.blocks_in_use != 0 || large_live != 0)
        fail("after the final free: %zu large blocks in use", st_a.large.blocks_in_use);
    return 0;
}
