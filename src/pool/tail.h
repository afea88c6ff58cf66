/*
 * tail.h: a medium block's tail, and a small block's, in a hardened build
 * (SOMA_MEDIUM_TAIL, SOMA_SMALL_TAIL: base/config.h): what lets normal mode
 * see a write past the bytes asked of a medium block, or before its start,
 * as glibc sees one in the chunk header that follows.
 *
 * A medium block of s bytes holds s - 16 at most; for n bytes asked it
 * carries two words of soma's:
 *
 *   the tail word, at s - 8:   the block's tag (the tails' key and the
 *                              block's address) in its top 48 bits, n in
 *                              its low 16
 *   the fence, at n rounded    the tag with its bytes' low 7 bits
 *   up to 8:                   flipped, at the first 8-aligned offset at
 *                              or past n (at most s - 16: inside the
 *                              block, before the tail word)
 *
 * n is the size asked, until the program asks soma_usable_size: that
 * answers what the class holds, s - 16, and the words move there (n =
 * s - 16), since the program may now use it all; a realloc sets n again.
 *
 * Both are written when the block is handed out (malloc, or a realloc that
 * keeps it) and checked when it is freed or reallocated (below; tail.c
 * says what it found): its own
 * tail word and fence, and the tail word of the block before it (the 8
 * bytes just before its start: where an underflow lands first), or, for a
 * pool's first block, the pool header's check word (pool.h).  So an
 * overflow of 1 to 7 bytes past n stays unseen only when n is not a
 * multiple of 8 and it ends before the fence; every longer one, and every
 * underflow, changes a word soma knows.  A small block has at most a tail
 * word (below), and only when its request leaves it 8 bytes: a 16-byte
 * block asked for 16 has none to spare.
 *
 * Who reads what: the holder of a block writes its words (malloc hands it
 * out, realloc changes n), any thread freeing the block after it may read
 * its tail word; so the words are read and written whole, relaxed.  The
 * fence is read only by the block's own free, realloc and usable_size: a
 * neighbour reading it could race with a realloc that grows the block over
 * it.  carve (pool.c) writes every medium block's tail word (n = 0), so the
 * block before a live one always has one: handed out or not, and one a
 * fork caught between the slow path's pop and malloc's writing its words
 * (the child's next free of the block after it would read it).
 */
#ifndef SOMA_TAIL_H
#define SOMA_TAIL_H

#include "pool/pool.h"

#if SOMA_MEDIUM_TAIL
#define SOMA_TAIL_ASKED 0xffffu /* the tail word's bits for n (SOMA_MEDIUM_MAX fits) */
_Static_assert(SOMA_MEDIUM_MAX <= SOMA_TAIL_ASKED, "a medium size fits the tail word");

/* The block's tag: the tails' secret and the address, so that a program
 * neither writes it by accident nor finds it in another block.  (Not
 * mixed further: it keeps a value from being guessed, not from being read;
 * a fence left behind in memory handed out again can be read, which is
 * why the secret is not the links' key: link.c.) */
static inline uint64_t soma__tail_tag(const void *b)
{
    /* The address's low bits shifted up too: the tail word keeps only the
     * tag's top 48 bits, which must differ between blocks of one pool. */
    uint64_t a = (uint64_t)(uintptr_t)b;
    return soma__base_check_word(a ^ (a << 32) ^ soma__tail_key);
}
/* The fence's value: the tag with its bytes' low 7 bits flipped (a check
 * word too, and not the tail word's). */
#define SOMA_TAIL_FENCE_FLIP 0x7f7f7f7f7f7f7f7full
static inline uint64_t soma__tail_fence_value(const void *b)
{
    return soma__tail_tag(b) ^ SOMA_TAIL_FENCE_FLIP;
}
static inline uint64_t *soma__tail_word(const void *b, size_t size)
{
    return (uint64_t *)((uintptr_t)b + size - sizeof(uint64_t));
}
static inline uint64_t *soma__tail_fence(const void *b, size_t n)
{
    return (uint64_t *)((uintptr_t)b + ((n + 7) & ~(size_t)7));
}

/* b, a block of class c (medium), now holds n bytes asked. */
static inline void soma__tail_set(void *b, unsigned c, size_t n)
{
    uint64_t tag = soma__tail_tag(b);
    __atomic_store_n(soma__tail_fence(b, n), tag ^ SOMA_TAIL_FENCE_FLIP, __ATOMIC_RELAXED);
    __atomic_store_n(soma__tail_word(b, soma__sizeclass_size(c)),
                     (tag & ~(uint64_t)SOMA_TAIL_ASKED) | n, __ATOMIC_RELAXED);
}

/* b, a medium block of `size` bytes, is carved: its tail word says 0
 * bytes asked, until malloc writes both words. */
static inline void soma__tail_set_carved(void *b, size_t size)
{
    __atomic_store_n(soma__tail_word(b, size), soma__tail_tag(b) & ~(uint64_t)SOMA_TAIL_ASKED,
                     __ATOMIC_RELAXED);
}

/* Is w, read from the tail word of b, b's (its tag, whatever n)? */
static inline int soma__tail_ours(uint64_t w, const void *b)
{
    return ((w ^ soma__tail_tag(b)) & ~(uint64_t)SOMA_TAIL_ASKED) == 0;
}

/* The bytes asked of b, a block of `size` bytes, as its tail word says;
 * SIZE_MAX when the word is not b's (something wrote over it), or says 0
 * (carved, never handed out: a live medium block holds more than 512). */
static inline size_t soma__tail_asked(const void *b, size_t size)
{
    uint64_t w = __atomic_load_n(soma__tail_word(b, size), __ATOMIC_RELAXED);
    size_t n = (size_t)(w & SOMA_TAIL_ASKED);
    return soma__tail_ours(w, b) && n - 1 < size - SOMA_MEDIUM_TAIL ? n : SIZE_MAX;
}

/* Stop the program (tail.c): b's tail word is not b's; b's fence (at n,
 * reading `word`) is overwritten; the tail word before b is not its
 * neighbour's. */
SOMA_INTERNAL _Noreturn __attribute__((cold)) void
soma__tail_fatal_tail(const char *fn, const pool_t *pool, const void *b, size_t size);
SOMA_INTERNAL _Noreturn __attribute__((cold)) void
soma__tail_fatal_fence(const char *fn, const pool_t *pool, const void *b, size_t size, size_t n,
                       uint64_t word);
SOMA_INTERNAL _Noreturn __attribute__((cold)) void
soma__tail_fatal_before(const char *fn, const pool_t *pool, const void *b, size_t size);

/* The block's own words: its tail word (n from it) and its fence. */
static inline size_t soma__tail_own(const pool_t *pool, const void *b, size_t size,
                                    const char *fn)
{
    size_t n = soma__tail_asked(b, size);
    if (SOMA_UNLIKELY(n == SIZE_MAX))
        soma__tail_fatal_tail(fn, pool, b, size);
    uint64_t fence = __atomic_load_n(soma__tail_fence(b, n), __ATOMIC_RELAXED);
    if (SOMA_UNLIKELY(fence != soma__tail_fence_value(b)))
        soma__tail_fatal_fence(fn, pool, b, size, n, fence);
    return n;
}

/* soma__tail_check, inline (the owner's free: malloc.c). */
static inline size_t soma__tail_check_inline(const pool_t *pool, const void *b, const char *fn)
{
    size_t size = soma__sizeclass_size(pool->szidx);
    size_t n = soma__tail_own(pool, b, size, fn);
    if ((const char *)b == pool->base + SOMA_POOL_OVERHEAD) {
        if (SOMA_UNLIKELY(!soma__pool_canary_ok(pool)))
            soma__pool_fatal_canary(fn, pool, b);
    } else {
        /* the block before's tail word: its tag, whatever its size asked */
        const char *prev = (const char *)b - size;
        if (SOMA_UNLIKELY(!soma__tail_ours(
                __atomic_load_n(soma__tail_word(prev, size), __ATOMIC_RELAXED), prev)))
            soma__tail_fatal_before(fn, pool, b, size);
    }
    return n;
}

/*
 * A small block's tail (the tailed twins, base/config.h: the small classes
 * whose requests leave 8 bytes of the block free).  Its last 8 bytes hold
 * the block's tag, written when its pool carves it and never again: the
 * program is told the block holds s - 8 bytes (malloc_usable_size, a
 * realloc in place), and a free block links the next through its first
 * word only, so the tag stays whole while the block is free and while it
 * is in use, and every free of the block (the owner's fast path, another
 * thread's, realloc) compares it, at no cost to malloc.  An overflow past
 * the bytes the block holds, or an underflow from the block after it,
 * changes it (glibc finds the same in its next chunk's header).  The
 * plain twin, for requests that fill the block, has none.  Read and
 * written whole, relaxed, as the medium tail word.
 */
/* The small tail of b: its address and a secret of its own, every byte's
 * top bit set (soma__base_check_word's reason; the OR reads the constant
 * from memory: link.c).  The address keeps one block's tail, copied over
 * another's by an overflow, from passing there. */
static inline uint64_t soma__tail_small_tag(const void *b)
{
    return ((uint64_t)(uintptr_t)b ^ soma__small_tail_key) | soma__check_high;
}
static inline void soma__tail_small_set(void *b, size_t size)
{
    __atomic_store_n(soma__tail_word(b, size), soma__tail_small_tag(b), __ATOMIC_RELAXED);
}
/* Is b's small tail whole?  (b: a block of `size` bytes of a tailed twin) */
static inline int soma__tail_small_ok(const void *b, size_t size)
{
    return __atomic_load_n(soma__tail_word(b, size), __ATOMIC_RELAXED) == soma__tail_small_tag(b);
}
/* Stop the program: b's small tail is not its tag (found by the pool's
 * owner, or not: pool.h, soma__pool_fatal_if_unused). */
SOMA_INTERNAL _Noreturn __attribute__((cold)) void
soma__tail_fatal_small(const char *fn, const pool_t *pool, const void *b, int owner);
/* The one check of a small block's tail, for every path that frees or
 * reallocates one (malloc/fastpath.h, pool.c, malloc.c): b, a block of
 * pool, of either twin, by fn (the pool's owner, or not).  Without a
 * branch on the twin: a branch that follows the sizes freed is
 * mispredicted on every other free of a program whose sizes are mixed
 * (lifo1 of bench_small took 1.3 times as long that way).  A plain
 * block's first word is read instead, and the result masked away.
 * c: pool's class, a small one. */
static inline void soma__tail_small_check_any(const pool_t *pool, size_t c, const void *b,
                                              const char *fn, int owner)
{
    /* a tailed twin's (c even, 8c + 16 bytes) last word, word c + 1; a
     * plain one's first, word 0: the line the push writes next, never a
     * line of its own (another thread's free would pull it across) */
    size_t odd = c & 1;
    const uint64_t *at = (const uint64_t *)b + ((c + 1) & ((uint64_t)odd - 1));
    uint64_t w = __atomic_load_n(at, __ATOMIC_RELAXED);
    /* the difference, masked away for a plain twin */
    if (SOMA_UNLIKELY(((w ^ soma__tail_small_tag(b)) & ((uint64_t)odd - 1)) != 0))
        soma__tail_fatal_small(fn, pool, b, owner);
}

/* b (the start of a live block of pool, a medium one) is freed by fn:
 * its tail word, its fence and the word before it are checked; returns
 * the bytes asked of it.  Stops the program, saying which was
 * overwritten, if one was. */
SOMA_INTERNAL size_t soma__tail_check(const pool_t *pool, const void *b, const char *fn);
/* The same, for a block that stays live (realloc, which rewrites the fence
 * next): its own tail word and fence, not its neighbour's. */
SOMA_INTERNAL size_t soma__tail_check_own(const pool_t *pool, const void *b, const char *fn);
/* soma_usable_size of b: what its class holds (its size less the tail).
 * Its own words are checked, and the fence moves to that end: a program
 * told it may use those bytes must be able to (redis's strings and lists,
 * for one, grow into them without a realloc). */
SOMA_INTERNAL size_t soma__tail_usable(const pool_t *pool, void *b, const char *fn);
#endif

#endif /* SOMA_TAIL_H */
