/*
 * os.c: the OS memory primitives; the only place soma makes system calls for
 * memory.  Failures come back as NULL with errno = ENOMEM, never as aborts.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/mman.h>

#include "os/os.h"

void *soma__os_map(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        errno = ENOMEM;
        return NULL;
    }
    return p;
}

/* Addresses only: no access, no memory, no commit charge. */
void *soma__os_reserve(size_t size)
{
    void *p = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* Read-write, but NORESERVE: for a table most of which is never touched, so
 * that only the pages touched count against the commit charge. */
void *soma__os_map_sparse(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* Fresh zeroed read-write pages at [p, p+size), replacing what was there. */
int soma__os_commit(void *p, size_t size)
{
    void *q = mmap(p, size, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return q == MAP_FAILED ? -1 : 0;
}

/* [p, p+size) back to reserved: its pages return to the OS at once, its
 * addresses stay taken (no other mapping lands there) and an access faults.
 * 0; -1 when the kernel refuses (it can only for lack of memory to split
 * the mapping): the range is untouched then.  errno is kept (reached from
 * free, which never changes it). */
int soma__os_seal(void *p, size_t size)
{
    int saved = errno;
    void *q = mmap(p, size, PROT_NONE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    errno = saved;
    return q == MAP_FAILED ? -1 : 0;
}

/* Sealed, or if the kernel refuses, the pages dropped and left writable. */
void soma__os_decommit(void *p, size_t size)
{
    if (soma__os_seal(p, size) != 0) {
        int saved = errno;
        madvise(p, size, MADV_DONTNEED);
        errno = saved;
    }
}

/* MADV_DONTNEED rather than MADV_FREE: the pages leave the resident set
 * at once, which is what a program's RSS (and the OS deciding whom to
 * kill) sees; MADV_FREE'd pages stay counted until the kernel is short of
 * memory, and soma gives pages back only after they have stayed unused
 * for the decay time, so the cheaper reuse MADV_FREE offers would rarely
 * be had (docs/DESIGN.md). */
int soma__os_purge(void *p, size_t size)
{
    int saved = errno; /* reached from free, which never changes errno */
    int r = madvise(p, size, MADV_DONTNEED);
    errno = saved;
    return r;
}

/* ThreadSanitizer intercepts mmap and munmap, and forgets the history of
 * the addresses they give or take, but not mremap: pages moved to
 * addresses another thread used before would carry that thread's accesses
 * in its books, and a block handed from thread to thread through the
 * kernel would read as a race.  Under it, mremap "fails", and soma's
 * callers take their fallbacks (a fresh mapping, a copy). */
#if defined(__SANITIZE_THREAD__)
#define NO_REMAP 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define NO_REMAP 1
#endif
#endif
#ifndef NO_REMAP
#define NO_REMAP 0
#endif

/* Resize the mapping [p, p+old) to `size` bytes: in place when shrinking
 * (the tail's pages go back) or when the addresses after it are free, else
 * (may_move) moved by the kernel, which moves the page tables and never
 * copies or faults a page.  NULL, the mapping untouched, on failure. */
void *soma__os_remap(void *p, size_t old, size_t size, int may_move)
{
    void *q = NO_REMAP ? MAP_FAILED : mremap(p, old, size, may_move ? MREMAP_MAYMOVE : 0);
    if (q == MAP_FAILED) {
        errno = ENOMEM;
        return NULL;
    }
    return q;
}

/* Move the mapping [p, p+size) to [to, to+size), replacing what was there:
 * the pages move with their contents, none is copied or faulted.  0; or -1
 * when nothing moved, [to, to+size) then mapped with fresh pages; or -2
 * when nothing moved and [to, to+size) may be unmapped.  Why the fresh
 * pages: before Linux 6.17 mremap unmapped the destination before it
 * checked the source (a source spanning several mappings fails), so a
 * failed move could leave a hole where the caller expects its block. */
int soma__os_remap_fixed(void *p, size_t size, void *to)
{
    void *q = NO_REMAP ? MAP_FAILED : mremap(p, size, size, MREMAP_MAYMOVE | MREMAP_FIXED, to);
    if (q != MAP_FAILED)
        return 0;
    q = mmap(to, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    return q == to ? -1 : -2;
}

void soma__os_unmap(void *p, size_t size)
{
    /* munmap can only fail for bad arguments, which would be a bug of ours;
     * there is nothing useful to do about it at runtime. */
    (void)munmap(p, size);
}
