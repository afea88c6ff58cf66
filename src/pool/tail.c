/*
 * tail.c: a medium or small block's tail checked, and what is found wrong said
 * (tail.h has the layout and why).
 */
#include "pool/tail.h"

#if SOMA_MEDIUM_TAIL
void soma__tail_fatal_tail(const char *fn, const pool_t *pool, const void *bv, size_t size)
{
    const char *b = bv;
    /* As for a small tail, below; a medium block's many callers (free,
     * realloc, usable_size, from any thread) ask only what any thread may. */
    soma__pool_fatal_if_unused(fn, pool, b, 0);
    const uint64_t *at = soma__tail_word(b, size);
    soma__fatal("%s(%p): the last 8 bytes of the %zu-byte block (class %u), soma's, are "
                "overwritten (B+%zu: %016llx, B = the block): a write past the bytes asked of "
                "it (an overflow), or before the start of the block after it (an underflow); "
                "or it is no block in use",
                fn, (const void *)b, size, soma__sizeclass_public(pool->szidx),
                size - sizeof(uint64_t),
                (unsigned long long)__atomic_load_n(at, __ATOMIC_RELAXED));
}

void soma__tail_fatal_small(const char *fn, const pool_t *pool, const void *bv, int owner)
{
    const char *b = bv;
    /* A block freed twice has its tail whole, unless its pool emptied and
     * was set up afresh or gave its pages back: then that is the story. */
    soma__pool_fatal_if_unused(fn, pool, b, owner);
    size_t size = soma__sizeclass_size(pool->szidx);
    const uint64_t *at = soma__tail_word(b, size);
    soma__fatal("%s(%p): buffer overflow: the last 8 bytes of the %zu-byte block (class %u), "
                "soma's, are overwritten (B+%zu: %016llx, B = the block): a write past the %zu "
                "bytes it holds (an overflow), or before the start of the block after it (an "
                "underflow); or it is no block in use",
                fn, (const void *)b, size, soma__sizeclass_public(pool->szidx),
                size - sizeof(uint64_t), (unsigned long long)__atomic_load_n(at, __ATOMIC_RELAXED),
                size - SOMA_SMALL_TAIL);
}

void soma__tail_fatal_fence(const char *fn, const pool_t *pool, const void *bv, size_t size,
                            size_t n, uint64_t word)
{
    const char *b = bv;
    size_t from = (size_t)((const char *)soma__tail_fence(b, n) - b) +
                  soma__base_first_diff(word, soma__tail_fence_value(b));
    soma__fatal("%s(%p): buffer overflow: the block holds %zu bytes (the size asked, or what "
                "malloc_usable_size said), and B+%zu past them is overwritten (B = the block, "
                "%zu bytes, class %u)",
                fn, (const void *)b, n, from, size, soma__sizeclass_public(pool->szidx));
}

void soma__tail_fatal_before(const char *fn, const pool_t *pool, const void *bv, size_t size)
{
    const char *b = bv;
    const char *prev = b - size;
    soma__fatal("%s(%p): the 8 bytes before the block are overwritten: the end of the block "
                "before it (%p, %zu bytes, class %u), which soma keeps: a write before the start "
                "of this block (an underflow), or past the end of that one (an overflow, or a "
                "write after it was freed)",
                fn, (const void *)b, (const void *)prev, size,
                soma__sizeclass_public(pool->szidx));
}

size_t soma__tail_usable(const pool_t *pool, void *b, const char *fn)
{
    size_t size = soma__sizeclass_size(pool->szidx), cap = size - SOMA_MEDIUM_TAIL;
    if (soma__tail_own(pool, b, size, fn) != cap)
        soma__tail_set(b, pool->szidx, cap);
    return cap;
}

size_t soma__tail_check_own(const pool_t *pool, const void *b, const char *fn)
{
    return soma__tail_own(pool, b, soma__sizeclass_size(pool->szidx), fn);
}

size_t soma__tail_check(const pool_t *pool, const void *b, const char *fn)
{
    return soma__tail_check_inline(pool, b, fn);
}
#endif
