/* link.c: the secrets of the hardening: the one the free-list links are
 * encoded with (link.h), and the blocks' check words' (pool/tail.h, large.c). */
#include <sys/random.h>
#include <time.h>

#include "base/start.h"
#include "pool/link.h"

uintptr_t soma__link_key; /* set once, at start-up, before the first pool */
uintptr_t soma__tail_key; /* the same */
uint64_t soma__small_tail_key; /* the same (pool/tail.h) */
/* A variable, not the constant: the small heads' check ORs it from memory,
 * one instruction on the free fast path where the constant takes two. */
uint64_t soma__check_high = SOMA_CHECK_HIGH;

/* From the kernel's random pool, or, should getrandom fail (seccomp, an
 * old kernel), from what ASLR and the clock make unpredictable enough to
 * keep corrupted links from decoding to chosen addresses.  Never 0, so
 * that a zeroed word is never a link. */
static void make_key(void)
{
    uintptr_t key[2] = {0, 0};
    if (getrandom(key, sizeof key, GRND_NONBLOCK) != (ssize_t)sizeof key) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        key[0] = ((uintptr_t)&ts * 0x9e3779b97f4a7c15u) ^ (uintptr_t)ts.tv_nsec ^
                 ((uintptr_t)&soma__link_key << 17);
        key[1] = (key[0] ^ (uintptr_t)ts.tv_sec) * 0xbf58476d1ce4e5b9u;
    }
    soma__link_key = key[0] | 1;
    /* Apart from the links' key: the tails' words are left in memory that
     * is handed out again (a fence past a smaller size, a freed large
     * block's first word), where a program may read them; that must not
     * tell it the links' key. */
    soma__tail_key = key[1];
    /* A small head is the block's address and this, with every byte's top
     * bit set (pool/tail.h): the tails' secret, turned so that it is not
     * the medium tags' key. */
    soma__small_tail_key = (key[1] >> 29 | key[1] << 35) & ~(uint64_t)SOMA_CHECK_HIGH;
}
SOMA_HOOK(link, SOMA_ORDER_LINK, make_key, NULL);
