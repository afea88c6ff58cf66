/*
 * link.h: how a free block points to the next one (hardening).
 *
 * A free block's first word links it to the next free block of its pool.
 * That word lies inside memory the program just gave back, so a write after
 * free can change it; if the link were a plain pointer, the allocation
 * after next would return whatever address the write put there ("free-list
 * poisoning", the classic road from a use-after-free to writing anywhere).
 * With SOMA_HARDEN (the default), a link is stored encoded:
 *
 *     stored = next ^ (address of the link >> 12) ^ soma__link_key
 *
 * The key is random per process (getrandom at start-up); the address term
 * makes the same pointer encode differently in every page (glibc's
 * "safe-linking" idea, with a secret on top).  An attacker who does not
 * know the key cannot write a link that decodes to an address of his
 * choice, and a decoded link that leaves the block's own pool is caught by
 * the malloc fast path, which tests exactly that where it used to test
 * for the end: one XOR and one compare, the same branch.  (Without the
 * address term, two instructions fewer on each fast path, every link
 * would be a heap address XOR the key alone, and when the list ended in
 * NULL its end stored the key itself: one read after free of a pool's
 * last free block gave it away, and with it every other link read and the
 * pools' check words.)
 *
 * The end of a list is not NULL but the address of the pool beside the
 * block's (soma__link_end: the two pools make an aligned 32 KiB pair),
 * never a block of its own pool: the malloc fast path meets it out of the
 * pool, where it meets a corrupted link, and the refill tells them apart.
 *
 * Double free: malloc clears the link word of the block it hands out, so
 * an allocated block holds the program's data there, and a free block a
 * link that decodes to a block of its own pool or to the end, both in the
 * pool pair: one compare.  The free fast
 * path decodes the word of the block it is given: if it looks like a link,
 * the block is probably free already, and the slow path looks for it on
 * its pool's free list (pool.c); found, soma stops with a message.  A
 * program that writes, in the first word of a live block, the one value
 * that decodes into its pool costs a walk of that pool's list, nothing
 * more.
 *
 * SOMA_HARDEN=0 (cmake -DSOMA_HARDEN=OFF) stores plain pointers, clears
 * nothing and detects no double free: the build `make bench` measures
 * hardening against.  It keeps the malloc fast path's test for a link out
 * of the pool (it costs nothing there: the same branch as the end of the
 * list), so even unhardened a poisoned link cannot leave its pool; it can
 * still name a live block of the same pool, which test_harden shows.
 */
#ifndef SOMA_LINK_H
#define SOMA_LINK_H

#include <stdint.h>

#include "base/config.h" /* SOMA_POOL_SIZE */
#include "os/track.h"  /* a checker must let soma read and write the links */

#ifndef SOMA_HARDEN
#define SOMA_HARDEN 1
#endif

extern __attribute__((visibility("hidden"))) uintptr_t soma__link_key;
/* The blocks' tails' secret (pool/tail.h, malloc/large.c), made with the
 * links' key and apart from it (link.c). */
extern __attribute__((visibility("hidden"))) uintptr_t soma__tail_key;
/* The small tails' (pool/tail.h), and SOMA_CHECK_HIGH in memory (link.c). */
extern __attribute__((visibility("hidden"))) uint64_t soma__small_tail_key;
extern __attribute__((visibility("hidden"))) uint64_t soma__check_high;

static inline uintptr_t soma__link_mask(const void *slot)
{
#if SOMA_HARDEN
    return ((uintptr_t)slot >> 12) ^ soma__link_key;
#else
    (void)slot;
    return 0;
#endif
}

/* The link `word`, read from the first word of the free block at slot:
 * the next free block.  For a reader that loads the word itself
 * (pool/peek.c). */
static inline void *soma__link_decode(const void *slot, uintptr_t word)
{
    return (void *)(word ^ soma__link_mask(slot));
}

/* The next free block after the free block b. */
static inline void *soma__link_get(const void *b)
{
    soma__track_open(b);
    void *next = (void *)(*(const uintptr_t *)b ^ soma__link_mask(b));
    soma__track_close(b);
    return next;
}

/* The end of the free list of the pool that holds b (any address in it):
 * the other pool of b's aligned pair of pools, never dereferenced.  (NULL
 * as the end cost the free's double-free test a compare more: the end and
 * a link into the pool could not be told from data in one.) */
static inline void *soma__link_end(const void *b)
{
    return (void *)(((uintptr_t)b & ~(uintptr_t)(SOMA_POOL_SIZE - 1)) ^ SOMA_POOL_SIZE);
}

/* Make the free block b point to next (soma__link_end: the end of the
 * list), mask being soma__link_mask(b): the same for every block that
 * starts in one 4 KiB page, which carve (pool.c) computes once a page
 * (computed at each link, the key is read again after every store, which
 * the compiler cannot tell from a store to it). */
static inline void soma__link_set_masked(void *b, const void *next, uintptr_t mask)
{
    soma__track_open(b);
    *(uintptr_t *)b = (uintptr_t)next ^ mask;
    soma__track_close(b);
}
static inline void soma__link_set(void *b, const void *next)
{
    soma__link_set_masked(b, next, soma__link_mask(b));
}

/* The remote stack (pool.c) links blocks through the same word, plainly:
 * its blocks are not yet on any pool's list. */
static inline void *soma__link_remote_next(const void *b)
{
    soma__track_open(b);
    void *next = *(void *const *)b;
    soma__track_close(b);
    return next;
}
static inline void soma__link_remote_set(void *b, void *next)
{
    soma__track_open(b);
    *(void **)b = next;
    soma__track_close(b);
}

#ifndef SOMA_HARDEN_DF
#define SOMA_HARDEN_DF SOMA_HARDEN
#endif

/* The block b is handed out: its word no longer looks like a link. */
static inline void soma__link_clear(void *b)
{
#if SOMA_HARDEN_DF
    soma__track_open(b);
    *(uintptr_t *)b = 0;
    soma__track_close(b);
#else
    (void)b;
#endif
}

/* Does the first word of b look like a link of a free block of b's pool
 * (to another block of the pool, or the end: both in b's pair of pools)?
 * Always 0 unhardened. */
static inline int soma__link_looks_free(const void *b)
{
#if SOMA_HARDEN_DF
    uintptr_t next = (uintptr_t)soma__link_get(b);
    return (next ^ (uintptr_t)b) < 2 * (uintptr_t)SOMA_POOL_SIZE;
#else
    (void)b;
    return 0;
#endif
}

#endif
