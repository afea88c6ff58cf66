/*
 * test_interior: normal mode (no SOMA_DEBUG) against frees of pointers that
 * start no block, and against underflows into a pool's header (issue 16),
 * each committed in a child process that must stop with the exact message:
 *
 *   - a pointer into a block, freed by the block's owner (the fast path's
 *     test, src/malloc/fastpath.h), by another thread, into an explicit
 *     heap, of a medium block; 8 bytes in, and unaligned by 1; given to
 *     realloc and malloc_usable_size;
 *   - a pointer close to a block: inside the next one;
 *   - a pointer into a large block (a mapping of soma's), 8 bytes, a page
 *     and 1 byte in, to free, realloc and malloc_usable_size: without the
 *     check it went to the system allocator as a foreign pointer; and a
 *     large block freed twice, or reallocated after its free, whose
 *     mapping soma keeps in its cache;
 *   - a pointer in a pool's header, and one in a pool's tail, at the place
 *     where a block would start were there room for one (the division the
 *     fast path replaces would have let it pass: 48-byte blocks leave 16
 *     bytes at the end of a pool);
 *   - a pointer on the stack: not soma's, handed to the system allocator,
 *     which stops it as it would without soma;
 *   - a 1-byte underflow of a pool's only block, caught at its free; an
 *     8-byte underflow of a pool's first block among others, caught when
 *     the pool empties, and by soma_debug_check at once.
 *
 * The addresses are taken in the parent, so that it knows each message
 * before the child commits the mistake.
 */
#include <pthread.h>
#include <stdio.h>

#include "malloc/malloc.h"
#include "test.h"

static char *blk, *blk2;  /* the blocks the next misuse works on */
static char *bad;         /* the pointer it passes */
static char expect[512];  /* the message it must get */

static void say_pointer(void)
{
    fprintf(stderr, "pointer %p\n", (void *)bad);
}

static void do_free(void)
{
    say_pointer();
    soma_free(bad);
}

static void *free_it(void *p)
{
    soma_free(p);
    return NULL;
}

static void do_free_other_thread(void)
{
    say_pointer();
    pthread_t t;
    pthread_create(&t, NULL, free_it, bad);
    pthread_join(t, NULL);
}

static void do_realloc(void)
{
    say_pointer();
    (void)!soma_realloc(bad, 8);
}

static void do_usable_size(void)
{
    say_pointer();
    (void)!soma_usable_size(bad);
}

static uintptr_t offset_of(const void *p)
{
    return (uintptr_t)p & SOMA_POOL_MASK;
}

/* bad lies in a block of `size` bytes (class c): the message. */
static void expect_interior(const char *fn, size_t size, unsigned c)
{
    uintptr_t into = (offset_of(bad) - SOMA_POOL_OVERHEAD) % size;
    snprintf(expect, sizeof expect,
             "%s(%p): not the start of a block: %zu byte%s into the %zu-byte block at %p "
             "(class %u)",
             fn, (void *)bad, (size_t)into, into == 1 ? "" : "s", size, (void *)(bad - into), c);
}

static void test_interior(void)
{
    blk = soma_malloc(32); /* class 1 */
    soma_heap *h = soma_heap_new();
    char *hb = soma_heap_malloc(h, 48);

    bad = blk + 8;
    expect_interior("soma_free", 32, 1);
    test_expect_fatal("interior free by the owner", do_free, expect);
    bad = blk + 1;
    expect_interior("soma_free", 32, 1);
    test_expect_fatal("unaligned by 1, by the owner", do_free, expect);
    bad = blk + 16;
    expect_interior("soma_free", 32, 1);
    test_expect_fatal("interior free by another thread", do_free_other_thread, expect);
    bad = blk + 24;
    expect_interior("soma_realloc", 32, 1);
    test_expect_fatal("interior realloc", do_realloc, expect);
    expect_interior("soma_usable_size", 32, 1);
    test_expect_fatal("interior usable_size", do_usable_size, expect);

    bad = hb + 16;
    expect_interior("soma_free", 48, 2);
    test_expect_fatal("interior free into an explicit heap", do_free, expect);

    blk2 = soma_malloc(1000);
    unsigned mc = soma__sizeclass_of(1000);
    bad = blk2 + 512;
    expect_interior("soma_free", soma__sizeclass_size(mc), soma__sizeclass_public(mc));
    test_expect_fatal("interior free of a medium block", do_free, expect);

    /* Close: 40 bytes past the end of a 64-byte block, inside the next one
     * (or inside the pool's tail, if blk2 is its last block: 16336 is not
     * a multiple of 64, nor 4048). */
    blk2 = soma_malloc(64);
    bad = blk2 + 64 + 40;
    if (offset_of(bad) - SOMA_POOL_OVERHEAD < (SOMA_POOL_SIZE - SOMA_POOL_OVERHEAD) / 64 * 64) {
        expect_interior("soma_free", 64, 3);
        test_expect_fatal("close to a block", do_free, expect);
    }

    soma_free(hb);
    soma_heap_destroy(h);
}

static void expect_large(const char *fn, size_t n)
{
    size_t into = (size_t)(bad - blk);
    snprintf(expect, sizeof expect,
             "%s(%p): not the start of a block: %zu byte%s into the large block at %p (%zu bytes "
             "asked, %zu mapped)",
             fn, (void *)bad, into, into == 1 ? "" : "s", (void *)blk, n,
             /* the mapping: the usable size and the tail (large.c), in pages */
             (soma_usable_size(blk) + 4095) & ~(size_t)4095);
}

static void test_large(void)
{
    const size_t n = (size_t)1 << 20;
    blk = soma_malloc(n);
    bad = blk + 8;
    expect_large("soma_free", n);
    test_expect_fatal("interior free of a large block", do_free, expect);
    bad = blk + 4096;
    expect_large("soma_free", n);
    test_expect_fatal("a large block's second page", do_free, expect);
    bad = blk + 1;
    expect_large("soma_free", n);
    test_expect_fatal("a large block, unaligned by 1", do_free, expect);
    bad = blk + 64;
    expect_large("soma_realloc", n);
    test_expect_fatal("interior realloc of a large block", do_realloc, expect);
    expect_large("soma_usable_size", n);
    test_expect_fatal("interior usable_size of a large block", do_usable_size, expect);
    soma_free(blk);
}

static void do_free_twice(void)
{
    say_pointer();
    soma_free(bad);
    soma_free(bad);
}

static void do_free_realloc(void)
{
    say_pointer();
    soma_free(bad);
    (void)!soma_realloc(bad, 100);
}

static void test_large_freed(void)
{
    bad = soma_malloc((size_t)1 << 20);
    const char *fmt = "%s(%p): not an allocated block: it lies in a large mapping soma keeps free "
                      "(a double free, or a pointer kept after its block was freed)";
    snprintf(expect, sizeof expect, fmt, "soma_free", (void *)bad);
    test_expect_fatal("a large block freed twice", do_free_twice, expect);
    snprintf(expect, sizeof expect, fmt, "soma_realloc", (void *)bad);
    test_expect_fatal("a large block reallocated after its free", do_free_realloc, expect);
    soma_free(bad);
}

static void test_header_and_tail(void)
{
    blk = soma_malloc(48); /* class 2: 48-byte blocks leave a 16-byte tail */
    char *base = (char *)((uintptr_t)blk & ~(uintptr_t)SOMA_POOL_MASK);
    bad = base + 16;
    snprintf(expect, sizeof expect,
             "soma_free(%p): not an allocated block (an address inside a pool header: the first "
             "48 bytes of a pool hold no block)",
             (void *)bad);
    test_expect_fatal("free in a pool header", do_free, expect);
    CHECK_EQ((SOMA_POOL_SIZE - SOMA_POOL_OVERHEAD) % 48, 16);
    bad = base + SOMA_POOL_SIZE - 16; /* where block number `capacity` would start */
    snprintf(expect, sizeof expect,
             "soma_free(%p): not an allocated block: it lies in the last 16 bytes of pool %p, "
             "after its last 48-byte block",
             (void *)bad, (void *)base);
    test_expect_fatal("free in a pool's tail", do_free, expect);
    /* and one byte further, unaligned */
    bad++;
    snprintf(expect, sizeof expect,
             "soma_free(%p): not an allocated block: it lies in the last 16 bytes of pool %p, "
             "after its last 48-byte block",
             (void *)bad, (void *)base);
    test_expect_fatal("free in a pool's tail, unaligned", do_free, expect);
    soma_free(blk);
}

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
/* Not soma's: the system allocator's own check stops it (glibc: the chunk
 * header in front of it, zeros here, is no chunk's).  A sanitizer's
 * allocator says it in its own words. */
static void stack_free(void)
{
    char buf[64];
    memset(buf, 0, sizeof buf);
    bad = buf + 16;
    __asm__ volatile("" : : "r"(buf) : "memory");
    fprintf(stderr, "pointer %p\n", (void *)bad);
    soma_free(bad);
}

static void test_stack(void)
{
    char buf[2048];
    int st = test_run_captured(stack_free, buf, sizeof buf);
    if (st == -1)
        return;
    if (!CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT && strstr(buf, "free(): invalid pointer")))
        test_note("  stack pointer: status %#x, stderr:\n%s", (unsigned)st, buf);
}
#endif

/* The pool's first block: a fresh pool of a class nothing else here uses. */
static char *first_block(size_t size)
{
    char *p = soma_malloc(size);
    CHECK_EQ(offset_of(p), SOMA_POOL_OVERHEAD);
    return p;
}

static void underflow_only_block(void)
{
    fprintf(stderr, "pointer %p\n", (void *)blk);
    blk[-1] ^= 0x5a; /* a byte written 1 before the block: it changes */
    soma_free(blk);  /* the pool's last block: the slow path looks */
}

static void underflow_among_others(void)
{
    fprintf(stderr, "pointer %p\n", (void *)blk2);
    memset(blk - 8, 0, 8); /* 8 bytes before the first block */
    soma_free(blk);        /* the fast path: no look */
    soma_free(blk2);       /* the pool empties: caught */
}

static void test_underflow(void)
{
    const unsigned c = 25, size = (c + 1) * 16; /* 416: no other block of this test */
    blk = first_block(size);
    char *base = blk - SOMA_POOL_OVERHEAD;
    snprintf(expect, sizeof expect,
             "soma_free(%p): the header of pool %p is overwritten from 1 byte before its first "
             "block %p (class %u, %u bytes): a write before the start of that block (an "
             "underflow)",
             (void *)blk, (void *)base, (void *)blk, c, size);
    test_expect_fatal("underflow of a pool's only block", underflow_only_block, expect);

    blk2 = soma_malloc(size); /* the second block of the same pool */
    CHECK_PTR_EQ(blk2, blk + size);
    snprintf(expect, sizeof expect,
             "soma_free(%p): the header of pool %p is overwritten from 8 or more bytes before "
             "its first block %p (class %u, %u bytes): a write before the start of that block "
             "(an underflow)",
             (void *)blk2, (void *)base, (void *)blk, c, size);
    test_expect_fatal("underflow of a first block among others", underflow_among_others, expect);

    /* soma_debug_check sees it at once; mended, nothing. */
    CHECK_EQ(soma_debug_check(), 0);
    char keep = blk[-3];
    blk[-3] = (char)~keep;
    CHECK_EQ(soma_debug_check(), 1);
    blk[-3] = keep;
    CHECK_EQ(soma_debug_check(), 0);
    soma_free(blk2);
    soma_free(blk);
}

int main(void)
{
    test_program_name = "test_interior";
    test_interior();
    test_header_and_tail();
    test_large();
    test_large_freed();
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    test_stack();
#endif
    test_underflow();
    return test_summary();
}
