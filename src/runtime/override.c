/*
 * override.c: soma as the process's malloc.  Built only into
 * libsoma-override.so, for LD_PRELOAD (or for linking first).
 *
 * Every entry point of the C library's allocator is defined here, the glibc
 * internal names (__libc_*) and the obsolete ones included: a program or
 * library that reaches one we did not define would get glibc's memory and
 * hand it to our free (jemalloc 5.3.0 crashed that way on pvalloc).  Small
 * requests are soma's; the rest go to glibc's own functions, found with
 * dlsym(RTLD_NEXT) (os/sys.c), and come back through the arena map when freed.
 *
 * glibc's semantics are kept exactly (the matrix in the ecosystem checklist):
 * every failed allocation is NULL with ENOMEM, free never changes errno,
 * realloc(p, 0) frees p and returns NULL, a bad alignment is EINVAL with the
 * out-pointer untouched, every pointer is 16-byte aligned.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "malloc/malloc.h"
#include "os/os.h"

#define EXPORT __attribute__((visibility("default")))

EXPORT SOMA_ENTRY void *malloc(size_t size)
{
    return soma_malloc(size);
}

EXPORT void free(void *p)
{
    soma_free(p);
}

EXPORT void cfree(void *p)
{
    soma_free(p);
}

EXPORT SOMA_ENTRY void *calloc(size_t n, size_t size)
{
    return soma_calloc(n, size);
}

EXPORT SOMA_ENTRY void *realloc(void *p, size_t size)
{
    return soma_realloc(p, size);
}

EXPORT SOMA_ENTRY void *reallocarray(void *p, size_t n, size_t size)
{
    size_t total;
    if (soma__base_mul_overflow(n, size, &total))
        return NULL;
    return soma_realloc(p, total);
}

EXPORT size_t malloc_usable_size(void *p)
{
    return soma_usable_size(p);
}

EXPORT SOMA_ENTRY int posix_memalign(void **out, size_t alignment, size_t size)
{
    if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0)
        return EINVAL; /* *out untouched */
    int saved = errno;
    void *p = soma_aligned_alloc(alignment, size);
    if (p == NULL) {
        int err = errno;
        errno = saved;
        return err ? err : ENOMEM;
    }
    errno = saved;
    *out = p;
    return 0;
}

EXPORT SOMA_ENTRY void *aligned_alloc(size_t alignment, size_t size)
{
    return soma_aligned_alloc(alignment, size);
}

/* glibc's memalign rounds an alignment that is not a power of two up to
 * the next one, rather than failing. */
EXPORT SOMA_ENTRY void *memalign(size_t alignment, size_t size)
{
    if (alignment & (alignment - 1)) {
        size_t a = 1;
        while (a < alignment && a != 0)
            a <<= 1;
        if (a == 0) {
            errno = EINVAL;
            return NULL;
        }
        alignment = a;
    }
    return soma_aligned_alloc(alignment ? alignment : 1, size);
}

static size_t page_size(void)
{
    static size_t page;
    if (page == 0)
        page = (size_t)sysconf(_SC_PAGESIZE);
    return page;
}

EXPORT SOMA_ENTRY void *valloc(size_t size)
{
    return soma_aligned_alloc(page_size(), size);
}

EXPORT SOMA_ENTRY void *pvalloc(size_t size)
{
    size_t page = page_size();
    size_t rounded = (size + page - 1) & ~(page - 1);
    if (rounded < size) {
        errno = ENOMEM;
        return NULL;
    }
    return soma_aligned_alloc(page, rounded ? rounded : page);
}

/* The glibc-internal names, for RTLD_DEEPBIND libraries and code that calls
 * them directly. */
EXPORT SOMA_ENTRY void *__libc_malloc(size_t size)
{
    return soma_malloc(size);
}
EXPORT void __libc_free(void *p)
{
    soma_free(p);
}
EXPORT void __libc_cfree(void *p)
{
    soma_free(p);
}
EXPORT SOMA_ENTRY void *__libc_calloc(size_t n, size_t size)
{
    return soma_calloc(n, size);
}
EXPORT SOMA_ENTRY void *__libc_realloc(void *p, size_t size)
{
    return soma_realloc(p, size);
}
EXPORT SOMA_ENTRY void *__libc_memalign(size_t alignment, size_t size)
{
    return memalign(alignment, size);
}
EXPORT SOMA_ENTRY void *__libc_valloc(size_t size)
{
    return valloc(size);
}
EXPORT SOMA_ENTRY void *__libc_pvalloc(size_t size)
{
    return pvalloc(size);
}
EXPORT SOMA_ENTRY int __posix_memalign(void **out, size_t alignment, size_t size)
{
    return posix_memalign(out, alignment, size);
}

/* Introspection and tuning: soma has nothing of glibc's to tune, so these
 * report and tune glibc's allocator, which still serves the large requests;
 * malloc_stats adds soma's own dump. */
EXPORT struct mallinfo2 mallinfo2(void)
{
    return soma__sys_mallinfo2();
}

EXPORT struct mallinfo mallinfo(void)
{
    struct mallinfo2 m2 = soma__sys_mallinfo2();
    struct mallinfo m = {
        .arena = (int)m2.arena,
        .ordblks = (int)m2.ordblks,
        .smblks = (int)m2.smblks,
        .hblks = (int)m2.hblks,
        .hblkhd = (int)m2.hblkhd,
        .usmblks = (int)m2.usmblks,
        .fsmblks = (int)m2.fsmblks,
        .uordblks = (int)m2.uordblks,
        .fordblks = (int)m2.fordblks,
        .keepcost = (int)m2.keepcost,
    };
    return m;
}

EXPORT void malloc_stats(void)
{
    soma_stats_print(stderr);
    soma__sys_malloc_stats();
}

EXPORT int malloc_info(int options, FILE *out)
{
    return soma__sys_malloc_info(options, out);
}

EXPORT int mallopt(int param, int value)
{
    return soma__sys_mallopt(param, value);
}

/* glibc's: give back what can be, 1 if anything went.  soma's part is
 * everything it keeps for reuse (soma_purge), the system allocator's is
 * its own trim, for the blocks it holds (pad is its business). */
EXPORT int malloc_trim(size_t pad)
{
    size_t ours = soma_purge(1);
    return soma__sys_malloc_trim(pad) || ours > 0;
}
