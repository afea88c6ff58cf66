/*
 * large.c: blocks soma takes from the system allocator (sys.c): requests
 * above the medium classes, alignments above 16, and the rare small request
 * made when soma's address range is full.  They are soma's blocks too, and
 * the statistics count them ("Large blocks"), so each carries a 16-byte
 * tag in front of it:
 *
 *     raw (from the system)          p (handed out, 16-aligned)
 *     |<-- 2^shift bytes -->|
 *     [ ...padding... | tag ][ the caller's n bytes ... ]
 *                     ^ p - 16:  word 0  (uintptr_t)p ^ key
 *                                word 1  n | shift << 56
 *
 * shift is 4 (the tag alone) for an ordinary block, log2(alignment) for an
 * aligned one, whose raw block is over-allocated by the alignment.  key is
 * random per process (the kernel's AT_RANDOM bytes), so a pointer that
 * soma never tagged (memory from malloc before soma was loaded, or from a
 * library bound to glibc with RTLD_DEEPBIND) is recognised as foreign: the
 * 8 bytes in front of it would have to equal its own address xor a secret.
 * Such pointers go to the system allocator untouched and are not counted.
 *
 * Counters: live blocks and their requested bytes, and blocks ever made;
 * relaxed atomics, changed only here, never on the small or medium paths.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <sys/auxv.h>

#include "internal.h"

#define TAG 16
#define SIZE_BITS 56
#define SIZE_MASK (((uint64_t)1 << SIZE_BITS) - 1)

static _Atomic size_t live_count, live_bytes, made_total;
static _Atomic uintptr_t tag_key;

static uintptr_t key(void)
{
    uintptr_t k = atomic_load_explicit(&tag_key, memory_order_relaxed);
    if (SOMA_LIKELY(k != 0))
        return k;
    const unsigned char *r = (const unsigned char *)getauxval(AT_RANDOM);
    for (size_t i = 0; r != NULL && i < sizeof k; i++)
        k = k << 8 | r[i];
    k |= 1; /* never 0, which means "not yet" */
    atomic_store_explicit(&tag_key, k, memory_order_relaxed);
    return k;
}

static void *tag(void *raw, unsigned shift, size_t n)
{
    if (raw == NULL)
        return NULL;
    char *p = (char *)raw + ((size_t)1 << shift);
    uint64_t *t = (uint64_t *)(p - TAG);
    t[0] = (uintptr_t)p ^ key();
    t[1] = (uint64_t)n | (uint64_t)shift << SIZE_BITS;
    atomic_fetch_add_explicit(&live_count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&live_bytes, n, memory_order_relaxed);
    atomic_fetch_add_explicit(&made_total, 1, memory_order_relaxed);
    return p;
}

/* 1 if p is a block tag() made (p: not in soma's arenas, not NULL).  For a
 * foreign block the 16 bytes read are the system allocator's chunk header:
 * AddressSanitizer's allocator keeps them poisoned, hence the exemption. */
__attribute__((no_sanitize_address)) static int tagged(const void *p)
{
    if (((uintptr_t)p & 15) != 0)
        return 0;
    const uint64_t *t = (const uint64_t *)((const char *)p - TAG);
    return t[0] == ((uintptr_t)p ^ key());
}

static size_t tag_size(const void *p)
{
    return (size_t)(((const uint64_t *)((const char *)p - TAG))[1] & SIZE_MASK);
}

static unsigned tag_shift(const void *p)
{
    return (unsigned)(((const uint64_t *)((const char *)p - TAG))[1] >> SIZE_BITS);
}

static void *raw_of(const void *p)
{
    return (char *)p - ((size_t)1 << tag_shift(p));
}

/* Forget p's tag (so that a stale copy of it cannot match again) and its
 * counts; returns its raw block. */
static void *untag(void *p)
{
    void *raw = raw_of(p);
    size_t n = tag_size(p);
    ((uint64_t *)((char *)p - TAG))[0] = 0;
    atomic_fetch_sub_explicit(&live_count, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&live_bytes, n, memory_order_relaxed);
    return raw;
}

void *soma__large_malloc(size_t n)
{
    if (n > SIZE_MASK - TAG) {
        errno = ENOMEM;
        return NULL;
    }
    return tag(soma__sys_malloc(n + TAG), 4, n);
}

void *soma__large_calloc(size_t n)
{
    if (n > SIZE_MASK - TAG) {
        errno = ENOMEM;
        return NULL;
    }
    return tag(soma__sys_calloc(1, n + TAG), 4, n);
}

void *soma__large_aligned_alloc(size_t alignment, size_t n)
{
    if (alignment <= SOMA_ALIGNMENT)
        return soma__large_malloc(n);
    unsigned shift = (unsigned)__builtin_ctzl(alignment);
    if (alignment > SIZE_MASK || n > SIZE_MASK - alignment) {
        errno = ENOMEM;
        return NULL;
    }
    return tag(soma__sys_aligned_alloc(alignment, n + alignment), shift, n);
}

void soma__large_free(void *p)
{
    soma__sys_free(tagged(p) ? untag(p) : p);
}

size_t soma__large_usable_size(const void *p)
{
    if (!tagged(p))
        return soma__sys_usable_size(p);
    return soma__sys_usable_size(raw_of(p)) - ((size_t)1 << tag_shift(p));
}

void *soma__large_realloc(void *p, size_t n)
{
    if (!tagged(p))
        return soma__sys_realloc(p, n); /* not soma's: it stays the system's */
    if (n > SIZE_MASK - TAG) {
        errno = ENOMEM;
        return NULL;
    }
    size_t old = tag_size(p);
    if (tag_shift(p) != 4) {
        /* An aligned block: the system's realloc would not keep the
         * alignment.  Move it into a plain one. */
        void *q = soma__large_malloc(n);
        if (q == NULL)
            return NULL;
        memcpy(q, p, old < n ? old : n);
        soma__large_free(p);
        return q;
    }
    char *raw = soma__sys_realloc(raw_of(p), n + TAG);
    if (raw == NULL)
        return NULL; /* p untouched, still counted */
    char *q = raw + TAG;
    uint64_t *t = (uint64_t *)raw;
    t[0] = (uintptr_t)q ^ key();
    t[1] = (uint64_t)n | (uint64_t)4 << SIZE_BITS;
    atomic_fetch_add_explicit(&live_bytes, n, memory_order_relaxed);
    atomic_fetch_sub_explicit(&live_bytes, old, memory_order_relaxed);
    return q;
}

void soma__large_counts(size_t *count, size_t *bytes, size_t *total)
{
    *count = atomic_load_explicit(&live_count, memory_order_relaxed);
    *bytes = atomic_load_explicit(&live_bytes, memory_order_relaxed);
    *total = atomic_load_explicit(&made_total, memory_order_relaxed);
}
