/* os.h: the operating system: mappings (os.c) and the system allocator
 * (sys.c), for what soma does not serve itself. */
#ifndef SOMA_OS_H
#define SOMA_OS_H

#include "base/base.h"

/* ---- os.c: the only system calls that map memory ---- */
SOMA_INTERNAL void *soma__os_map(size_t size);
SOMA_INTERNAL void soma__os_unmap(void *p, size_t size);
/* mremap: NULL (errno = ENOMEM) and the mapping untouched on failure */
SOMA_INTERNAL void *soma__os_remap(void *p, size_t old, size_t size, int may_move);
/* mremap to a fixed address, replacing what was there: 0; -1 not moved,
 * the destination fresh pages; -2 not moved, the destination maybe gone */
SOMA_INTERNAL int soma__os_remap_fixed(void *p, size_t size, void *to);
SOMA_INTERNAL void *soma__os_reserve(size_t size);    /* addresses only; NULL on failure */
SOMA_INTERNAL void *soma__os_map_sparse(size_t size); /* read-write, NORESERVE */
SOMA_INTERNAL int soma__os_commit(void *p, size_t size);
SOMA_INTERNAL void soma__os_decommit(void *p, size_t size);
/* [p, p+size) made inaccessible, its pages given back, its addresses kept
 * reserved: 0, or -1 and the range untouched. */
SOMA_INTERNAL int soma__os_seal(void *p, size_t size);
/* [p, p+size)'s pages back to the OS, the mapping kept: they read as zeros
 * when touched again (MADV_DONTNEED).  0, or -1 when the kernel refused
 * (locked pages: mlock): then they hold what they held. */
SOMA_INTERNAL int soma__os_purge(void *p, size_t size);

/* ---- sys.c: the system allocator (glibc's, through dlsym in the override) ---- */
SOMA_INTERNAL void *soma__sys_malloc(size_t size);
SOMA_INTERNAL void *soma__sys_calloc(size_t n, size_t size);
SOMA_INTERNAL void *soma__sys_realloc(void *p, size_t size);
SOMA_INTERNAL void soma__sys_free(void *p);
SOMA_INTERNAL size_t soma__sys_usable_size(const void *p);
SOMA_INTERNAL void *soma__sys_aligned_alloc(size_t alignment, size_t size);
/* Looks the system allocator up now (the override: dlsym, which takes the
 * dynamic loader's lock) if it is not known yet; a caller about to take a
 * lock under which it may need the system allocator calls this first, so
 * that the lookup never waits for the loader while holding it (a thread
 * inside dlopen holds the loader's lock while it allocates).  */
SOMA_INTERNAL void soma__sys_resolve(void);
#ifdef SOMA_OVERRIDE
#include <malloc.h>
#include <stdio.h>
SOMA_INTERNAL struct mallinfo2 soma__sys_mallinfo2(void);
SOMA_INTERNAL void soma__sys_malloc_stats(void);
SOMA_INTERNAL int soma__sys_malloc_info(int options, FILE *out);
SOMA_INTERNAL int soma__sys_mallopt(int param, int value);
SOMA_INTERNAL int soma__sys_malloc_trim(size_t pad);
#endif

#endif /* SOMA_OS_H */
