/*
 * track.h: telling a memory checker which of soma's bytes the program may
 * touch.
 *
 * soma carves its blocks out of memory it maps itself, so a checker that
 * watches malloc sees one big mapping and nothing wrong inside it: an
 * overflow into the next block, a read after free, a leak, all pass
 * (ecosystem checklist, section 5).  These hooks describe the blocks to
 * the checker, in two builds:
 *
 *   SOMA_TRACK_VALGRIND   (the libsoma-override-valgrind.so build): memcheck
 *                         client requests.  A block handed out is a
 *                         MALLOCLIKE block of the size asked, freed it is
 *                         FREELIKE, the rest of a pool is NOACCESS: memcheck
 *                         then reports overflows, reads and writes after
 *                         free, uses of uninitialised bytes and leaks of
 *                         soma's blocks as it does for its own.
 *   AddressSanitizer      (any build with -fsanitize=address, such as CI's):
 *                         the bytes of a block beyond the size asked, freed
 *                         blocks and never-used ones are poisoned, so ASan
 *                         reports an overflow or a use after free of a soma
 *                         block as "use-after-poison".  (Leaks: LeakSanitizer
 *                         knows only its own allocator's blocks; run the
 *                         valgrind build for those.)
 *
 * Only small and medium blocks, the ones soma carves; large ones come from
 * the system allocator, which is the checker's own in both cases.  Debug
 * mode (malloc/debug.c) does its own checking with the bytes around its blocks,
 * so there every hook does nothing.  In the other builds they are empty
 * inline functions: no cost.
 *
 * soma itself must touch a free block's first word (the free-list link,
 * pool/link.h; the remote stack, pool/pool.c): it opens the word for the access and
 * closes it again (track_open / track_close).
 */
#ifndef SOMA_TRACK_H
#define SOMA_TRACK_H

#include <stddef.h>

#include "base/options.h"

#if defined(SOMA_TRACK_VALGRIND)
#include <valgrind/memcheck.h>
#define SOMA_TRACKING 1
#elif defined(__SANITIZE_ADDRESS__)
#define SOMA_TRACK_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SOMA_TRACK_ASAN 1
#endif
#endif

#ifdef SOMA_TRACK_ASAN
#include <sanitizer/asan_interface.h>
#define SOMA_TRACKING 1
#endif

#ifndef SOMA_TRACKING
#define SOMA_TRACKING 0
#endif
#define SOMA_TRACK_MAX_BLOCK 8192 /* at least the largest class (base/config.h) */


/* n bytes at p are a block the program now owns (undefined contents). */
static inline void soma__track_alloc(void *p, size_t n)
{
#if defined(SOMA_TRACK_VALGRIND)
    if (!soma__options.debug)
        VALGRIND_MALLOCLIKE_BLOCK(p, n, 0, 0);
#elif defined(SOMA_TRACK_ASAN)
    if (!soma__options.debug)
        ASAN_UNPOISON_MEMORY_REGION(p, n);
#else
    (void)p, (void)n;
#endif
}

/* The block at p (size bytes, its whole class) is back: no access. */
static inline void soma__track_free(void *p, size_t size)
{
#if defined(SOMA_TRACK_VALGRIND)
    (void)size;
    if (!soma__options.debug)
        VALGRIND_FREELIKE_BLOCK(p, 0);
#elif defined(SOMA_TRACK_ASAN)
    if (!soma__options.debug)
        ASAN_POISON_MEMORY_REGION(p, size);
#else
    (void)p, (void)size;
#endif
}

/* Memory soma holds that no block of the program's covers: no access. */
static inline void soma__track_noaccess(void *p, size_t n)
{
#if defined(SOMA_TRACK_VALGRIND)
    if (!soma__options.debug)
        VALGRIND_MAKE_MEM_NOACCESS(p, n);
#elif defined(SOMA_TRACK_ASAN)
    if (!soma__options.debug)
        ASAN_POISON_MEMORY_REGION(p, n);
#else
    (void)p, (void)n;
#endif
}

/* A fresh mapping (an arena): whatever an earlier one at these addresses
 * left in the checker's books is void. */
static inline void soma__track_fresh(void *p, size_t n)
{
#if defined(SOMA_TRACK_VALGRIND)
    VALGRIND_MAKE_MEM_DEFINED(p, n);
#elif defined(SOMA_TRACK_ASAN)
    ASAN_UNPOISON_MEMORY_REGION(p, n);
#else
    (void)p, (void)n;
#endif
}

/* How many bytes from p the program was given (its size asked, which soma
 * does not keep), at most `have`: realloc copies that many.  The checker's
 * books say: the first byte it would object to. */
static inline size_t soma__track_size(const void *p, size_t have)
{
#if defined(SOMA_TRACK_VALGRIND)
    if (soma__options.debug || RUNNING_ON_VALGRIND == 0)
        return have;
    /* GET_VBITS fails (3), without a report, when a byte is not
     * addressable; the addressable bytes are a prefix: bisect. */
    unsigned char bits[SOMA_TRACK_MAX_BLOCK];
    size_t lo = 0, hi = have < sizeof bits ? have : sizeof bits;
    while (lo < hi) {
        size_t mid = lo + (hi - lo + 1) / 2;
        if (VALGRIND_GET_VBITS(p, bits, mid) == 3)
            hi = mid - 1;
        else
            lo = mid;
    }
    return lo;
#elif defined(SOMA_TRACK_ASAN)
    if (soma__options.debug)
        return have;
    void *bad = __asan_region_is_poisoned((void *)p, have);
    return bad == NULL ? have : (size_t)((const char *)bad - (const char *)p);
#else
    (void)p;
    return have;
#endif
}

/* realloc in place: the block at p (a whole class of `have` bytes) was
 * `old` bytes for the program, and is now `n`. */
static inline void soma__track_resize(void *p, size_t old, size_t n, size_t have)
{
#if defined(SOMA_TRACK_VALGRIND)
    (void)have;
    if (!soma__options.debug)
        VALGRIND_RESIZEINPLACE_BLOCK(p, old, n, 0);
#elif defined(SOMA_TRACK_ASAN)
    (void)old;
    if (!soma__options.debug) {
        ASAN_POISON_MEMORY_REGION(p, have);
        ASAN_UNPOISON_MEMORY_REGION(p, n);
    }
#else
    (void)p, (void)old, (void)n, (void)have;
#endif
}

/* soma's own access to the first word of a free block. */
static inline void soma__track_open(const void *p)
{
#if defined(SOMA_TRACK_VALGRIND)
    if (!soma__options.debug)
        VALGRIND_MAKE_MEM_DEFINED(p, sizeof(void *));
#elif defined(SOMA_TRACK_ASAN)
    if (!soma__options.debug)
        ASAN_UNPOISON_MEMORY_REGION(p, sizeof(void *));
#else
    (void)p;
#endif
}

static inline void soma__track_close(const void *p)
{
#if defined(SOMA_TRACK_VALGRIND)
    if (!soma__options.debug)
        VALGRIND_MAKE_MEM_NOACCESS(p, sizeof(void *));
#elif defined(SOMA_TRACK_ASAN)
    if (!soma__options.debug)
        ASAN_POISON_MEMORY_REGION(p, sizeof(void *));
#else
    (void)p;
#endif
}

#endif
