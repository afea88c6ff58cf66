/*
 * copy.c: checked copies.  Built only into libsoma-override.so, beside
 * override.c: the C library's memcpy, memmove, mempcpy, memset, strcpy,
 * stpcpy, strcat, strncpy and strncat, and their _FORTIFY_SOURCE forms
 * (__memcpy_chk and the rest), interposed.  A copy whose destination lies
 * in one of soma's blocks and runs past the block's end is stopped before
 * a byte is written, with a diagnosis (malloc/malloc.c says what normal
 * mode knows of a block, malloc/debug.c what debug mode knows: the size
 * asked, a block freed or in the quarantine).  snmalloc's guarded memcpy
 * is the model.  libsoma.so interposes nothing: a program that links soma
 * keeps its C library's copies.
 *
 * Which copies are checked is a length (SOMA_CHECK_COPIES, base/options.h):
 * normal mode checks the copies longer than a small block by default,
 * every copy with SOMA_CHECK_COPIES=1 (that costs too much to be the
 * default: docs/DESIGN.md, "Checked copies"); debug mode every copy.
 * A copy left alone costs each function here a compare and a tail call.
 * A checked one is answered without the full check in the common cases:
 * a destination outside soma's blocks (the stack, a global) by the
 * region's range compare and one load for the large blocks
 * (soma__large_near), a copy inside a pooled block inline
 * (soma__malloc_copy_fits), one inside a large block without a lock
 * (soma__large_copy_fits).  The copy itself is the C library's: its functions are found once
 * with dlsym(RTLD_NEXT), which runs glibc's IFUNC resolvers and so gives
 * the CPU's best version.  Until then (a library's constructor that copies
 * before anything else, or the copies of dlsym's own allocations, which
 * reach soma's internal ones below) a byte loop does the work, through
 * volatile pointers so that no compiler turns it back into a call to
 * memcpy (-ftree-loop-distribute-patterns would, and the call would come
 * here again).
 *
 * soma's own copies (a realloc's, debug mode's fills and guards) must not
 * be checked: debug mode writes a block's guards past the program's bytes,
 * and fills a block as it frees it.  The override is linked with
 * -Wl,--wrap for each name below (CMakeLists.txt): every call of soma's
 * other files to memcpy reaches __wrap_memcpy, the C library's unchecked,
 * while the program's calls reach the exported memcpy.
 *
 * The _FORTIFY_SOURCE forms keep glibc's own check first: a copy larger
 * than the object the compiler saw (destlen) ends in glibc's __chk_fail
 * ("*** buffer overflow detected ***: terminated"), exactly as without
 * soma; then soma's check, which knows the block when the compiler did
 * not (the usual case for heap memory reached through a pointer).
 *
 * Not seen: copies the compiler inlines (small constant sizes), and the C
 * library's internal copies (fread into a buffer, sprintf): they never
 * pass through the exported names.
 */
#define _GNU_SOURCE
/* This file defines the names _FORTIFY_SOURCE would wrap in inline forms. */
#undef _FORTIFY_SOURCE
#include <dlfcn.h>
#include <string.h>

#include "malloc/malloc.h"

#define EXPORT __attribute__((visibility("default")))

/* glibc's: its message and abort, for the _FORTIFY_SOURCE forms. */
extern void __chk_fail(void) __attribute__((noreturn));

typedef void *(*copy_fn)(void *, const void *, size_t);
typedef void *(*set_fn)(void *, int, size_t);
typedef char *(*str_fn)(char *, const char *);
typedef char *(*strn_fn)(char *, const char *, size_t);

/* ---- before the C library's are found: byte loops ---- */

static int resolve(void);

static void *loop_copy(void *d, const void *s, size_t n)
{
    volatile unsigned char *dp = d;
    const volatile unsigned char *sp = s;
    if (dp <= sp || dp >= sp + n) {
        for (size_t i = 0; i < n; i++)
            dp[i] = sp[i];
    } else { /* overlapping, d above s: from the end */
        for (size_t i = n; i-- > 0;)
            dp[i] = sp[i];
    }
    return d;
}
static size_t loop_len(const char *s)
{
    const volatile char *p = s;
    size_t n = 0;
    while (p[n] != '\0')
        n++;
    return n;
}
static void *boot_memcpy(void *d, const void *s, size_t n);
static void *boot_memmove(void *d, const void *s, size_t n);
static void *boot_mempcpy(void *d, const void *s, size_t n);
static void *boot_memset(void *d, int c, size_t n);
static char *boot_strcpy(char *d, const char *s);
static char *boot_stpcpy(char *d, const char *s);
static char *boot_strcat(char *d, const char *s);
static char *boot_strncpy(char *d, const char *s, size_t n);
static char *boot_strncat(char *d, const char *s, size_t n);

/* The C library's functions, once found (relaxed: each pointer is written
 * whole, and either value does the same work). */
static struct {
    _Atomic copy_fn memcpy, memmove, mempcpy;
    _Atomic set_fn memset;
    _Atomic str_fn strcpy, stpcpy, strcat;
    _Atomic strn_fn strncpy, strncat;
} real = {boot_memcpy, boot_memmove, boot_mempcpy, boot_memset, boot_strcpy,
          boot_stpcpy, boot_strcat,  boot_strncpy, boot_strncat};

#define REAL(name) atomic_load_explicit(&real.name, memory_order_relaxed)

/* Each boot function finds the C library's and hands over to it, unless
 * this thread is finding them already (dlsym allocates). */
static void *boot_memcpy(void *d, const void *s, size_t n)
{
    return resolve() ? REAL(memcpy)(d, s, n) : loop_copy(d, s, n);
}
static void *boot_memmove(void *d, const void *s, size_t n)
{
    return resolve() ? REAL(memmove)(d, s, n) : loop_copy(d, s, n);
}
static void *boot_mempcpy(void *d, const void *s, size_t n)
{
    return resolve() ? REAL(mempcpy)(d, s, n) : (char *)loop_copy(d, s, n) + n;
}
static void *boot_memset(void *d, int c, size_t n)
{
    if (resolve())
        return REAL(memset)(d, c, n);
    volatile unsigned char *dp = d;
    for (size_t i = 0; i < n; i++)
        dp[i] = (unsigned char)c;
    return d;
}
static char *boot_strcpy(char *d, const char *s)
{
    return resolve() ? REAL(strcpy)(d, s) : loop_copy(d, s, loop_len(s) + 1);
}
static char *boot_stpcpy(char *d, const char *s)
{
    if (resolve())
        return REAL(stpcpy)(d, s);
    size_t n = loop_len(s);
    return (char *)loop_copy(d, s, n + 1) + n;
}
static char *boot_strcat(char *d, const char *s)
{
    if (resolve())
        return REAL(strcat)(d, s);
    loop_copy(d + loop_len(d), s, loop_len(s) + 1);
    return d;
}
static char *boot_strncpy(char *d, const char *s, size_t n)
{
    if (resolve())
        return REAL(strncpy)(d, s, n);
    volatile char *dp = d;
    const volatile char *sp = s;
    size_t i = 0;
    for (; i < n && sp[i] != '\0'; i++)
        dp[i] = sp[i];
    for (; i < n; i++)
        dp[i] = '\0';
    return d;
}
static char *boot_strncat(char *d, const char *s, size_t n)
{
    if (resolve())
        return REAL(strncat)(d, s, n);
    volatile char *dp = d + loop_len(d);
    const volatile char *sp = s;
    size_t i = 0;
    for (; i < n && sp[i] != '\0'; i++)
        dp[i] = sp[i];
    dp[i] = '\0';
    return d;
}

static __thread int resolving __attribute__((tls_model("initial-exec")));

/* Find the C library's functions: 1 once they are (a later call is a
 * load), 0 while this thread is finding them. */
static int resolve(void)
{
    if (REAL(memcpy) != boot_memcpy)
        return 1;
    if (resolving)
        return 0;
    resolving = 1;
#define FIND(name, type)                                                                           \
    do {                                                                                           \
        type f = (type)dlsym(RTLD_NEXT, #name);                                                    \
        if (f != NULL)                                                                             \
            atomic_store_explicit(&real.name, f, memory_order_relaxed);                            \
    } while (0)
    /* memcpy last: boot_memcpy takes its change as "all found" */
    FIND(memmove, copy_fn);
    FIND(mempcpy, copy_fn);
    FIND(memset, set_fn);
    FIND(strcpy, str_fn);
    FIND(stpcpy, str_fn);
    FIND(strcat, str_fn);
    FIND(strncpy, strn_fn);
    FIND(strncat, strn_fn);
    FIND(memcpy, copy_fn);
#undef FIND
    resolving = 0;
    return REAL(memcpy) != boot_memcpy;
}

/* Found at load time, so that the first copies after start-up pay no
 * lookup; a copy made earlier finds them itself (the boot functions). */
__attribute__((constructor)) static void copy_init(void)
{
    (void)resolve();
}

/* ---- the check ---- */

/* Might a copy to d land in one of soma's blocks?  A range compare and a
 * load (os/region.h, malloc/malloc.h): the whole cost of a copy to any
 * other memory. */
__attribute__((always_inline)) static inline int watched(const void *d)
{
    return soma__region_holds(d) || soma__large_near(d);
}
/* Is a copy of n bytes checked?  The one test for a copy left alone: n
 * against the option's threshold less one (base/options.h), SIZE_MAX when
 * no copy is checked.  The string copies without a length (strcpy,
 * stpcpy, strcat) are checked only when every copy is (the threshold 1,
 * debug mode's): their length would cost a strlen to learn. */
#define CHECKS(n) SOMA_UNLIKELY((size_t)(n) > soma__options.copies_above)
#define CHECKS_ALL SOMA_UNLIKELY(soma__options.copies_above == 0)

/* The calls, by what they do; the _FORTIFY_SOURCE forms are named apart
 * for the diagnosis (the program called that name). */
enum {
    F_MEMCPY, F_MEMMOVE, F_MEMPCPY, F_MEMSET, F_STRCPY, F_STPCPY, F_STRCAT, F_STRNCPY, F_STRNCAT,
    F_CHK = 16 /* the same, + F_CHK: __memcpy_chk ... (a power of two: id % F_CHK is a mask) */
};
static const char *const names[2 * F_CHK] = {
    [F_MEMCPY] = "memcpy",   [F_MEMMOVE] = "memmove",   [F_MEMPCPY] = "mempcpy",
    [F_MEMSET] = "memset",   [F_STRCPY] = "strcpy",     [F_STPCPY] = "stpcpy",
    [F_STRCAT] = "strcat",   [F_STRNCPY] = "strncpy",   [F_STRNCAT] = "strncat",
    [F_CHK + F_MEMCPY] = "__memcpy_chk",   [F_CHK + F_MEMMOVE] = "__memmove_chk",
    [F_CHK + F_MEMPCPY] = "__mempcpy_chk", [F_CHK + F_MEMSET] = "__memset_chk",
    [F_CHK + F_STRCPY] = "__strcpy_chk",   [F_CHK + F_STPCPY] = "__stpcpy_chk",
    [F_CHK + F_STRCAT] = "__strcat_chk",   [F_CHK + F_STRNCPY] = "__strncpy_chk",
    [F_CHK + F_STRNCAT] = "__strncat_chk"};

/* A copy to d in soma's range that the quick answers did not let
 * through: checked, then made (or, refused in SOMA_DEBUG=report, not
 * made: the call returns what it would have).  s is memset's byte, n
 * absent for strcpy, stpcpy and strcat. */
__attribute__((noinline, cold)) static void *checked(unsigned id, void *d, const void *s, size_t n)
{
    unsigned f = id % F_CHK;
    copy_t c = {names[id], SOMA_COPY_MEM, d, s, n, 0, n};
    switch (f) {
    case F_MEMSET:
        c.args = SOMA_COPY_SET;
        break;
    case F_STRCPY:
    case F_STPCPY:
        c.args = SOMA_COPY_STR;
        c.n = 0;
        c.len = strlen(s) + 1;
        break;
    case F_STRCAT:
        c.args = SOMA_COPY_STR;
        c.n = 0;
        c.from = strlen(d);
        c.len = strlen(s) + 1;
        break;
    case F_STRNCPY: /* n bytes: the string's, then zeros */
        c.args = SOMA_COPY_STRN;
        break;
    case F_STRNCAT:
        c.args = SOMA_COPY_STRN;
        c.from = strlen(d);
        c.len = strnlen(s, n) + 1;
        break;
    }
    if (!soma__malloc_copy_check(&c))
        return f == F_MEMPCPY ? (char *)d + n : f == F_STPCPY ? (char *)d + strlen(s) : d;
    switch (f) {
    case F_MEMCPY:
        return REAL(memcpy)(d, s, n);
    case F_MEMMOVE:
        return REAL(memmove)(d, s, n);
    case F_MEMPCPY:
        return REAL(mempcpy)(d, s, n);
    case F_MEMSET:
        return REAL(memset)(d, (int)(uintptr_t)s, n);
    case F_STRCPY:
        return REAL(strcpy)(d, s);
    case F_STPCPY:
        return REAL(stpcpy)(d, s);
    case F_STRCAT:
        return REAL(strcat)(d, s);
    case F_STRNCPY:
        return REAL(strncpy)(d, s, n);
    default:
        return REAL(strncat)(d, s, n);
    }
}

/* With checks on, a copy of n bytes to d that soma__malloc_copy_fits did
 * not let through inline (it is not inside a pooled block, or debug mode):
 * straight to the C library when d is outside soma's pools and large
 * blocks, or the copy lies inside a large block (normal mode's quick
 * answers, no lock), else checked.  The exported functions are a compare and a tail call with
 * checks off, the pooled block's test and a tail call with them on. */
__attribute__((noinline)) static void *beyond_pools(unsigned id, void *d, const void *s, size_t n)
{
    if (soma__region_holds(d) || (soma__large_near(d) && !soma__large_copy_fits(d, n)))
        return checked(id, d, s, n);
    switch (id % F_CHK) {
    case F_MEMCPY:
        return REAL(memcpy)(d, s, n);
    case F_MEMMOVE:
        return REAL(memmove)(d, s, n);
    case F_MEMPCPY:
        return REAL(mempcpy)(d, s, n);
    case F_MEMSET:
        return REAL(memset)(d, (int)(uintptr_t)s, n);
    default:
        return REAL(strncpy)(d, s, n);
    }
}

/* ---- the C library's names ---- */

EXPORT void *memcpy(void *restrict d, const void *restrict s, size_t n)
{
    if (CHECKS(n) && !soma__malloc_copy_fits(d, n))
        return beyond_pools(F_MEMCPY, d, s, n);
    return REAL(memcpy)(d, s, n);
}

EXPORT void *memmove(void *d, const void *s, size_t n)
{
    if (CHECKS(n) && !soma__malloc_copy_fits(d, n))
        return beyond_pools(F_MEMMOVE, d, s, n);
    return REAL(memmove)(d, s, n);
}

EXPORT void *mempcpy(void *restrict d, const void *restrict s, size_t n)
{
    if (CHECKS(n) && !soma__malloc_copy_fits(d, n))
        return beyond_pools(F_MEMPCPY, d, s, n);
    return REAL(mempcpy)(d, s, n);
}

EXPORT void *memset(void *d, int c, size_t n)
{
    if (CHECKS(n) && !soma__malloc_copy_fits(d, n))
        return beyond_pools(F_MEMSET, d, (const void *)(uintptr_t)(unsigned char)c, n);
    return REAL(memset)(d, c, n);
}

EXPORT char *strcpy(char *restrict d, const char *restrict s)
{
    if (CHECKS_ALL && watched(d))
        return checked(F_STRCPY, d, s, 0);
    return REAL(strcpy)(d, s);
}

EXPORT char *stpcpy(char *restrict d, const char *restrict s)
{
    if (CHECKS_ALL && watched(d))
        return checked(F_STPCPY, d, s, 0);
    return REAL(stpcpy)(d, s);
}

EXPORT char *strcat(char *restrict d, const char *restrict s)
{
    if (CHECKS_ALL && watched(d))
        return checked(F_STRCAT, d, s, 0);
    return REAL(strcat)(d, s);
}

EXPORT char *strncpy(char *restrict d, const char *restrict s, size_t n)
{
    if (CHECKS(n) && !soma__malloc_copy_fits(d, n))
        return beyond_pools(F_STRNCPY, d, s, n);
    return REAL(strncpy)(d, s, n);
}

EXPORT char *strncat(char *restrict d, const char *restrict s, size_t n)
{
    if (CHECKS(n) && watched(d))
        return checked(F_STRNCAT, d, s, n);
    return REAL(strncat)(d, s, n);
}

/* ---- the _FORTIFY_SOURCE forms: glibc's check (its __chk_fail), then
 * soma's, then the copy.  destlen is the object's size as the compiler saw
 * it; glibc's own forms make exactly these tests. ---- */

EXPORT void *__memcpy_chk(void *restrict d, const void *restrict s, size_t n, size_t destlen)
{
    if (destlen < n)
        __chk_fail();
    if (CHECKS(n) && !soma__malloc_copy_fits(d, n))
        return beyond_pools(F_CHK + F_MEMCPY, d, s, n);
    return REAL(memcpy)(d, s, n);
}

EXPORT void *__memmove_chk(void *d, const void *s, size_t n, size_t destlen)
{
    if (destlen < n)
        __chk_fail();
    if (CHECKS(n) && !soma__malloc_copy_fits(d, n))
        return beyond_pools(F_CHK + F_MEMMOVE, d, s, n);
    return REAL(memmove)(d, s, n);
}

EXPORT void *__mempcpy_chk(void *restrict d, const void *restrict s, size_t n, size_t destlen)
{
    if (destlen < n)
        __chk_fail();
    if (CHECKS(n) && !soma__malloc_copy_fits(d, n))
        return beyond_pools(F_CHK + F_MEMPCPY, d, s, n);
    return REAL(mempcpy)(d, s, n);
}

EXPORT void *__memset_chk(void *d, int c, size_t n, size_t destlen)
{
    if (destlen < n)
        __chk_fail();
    if (CHECKS(n) && !soma__malloc_copy_fits(d, n))
        return beyond_pools(F_CHK + F_MEMSET, d, (const void *)(uintptr_t)(unsigned char)c, n);
    return REAL(memset)(d, c, n);
}

EXPORT char *__strcpy_chk(char *restrict d, const char *restrict s, size_t destlen)
{
    if (strlen(s) >= destlen)
        __chk_fail();
    if (CHECKS_ALL && watched(d))
        return checked(F_CHK + F_STRCPY, d, s, 0);
    return REAL(strcpy)(d, s);
}

EXPORT char *__stpcpy_chk(char *restrict d, const char *restrict s, size_t destlen)
{
    if (strlen(s) >= destlen)
        __chk_fail();
    if (CHECKS_ALL && watched(d))
        return checked(F_CHK + F_STPCPY, d, s, 0);
    return REAL(stpcpy)(d, s);
}

EXPORT char *__strcat_chk(char *restrict d, const char *restrict s, size_t destlen)
{
    size_t dl = strnlen(d, destlen);
    if (dl == destlen || strlen(s) >= destlen - dl)
        __chk_fail();
    if (CHECKS_ALL && watched(d))
        return checked(F_CHK + F_STRCAT, d, s, 0);
    return REAL(strcat)(d, s);
}

EXPORT char *__strncpy_chk(char *restrict d, const char *restrict s, size_t n, size_t destlen)
{
    if (destlen < n)
        __chk_fail();
    if (CHECKS(n) && !soma__malloc_copy_fits(d, n))
        return beyond_pools(F_CHK + F_STRNCPY, d, s, n);
    return REAL(strncpy)(d, s, n);
}

EXPORT char *__strncat_chk(char *restrict d, const char *restrict s, size_t n, size_t destlen)
{
    size_t dl = strnlen(d, destlen);
    if (dl == destlen || strnlen(s, n) >= destlen - dl)
        __chk_fail();
    if (CHECKS(n) && watched(d))
        return checked(F_CHK + F_STRNCAT, d, s, n);
    return REAL(strncat)(d, s, n);
}

/* ---- soma's own copies (-Wl,--wrap): the C library's, unchecked ---- */

#define WRAP SOMA_INTERNAL __attribute__((used))
WRAP void *__wrap_memcpy(void *restrict d, const void *restrict s, size_t n)
{
    return REAL(memcpy)(d, s, n);
}
WRAP void *__wrap_memmove(void *d, const void *s, size_t n)
{
    return REAL(memmove)(d, s, n);
}
WRAP void *__wrap_mempcpy(void *restrict d, const void *restrict s, size_t n)
{
    return REAL(mempcpy)(d, s, n);
}
WRAP void *__wrap_memset(void *d, int c, size_t n)
{
    return REAL(memset)(d, c, n);
}
WRAP char *__wrap_strcpy(char *restrict d, const char *restrict s)
{
    return REAL(strcpy)(d, s);
}
WRAP char *__wrap_stpcpy(char *restrict d, const char *restrict s)
{
    return REAL(stpcpy)(d, s);
}
WRAP char *__wrap_strcat(char *restrict d, const char *restrict s)
{
    return REAL(strcat)(d, s);
}
WRAP char *__wrap_strncpy(char *restrict d, const char *restrict s, size_t n)
{
    return REAL(strncpy)(d, s, n);
}
WRAP char *__wrap_strncat(char *restrict d, const char *restrict s, size_t n)
{
    return REAL(strncat)(d, s, n);
}
/* A build with _FORTIFY_SOURCE by default (some distributions' compilers)
 * makes soma's own calls these: glibc's check, without soma's. */
WRAP void *__wrap___memcpy_chk(void *restrict d, const void *restrict s, size_t n, size_t destlen)
{
    if (destlen < n)
        __chk_fail();
    return REAL(memcpy)(d, s, n);
}
WRAP void *__wrap___memmove_chk(void *d, const void *s, size_t n, size_t destlen)
{
    if (destlen < n)
        __chk_fail();
    return REAL(memmove)(d, s, n);
}
WRAP void *__wrap___memset_chk(void *d, int c, size_t n, size_t destlen)
{
    if (destlen < n)
        __chk_fail();
    return REAL(memset)(d, c, n);
}
WRAP char *__wrap___strncpy_chk(char *restrict d, const char *restrict s, size_t n, size_t destlen)
{
    if (destlen < n)
        __chk_fail();
    return REAL(strncpy)(d, s, n);
}
