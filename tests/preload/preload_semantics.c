/*
 * preload_semantics.c: glibc's malloc contract, checked through the plain C
 * library names.  CTest runs it twice: as is (glibc's allocator; the
 * expectations are glibc's, so this run checks the test) and with
 * LD_PRELOAD=libsoma-override.so (soma must behave the same).  Under soma it
 * also checks that the calls really reach soma (its statistics move) and
 * that blocks cross threads safely.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <spawn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "soma.h"
#include "test.h"

/* The test keeps using a block after a realloc that failed (it must be
 * intact): that is the point, not a bug. */
#pragma GCC diagnostic ignored "-Wpragmas"
#pragma GCC diagnostic ignored "-Wunknown-warning-option"
#pragma GCC diagnostic ignored "-Wuse-after-free"

static void (*stats_get)(soma_stats *); /* soma_stats_get when preloaded */

/* Sizes the compiler cannot see, so that it does not reject the huge
 * requests these checks make on purpose. */
static size_t opaque(size_t v)
{
    volatile size_t x = v;
    return x;
}

/* A result the compiler must produce: clang removes an allocation whose
 * result is only compared with NULL, or only freed, and folds the
 * comparison (it assumes success), which a volatile store forbids. */
static void *kept(void *p)
{
    void *volatile k = p;
    return k;
}

static size_t soma_in_use(void)
{
    soma_stats st;
    stats_get(&st);
    return test_blocks_in_use(&st);
}

static void test_semantics(void)
{
    void *a = kept(malloc(0)), *b = kept(malloc(0));
    CHECK(a != NULL && b != NULL && a != b);
    free(a);
    free(b);

    errno = 1789;
    free(NULL);
    void *s = kept(malloc(24)), *l = kept(malloc(100000)), *m = kept(malloc(1 << 22));
    free(s);
    free(l);
    free(m);
    CHECK_EQ(errno, 1789);

    free(malloc(8)); /* glibc bug 22375: a failure after a success */
    static const size_t huge[] = {SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 16383, (size_t)PTRDIFF_MAX + 1};
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        errno = 0;
        CHECK(kept(malloc(opaque(huge[i]))) == NULL);
        CHECK_EQ(errno, ENOMEM);
    }
    errno = 0;
    CHECK(kept(calloc(opaque(SIZE_MAX / 2), 4)) == NULL);
    CHECK_EQ(errno, ENOMEM);
    for (size_t n = 1; n <= 8; n *= 2) {
        errno = 0;
        CHECK(kept(calloc(n, opaque(SIZE_MAX / n))) == NULL);
        CHECK_EQ(errno, ENOMEM);
    }
    char *p = malloc(40);
    memset(p, 'x', 40);
    errno = 0;
    CHECK(realloc(p, opaque(SIZE_MAX)) == NULL);
    CHECK_EQ(errno, ENOMEM);
    errno = 0;
    CHECK(reallocarray(p, opaque(SIZE_MAX / 2), 4) == NULL);
    CHECK_EQ(errno, ENOMEM);
    CHECK_EQ(p[39], 'x'); /* p kept */
    CHECK(realloc(p, 0) == NULL); /* frees p */
    void *r0 = kept(realloc(NULL, 0));
    CHECK(r0 != NULL);
    free(r0);
    errno = 0;
    void *ra = kept(reallocarray(NULL, 0, 16));
    CHECK(ra != NULL);
    CHECK_EQ(errno, 0);
    free(ra);

    /* calloc of a recycled dirty block is zero. */
    for (size_t size = 1; size <= 600; size += 7) {
        unsigned char *d = malloc(size);
        memset(d, 0xab, size);
        free(d);
        unsigned char *z = calloc(1, size);
        for (size_t k = 0; k < size; k++)
            if (!CHECK_EQ(z[k], 0))
                break;
        free(z);
    }

    void *out = (void *)0x1234;
    CHECK_EQ(posix_memalign(&out, 3, 16), EINVAL);
    CHECK_EQ(posix_memalign(&out, 4, 16), EINVAL);
    CHECK(out == (void *)0x1234);
    CHECK_EQ(posix_memalign(&out, 64, 0), 0);
    CHECK_EQ((uintptr_t)out % 64, 0);
    free(out);
    out = (void *)0x1234;
    CHECK_EQ(posix_memalign(&out, 64, opaque(SIZE_MAX)), ENOMEM);
    CHECK(out == (void *)0x1234);

    void *m3 = memalign(opaque(3), 16); /* rounded up to 4 */
    CHECK(m3 != NULL && (uintptr_t)m3 % 4 == 0);
    free(m3);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    void *v = valloc(10), *pv = pvalloc(1);
    CHECK(v != NULL && (uintptr_t)v % page == 0);
    CHECK(pv != NULL && (uintptr_t)pv % page == 0);
    CHECK_GE(malloc_usable_size(pv), page);
    free(v);
    free(pv);
    errno = 0;
    CHECK(kept(valloc(opaque(SIZE_MAX))) == NULL);
    CHECK_EQ(errno, ENOMEM);
    errno = 0;
    CHECK(kept(pvalloc(opaque(SIZE_MAX))) == NULL);
    CHECK_EQ(errno, ENOMEM);
    errno = 0;
    CHECK(kept(memalign(64, opaque(SIZE_MAX))) == NULL);
    CHECK_EQ(errno, ENOMEM);
    void *al = kept(aligned_alloc(1, 64));
    CHECK(al != NULL);
    free(al);
    void *al2 = aligned_alloc(64, 100); /* not a multiple: accepted */
    CHECK(al2 != NULL && (uintptr_t)al2 % 64 == 0);
    free(al2);

    CHECK_EQ(malloc_usable_size(NULL), 0);
    for (size_t size = 1; size < 5000; size += 13) {
        unsigned char *q = malloc(size);
        CHECK_EQ((uintptr_t)q % 16, 0);
        size_t u = malloc_usable_size(q);
        CHECK_GE(u, size);
        memset(q, 1, u); /* the whole usable size is writable */
        free(q);
    }
}

/* Under soma: strdup and friends inside libc reach soma's malloc. */
static void test_interposition(void)
{
    size_t before = soma_in_use();
    char *dup[100];
    for (int i = 0; i < 100; i++)
        dup[i] = strdup("interposed");
    CHECK_EQ(soma_in_use(), before + 100);
    for (int i = 0; i < 100; i++)
        free(dup[i]);
    CHECK_EQ(soma_in_use(), before);
    /* Every entry point is soma's, not glibc's. */
    static const char *names[] = {"malloc", "free", "calloc", "realloc", "reallocarray",
                                  "posix_memalign", "aligned_alloc", "memalign", "valloc",
                                  "pvalloc", "malloc_usable_size", "cfree", "__libc_malloc",
                                  "__libc_free", "__libc_calloc", "__libc_realloc",
                                  "__libc_memalign", "__libc_valloc", "__libc_pvalloc",
                                  "__posix_memalign", "mallinfo", "mallinfo2", "malloc_stats",
                                  "malloc_info", "mallopt", "malloc_trim"};
    void *self = dlsym(RTLD_DEFAULT, "soma_malloc");
    Dl_info home, other;
    CHECK(dladdr(self, &home) != 0);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        void *f = dlsym(RTLD_DEFAULT, names[i]);
        if (!CHECK(f != NULL && dladdr(f, &other) != 0 && other.dli_fbase == home.dli_fbase))
            test_note("  %s does not resolve to soma", names[i]);
    }
}

enum { NT = 4, PER = 20000 };
static void *handoff[NT][PER];

static void *alloc_worker(void *arg)
{
    size_t t = (size_t)(uintptr_t)arg;
    for (size_t i = 0; i < PER; i++) {
        size_t size = 1 + (i * 31 + t) % 700;
        unsigned char *p = malloc(size);
        memset(p, (int)((i + t) & 0xff), size);
        handoff[t][i] = p;
    }
    return NULL;
}

static void *free_worker(void *arg)
{
    size_t t = (size_t)(uintptr_t)arg, from = (t + 1) % NT; /* another thread's blocks */
    for (size_t i = 0; i < PER; i++) {
        unsigned char *p = handoff[from][i];
        size_t size = 1 + (i * 31 + from) % 700;
        for (size_t k = 0; k < size; k++)
            if (!CHECK_EQ(p[k], (unsigned char)((i + from) & 0xff))) {
                test_note("  a block changed on its way between threads");
                break;
            }
        free(p);
    }
    return NULL;
}

static void test_threads(void)
{
    pthread_t th[NT];
    for (size_t t = 0; t < NT; t++)
        pthread_create(&th[t], NULL, alloc_worker, (void *)(uintptr_t)t);
    for (size_t t = 0; t < NT; t++)
        pthread_join(th[t], NULL);
    for (size_t t = 0; t < NT; t++)
        pthread_create(&th[t], NULL, free_worker, (void *)(uintptr_t)t);
    for (size_t t = 0; t < NT; t++)
        pthread_join(th[t], NULL);
}

/* Allocation after soma's own per-thread cleanup: a pthread key destructor
 * (registered after soma's, so it may run after it) and an atexit handler
 * both allocate, write and free.  The thread's exit must not lose or
 * corrupt anything; the process must exit 0. */
static pthread_key_t late_key;
static _Atomic int late_ok;

static void late_destructor(void *arg)
{
    char *p = malloc(100), *q = malloc(3000);
    memset(p, 7, 100);
    memset(q, 8, 3000);
    late_ok += p[99] == 7 && q[2999] == 8;
    free(q);
    free(p);
    free(arg);
}

static void *late_thread(void *arg)
{
    (void)arg;
    void *mine = malloc(64);
    pthread_setspecific(late_key, malloc(32));
    free(mine);
    return NULL;
}

static void at_exit_alloc(void)
{
    for (int i = 0; i < 1000; i++)
        free(malloc(1 + (size_t)i % 700));
}

static void test_late_allocations(void)
{
    pthread_key_create(&late_key, late_destructor);
    for (int round = 0; round < 20; round++) {
        pthread_t t;
        pthread_create(&t, NULL, late_thread, NULL);
        pthread_join(t, NULL);
    }
    CHECK_EQ((int)late_ok, 20);
    atexit(at_exit_alloc);
}

/* dlopen of a library that allocates in its constructor, dlclose, and the
 * same library under RTLD_DEEPBIND; posix_spawn and vfork.  The library's
 * path is in SOMA_TEST_DLLIB. */
static void test_process(void)
{
    const char *path = getenv("SOMA_TEST_DLLIB");
    if (!CHECK(path != NULL))
        return;
    size_t before = stats_get ? soma_in_use() : 0;
    void *h = dlopen(path, RTLD_NOW);
    if (!CHECK(h != NULL)) {
        test_note("  dlopen: %s", dlerror());
        return;
    }
    int (*intact)(void) = (int (*)(void))dlsym(h, "dl_blocks_intact");
    void *(*dl_malloc)(size_t) = (void *(*)(size_t))dlsym(h, "dl_malloc");
    void (*dl_free)(void *) = (void (*)(void *))dlsym(h, "dl_free");
    CHECK(intact != NULL && dl_malloc != NULL && dl_free != NULL);
    CHECK_EQ(intact(), 50);
    /* Under soma the constructor's 50 blocks are soma's (all <= 400 bytes),
     * beside what the dynamic linker allocated for the library itself. */
    size_t opened = stats_get ? soma_in_use() : 0;
    if (stats_get)
        CHECK_GE(opened, before + 50);
    /* Blocks cross the library boundary both ways. */
    void *mine = malloc(100), *theirs = dl_malloc(100);
    dl_free(mine);
    free(theirs);
    CHECK_EQ(dlclose(h), 0); /* the destructor frees the 50 */
    if (stats_get)
        CHECK_EQ(soma_in_use(), before);

    /* RTLD_DEEPBIND: the library's own references bind first to its own
     * dependencies, so its malloc is the C library's, not soma's.  Its blocks
     * are foreign to soma, and soma's free hands them to the C library: a
     * block the library allocates may be freed by the program.  The other
     * way round is not supported: the library's free is glibc's, which does
     * not know soma's blocks (README says so). */
    h = dlopen(path, RTLD_NOW | RTLD_DEEPBIND);
    if (!CHECK(h != NULL))
        return;
    intact = (int (*)(void))dlsym(h, "dl_blocks_intact");
    dl_malloc = (void *(*)(size_t))dlsym(h, "dl_malloc");
    CHECK_EQ(intact(), 50);
    if (stats_get) /* the dynamic linker's blocks again, but not the 50 */
        CHECK_EQ(soma_in_use(), opened - 50);
    for (int i = 0; i < 100; i++) {
        char *p = dl_malloc(1 + (size_t)i * 5);
        memset(p, 'd', 1 + (size_t)i * 5);
        CHECK(malloc_usable_size(p) >= 1 + (size_t)i * 5);
        free(p);
    }
    CHECK_EQ(dlclose(h), 0);

    /* posix_spawn and vfork + exec, the child inheriting LD_PRELOAD. */
    extern char **environ;
    pid_t pid;
    int st = 0;
    char *argv[] = {"sh", "-c", "x=$(echo spawned | tr a-z A-Z); [ \"$x\" = SPAWNED ] && exit 7",
                    NULL};
    CHECK_EQ(posix_spawnp(&pid, "sh", NULL, NULL, argv, environ), 0);
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 7);
    pid = vfork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", "ls / | sort | grep -q usr && exit 9", (char *)NULL);
        _exit(127);
    }
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 9);
}

int main(void)
{
    test_begin("preload_semantics");
    stats_get = (void (*)(soma_stats *))dlsym(RTLD_DEFAULT, "soma_stats_get");
    test_note("allocator: %s", stats_get ? "soma (preloaded)" : "the C library's");
    test_semantics();
    test_threads();
    test_late_allocations();
    test_process();
    if (stats_get)
        test_interposition();
    return test_summary();
}
