/*
 * tail.c: a medium block's head and fence, or a small block's head, checked,
 * and what is found wrong said (tail.h has the layout and why).
 */
#include "pool/tail.h"

#if SOMA_MEDIUM_TAIL
static _Noreturn void fatal_head(const char *fn, const pool_t *pool, const void *bv, size_t size)
{
    const char *b = bv;
    /* As for a small head, below; a medium block's many callers (free,
     * realloc, usable_size, from any thread) ask only what any thread may. */
    soma__pool_fatal_if_unused(fn, pool, b, 0);
    uint64_t w = __atomic_load_n(soma__tail_head(b), __ATOMIC_RELAXED);
    if (soma__tail_ours(w, b) && (w & SOMA_TAIL_ASKED) == 0) /* as carve wrote it */
        soma__fatal("%s(%p): not an allocated block: the %zu-byte block (class %u) was never "
                    "handed out",
                    fn, (const void *)b, size, soma__sizeclass_public(pool->szidx));
    /* A pool's first block: its head is the pool header's check word
     * (said so when its tag bytes changed; a size out of range alone is
     * the message below). */
    if (b == pool->base + SOMA_POOL_OVERHEAD) {
        if (!soma__tail_ours(w, b))
            soma__pool_fatal_canary(fn, pool, b);
        soma__fatal("%s(%p): the 8 bytes before the %zu-byte block (class %u), the end of its "
                    "pool's header, soma's, are overwritten (B-8: %016llx, B = the block): a "
                    "write before its start (an underflow)",
                    fn, (const void *)b, size, soma__sizeclass_public(pool->szidx),
                    (unsigned long long)w);
    }
    soma__fatal("%s(%p): the 8 bytes before the %zu-byte block (class %u), soma's, are "
                "overwritten (B-8: %016llx, B = the block): a write before its start (an "
                "underflow), or past the end of the block before it (%p: an overflow, or a "
                "write after it was freed)",
                fn, (const void *)b, size, soma__sizeclass_public(pool->szidx),
                (unsigned long long)w, (const void *)(b - size));
}

void soma__tail_fatal_small(const char *fn, const pool_t *pool, const void *bv, int owner)
{
    const char *b = bv;
    /* A block freed twice has its head whole, unless its pool emptied and
     * was set up afresh or gave its pages back: then that is the story. */
    soma__pool_fatal_if_unused(fn, pool, b, owner);
    size_t size = soma__sizeclass_size(pool->szidx);
    /* A pool's first block: its head is the pool header's check word. */
    if (b == pool->base + SOMA_POOL_OVERHEAD)
        soma__pool_fatal_canary(fn, pool, b);
    soma__fatal("%s(%p): the 8 bytes before the %zu-byte block (class %u), soma's, are "
                "overwritten (B-8: %016llx, B = the block): a write before its start (an "
                "underflow), or past the %zu bytes the block before it holds (%p: an overflow, "
                "or a write after it was freed)",
                fn, (const void *)b, size, soma__sizeclass_public(pool->szidx),
                (unsigned long long)__atomic_load_n(soma__tail_small_head(b), __ATOMIC_RELAXED),
                size - SOMA_SMALL_TAIL, (const void *)(b - size));
}

void soma__tail_fatal_small_next(const char *fn, const pool_t *pool, const void *bv)
{
    const char *b = bv;
    size_t size = soma__sizeclass_size(pool->szidx);
    const char *next = b + size;
    /* the pool's last block: no block after it to underflow */
    int last = (size_t)(next - pool->base) > soma__pool_max_offset(pool);
    soma__fatal("%s(%p): buffer overflow: the last 8 bytes of the %zu-byte block (class %u), "
                "%s, soma's, are overwritten (B+%zu: %016llx, B = the block): a write past the "
                "%zu bytes it holds (an overflow)%s",
                fn, (const void *)b, size, soma__sizeclass_public(pool->szidx),
                last ? "its pool's last" : "the next block's head", size - sizeof(uint64_t),
                (unsigned long long)__atomic_load_n(soma__tail_small_head(next),
                                                    __ATOMIC_RELAXED),
                size - SOMA_SMALL_TAIL,
                last ? "" : ", or before the start of the block after it (an underflow)");
}

static _Noreturn void fatal_fence(const char *fn, const pool_t *pool, const void *bv, size_t size,
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

void soma__tail_fatal_check(const char *fn, const pool_t *pool, const void *b, int owner)
{
    size_t size = soma__sizeclass_size(pool->szidx);
    /* A block not carved since the pool took its class (its head cleared:
     * pool.c, forget_heads) is said so, to its owner */
    if (owner && soma__pool_count(pool) != 0)
        soma__pool_fatal_if_virgin(fn, pool, b);
    size_t n = soma__tail_asked(b, size);
    if (n == SIZE_MAX)
        fatal_head(fn, pool, b, size);
    uint64_t word = __atomic_load_n(soma__tail_fence(b, n), __ATOMIC_RELAXED);
    if (word != soma__tail_fence_value(b))
        fatal_fence(fn, pool, b, size, n, word);
    soma__fatal("%s(%p): the words of the %zu-byte block (class %u) changed while it was checked",
                fn, b, size, soma__sizeclass_public(pool->szidx));
}

size_t soma__tail_usable(const pool_t *pool, void *b, const char *fn)
{
    size_t size = soma__sizeclass_size(pool->szidx), cap = size - SOMA_MEDIUM_TAIL;
    if (soma__tail_check_n(pool, b, size, fn, 0) != cap)
        soma__tail_set(b, cap);
    return cap;
}

size_t soma__tail_check(const pool_t *pool, const void *b, const char *fn)
{
    return soma__tail_check_n(pool, b, soma__sizeclass_size(pool->szidx), fn, 0);
}
#endif
