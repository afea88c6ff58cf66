/*
 * debug_misuse: one memory mistake per run, chosen by argv[1], for
 * test_debug.py to run under SOMA_DEBUG and read the diagnosis of.
 *
 * Built twice: against the library (soma_* calls, explicit heaps too) and,
 * with DEBUG_MISUSE_LIBC, as a plain C program calling malloc and free, for
 * the LD_PRELOAD override and `soma run --debug`.  Before the mistake it
 * prints "block P size N" on stderr, so the test knows what the message
 * must name.  Each mistake is written through a volatile pointer, as a
 * real bug would be: the compiler must not see it and drop it.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The mistakes are the point: gcc's own warnings about them stay quiet. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuse-after-free"
#pragma GCC diagnostic ignored "-Wfree-nonheap-object"
#pragma GCC diagnostic ignored "-Warray-bounds"
#endif

#ifdef DEBUG_MISUSE_LIBC
#include <dlfcn.h>
#include <malloc.h>
#include "soma.h" /* soma_stats, for a case that finds soma_stats_get with dlsym */
#define MALLOC malloc
#define CALLOC calloc
#define REALLOC realloc
#define FREE free
#define ALIGNED aligned_alloc
#define USABLE malloc_usable_size
#else
#include "soma.h"
#define MALLOC soma_malloc
#define CALLOC soma_calloc
#define REALLOC soma_realloc
#define FREE soma_free
#define ALIGNED soma_aligned_alloc
#define USABLE soma_usable_size
#endif

static void say(void *p, size_t n)
{
    fprintf(stderr, "block %p size %zu\n", p, n);
}

/* The pointer, hidden from the compiler's own checks (-Warray-bounds,
 * -Wuse-after-free, -Wfree-nonheap-object): these mistakes are the point. */
static void *launder(void *p)
{
    __asm__ volatile("" : "+r"(p));
    return p;
}

__attribute__((noinline)) static void poke(void *p, long off, unsigned char v)
{
    ((volatile unsigned char *)launder(p))[off] = v;
}

__attribute__((noinline)) static unsigned char peek(void *p, long off)
{
    return ((volatile unsigned char *)launder(p))[off];
}

/* Blocks live beside the victim, so that a pool is not simply emptied. */
static void *neighbours[8];
static void keep_neighbours(size_t n)
{
    for (int i = 0; i < 8; i++)
        neighbours[i] = MALLOC(n);
}

/* Fill the quarantine with other frees, so the victim leaves it.  (The
 * pointer goes through a volatile: a compiler that knows malloc would
 * drop a malloc/free pair nobody looks at.) */
static void *volatile churned;
static void churn(size_t total)
{
    for (size_t done = 0; done < total; done += 4096) {
        churned = MALLOC(4000);
        FREE(churned);
    }
}

/* Blocks made by a constructor that runs before soma's own (priority 101
 * comes first): they must be debug blocks like the rest (lib build). */
#ifndef DEBUG_MISUSE_LIBC
static void *early_small, *early_large;
__attribute__((constructor(101))) static void early(void)
{
    early_small = soma_malloc(40);
    early_large = soma_malloc(100000);
    memset(early_small, 1, 40);
    memset(early_large, 2, 100000);
}
#endif

/* Traffic from threads that start, free each other's blocks and exit. */
static void *volatile handed[64];
static void *churn_thread(void *arg)
{
    size_t k = (size_t)arg;
    for (int round = 0; round < 200; round++) {
        for (int i = 0; i < 16; i++) {
            void *old = handed[(k * 16 + (size_t)i) % 64];
            handed[(k * 16 + (size_t)i) % 64] = MALLOC((size_t)(16 + (round * 7 + i) % 900));
            FREE(old); /* at first, a block of the last wave's thread: its heap an orphan */
        }
    }
    return NULL;
}

static atomic_int stop_spinning;
static void *spin_thread(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_spinning))
        FREE(MALLOC(64));
    return NULL;
}

/* The leak report's allocation sites (exit-leaks): named in its frames,
 * since this program is linked with -rdynamic.  Each does more after its
 * call, so the call is not a tail call and the function keeps its frame. */
__attribute__((noinline)) void *leaky_table(size_t n, int fill)
{
    void *p = MALLOC(n);
    memset(p, fill, n);
    return p;
}
__attribute__((noinline)) void *leaky_zeros(size_t n)
{
    unsigned char *p = CALLOC(n, 1);
    p[0] = 1;
    return p;
}
__attribute__((noinline)) void *leaky_grow(void *p, size_t n)
{
    unsigned char *q = REALLOC(p, n);
    q[n - 1] = 2;
    return q;
}
static void *volatile kept[16];

#ifdef DEBUG_MISUSE_LIBC
/* Exported (-rdynamic): a diagnosis names it. */
char misuse_global[64];
static atomic_int stop_opening, opened;
/* dlopen and dlclose of a library that allocates in its constructor, over
 * and over: the dynamic loader holds its lock while it allocates. */
static void *opener_thread(void *arg)
{
    while (!atomic_load(&stop_opening)) {
        void *h = dlopen((const char *)arg, RTLD_NOW);
        if (h == NULL) {
            fprintf(stderr, "debug_misuse: dlopen: %s\n", dlerror());
            exit(1);
        }
        dlclose(h);
        atomic_fetch_add(&opened, 1);
        usleep(20); /* lets the loader's lock go now and then: no starving the frees */
    }
    return NULL;
}
#endif

/* Freed while the process exits, before soma's check: not leaks. */
static void *volatile freed_by_destructor, *volatile freed_by_atexit;
__attribute__((destructor)) static void free_at_exit(void)
{
    FREE(freed_by_destructor);
}
static void free_in_atexit(void)
{
    FREE(freed_by_atexit);
}

static int run(const char *what)
{
    if (strcmp(what, "clean") == 0) {
        /* No false alarm: every size, realloc up and down, calloc, aligned,
         * write every byte asked for, free everything. */
        void *p[600];
        for (int i = 0; i < 600; i++) {
            size_t n = (size_t)(i * 37 % 9000);
            p[i] = MALLOC(n);
            if (p[i] == NULL || USABLE(p[i]) < n)
                return 2;
#ifndef DEBUG_MISUSE_LIBC
            if (soma_debug_mode() && soma_usable_size(p[i]) != n) /* the size asked */
                return 2;
#endif
            memset(p[i], i & 0xff, n);
        }
        for (int i = 0; i < 600; i += 3) {
            size_t n = (size_t)(i * 37 % 9000);
            p[i] = REALLOC(p[i], n / 2 + 1);
            for (size_t k = 0; k < n / 2 + 1 && k < n; k++)
                if (((unsigned char *)p[i])[k] != (i & 0xff))
                    return 3;
        }
        unsigned char *z = CALLOC(100, 3);
        for (int k = 0; k < 300; k++)
            if (z[k] != 0)
                return 4;
        void *a = ALIGNED(256, 100);
        if (a == NULL || (size_t)a % 256 != 0)
            return 5;
        memset(a, 1, 100);
        FREE(a);
        FREE(z);
        for (int i = 0; i < 600; i++)
            FREE(p[i]);
#ifndef DEBUG_MISUSE_LIBC
        if (soma_debug_check() != 0)
            return 6;
#endif
        return 0;
    }
    if (strcmp(what, "threads") == 0) {
        /* No false alarm while threads come and go (their exits collect
         * and trim their heaps) and, in debug mode, the check runs
         * meanwhile.  Outside debug mode it may run only while no other
         * thread allocates (soma.h): the owners' fast paths change their
         * pools without a lock, and a check among them reads them half
         * changed (under SOMA_GUARD_SAMPLE=2 it said so in 1 run in 40). */
        for (int wave = 0; wave < 6; wave++) {
            pthread_t t[4];
            for (size_t k = 0; k < 4; k++)
                pthread_create(&t[k], NULL, churn_thread, (void *)k);
#ifndef DEBUG_MISUSE_LIBC
            for (int i = 0; i < 20 && soma_debug_mode() != 0; i++)
                if (soma_debug_check() != 0)
                    return 7;
#endif
            for (int k = 0; k < 4; k++)
                pthread_join(t[k], NULL);
        }
        for (int i = 0; i < 64; i++)
            FREE(handed[i]);
#ifndef DEBUG_MISUSE_LIBC
        if (soma_debug_check() != 0)
            return 8;
#endif
        return 0;
    }
    if (strcmp(what, "fork") == 0) {
        /* A child forked while another thread allocates can allocate. */
        pthread_t t;
        pthread_create(&t, NULL, spin_thread, NULL);
        int bad = 0;
        for (int i = 0; i < 20 && !bad; i++) {
            pid_t pid = fork();
            if (pid == 0) {
                alarm(10); /* a hang is a failure, not a stuck test */
                void *p = MALLOC(100);
                memset(p, 3, 100);
                FREE(p);
                _exit(0);
            }
            int st = 0;
            waitpid(pid, &st, 0);
            bad = !WIFEXITED(st) || WEXITSTATUS(st) != 0;
        }
        atomic_store(&stop_spinning, 1);
        pthread_join(t, NULL);
        return bad ? 9 : 0;
    }
    if (strcmp(what, "overflow") == 0) {
        keep_neighbours(24);
        char *p = MALLOC(24);
        say(p, 24);
        memset(p, 'x', 24);
        poke(p, 24, 'A'); /* one byte past: inside the class's rounding */
        FREE(p);
        return 0;
    }
    if (strcmp(what, "underflow") == 0) {
        char *p = MALLOC(100);
        say(p, 100);
        poke(p, -1, 'U');
        FREE(p);
        return 0;
    }
    if (strcmp(what, "double-free") == 0) {
        keep_neighbours(48);
        void *p = MALLOC(40);
        say(p, 40);
        FREE(p);
        FREE(launder(p));
        return 0;
    }
    if (strcmp(what, "double-free-late") == 0) {
        /* The block has left the quarantine and is back in its pool. */
        void *p = MALLOC(40);
        say(p, 40);
        FREE(p);
        churn((size_t)4 << 20);
        FREE(launder(p));
        return 0;
    }
    if (strcmp(what, "bad-pointer") == 0) {
        char *p = MALLOC(64);
        say(p, 64);
        FREE(launder(p + 16));
        return 0;
    }
    if (strcmp(what, "write-after-free") == 0) {
        char *p = MALLOC(32);
        say(p, 32);
        FREE(p);
        poke(p, 5, 'W');
        churn((size_t)4 << 20); /* it leaves the quarantine: the fill is checked */
        return 0;
    }
    if (strcmp(what, "read-after-free") == 0) {
        /* Not an error soma can see; the fill makes it visible: 0xdd. */
        char *p = MALLOC(32);
        say(p, 32);
        FREE(p);
        printf("%02x\n", peek(p, 0));
        return 0;
    }
    if (strcmp(what, "realloc-overflow") == 0) {
        char *p = MALLOC(10);
        say(p, 10);
        poke(p, 12, 'R');
        /* laundered: clang turns free(realloc(p, n)) into free(p), and
         * the diagnosis expected is realloc's */
        p = launder(REALLOC(p, 2000));
        FREE(p);
        return 0;
    }
    if (strcmp(what, "large-overflow") == 0) {
        char *p = MALLOC(100000);
        say(p, 100000);
        poke(p, 100003, 'L');
        FREE(p);
        return 0;
    }
    if (strcmp(what, "aligned-underflow") == 0) {
        char *p = ALIGNED(4096, 300);
        say(p, 300);
        poke(p, -2, 'a');
        FREE(p);
        return 0;
    }
    if (strcmp(what, "usable-write") == 0) {
        /* No mistake: a program may use all that malloc_usable_size says. */
        char *p = MALLOC(20);
        size_t n = USABLE(p);
        memset(p, 'u', n);
        int ok = p[n - 1] == 'u';
        FREE(p);
        return ok ? 0 : 13;
    }
    if (strcmp(what, "leak") == 0) {
        /* Three blocks of 100 bytes, lost: a leak checker must say so. */
        for (int i = 0; i < 3; i++) {
            churned = MALLOC(100);
            memset(churned, i, 100);
        }
        churned = NULL;
        return 0;
    }
    /* ---- found at exit: blocks never freed, or still in the quarantine ---- */
    if (strcmp(what, "exit-overflow") == 0) {
        keep_neighbours(24);
        char *p = MALLOC(24);
        say(p, 24);
        memset(p, 'x', 24);
        poke(p, 24, 'A'); /* one byte past, and never freed */
        kept[0] = p;
        return 0;
    }
    if (strcmp(what, "exit-underflow") == 0) {
        char *p = MALLOC(100);
        say(p, 100);
        poke(p, -1, 'U');
        kept[0] = p;
        return 0;
    }
    if (strcmp(what, "exit-large-overflow") == 0) {
        char *p = MALLOC(100000);
        say(p, 100000);
        poke(p, 100003, 'L');
        kept[0] = p;
        return 0;
    }
    if (strcmp(what, "exit-write-after-free") == 0) {
        keep_neighbours(32);
        char *p = MALLOC(32);
        say(p, 32);
        FREE(p);
        poke(p, 5, 'W'); /* and the block is still in the quarantine at exit */
        return 0;
    }
    if (strcmp(what, "exit-leaks") == 0) {
#ifndef DEBUG_MISUSE_LIBC
        soma_free(early_small); /* so that the report holds this case's blocks alone */
        soma_free(early_large);
        soma_heap *h = soma_heap_new();
        kept[0] = soma_heap_malloc(h, 50);
#endif
        for (int i = 0; i < 5; i++)
            kept[1 + i] = leaky_table(300, i);
        for (int i = 0; i < 2; i++)
            kept[6 + i] = leaky_zeros(1000);
        kept[8] = leaky_grow(MALLOC(10), 4000);
        /* Freed, during exit, by the program itself: not leaks. */
        freed_by_destructor = MALLOC(777);
        freed_by_atexit = MALLOC(555);
        atexit(free_in_atexit);
        printf("exit-leaks: the program's last line\n"); /* stdout, buffered when piped */
        return 0;
    }
    if (strcmp(what, "exit-threads") == 0) {
        /* Threads still allocating while the process exits: no false alarm. */
        pthread_t t[2];
        for (int i = 0; i < 2; i++)
            pthread_create(&t[i], NULL, spin_thread, NULL);
        for (int i = 0; i < 16; i++)
            kept[i] = MALLOC(64);
        return 0;
    }
#ifdef DEBUG_MISUSE_LIBC
    if (strcmp(what, "destroyed-heap-live") == 0) {
        /* No mistake: blocks left in an explicit heap when it is destroyed
         * are gone with it, not leaked.  (The override exports soma's own
         * API too; this program finds it at run time.) */
        void *(*heap_new)(void) = (void *(*)(void))dlsym(RTLD_DEFAULT, "soma_heap_new");
        void *(*heap_malloc)(void *, size_t) =
            (void *(*)(void *, size_t))dlsym(RTLD_DEFAULT, "soma_heap_malloc");
        void (*heap_destroy)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "soma_heap_destroy");
        if (heap_new == NULL || heap_malloc == NULL || heap_destroy == NULL)
            return 3;
        void *h = heap_new();
        for (int i = 0; i < 100; i++)
            memset(heap_malloc(h, (size_t)(16 + i * 8)), i, 16);
        heap_destroy(h);
        return 0;
    }
#endif
    if (strcmp(what, "read-after-free-large") == 0 || strcmp(what, "write-after-free-large") == 0) {
        /* A large block's pages are sealed while it waits in the
         * quarantine: the access faults, and the handler names the block.
         * With SOMA_DEBUG=report the program goes on. */
        size_t n = (size_t)256 << 10;
        unsigned char *p = MALLOC(n);
        say(p, n);
        memset(p, 'x', n);
        FREE(p);
        if (what[0] == 'r')
            printf("read %d\n", peek(p, 5000));
        else
            poke(p, 5000, 'w');
        puts("went on");
        return 0;
    }
    if (strcmp(what, "underflow-large") == 0) {
        /* 100 bytes before a large block: past its header, in the pad of
         * the page before its bytes (guard bytes too). */
        size_t n = (size_t)256 << 10;
        unsigned char *p = MALLOC(n);
        say(p, n);
        poke(p, -100, 'u');
        FREE(p);
        return 0;
    }
#ifndef DEBUG_MISUSE_LIBC
    if (strcmp(what, "read-then-write-large") == 0) {
        /* SOMA_DEBUG=report: the read is reported and the block's pages
         * opened; the write after it is found by the check. */
        size_t n = (size_t)256 << 10;
        unsigned char *p = MALLOC(n);
        say(p, n);
        FREE(p);
        printf("read %d\n", peek(p, 100));
        poke(p, 200, 'w');
        printf("the check found %zu\n", soma_debug_check());
        return 0;
    }
#endif
    if (strcmp(what, "uninitialised") == 0) {
        char *p = MALLOC(64);
        say(p, 64);
        if (peek(p, 10) == 'x') /* never written: a decision on garbage */
            puts("x");
        FREE(p);
        return 0;
    }
    if (strcmp(what, "usable-after-free") == 0) {
        void *p = MALLOC(70);
        say(p, 70);
        FREE(p);
        return (int)USABLE(launder(p));
    }
#ifdef DEBUG_MISUSE_LIBC
    if (strcmp(what, "free-global") == 0) {
        /* A global is no heap block: said so, with the object and symbol. */
        fprintf(stderr, "global %p\n", (void *)misuse_global);
        FREE(launder(misuse_global + 8));
        return 0;
    }
    if (strcmp(what, "realloc-global-guarded") == 0) {
        /* SOMA_DEBUG=report with SOMA_GUARD_SAMPLE=1: a realloc's new
         * block is made (guarded) before debug mode's lock, and given
         * back when the old pointer turns out to be no block: reported,
         * NULL with EINVAL, and no guarded block left live. */
        void (*stats_get)(soma_stats *) =
            (void (*)(soma_stats *))dlsym(RTLD_DEFAULT, "soma_stats_get");
        if (stats_get == NULL)
            return 3;
        static soma_stats before, after;
        stats_get(&before);
        errno = 0;
        void *q = REALLOC(launder(misuse_global + 8), 100);
        int err = errno;
        stats_get(&after);
        printf("realloc %s errno %s, guarded in use %zu then %zu, made %zu then %zu\n",
               q == NULL ? "NULL" : "a block", err == EINVAL ? "EINVAL" : "other",
               before.guarded.blocks_in_use, after.guarded.blocks_in_use,
               before.guarded.blocks_allocated_total, after.guarded.blocks_allocated_total);
        return 0;
    }
    if (strcmp(what, "free-stack") == 0) {
        char local[32];
        fprintf(stderr, "local %p\n", (void *)local);
        FREE(launder(local));
        return 0;
    }
    if (strcmp(what, "free-global-dlopen") == 0) {
        /* SOMA_DEBUG=report: the same mistake while another thread opens
         * and closes a library (SOMA_TEST_DLLIB).  The diagnosis must not
         * wait for the loader's lock under debug mode's: that thread holds
         * it while it allocates, waiting for ours. */
        pthread_t t;
        if (pthread_create(&t, NULL, opener_thread, getenv("SOMA_TEST_DLLIB")) != 0)
            return 1;
        int frees = 0;
        while ((frees < 100 || atomic_load(&opened) < 100) && frees < 1000000) {
            FREE(launder(misuse_global + 8));
            frees++;
        }
        atomic_store(&stop_opening, 1);
        pthread_join(t, NULL);
        printf("done: %d frees\n", frees);
        return 0;
    }
#endif
#ifndef DEBUG_MISUSE_LIBC
    if (strcmp(what, "check") == 0) {
        /* soma_debug_check finds the overflow of a live block at once. */
        char *p = soma_malloc(200);
        say(p, 200);
        poke(p, 203, 'C');
        soma_debug_check();
        return 0;
    }
    if (strcmp(what, "early") == 0) {
        /* The constructor's blocks are debug blocks: checked, no alarm. */
        if (soma_debug_mode() && soma_usable_size(early_large) != 100000)
            return 10;
        if (soma_debug_check() != 0)
            return 11;
        soma_free(early_small);
        soma_free(early_large);
        return soma_debug_check() != 0 ? 12 : 0;
    }
    if (strcmp(what, "destroy-twice") == 0) {
        soma_heap *h = soma_heap_new();
        say(soma_heap_malloc(h, 30), 30);
        soma_heap_destroy(h);
        soma_heap_destroy(h);
        return 0;
    }
    if (strcmp(what, "buried-heap") == 0) {
        /* Debug mode keeps 8 destroyed heaps' arenas; the ninth destroy
         * after it gives this one's back: a late free of its block lies
         * in an arena soma has given back. */
        soma_heap *h = soma_heap_new();
        void *p = soma_heap_malloc(h, 50);
        say(p, 50);
        soma_heap_destroy(h);
        for (int i = 0; i < 9; i++) /* empty: no arena takes the slot again */
            soma_heap_destroy(soma_heap_new());
        soma_free(launder(p));
        return 0;
    }
    if (strcmp(what, "destroyed-heap") == 0) {
        soma_heap *h = soma_heap_new();
        void *p = soma_heap_malloc(h, 50);
        say(p, 50);
        soma_heap_destroy(h);
        soma_free(launder(p)); /* a block of a heap that is gone */
        return 0;
    }
    if (strcmp(what, "heap-overflow") == 0) {
        soma_heap *h = soma_heap_new();
        char *p = soma_heap_calloc(h, 1, 64);
        say(p, 64);
        poke(p, 64, 'H');
        p = soma_heap_realloc(h, p, 100);
        soma_free(p);
        soma_heap_destroy(h);
        return 0;
    }
    if (strcmp(what, "report") == 0) {
        /* SOMA_DEBUG=report: three mistakes, three reports, and on. */
        char *p = soma_malloc(24);
        poke(p, 30, 'x');
        soma_free(p);
        void *q = soma_malloc(24);
        soma_free(q);
        soma_free(launder(q));
        char *r = soma_malloc(16);
        soma_free(launder(r + 32));
        printf("still running, %zu more found by the check\n", soma_debug_check());
        return 0;
    }
#endif
    fprintf(stderr, "debug_misuse: unknown case %s\n", what);
    return 64;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: debug_misuse CASE\n");
        return 64;
    }
    return run(argv[1]);
}
