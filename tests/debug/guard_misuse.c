/*
 * guard_misuse: one mistake (or one clean run) per process with guarded
 * blocks (src/malloc/guard.c), for test_guard.py to run under
 * SOMA_GUARD_SAMPLE=1, SOMA_DEBUG=guard or `soma run --debug=guard` with
 * the LD_PRELOAD override, and read the diagnosis of.
 *
 *   guard_misuse CASE [SIZE]
 *
 * Before the mistake it prints "block P size N" on stderr.  Blocks are made
 * by make_block and freed by drop_block, functions of this program that the
 * diagnosis's call stacks must name (it is linked with -rdynamic, so that
 * they have names a backtrace can show).
 */
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuse-after-free"
#pragma GCC diagnostic ignored "-Warray-bounds"
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#endif

static void *launder(void *p)
{
    __asm__ volatile("" : "+r"(p));
    return p;
}

__attribute__((noinline)) void poke(void *p, long off, unsigned char v)
{
    ((volatile unsigned char *)launder(p))[off] = v;
}

__attribute__((noinline)) unsigned char peek(void *p, long off)
{
    return ((volatile unsigned char *)launder(p))[off];
}

__attribute__((noinline)) void *make_block(size_t n)
{
    void *p = malloc(n);
    __asm__ volatile("" ::: "memory"); /* not a tail call: this frame stays */
    return p;
}

__attribute__((noinline)) void drop_block(void *p)
{
    free(launder(p));
    __asm__ volatile("" ::: "memory");
}

/* A handler of the program's own, installed after soma's: it replaces
 * soma's (own-handler), or does its work and hands the fault on to the
 * handler it replaced, as Python's faulthandler does (chained-handler). */
static struct sigaction replaced;
static int chain;
static void own_handler(int sig, siginfo_t *si, void *uc)
{
    static const char msg[] = "the program's own handler ran\n";
    write(STDERR_FILENO, msg, sizeof msg - 1);
    if (chain && (replaced.sa_flags & SA_SIGINFO)) {
        replaced.sa_sigaction(sig, si, uc);
        return;
    }
    _exit(42);
}

static void say(void *p, size_t n)
{
    fprintf(stderr, "block %p size %zu\n", p, n);
}

/* The overflow in a thread with the smallest stack there is. */
static void *overflow_thread(void *arg)
{
    size_t n = (size_t)arg;
    char *p = make_block(n);
    say(p, n);
    poke(p, (long)((n + 15) & ~(size_t)15), 'T');
    return NULL;
}

/* A guarded block of n bytes ends where its guard page starts: its end,
 * rounded up to 16, is a page boundary.  No block of soma's pools does
 * that for n = 32 (they start 48 + 32k bytes into a 16 KiB pool). */
static int guarded(const void *p, size_t n)
{
    return ((uintptr_t)p + ((n + 15) & ~(size_t)15)) % 4096 == 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    const char *what = argv[1];
    size_t n = argc > 2 ? strtoul(argv[2], NULL, 0) : 8;
    size_t rounded = (n + 15) & ~(size_t)15;

    if (strcmp(what, "overflow") == 0) {
        /* The first byte past the block's 16-byte-rounded end: the guard page. */
        char *p = make_block(n);
        say(p, n);
        memset(p, 'x', n);
        poke(p, (long)rounded, 'O');
        puts("not caught");
        return 0;
    }
    if (strcmp(what, "own-handler") == 0 || strcmp(what, "chained-handler") == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = own_handler;
        sa.sa_flags = SA_SIGINFO;
        chain = what[0] == 'c';
        sigaction(SIGSEGV, &sa, &replaced);
        char *p = make_block(n);
        say(p, n);
        poke(p, (long)rounded, 'O');
        puts("not caught");
        return 0;
    }
    if (strcmp(what, "thread-overflow") == 0) {
        pthread_attr_t at;
        pthread_t t;
        pthread_attr_init(&at);
        pthread_attr_setstacksize(&at, PTHREAD_STACK_MIN);
        if (pthread_create(&t, &at, overflow_thread, (void *)n) != 0)
            return 3;
        pthread_join(t, NULL);
        puts("not caught");
        return 0;
    }
    if (strcmp(what, "underflow") == 0) {
        /* The byte before the block's first page. */
        char *p = make_block(n);
        say(p, n);
        long off = -(long)((uintptr_t)p % 4096) - 1;
        poke(p, off, 'U');
        puts("not caught");
        return 0;
    }
    if (strcmp(what, "slack") == 0) {
        /* One byte past the end, inside the rounding: caught at free. */
        char *p = make_block(n);
        say(p, n);
        poke(p, (long)n, 'S');
        drop_block(p);
        puts("not caught");
        return 0;
    }
    if (strcmp(what, "slack-before") == 0) {
        /* One byte before the block, on its page: caught at free. */
        char *p = make_block(n);
        say(p, n);
        poke(p, -1, 'B');
        drop_block(p);
        puts("not caught");
        return 0;
    }
    if (strcmp(what, "uaf-read") == 0 || strcmp(what, "uaf-write") == 0) {
        char *p = make_block(n);
        say(p, n);
        drop_block(p);
        if (what[4] == 'w')
            poke(p, (long)n / 2, 'W');
        else
            printf("%d\n", peek(p, (long)n / 2));
        puts("not caught");
        return 0;
    }
    if (strcmp(what, "sealed-read") == 0) {
        /* Not a guarded block (run with a sample so rare that none is):
         * the first freed large block of its size, sealed (large.c). */
        char *p = malloc(n);
        if (guarded(p, n))
            return 3;
        say(p, n);
        free(p);
        printf("%d\n", peek(p, 100));
        puts("not caught");
        return 0;
    }
    if (strcmp(what, "double-free") == 0) {
        char *p = make_block(n);
        say(p, n);
        drop_block(p);
        drop_block(p);
        puts("not caught");
        return 0;
    }
    if (strcmp(what, "clean") == 0) {
        /* Every call on guarded blocks, used to their last byte. */
        size_t sizes[] = {0, 1, 8, 15, 16, 100, 4095, 4096, 4097, 70000, 262144, 3000000};
        void *keep[12];
        for (int i = 0; i < 12; i++) {
            size_t k = sizes[i];
            unsigned char *p = malloc(k);
            if (p == NULL || malloc_usable_size(p) < k)
                return 3;
            memset(p, i, k);
            keep[i] = p;
        }
        for (int i = 0; i < 12; i++) {
            size_t k = sizes[i];
            unsigned char *q = realloc(keep[i], k * 2 + 1);
            if (q == NULL)
                return 4;
            for (size_t j = 0; j < k; j++)
                if (q[j] != i)
                    return 5;
            memset(q, 7, k * 2 + 1);
            keep[i] = realloc(q, k / 3 + 1);
            if (keep[i] == NULL || ((unsigned char *)keep[i])[k / 3] != 7)
                return 6;
        }
        unsigned char *z = calloc(1000, 5);
        for (int j = 0; j < 5000; j++)
            if (z[j] != 0)
                return 7;
        size_t aligns[] = {32, 64, 4096, 65536};
        for (int i = 0; i < 4; i++) {
            unsigned char *a = aligned_alloc(aligns[i], 300);
            void *m = NULL;
            if (a == NULL || (uintptr_t)a % aligns[i] != 0 ||
                posix_memalign(&m, aligns[i], 5000) != 0 || (uintptr_t)m % aligns[i] != 0)
                return 8;
            memset(a, 1, 300);
            memset(m, 2, 5000);
            free(a);
            free(m);
        }
        free(z);
        for (int i = 0; i < 12; i++)
            free(keep[i]);
        /* Many frees and reallocations: slots are recycled. */
        for (int r = 0; r < 40000; r++) {
            void *p = malloc((size_t)(r % 300) + 1);
            memset(p, 1, (size_t)(r % 300) + 1);
            free(p);
        }
        puts("clean");
        return 0;
    }
    if (strcmp(what, "count") == 0) {
        /* How many of 20000 blocks of 32 bytes are guarded, all kept live. */
        enum { COUNT = 20000 };
        static void *blocks[COUNT];
        size_t found = 0;
        uintptr_t lo = UINTPTR_MAX, hi = 0;
        for (int i = 0; i < COUNT; i++) {
            blocks[i] = malloc(32);
            memset(blocks[i], 3, 32);
            if (guarded(blocks[i], 32)) {
                found++;
                lo = (uintptr_t)blocks[i] < lo ? (uintptr_t)blocks[i] : lo;
                hi = (uintptr_t)blocks[i] > hi ? (uintptr_t)blocks[i] : hi;
            }
        }
        printf("guarded %zu of %d, range %zu MiB\n", found, COUNT,
               found > 0 ? (size_t)((hi - lo) >> 20) : (size_t)0);
        for (int i = 0; i < COUNT; i++)
            free(blocks[i]);
        return 0;
    }
    return 2;
}
