/*
 * os.c: the OS memory primitives; the only place soma makes system calls for
 * memory.  Failures come back as NULL with errno = ENOMEM, never as aborts.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/mman.h>

#include "internal.h"

void *soma__os_map(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        errno = ENOMEM;
        return NULL;
    }
    return p;
}

/*
 * A mapping aligned to `alignment` (a power of two, a multiple of the page).
 * mmap only promises page alignment.  Asking for exactly `size` first usually
 * fails to be aligned, so we over-map by `alignment` and trim the head and the
 * tail: three calls, but only when an arena is created, which is rare.
 * CPython does not do this and so loses one pool in every misaligned arena
 * ("bytes lost to arena alignment"); soma's arenas lose none.
 */
void *soma__os_map_aligned(size_t size, size_t alignment)
{
    size_t span = size + alignment;
    if (span < size) {
        errno = ENOMEM;
        return NULL;
    }
    char *raw = soma__os_map(span);
    if (raw == NULL)
        return NULL;
    uintptr_t base = ((uintptr_t)raw + alignment - 1) & ~(uintptr_t)(alignment - 1);
    size_t head = base - (uintptr_t)raw;
    size_t tail = span - head - size;
    if (head)
        munmap(raw, head);
    if (tail)
        munmap((char *)base + size, tail);
    return (void *)base;
}

void soma__os_unmap(void *p, size_t size)
{
    /* munmap can only fail for bad arguments, which would be a bug of ours;
     * there is nothing useful to do about it at runtime. */
    (void)munmap(p, size);
}
