/*
 * tail.h: a medium block's head and fence, and a tailed small block's head, in a
 * hardened build (SOMA_MEDIUM_TAIL, SOMA_SMALL_TAIL: base/config.h): what
 * lets normal mode see a write past the bytes asked of a block, or before
 * its start, as glibc sees one in its chunk headers.
 *
 * A medium block of s bytes holds s - 16 at most; for n bytes asked it
 * has two words of soma's:
 *
 *   the head, the 8 bytes      the block's tag (the tails' key and the
 *   before the block:          block's address: pool.h) in its top 48
 *                              bits, n in its low 16; in the last 8 bytes
 *                              of the block before it, which that block
 *                              never holds (s - 16), or, for a pool's
 *                              first block, in the pool header's check
 *                              word (pool.h)
 *   the fence, at n rounded    the tag with its bytes rotated by
 *   up to 8:                   one, at the first 8-aligned offset at
 *                              or past n (at most s - 16: inside the
 *                              block, before the next block's head)
 *
 * n is the size asked, until the program asks soma_usable_size: that
 * answers what the class holds, s - 16, and the fence moves there (n =
 * s - 16), since the program may now use it all; a realloc sets n again.
 *
 * Both are written when the block is handed out (malloc, or a realloc that
 * keeps it) and checked when it is freed or reallocated (below; tail.c
 * says what it found).  So an overflow of 1 to 7 bytes past n stays unseen
 * only when n is not a multiple of 8 and it ends before the fence; every
 * longer one runs through the fence, a write that skips it and lands past
 * the block's end reaches the next block's head (found at that block's
 * free, below), and every underflow changes the block's own head first: glibc's
 * chunk header, which holds a chunk's size before its first byte, is found
 * the same way.  The head lies in the line the block's first word (its
 * link, while free) is in, most often: a free reads one line more than
 * the block's first, the fence's, and malloc writes the same one.  (The
 * word used to be the block's own last 8 bytes, the tail word, and the
 * free read the one before the block too: a line more each way.)
 *
 * Who reads what: the holder of a block writes its words (malloc hands it
 * out, realloc changes n), and the block's own free, realloc and
 * usable_size read them, whatever the block before it does (it never
 * writes its last 8 bytes); but a pool's first block's head is also the
 * pool header's check word, which the owner and soma_debug_check read
 * while the block's holder, any thread, may rewrite it: the words are
 * read and written whole, relaxed.  carve (pool.c) writes every medium
 * block's head (n = 0), so a free of a carved block never handed out is
 * told from an overflow; one past the carved blocks holds no head: a
 * pool's old class's heads are cleared when it takes another (pool.c:
 * forget_heads; a pool that keeps its class keeps its carved blocks, and
 * a returned one, its pages given back, reads as zeros).
 * An overflow that skips the fence and lands in the block's last 8 bytes
 * is found at the next block's free only: not if that block is free and
 * handed out again (its malloc rewrites its head), nor past a pool's
 * last block.
 */
#ifndef SOMA_TAIL_H
#define SOMA_TAIL_H

#include "pool/pool.h"

#if SOMA_MEDIUM_TAIL
_Static_assert(SOMA_MEDIUM_MAX <= SOMA_TAIL_ASKED, "a medium size fits the head");

/* The fence's value, from b's tag: the tag's bytes rotated by one (a
 * check word too, every byte's top bit set, and not the head's; one
 * instruction, where flipping the bytes' low bits took a 10-byte
 * constant). */
static inline uint64_t soma__tail_fence_of(uint64_t tag)
{
    return tag << 8 | tag >> 56;
}
static inline uint64_t soma__tail_fence_value(const void *b)
{
    return soma__tail_fence_of(soma__tail_tag(b));
}
/* A medium block's head: the word before it. */
static inline uint64_t *soma__tail_head(const void *b)
{
    return (uint64_t *)b - 1;
}
static inline uint64_t *soma__tail_fence(const void *b, size_t n)
{
    return (uint64_t *)((uintptr_t)b + ((n + 7) & ~(size_t)7));
}

/* b, a medium block, now holds n bytes asked. */
static inline void soma__tail_set(void *b, size_t n)
{
    uint64_t tag = soma__tail_tag(b);
    __atomic_store_n(soma__tail_fence(b, n), soma__tail_fence_of(tag), __ATOMIC_RELAXED);
    __atomic_store_n(soma__tail_head(b), (tag & ~(uint64_t)SOMA_TAIL_ASKED) | n,
                     __ATOMIC_RELAXED);
}

/* b, a medium block, is carved: its head says 0 bytes asked, until malloc
 * writes both words. */
static inline void soma__tail_set_carved(void *b)
{
    __atomic_store_n(soma__tail_head(b), soma__tail_tag(b) & ~(uint64_t)SOMA_TAIL_ASKED,
                     __ATOMIC_RELAXED);
}

/* The bytes asked of b, a block of `size` bytes, as its head says;
 * SIZE_MAX when the word is not b's (something wrote over it), or says 0
 * (carved, never handed out: a live medium block holds more than 512). */
static inline size_t soma__tail_asked(const void *b, size_t size)
{
    uint64_t w = __atomic_load_n(soma__tail_head(b), __ATOMIC_RELAXED);
    size_t n = (size_t)(w & SOMA_TAIL_ASKED);
    return soma__tail_ours(w, b) && n - 1 < size - SOMA_MEDIUM_TAIL ? n : SIZE_MAX;
}

/* Stop the program (tail.c): fn's check of b, a medium block, found its
 * head or its fence not whole; says which.  owner: the caller owns b's
 * pool, whose offsets it may read (a block past the carved ones, its head
 * cleared, is said not to be allocated).  (The class's size is looked up
 * again there: passed, the owner's free kept it in a register for this
 * call alone, 2 instructions.) */
SOMA_INTERNAL _Noreturn __attribute__((cold)) void
soma__tail_fatal_check(const char *fn, const pool_t *pool, const void *b, int owner);
/* b (the start of a block of pool, a medium one of `size` bytes, in use)
 * is freed or reallocated by fn: its head and its fence are checked;
 * returns the bytes asked of it.  n, the head's low 16 bits, is tested
 * against the class before the fence is read at it: an overflow that
 * skips the block's fence may change those two bytes alone (the tag's
 * are above them), and the fence read past the block, up to 64 KiB on,
 * could leave soma's mappings.  Inline for the owner's free
 * (malloc.c, the size from the reciprocals' row it reads anyway);
 * soma__tail_check out of line. */
static inline size_t soma__tail_check_n(const pool_t *pool, const void *b, size_t size,
                                        const char *fn, int owner)
{
    uint64_t tag = soma__tail_tag(b);
    uint64_t w = __atomic_load_n(soma__tail_head(b), __ATOMIC_RELAXED);
    size_t n = (size_t)(w & SOMA_TAIL_ASKED);
    if (SOMA_UNLIKELY((w ^ tag) > SOMA_TAIL_ASKED || n - 1 >= size - SOMA_MEDIUM_TAIL))
        soma__tail_fatal_check(fn, pool, b, owner);
    uint64_t fence = __atomic_load_n(soma__tail_fence(b, n), __ATOMIC_RELAXED);
    if (SOMA_UNLIKELY(fence != soma__tail_fence_of(tag)))
        soma__tail_fatal_check(fn, pool, b, owner);
    return n;
}

/*
 * A small block's head (the tailed twins, base/config.h: the small classes
 * whose requests leave 8 bytes of the block free).  The 8 bytes before a
 * tailed block, the last 8 of the block before it (which that block never
 * holds) or, for a pool's first block, the pool header's check word, hold
 * the block's tag, written when the pool carves the block (the check word
 * also when the pool is put to work) and never again: the program
 * is told a tailed block holds s - 8 bytes (malloc_usable_size, a realloc
 * in place), and a free block links the next through its first word only,
 * so the tag stays whole while the block is free and while it is in use,
 * and every free of the block (the owner's fast path, another thread's,
 * realloc) compares it, at no cost to malloc.  A write before the block
 * (an underflow) changes it, found at the block's free, as glibc finds
 * one in the chunk's size before it; a write past the bytes the block
 * before holds (an overflow), at that block's neighbour's free, as glibc
 * finds one in the next chunk's header (a pool's last block: its own
 * last 8 bytes hold the tag of the block that would follow, which its
 * free reads out of line: pool.h, recip_fast).  The word lies in the block's
 * first line unless the block starts one (a line in four, blocks being
 * 16-aligned): the free reads the line its double-free test reads anyway
 * (the block's own last word, where the tag used to be, was a line more
 * for any block past 64 bytes).  The plain twin, for requests that fill
 * the block, has none.  Read and written whole, relaxed, as the medium
 * head.
 */
/* A small block's head: the word before it (as a medium block's). */
static inline uint64_t *soma__tail_small_head(const void *b)
{
    return (uint64_t *)b - 1;
}
/* The blocks from b up to end (their starts), size bytes apart, are
 * carved: their heads hold their tags.  The secret is read once (a store
 * could be one to it, for the compiler). */
static inline void soma__tail_small_set_run(uintptr_t b, uintptr_t end, size_t size)
{
    uint64_t key = soma__small_tail_key, high = soma__check_high;
    for (; b <= end; b += size)
        __atomic_store_n((uint64_t *)b - 1, soma__tail_small_tag_of(b, key, high),
                         __ATOMIC_RELAXED);
}
/* Is b's small head whole?  (b: a carved block of a tailed twin) */
static inline int soma__tail_small_ok(const void *b)
{
    return __atomic_load_n(soma__tail_small_head(b), __ATOMIC_RELAXED) ==
           soma__tail_small_tag(b);
}
/* The owner's slow path of a free (pool.c: the pool empties, leaves full,
 * or the block looks free) checks the block's own last 8 bytes too, the
 * next block's head, where the pool has carved that block: one more line,
 * paid only there, for an overflow of a block whose neighbours the
 * program may never free (a pool's only block, its neighbours free).  (A
 * pool's last block has its last 8 bytes checked at every free of it:
 * soma__tail_small_check_last.)  Stops the program, saying so, if they
 * are not whole. */
SOMA_INTERNAL _Noreturn __attribute__((cold)) void
soma__tail_fatal_small_next(const char *fn, const pool_t *pool, const void *b);
/* The free of b, from any thread: b starts a block of pool, a small one.
 * If the fast path's test fails for it, b is a tailed pool's last block
 * (pool.h: recip_fast; the same product as the caller's test that b
 * starts a block, so a compare more), and its last 8 bytes are checked. */
static inline void soma__tail_small_check_last(const pool_t *pool, const void *b, const char *fn)
{
#if SOMA_SMALL_TAIL
    if (SOMA_UNLIKELY(!soma__pool_fast_starts(pool, b, SOMA_POOL_OVERHEAD)) &&
        !soma__tail_small_ok((const char *)b + soma__sizeclass_size(pool->szidx)))
        soma__tail_fatal_small_next(fn, pool, b);
#else
    (void)pool, (void)b, (void)fn; /* no small block has a head */
#endif
}
static inline void soma__tail_small_check_next(const pool_t *pool, const void *b, const char *fn)
{
    size_t next = (size_t)((const char *)b - pool->base) + soma__sizeclass_size(pool->szidx);
    /* a head carve wrote: the next block is carved (never past the pool's
     * last: nextoffset is that block's end then) */
    if (next < pool->nextoffset && SOMA_UNLIKELY(!soma__tail_small_ok(pool->base + next)))
        soma__tail_fatal_small_next(fn, pool, b);
}
/* Stop the program: b's small head is not its tag (found by the pool's
 * owner, or not: pool.h, soma__pool_fatal_if_unused). */
SOMA_INTERNAL _Noreturn __attribute__((cold)) void
soma__tail_fatal_small(const char *fn, const pool_t *pool, const void *b, int owner);
/* The one check of a small block's head, for every path that frees or
 * reallocates one (malloc/fastpath.h, pool.c, malloc.c): b, a block of
 * pool, of either twin, by fn (the pool's owner, or not).  Without a
 * branch on the twin: a branch that follows the sizes freed is
 * mispredicted on every other free of a program whose sizes are mixed
 * (lifo1 of bench_small took 1.3 times as long that way).  A plain
 * block's first word is read instead, and the result masked away.  c:
 * pool's class, a small one. */
static inline void soma__tail_small_check_any(const pool_t *pool, size_t c, const void *b,
                                              const char *fn, int owner)
{
#if SOMA_SMALL_TAIL
    /* a tailed twin's head (c even), word -1; a plain one's first word,
     * word 0: its own, which the push writes next (the word before a plain
     * block is its neighbour's, which another thread may be writing) */
    size_t odd = c & 1;
    uint64_t w = __atomic_load_n((const uint64_t *)b - 1 + odd, __ATOMIC_RELAXED);
    /* the difference, masked away for a plain twin */
    if (SOMA_UNLIKELY(((w ^ soma__tail_small_tag(b)) & ((uint64_t)odd - 1)) != 0))
        soma__tail_fatal_small(fn, pool, b, owner);
#else
    (void)pool, (void)c, (void)b, (void)fn, (void)owner; /* no small block has a head */
#endif
}

/* A small block's free that the fast path left out (another thread's, or
 * the owner's of a tailed pool's last block): its head, and, if it is its
 * pool's last, its last 8 bytes. */
static inline void soma__tail_small_check_out(const pool_t *pool, const void *b, const char *fn,
                                              int owner)
{
    soma__tail_small_check_any(pool, pool->szidx, b, fn, owner);
    soma__tail_small_check_last(pool, b, fn);
}

/* soma__tail_check_n, out of line, for any thread (another thread's
 * free, realloc). */
SOMA_INTERNAL size_t soma__tail_check(const pool_t *pool, const void *b, const char *fn);
/* soma_usable_size of b: what its class holds (its size less the tail).
 * Its own words are checked, and the fence moves to that end: a program
 * told it may use those bytes must be able to (redis's strings and lists,
 * for one, grow into them without a realloc). */
SOMA_INTERNAL size_t soma__tail_usable(const pool_t *pool, void *b, const char *fn);
#endif

#endif /* SOMA_TAIL_H */
