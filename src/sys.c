/*
 * sys.c: the system allocator, for what soma does not serve itself: requests
 * above the small threshold, alignments above 16, and pointers that were
 * never soma's (memory from malloc may be passed to soma_free).
 *
 * Keeping these calls in one file leaves one place to change when soma itself
 * becomes the process's malloc (the LD_PRELOAD override), where "the system
 * allocator" can no longer be reached under the name malloc.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <errno.h>
#include <stdlib.h>

#include "internal.h"

void *soma__sys_malloc(size_t size)
{
    return malloc(size);
}

void *soma__sys_calloc(size_t n, size_t size)
{
    return calloc(n, size);
}

void *soma__sys_realloc(void *p, size_t size)
{
    return realloc(p, size);
}

void soma__sys_free(void *p)
{
    free(p);
}

size_t soma__sys_usable_size(const void *p)
{
    return malloc_usable_size((void *)p);
}

void *soma__sys_aligned_alloc(size_t alignment, size_t size)
{
    void *p = NULL;
    int rc = posix_memalign(&p, alignment, size);
    if (rc != 0) {
        errno = rc;
        return NULL;
    }
    return p;
}
