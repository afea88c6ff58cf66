/*
 * sys.c: the system allocator, for what soma does not serve itself: requests
 * above the small threshold, alignments above 16, and pointers that were
 * never soma's (memory from malloc may be passed to soma_free).
 *
 * In the library (libsoma.so, libsoma.a) that is plain malloc & co.  When
 * soma *is* malloc (libsoma-override.so, built with SOMA_OVERRIDE), those
 * names are our own, so glibc's functions are looked up once with
 * dlsym(RTLD_NEXT).  dlsym may itself allocate; a request that arrives while
 * the lookup is under way on this thread is served from a small static
 * bootstrap area, and such blocks are recognised (and never given back) when
 * freed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>

#include "os/os.h"

#ifndef SOMA_OVERRIDE

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

void soma__sys_resolve(void)
{
    /* (nothing to look up: malloc & co. are the C library's) */
}

#else /* SOMA_OVERRIDE */

#include <dlfcn.h>

#include "base/start.h"

typedef struct {
    void *(*malloc)(size_t);
    void *(*calloc)(size_t, size_t);
    void *(*realloc)(void *, size_t);
    void (*free)(void *);
    size_t (*usable_size)(void *);
    int (*posix_memalign)(void **, size_t, size_t);
    struct mallinfo2 (*mallinfo2)(void);
    void (*malloc_stats)(void);
    int (*malloc_info)(int, FILE *);
    int (*mallopt)(int, int);
    int (*malloc_trim)(size_t);
} fns_t;
static fns_t real; /* written once, by the thread that sets `resolved` to 1, then 2 */

static atomic_int resolved; /* 0, 1 while `real` is written, 2 once it is */
static __thread int resolving __attribute__((tls_model("initial-exec")));

/* The bootstrap area: each block is preceded by 16 bytes holding its size. */
static _Alignas(16) char boot[64 * 1024];
static atomic_size_t boot_used;

static int in_boot(const void *p)
{
    return (const char *)p >= boot && (const char *)p < boot + sizeof boot;
}

static void *boot_alloc(size_t size)
{
    size_t need = 16 + ((size + 15) & ~(size_t)15);
    size_t at = atomic_fetch_add(&boot_used, need);
    if (size > sizeof boot || at + need > sizeof boot) {
        errno = ENOMEM;
        return NULL;
    }
    *(size_t *)(boot + at) = size;
    return boot + at + 16;
}

static size_t boot_size(const void *p)
{
    return *(const size_t *)((const char *)p - 16);
}

/* glibc's functions, once known; NULL while this thread is looking them up
 * (use the bootstrap area).  The thread that first finds them publishes
 * them in `real`; a thread that finds another still looking (or, in a
 * child forked meanwhile, never done) looks them up for itself, into its
 * own copy, and waits for nobody: it may hold the loader's lock, or be a
 * signal handler's allocation on the very thread that is publishing. */
static __thread fns_t mine __attribute__((tls_model("initial-exec")));

static const fns_t *fns(void)
{
    if (SOMA_LIKELY(atomic_load_explicit(&resolved, memory_order_acquire) == 2))
        return &real;
    if (mine.malloc != NULL)
        return &mine;
    if (resolving)
        return NULL;
    resolving = 1;
    fns_t found = {
        .malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc"),
        .calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc"),
        .realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc"),
        .free = (void (*)(void *))dlsym(RTLD_NEXT, "free"),
        .usable_size = (size_t(*)(void *))dlsym(RTLD_NEXT, "malloc_usable_size"),
        .posix_memalign = (int (*)(void **, size_t, size_t))dlsym(RTLD_NEXT, "posix_memalign"),
        .mallinfo2 = (struct mallinfo2(*)(void))dlsym(RTLD_NEXT, "mallinfo2"),
        .malloc_stats = (void (*)(void))dlsym(RTLD_NEXT, "malloc_stats"),
        .malloc_info = (int (*)(int, FILE *))dlsym(RTLD_NEXT, "malloc_info"),
        .mallopt = (int (*)(int, int))dlsym(RTLD_NEXT, "mallopt"),
        .malloc_trim = (int (*)(size_t))dlsym(RTLD_NEXT, "malloc_trim"),
    };
    resolving = 0;
    if (found.malloc == NULL || found.free == NULL || found.realloc == NULL ||
        found.calloc == NULL || found.usable_size == NULL || found.posix_memalign == NULL)
        soma__fatal("cannot find the C library's malloc (dlsym RTLD_NEXT failed)");
    int none = 0;
    if (atomic_compare_exchange_strong_explicit(&resolved, &none, 1, memory_order_relaxed,
                                                memory_order_relaxed)) {
        real = found;
        atomic_store_explicit(&resolved, 2, memory_order_release);
        return &real;
    }
    mine = found;
    return &mine;
}

void soma__sys_resolve(void)
{
    (void)fns();
}

/* A child forked while another thread was writing `real` has no such
 * thread: its threads publish them anew. */
static void sys_fork(int phase)
{
    int writing = 1;
    if (phase == SOMA_FORK_CHILD)
        atomic_compare_exchange_strong_explicit(&resolved, &writing, 0, memory_order_relaxed,
                                                memory_order_relaxed);
}
SOMA_HOOK(sys, SOMA_ORDER_SYS, NULL, sys_fork);

void *soma__sys_malloc(size_t size)
{
    const fns_t *f = fns();
    return f != NULL ? f->malloc(size) : boot_alloc(size);
}

void *soma__sys_calloc(size_t n, size_t size)
{
    const fns_t *f = fns();
    if (f != NULL)
        return f->calloc(n, size);
    return boot_alloc(n * size); /* the caller checked n * size; boot is zero */
}

void *soma__sys_realloc(void *p, size_t size)
{
    if (!in_boot(p)) {
        const fns_t *f = fns();
        return f != NULL ? f->realloc(p, size) : NULL;
    }
    void *q = soma__sys_malloc(size);
    if (q != NULL)
        memcpy(q, p, boot_size(p) < size ? boot_size(p) : size);
    return q;
}

void soma__sys_free(void *p)
{
    if (in_boot(p))
        return;
    const fns_t *f = fns();
    if (f != NULL)
        f->free(p);
}

size_t soma__sys_usable_size(const void *p)
{
    if (in_boot(p))
        return boot_size(p);
    const fns_t *f = fns();
    return f != NULL ? f->usable_size((void *)p) : 0;
}

void *soma__sys_aligned_alloc(size_t alignment, size_t size)
{
    void *p = NULL;
    const fns_t *f = fns();
    if (f == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    int rc = f->posix_memalign(&p, alignment, size);
    if (rc != 0) {
        errno = rc;
        return NULL;
    }
    return p;
}

struct mallinfo2 soma__sys_mallinfo2(void)
{
    struct mallinfo2 none = {0};
    const fns_t *f = fns();
    return f != NULL && f->mallinfo2 ? f->mallinfo2() : none;
}

void soma__sys_malloc_stats(void)
{
    const fns_t *f = fns();
    if (f != NULL && f->malloc_stats)
        f->malloc_stats();
}

int soma__sys_malloc_info(int options, FILE *out)
{
    const fns_t *f = fns();
    if (f != NULL && f->malloc_info)
        return f->malloc_info(options, out);
    errno = ENOSYS;
    return -1;
}

int soma__sys_mallopt(int param, int value)
{
    const fns_t *f = fns();
    return f != NULL && f->mallopt ? f->mallopt(param, value) : 0;
}

int soma__sys_malloc_trim(size_t pad)
{
    const fns_t *f = fns();
    return f != NULL && f->malloc_trim ? f->malloc_trim(pad) : 0;
}

#endif /* SOMA_OVERRIDE */
