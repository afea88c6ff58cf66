/* link.c: the secret the free-list links are encoded with (link.h). */
#include <sys/random.h>
#include <time.h>

#include "base/start.h"
#include "pool/link.h"

uintptr_t soma__link_key; /* set once, at start-up, before the first pool */

/* From the kernel's random pool, or, should getrandom fail (seccomp, an
 * old kernel), from what ASLR and the clock make unpredictable enough to
 * keep corrupted links from decoding to chosen addresses.  Never 0, so
 * that a zeroed word is never a link. */
static void make_key(void)
{
    uintptr_t key = 0;
    if (getrandom(&key, sizeof key, GRND_NONBLOCK) != (ssize_t)sizeof key) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        key = ((uintptr_t)&ts * 0x9e3779b97f4a7c15u) ^ (uintptr_t)ts.tv_nsec ^
              ((uintptr_t)&soma__link_key << 17);
    }
    soma__link_key = key | 1;
}
SOMA_HOOK(link, SOMA_ORDER_LINK, make_key, NULL);
