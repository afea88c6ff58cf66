/*
 * copy_misuse: one bad copy per run, chosen by argv[1], for test_copies.py
 * to run under the override (normal and debug mode) and read the
 * diagnosis of (src/runtime/copy.c: checked copies).
 *
 * OP-SIZE (OP: memcpy memmove mempcpy memset strcpy stpcpy strcat strncpy
 * strncat; SIZE: small 24, medium 4096, large 262144 bytes asked) writes
 * 16 bytes more than malloc_usable_size says, from the block's start:
 * what the usable size is depends on the mode (the class's or mapping's
 * size in normal mode, the size asked in debug mode), so the diagnosis is
 * "runs 16 bytes past the block" in both.  Before the copy the program
 * prints "block P size N usable U" on stderr, after it "not caught".
 * Built twice: plainly, and with -O2 -D_FORTIFY_SOURCE=2 (the copies
 * through a pointer whose object the compiler cannot see stay plain
 * calls; the fortify cases reach __memcpy_chk and __strcpy_chk).
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#pragma GCC diagnostic ignored "-Warray-bounds"
#pragma GCC diagnostic ignored "-Wuse-after-free"
#endif

/* Hidden from the compiler, as a real bug's pointer and length are. */
static void *launder(void *p)
{
    __asm__ volatile("" : "+r"(p));
    return p;
}
static size_t hide(size_t n)
{
    __asm__ volatile("" : "+r"(n));
    return n;
}

static char src[600000];

/* glibc's, as a _FORTIFY_SOURCE build calls it */
extern void *__memcpy_chk(void *dest, const void *src, size_t n, size_t destlen);

static char *block(size_t n)
{
    char *p = launder(malloc(n));
    fprintf(stderr, "block %p size %zu usable %zu\n", (void *)p, n, malloc_usable_size(p));
    return p;
}

/* A string of n characters (and its NUL) in src, from its end. */
static const char *str_of(size_t n)
{
    return launder(src + sizeof src - 1 - n);
}

/* OP on a fresh block of `size` bytes, 16 bytes past what it may use. */
static int overflow(const char *op, size_t size)
{
    char *p = block(size);
    size_t u = malloc_usable_size(p), half = u / 2;
    size_t n = hide(u + 16);
    if (strcmp(op, "memcpy") == 0)
        memcpy(p, src, n);
    else if (strcmp(op, "memmove") == 0)
        memmove(p, src, n);
    else if (strcmp(op, "mempcpy") == 0)
        mempcpy(p, src, n);
    else if (strcmp(op, "memset") == 0)
        memset(p, 'x', n);
    else if (strcmp(op, "strcpy") == 0)
        strcpy(p, str_of(n - 1));
    else if (strcmp(op, "stpcpy") == 0)
        stpcpy(p, str_of(n - 1));
    else if (strcmp(op, "strncpy") == 0)
        strncpy(p, str_of(10), n);
    else if (strcmp(op, "strcat") == 0 || strcmp(op, "strncat") == 0) {
        memset(p, 'h', half);
        p[half] = '\0';
        if (strcmp(op, "strcat") == 0)
            strcat(p, str_of(n - half - 1));
        else
            strncat(p, str_of(n), n - half - 1);
    } else {
        return 64;
    }
    fprintf(stderr, "not caught\n");
    return 0;
}

/* Every copy here is legal: no diagnosis may come. */
static int clean_copies(void)
{
    static const size_t sizes[] = {1,    24,   100,  512,    513,    4096,
                                   8144, 8145, 8160, 8161, 100000, 262144};
    char stack[256];
    static char global[256];
    int bad = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        char *p = launder(malloc(n));
        size_t u = malloc_usable_size(p);
        memset(p, 'a', u);                      /* exactly the block */
        memcpy(p, src, hide(u));
        memmove(p + 1, p, hide(u - 1));         /* overlapping, inside one block */
        memmove(p, p + 1, hide(u - 1));
        mempcpy(p + u / 2, src, hide(u - u / 2)); /* from the middle to the end */
        if (u > 1) {
            strcpy(p, str_of(u - 1));          /* the NUL is the last byte */
            stpcpy(p, str_of(u - 1));
            strncpy(p, str_of(3), u);
            p[u / 2] = '\0';
            strcat(p, str_of(u - u / 2 - 1));
            p[u / 2] = '\0';
            strncat(p, str_of(u), u - u / 2 - 1);
        }
        memcpy(stack, p, sizeof stack < u ? sizeof stack : u); /* to the stack, a global */
        memcpy(global, p, sizeof global < u ? sizeof global : u);
        strcpy(stack, "to the stack");
        memset(p + u, 0, hide(0));              /* nothing, at the end */
        p = launder(realloc(p, n + 1000));      /* a realloc'd block, filled */
        size_t v = malloc_usable_size(p);
        memset(p, 'r', v);
        bad |= p[v - 1] != 'r';
        free(p);
    }
    /* A byte far into a large block (beyond the lookup's reach) and in
     * one of many. */
    size_t big = (size_t)6 << 20;
    char *q = launder(malloc(big));
    memset(q + (5 << 20), 1, hide(1 << 20));
    memcpy(q + big - 100, src, hide(100));
    free(q);
    char *many[64];
    for (int i = 0; i < 64; i++)
        many[i] = launder(malloc(20000 + (size_t)i * 4096));
    for (int i = 0; i < 64; i++)
        memset(many[i] + 7, 0, hide(malloc_usable_size(many[i]) - 7));
    for (int i = 0; i < 64; i++)
        free(many[i]);
    /* A buffer of the system allocator's would be foreign (not here: the
     * override is malloc); soma's own copies (realloc, calloc) pass too. */
    char *c = launder(calloc(100, 3));
    c = launder(realloc(c, 5000));
    free(c);
    return bad;
}

static void *clean_thread(void *arg)
{
    (void)arg;
    return (void *)(long)clean_copies();
}

/* A copy in a constructor, before main (and maybe before soma started). */
__attribute__((constructor)) static void early(int argc, char **argv)
{
    char *p = launder(malloc(40));
    memcpy(p, "early copy", 11);
    strcat(p, "!");
    free(p);
    if (argc > 1 && strcmp(argv[1], "ctor") == 0)
        overflow("memcpy", 24);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: copy_misuse CASE\n");
        return 64;
    }
    memset(src, 's', sizeof src - 1);
    const char *what = argv[1];
    char op[16];
    const char *dash = strchr(what, '-');
    if (dash != NULL && (size_t)(dash - what) < sizeof op) {
        size_t size = strcmp(dash + 1, "small") == 0    ? 24
                      : strcmp(dash + 1, "medium") == 0 ? 4096
                      : strcmp(dash + 1, "large") == 0  ? 262144
                                                        : 0;
        memcpy(op, what, (size_t)(dash - what));
        op[dash - what] = '\0';
        if (size != 0)
            return overflow(op, size);
    }
    if (strcmp(what, "before") == 0) {
        /* 8 bytes before the higher of two blocks: into its neighbour's
         * end (normal mode), into its own header (debug mode). */
        char *a = launder(malloc(24)), *b = launder(malloc(24));
        char *p = a > b ? a : b;
        fprintf(stderr, "block %p size 24 usable %zu\n", (void *)p, malloc_usable_size(p));
        memcpy(p - 8, src, hide(16));
        fprintf(stderr, "not caught\n");
        return 0;
    }
    if (strcmp(what, "after-free-small") == 0 || strcmp(what, "after-free-large") == 0) {
        char *p = block(what[11] == 's' ? 40 : 262144);
        free(p);
        memcpy(p, src, hide(8));
        fprintf(stderr, "not caught\n");
        return 0;
    }
    if (strcmp(what, "fortify") == 0 || strcmp(what, "fortify-strcpy") == 0) {
        /* The compiler sees a 64-byte member, not the 24-byte block. */
        struct big {
            char buf[64];
            char tail[8]; /* buf is not the last member: its size is known */
        } *s = (struct big *)block(24);
        size_t n = hide(malloc_usable_size(s) + 16);
        if (what[7] == '\0')
            /* _FORTIFY_SOURCE sizes mem* destinations by the whole object
             * (unknown here: gcc calls memcpy), str* ones by the member;
             * so the call a compiler makes when it knows a larger object
             * is made by hand. */
            __memcpy_chk(s->buf, src, n, sizeof s->buf);
        else
            strcpy(s->buf, str_of(n - 1));
        fprintf(stderr, "not caught\n");
        return 0;
    }
    if (strcmp(what, "fortify-glibc") == 0) {
        /* glibc's own check: the compiler knows the array's 16 bytes. */
        char local[16];
        memcpy(local, src, hide(32));
        fprintf(stderr, "not caught %d\n", local[3]);
        return 0;
    }
    if (strcmp(what, "reused") == 0) {
        /* A copy into a large block, which the quick answer remembers;
         * the block freed, a smaller one made (at the same place, from
         * the large cache): its overflow must still be caught.  (The
         * first freed mapping of its size is sealed, not cached: one is
         * freed first, so that the block's goes to the cache.) */
        free(launder(malloc((size_t)1 << 20)));
        char *old = launder(malloc((size_t)1 << 20));
        memcpy(old + 100, src, hide(1000));
        free(old);
        char *p = block(262144);
        if (p != old) {
            fprintf(stderr, "setup: the block is not where the old one was\n");
            return 3; /* not the abort expected: the test fails */
        }
        memcpy(p, src, hide(malloc_usable_size(p) + 16));
        fprintf(stderr, "not caught (old %p)\n", (void *)old);
        return 0;
    }
    if (strcmp(what, "ctor") == 0)
        return 0; /* the constructor did it */
    if (strcmp(what, "clean") == 0) {
        int bad = clean_copies();
        pthread_t t[4];
        for (int i = 0; i < 4; i++)
            pthread_create(&t[i], NULL, clean_thread, NULL);
        for (int i = 0; i < 4; i++) {
            void *r;
            pthread_join(t[i], &r);
            bad |= r != NULL;
        }
        pid_t pid = fork();
        if (pid == 0)
            _exit(clean_copies());
        int st = 0;
        waitpid(pid, &st, 0);
        bad |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
        return bad ? 9 : 0;
    }
    fprintf(stderr, "copy_misuse: unknown case %s\n", what);
    return 64;
}
