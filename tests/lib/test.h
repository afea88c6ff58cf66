/*
 * test.h: the tiny harness every test program shares.
 *
 *   CHECK(cond)            the condition must hold
 *   CHECK_EQ(a, b)         integers (compared as uintmax_t), both values printed
 *   CHECK_NE / CHECK_LE / CHECK_LT / CHECK_GE / CHECK_GT   likewise
 *   CHECK_PTR_EQ(a, b)     pointers
 *   CHECK_STR_EQ(a, b)     C strings (NULL-safe)
 *   REQUIRE(cond)          CHECK, and when it fails return 1 from the function
 *                          (a part of a test that cannot go on without it)
 *   test_note(fmt, ...)    an informational line ("# ...")
 *   test_now_ms()          CLOCK_MONOTONIC in milliseconds
 *   test_sleep_ms(ms)      sleep that long, whatever signals come
 *   test_young(t, ms, what)  may a check that something freed at t is still
 *                          kept be judged now (less than ms since)?
 *   return test_summary(); at the end of main: prints "<prog>: N passed, N failed"
 *                          and gives the exit status (1 if anything failed)
 *   test_rng ...           random numbers (rng.h)
 *
 * A failed check prints file:line, the expression and the values, and counts;
 * the program keeps going so that one run shows every failure.  To keep a long
 * loop from flooding the output, only the first TEST_MAX_REPORTS failures are
 * printed (all are counted).
 *
 * Each test program is one .c file that includes this header once.
 */
#ifndef SOMA_TEST_H
#define SOMA_TEST_H

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "soma.h"

#define TEST_MAX_REPORTS 50

static unsigned long test_passed_count;
static unsigned long test_failed_count;
static const char *test_program_name = "test";

static inline void test_fail_report(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline void test_fail_report(const char *file, int line, const char *fmt, ...)
{
    /* Called with test_lock held (TEST_FAIL_), so threads may CHECK too. */
    test_failed_count++;
    if (test_failed_count > TEST_MAX_REPORTS) {
        if (test_failed_count == TEST_MAX_REPORTS + 1)
            fprintf(stderr, "(further failures are counted but not printed)\n");
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s:%d: FAILED: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
}

/* Threads: all the counters are updated under this lock. */
#include <pthread.h>
static pthread_mutex_t test_lock = PTHREAD_MUTEX_INITIALIZER;

static inline void test_pass_(void)
{
    pthread_mutex_lock(&test_lock);
    test_passed_count++;
    pthread_mutex_unlock(&test_lock);
}

#define TEST_PASS_() test_pass_()

#define TEST_FAIL_(...)                                                                            \
    (pthread_mutex_lock(&test_lock), test_fail_report(__FILE__, __LINE__, __VA_ARGS__),            \
     pthread_mutex_unlock(&test_lock))

/* Each CHECK evaluates to 1 if it passed, 0 if it failed, so a test can stop
 * early when going on would only crash: if (!CHECK(p != NULL)) return; */
#define CHECK(cond)                                                                                \
    ((cond) ? (TEST_PASS_(), 1) : (TEST_FAIL_("CHECK(%s)", #cond), 0))

/* Integers of any type: compared by value (a negative int is less than any
 * unsigned value, unlike C's usual conversions). */
typedef struct {
    uintmax_t mag; /* the value, or its two's complement when negative */
    int neg;
} test_int_;

static inline test_int_ test_int_s_(intmax_t v)
{
    return (test_int_){(uintmax_t)v, v < 0};
}
static inline test_int_ test_int_u_(uintmax_t v)
{
    return (test_int_){v, 0};
}
/* Evaluates x once; signed types keep their sign. */
#define TEST_INT_(x)                                                                               \
    _Generic((x), char: test_int_s_, signed char: test_int_s_, short: test_int_s_,                 \
             int: test_int_s_, long: test_int_s_, long long: test_int_s_, default: test_int_u_)(x)

/* -1, 0, 1 as a <, ==, > b */
static inline int test_int_cmp_(test_int_ a, test_int_ b)
{
    if (a.neg != b.neg)
        return a.neg ? -1 : 1;
    /* same sign: two's complement order agrees with value order */
    return a.mag < b.mag ? -1 : a.mag > b.mag;
}

static inline void test_int_str_(char *buf, size_t len, test_int_ v)
{
    if (v.neg)
        snprintf(buf, len, "%" PRIdMAX, (intmax_t)v.mag);
    else
        snprintf(buf, len, "%" PRIuMAX " (0x%" PRIxMAX ")", v.mag, v.mag);
}

#define CHECK_CMP_(a, op, b)                                                                       \
    __extension__({                                                                                \
        test_int_ va_ = TEST_INT_(a), vb_ = TEST_INT_(b);                                          \
        int ok_ = test_int_cmp_(va_, vb_) op 0;                                                    \
        if (ok_) {                                                                                 \
            TEST_PASS_();                                                                          \
        } else {                                                                                   \
            char sa_[64], sb_[64];                                                                 \
            test_int_str_(sa_, sizeof sa_, va_);                                                   \
            test_int_str_(sb_, sizeof sb_, vb_);                                                   \
            TEST_FAIL_("CHECK(%s %s %s): %s vs %s", #a, #op, #b, sa_, sb_);                        \
        }                                                                                          \
        ok_;                                                                                       \
    })

#define CHECK_EQ(a, b) CHECK_CMP_(a, ==, b)
#define CHECK_NE(a, b) CHECK_CMP_(a, !=, b)
#define CHECK_LE(a, b) CHECK_CMP_(a, <=, b)
#define CHECK_LT(a, b) CHECK_CMP_(a, <, b)
#define CHECK_GE(a, b) CHECK_CMP_(a, >=, b)
#define CHECK_GT(a, b) CHECK_CMP_(a, >, b)

#define CHECK_PTR_EQ(a, b)                                                                         \
    __extension__({                                                                                \
        const void *pa_ = (const void *)(a), *pb_ = (const void *)(b);                             \
        int ok_ = pa_ == pb_;                                                                      \
        if (ok_)                                                                                   \
            TEST_PASS_();                                                                          \
        else                                                                                       \
            TEST_FAIL_("CHECK_PTR_EQ(%s, %s): %p vs %p", #a, #b, pa_, pb_);                        \
        ok_;                                                                                       \
    })

#define CHECK_STR_EQ(a, b)                                                                         \
    __extension__({                                                                                \
        const char *sa_ = (a), *sb_ = (b);                                                         \
        int ok_ = sa_ && sb_ && strcmp(sa_, sb_) == 0;                                             \
        if (ok_)                                                                                   \
            TEST_PASS_();                                                                          \
        else                                                                                       \
            TEST_FAIL_("CHECK_STR_EQ(%s, %s):\n    got:      \"%s\"\n    expected: \"%s\"", #a,   \
                       #b, sa_ ? sa_ : "(null)", sb_ ? sb_ : "(null)");                            \
        ok_;                                                                                       \
    })

/* A check the rest of the calling function depends on: when it fails, the
 * function returns 1 (its part of the test failed) instead of going on. */
#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!CHECK(cond))                                                                          \
            return 1;                                                                              \
    } while (0)

/* An unconditional failure with a message. */
#define FAIL(...) TEST_FAIL_(__VA_ARGS__)

static inline void test_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void test_note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("# ");
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
    fflush(stdout);
}

static inline void test_begin(const char *name)
{
    test_program_name = name;
    /* Unbuffered-ish output so that notes and failures interleave sensibly. */
    setvbuf(stdout, NULL, _IOLBF, 0);
}

static inline int test_summary(void)
{
    printf("%s: %lu passed, %lu failed\n", test_program_name, test_passed_count,
           test_failed_count);
    fflush(stdout);
    return test_failed_count ? 1 : 0;
}

static inline uint64_t test_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The whole time, even if a signal comes (a plain nanosleep returns early
 * then, and a test that sleeps past a decay would look too soon). */
static inline void test_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* A check that what was freed at since_ms is still kept (mapped,
 * resident, cached) shows something only if the look at it ended before
 * the decay could have taken it: the scheduler of a loaded machine may
 * stall a run that long, and then soma rightly let it go.  Call it once
 * the look is made: 1 while less than limit_ms (the decay less a margin)
 * has passed since since_ms; otherwise 0, with a note that the check of
 * `what` is skipped, too late to judge.  A slow run makes the test
 * weaker, never wrong. */
static inline int test_young(uint64_t since_ms, uint64_t limit_ms, const char *what)
{
    uint64_t took = test_now_ms() - since_ms;
    if (took < limit_ms)
        return 1;
    test_note("%s: %" PRIu64 " ms after the frees, not under %" PRIu64
              ": too late to judge, not checked",
              what, took, limit_ms);
    return 0;
}

/* A number from the environment, or `def` when unset or not a number. */
static inline unsigned long long test_env_ull(const char *name, unsigned long long def)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0')
        return def;
    char *end;
    unsigned long long x = strtoull(v, &end, 0);
    return *end == '\0' ? x : def;
}

/* Random numbers: test_rng, test_rng_seed, test_rng_next, test_rng_below. */
#include "rng.h"

/*
 * Sanitizer defaults for every test program: the tests deliberately ask for
 * impossible sizes (SIZE_MAX / 2) and expect NULL with ENOMEM, as the C
 * standard says, rather than the sanitizer's abort.  The sanitizer runtimes
 * look these functions up by name; in a normal build they are just unused.
 */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1";
}
/* A test may add options of its own: #define TEST_TSAN_OPTIONS ":name=value"
 * before including this header. */
#ifndef TEST_TSAN_OPTIONS
#define TEST_TSAN_OPTIONS ""
#endif
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
    return "allocator_may_return_null=1" TEST_TSAN_OPTIONS;
}

/* Blocks in use in a snapshot, all classes together. */
static inline size_t test_blocks_in_use(const soma_stats *st)
{
    size_t n = 0;
    for (unsigned c = 0; c < SOMA_NUM_CLASSES; c++)
        n += st->classes[c].blocks_in_use;
    return n;
}

/* v[0..n) sorted; returns how many of them equal the one before (0: all
 * different). */
static inline int test_u64_cmp_(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}
static inline size_t test_repeats(uint64_t *v, size_t n)
{
    qsort(v, n, sizeof *v, test_u64_cmp_);
    size_t same = 0;
    for (size_t k = 1; k < n; k++)
        same += v[k] == v[k - 1];
    return same;
}

/* Pages of [addr, addr + len) that hold memory (0 if the range is not mapped
 * at all).  "Given back to the OS" means 0: soma returns an arena by turning
 * its pages back into reserved, inaccessible address space (region.c), so
 * the range may stay mapped while holding no memory. */
#include <sys/mman.h>
#include <unistd.h>
static inline size_t test_resident_pages(uintptr_t addr, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), n = 0;
    unsigned char vec[256];
    addr &= ~(uintptr_t)(page - 1);
    for (size_t off = 0; off < len; off += 256 * page) {
        size_t chunk = len - off < 256 * page ? len - off : 256 * page;
        if (mincore((void *)(addr + off), chunk, vec) != 0)
            continue; /* ENOMEM: not mapped, so nothing resident */
        for (size_t i = 0; i < (chunk + page - 1) / page; i++)
            n += vec[i] & 1;
    }
    return n;
}


/* soma seals the first freed large mapping of each new largest size from
 * 128 KiB up, rather than caching it (src/malloc/large.c, "Sealed
 * mappings"); later ones of that size or less are cached.  A test of the
 * cache frees one block of its largest size first. */
static inline void test_large_cache_ready(size_t n)
{
    soma_free(soma_malloc(n));
}

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

/* Run `misuse` in a child with its stderr captured into buf (cap bytes,
 * NUL-terminated); the child's wait status, or -1 if it could not run. */
static inline int test_run_captured(void (*misuse)(void), char *buf, size_t cap)
{
    buf[0] = '\0';
    char path[] = "/tmp/soma_test_misuse_XXXXXX";
    int fd = mkstemp(path);
    if (!CHECK(fd >= 0))
        return -1;
    unlink(path);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd, 2);
        misuse();
        _exit(0); /* not reached when the misuse is caught */
    }
    if (!CHECK(pid > 0)) {
        close(fd);
        return -1;
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    ssize_t n = pread(fd, buf, cap - 1, 0);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return st;
}

/* Run `misuse` in a child with stderr captured; it must die of SIGABRT after
 * a "soma: fatal: " line containing `expect` and naming the pointer that
 * misuse printed first, as "pointer %p". */
static inline void test_expect_fatal(const char *name, void (*misuse)(void), const char *expect)
{
    char buf[2048];
    int st = test_run_captured(misuse, buf, sizeof buf);
    if (st == -1)
        return;
    if (!CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT))
        test_note("  %s: child status %#x, stderr:\n%s", name, (unsigned)st, buf);
    CHECK(strstr(buf, "soma: fatal: ") != NULL);
    if (!CHECK(strstr(buf, expect) != NULL))
        test_note("  %s: no '%s' in:\n%s", name, expect, buf);
    char ptr[64] = "";
    if (CHECK(sscanf(buf, "pointer %63s", ptr) == 1))
        CHECK(strstr(strstr(buf, "soma: fatal: ") ?: buf, ptr) != NULL);
}

#endif /* SOMA_TEST_H */
