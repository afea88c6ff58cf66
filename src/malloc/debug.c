/*
 * debug.c: debug mode, soma's PYTHONMALLOC=debug.
 *
 * SOMA_DEBUG=1 (or =report) makes every block soma hands out a debug
 * block: the program's bytes with a header in front and guard bytes on
 * both sides, inside an ordinary block of a larger class (or a large
 * block):
 *
 *   B = H                                         U = H + 48       U + n           B + span + 48
 *   | pad | n | serial,api,state | stack | FD x 20 | n bytes: CD ... | FD FD ... (>= 8) |
 *   '--------------- header, 48 bytes ------------'  the program's   trailer guard
 *
 *   pad     bytes from the underlying block B to H, xor PAD_MAGIC: 0,
 *           except for an aligned_alloc above 16 (B = U - alignment) and,
 *           outside a checker's build, a large block that holds a page
 *           (U = B + a page: seal, below); a large block's first word
 *           holds the same, which marks it as a debug block, and the
 *           pad's last bytes (up to a page) are guard bytes (pad_guard).
 *           While a pooled block is free this word is its pool's
 *           free-list link, which is why it holds nothing a check of a
 *           free block needs.
 *   n       the size the program asked for: soma_usable_size returns it,
 *           and the trailer starts there, so even a one-byte overflow into
 *           the class's rounding is caught.
 *   serial  the block's number (1 for the first allocation of the
 *           process), for a breakpoint or a printf in the program.
 *   api     which call made it: malloc, calloc, realloc, aligned_alloc,
 *           or the soma_heap_ calls of an explicit heap.
 *   state   live, freed (in quarantine), released (back in its pool).
 *   stack   the number of the call stack that made it (leaks.c), for the
 *           leak report at exit; 0 with SOMA_DEBUG_LEAKS=0.
 *   FD x 20 the front guard: the rest of the header, so that the program's
 *           bytes stay 16-aligned.
 *
 * Fresh bytes are CD ("clean"), freed bytes DD ("dead"), guards FD
 * (CPython's three patterns, so that a person who knows one knows the
 * other).  A free checks the header and both guards, then fills the
 * block with DD and puts it in a quarantine: a FIFO of freed blocks (1 MiB
 * by default, SOMA_DEBUG_QUARANTINE) that are not reused until they leave
 * it.  When one leaves, its DD fill is checked (a write after free) and it
 * goes back to its pool, marked released; when the pool hands it out
 * again, the fill is checked once more.  A second free of a block finds it
 * freed or released: a double free, with the block's serial.  A large
 * block's pages are sealed while it waits there (seal, below: a read or a
 * write after free faults, and the fault handler names the block); leaving
 * the quarantine it goes to large.c's free, which may seal its mapping
 * (a later free or checked copy into it is diagnosed as one into a sealed
 * mapping).
 *
 * Mistakes and their diagnosis (each names the address, the size asked,
 * the serial, the API and heap it came from, and for a damaged guard or
 * fill the offset, the bytes expected and the bytes found):
 *   overflow, underflow    the trailer or the front guard changed (at free,
 *                          realloc, and soma_debug_check);
 *   double free            the header says freed or released;
 *   not soma's block       a pointer inside soma's arenas or large blocks
 *                          that is not the start of a block's program
 *                          bytes, or whose header is not one; one into a
 *                          freed large block's cached mapping; in the
 *                          override, one on the stack or in a loaded
 *                          object (not a heap block); other foreign
 *                          pointers go to the system allocator, as
 *                          without debug mode;
 *   write after free       the DD fill changed, found when the block
 *                          leaves quarantine, is reused, or is checked;
 *                          a large block's read or write after free
 *                          faults, in its quarantine (soma__debug_fault);
 *   destroyed heap         a block of an explicit heap used after
 *                          soma_heap_destroy: debug mode keeps the last
 *                          8 destroyed heaps' arenas mapped (a tombstone),
 *                          so such a free is diagnosed, not a crash; the
 *                          heap itself used again, or destroyed twice;
 *   arena given back       a pointer in soma's range that no arena holds
 *                          now (a late double free or use after free).
 * Then soma aborts (SOMA_DEBUG=1) or, with SOMA_DEBUG=report, prints and
 * carries on, leaving the damaged block alone (a double free is ignored).
 *
 * At exit (a destructor of soma's, debug_at_exit: after the program's
 * atexit handlers and C++ statics, and, linked statically, after the
 * program's own destructors), the same walk as soma_debug_check checks
 * every block: the live ones' guards, the quarantined ones' fill, the
 * free ones' fill.  Its diagnoses ("the check at exit found block ...")
 * are kept while the walk holds the lock and printed after it, each with
 * the call stack that made the block; then the leak report (leaks.c:
 * the live blocks by size, call and stack), unless SOMA_DEBUG_LEAKS=0.
 * SOMA_DEBUG=1 then aborts if anything was damaged, after the report; a
 * leak alone never changes how the process ends.  A process that ends
 * with _exit (a forked child, usually) or a signal runs no check.
 *
 * Costs and locks: one recursive mutex, the heap layer's debug lock
 * (soma__heap_debug_lock), serialises every debug call (so
 * soma_debug_check sees a still world); a block needs 56 more bytes, and
 * an allocation takes its call stack (outside the lock); the
 * fast paths are closed by the gate (base/options.h), so normal mode pays
 * nothing for this file.  Lock order: this lock, then heaps_lock, then a
 * heap's lock; recursive because a debug call that starts soma or a thread
 * (pthread_setspecific, atexit) may allocate again inside it.  The work
 * that changes pools outside a debug call (a thread's exit, adopting an
 * orphan, the statistics' collects) takes it too, in the heap layer.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/sink.h"
#include "base/start.h"
#include "malloc/fastpath.h"
#include "os/os.h"
#ifdef SOMA_TRACK_ASAN
#include <sanitizer/lsan_interface.h>
#endif

#define HDR 48
/* An aligned block's header starts this far before U at least: the
 * smallest power of two that holds HDR (underlying()). */
#define ALIGN_MIN 64
_Static_assert(ALIGN_MIN >= HDR && (ALIGN_MIN & (ALIGN_MIN - 1)) == 0, "a power of two");
#define TRAIL 8
#define PAGE SOMA_OS_PAGE_SIZE
#define CLEAN 0xCD
#define DEAD 0xDD
#define GUARD 0xFD
#define MAX_ALIGN ((size_t)1 << 28) /* aligned_alloc above this fails in debug mode */
/* The pad word holds pad ^ PAD_MAGIC, and a large block's first word too:
 * a block of the registry whose first word does not decode to a sensible
 * offset is not a debug block (one made before soma started, or a foreign
 * block soma reallocated), and soma_debug_check leaves it alone. */
#define PAD_MAGIC ((uint64_t)0x50d1a6b10c4e4a00u)
#define MAX_TOMBS 8
#define RING_MAX 65536

enum { ST_LIVE = 0xA1, ST_FREED = 0xF1, ST_RELEASED = 0xF2 };

typedef struct {
    uint64_t pad;
    uint64_t size;
    uint64_t tag;   /* serial << 16 | api << 8 | state */
    uint32_t stack; /* leaks.c's number of the stack that made it, or SOMA_STACK_* */
    uint8_t guard[20];
} dbg_hdr_t;
_Static_assert(sizeof(dbg_hdr_t) == HDR, "the header keeps the program's bytes 16-aligned");

/* What the block at U is, found by locate(). */
typedef struct {
    unsigned char *u;
    dbg_hdr_t *h;
    unsigned char *b; /* the underlying block */
    size_t span;      /* bytes from U to the end of the underlying block */
    pool_t *pool;     /* NULL for a large block */
    size_t sealed;    /* in the ring: the bytes from U this entry sealed (and counts in nsealed) */
} blk_t;

static uint64_t serial;
static size_t problems;
static blk_t *ring; /* the quarantine, oldest at ring_head */
static size_t ring_head, ring_len, ring_bytes;
static int ring_failed;
static heap_t *tombs; /* destroyed heaps, newest first, through next_orphan */
static unsigned ntombs;


static unsigned state_of(const dbg_hdr_t *h)
{
    return (unsigned)(h->tag & 0xff);
}
/* In the api byte's top bit: the block's pages are sealed now (seal,
 * below), so that what walks it knows which of its bytes it may read. */
#define TAG_SEALED ((uint64_t)0x80 << 8)
static unsigned api_of(const dbg_hdr_t *h)
{
    return (unsigned)(h->tag >> 8 & 0x7f);
}
static unsigned long long serial_of(const dbg_hdr_t *h)
{
    return (unsigned long long)(h->tag >> 16);
}

/* The names a program knows the calls by: the override's are the C
 * library's. */
const char *soma__debug_api_name(unsigned api)
{
#ifdef SOMA_OVERRIDE
    static const char *const names[] = {"?", "malloc", "calloc", "realloc",
                                        "aligned_alloc", "soma_heap_malloc", "soma_heap_calloc",
                                        "soma_heap_realloc"};
#else
    static const char *const names[] = {"?", "soma_malloc", "soma_calloc", "soma_realloc",
                                        "soma_aligned_alloc", "soma_heap_malloc",
                                        "soma_heap_calloc", "soma_heap_realloc"};
#endif
    return api < SOMA_CALL_END ? names[api] : "an unknown call";
}

#define FN SOMA_FN
#define api_name soma__debug_api_name

/* ---- the report ---- */

/* The form is shared with guard.c's diagnoses (malloc.h). */
typedef debug_text_t text_t;
#define add soma__debug_add

/* The check at exit keeps its diagnoses here while it holds the lock, and
 * prints them after it (debug_at_exit): at most EXIT_SHOWN, the rest
 * counted. */
#define EXIT_SHOWN 20
typedef struct {
    unsigned n, more;
    text_t shown[EXIT_SHOWN];
} exit_log_t;
static exit_log_t *exit_log;
/* Set on the thread that runs the check at exit, while it does: only its
 * diagnoses wait in exit_log.  Another thread's (a free, a guard fault's
 * handler) are written and ruled on at once, as at any other time. */
static __thread int exit_checking __attribute__((tls_model("initial-exec")));

void soma__debug_add(text_t *t, const char *fmt, ...)
{
    if (t->len >= sizeof t->buf)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->len, sizeof t->buf - t->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        t->len = t->len + (size_t)n < sizeof t->buf ? t->len + (size_t)n : sizeof t->buf - 1;
}

static void describe(text_t *t, const blk_t *b)
{
    const dbg_hdr_t *h = b->h;
    t->stack = h->stack;
    t->block = b->u;
    add(t, "\n  block %p: %llu bytes asked, serial %llu, made by %s", (void *)b->u,
        (unsigned long long)h->size, serial_of(h), api_name(api_of(h)));
    if (b->pool == NULL)
        add(t, ", a large block");
    else if (b->pool->heap->explicit_heap)
        add(t, " in explicit heap %p", (void *)b->pool->heap);
    else
        add(t, " in a thread's heap");
    unsigned st = state_of(h);
    add(t, "; %s", st == ST_LIVE      ? "live"
                   : st == ST_FREED    ? "freed (in quarantine)"
                   : st == ST_RELEASED ? (b->pool ? "freed and released to its pool"
                                                  : "freed and given back to the system")
                                       : "state unknown");
}

/* The bytes at p (len of them, the first bad one at `bad`) against the
 * pattern `want`: where, and 16 of them from the first that differs. */
void soma__debug_diff(text_t *t, const unsigned char *u, size_t n, const unsigned char *p,
                      size_t len, size_t bad, unsigned want)
{
    size_t nbad = 0, last = bad;
    for (size_t i = bad; i < len; i++)
        if (p[i] != want) {
            nbad++;
            last = i;
        }
    long off = (long)(p + bad - u);
    if (nbad == 1)
        add(t, "\n  1 byte changed, at U%+ld", off);
    else
        add(t, "\n  %zu bytes changed, from U%+ld to U%+ld", nbad, off, (long)(p + last - u));
    add(t, " (U = %p; the block's %zu bytes end at U+%zu)", (const void *)u, n, n);
    size_t show = len - bad < 16 ? len - bad : 16;
    add(t, "\n  at U%+ld expected:", off);
    for (size_t i = 0; i < show; i++)
        add(t, " %02x", want);
    add(t, "\n  at U%+ld found:   ", off);
    for (size_t i = 0; i < show; i++)
        add(t, " %02x", p[bad + i]);
}

static void bytes_diff(text_t *t, const blk_t *b, const unsigned char *p, size_t len, size_t bad,
                       unsigned want)
{
    soma__debug_diff(t, b->u, b->h->size, p, len, bad, want);
}

static void stop(void)
{
    static const char tail[] = "soma: debug: aborting (SOMA_DEBUG=report reports and goes on)\n";
    soma__sink_write_all(STDERR_FILENO, tail, sizeof tail - 1);
    abort();
}

int soma__debug_emit(text_t *t)
{
    add(t, "\n");
    problems++;
    if (exit_checking && exit_log != NULL) { /* the check at exit: printed after its walk */
        if (exit_log->n < EXIT_SHOWN)
            exit_log->shown[exit_log->n++] = *t;
        else
            exit_log->more++;
        return 0;
    }
    soma__sink_write_all(STDERR_FILENO, t->buf, t->len);
    return 1;
}

/* Debug mode aborts unless SOMA_DEBUG=report; without it (what
 * soma_debug_check finds) the program goes on.  The check at exit decides
 * once its walk is done. */
void soma__debug_stop(void)
{
    if (!exit_checking &&
        (soma__options.debug == SOMA_DEBUG_ABORT || soma__options.debug == SOMA_DEBUG_GUARD))
        stop();
}

/* A diagnosis is written at once, under the debug lock; the stack that
 * made its block, and the stop, wait until the lock is let go (unlock):
 * naming a frame takes the dynamic loader's lock (dladdr), which a thread
 * inside dlopen holds while it allocates, that is while it waits for ours
 * (leaks.c).  Until then the call goes on as SOMA_DEBUG=report's would.
 * The lock is recursive (an allocation under it may come back here), so
 * this file counts its own holds: the outermost release settles.  One
 * call may find several problems (a check's walk, a free that also
 * evicts a damaged block from the quarantine): the first few blocks'
 * stacks are kept, each named. */
#define PENDING_MAX 4
static __thread struct {
    const void *block;
    uint32_t stack;
} pending[PENDING_MAX] __attribute__((tls_model("initial-exec")));
static __thread unsigned npending __attribute__((tls_model("initial-exec")));
static __thread unsigned depth __attribute__((tls_model("initial-exec")));
static __thread int pending_stop __attribute__((tls_model("initial-exec")));

static void finish(text_t *t)
{
    if (!soma__debug_emit(t) || exit_checking)
        return; /* the check at exit's: printed, and ruled on, after its walk */
    if (t->stack != SOMA_STACK_NONE && t->stack != SOMA_STACK_OWN &&
        t->stack != SOMA_STACK_FULL && npending < PENDING_MAX) {
        pending[npending].block = t->block;
        pending[npending++].stack = t->stack;
    }
    if (soma__options.debug == SOMA_DEBUG_ABORT || soma__options.debug == SOMA_DEBUG_GUARD)
        pending_stop = 1;
}

static void lock(void)
{
    /* Until glibc's allocator is known (the override's dlsym, under the
     * loader's lock), this looks it up: before ours, never under it (os.h;
     * skipped while this thread is already looking it up). */
    soma__sys_resolve();
    soma__heap_debug_lock();
    depth++;
}

/* The debug lock let go by one of this file's calls; at the outermost,
 * what finish left for after it is done. */
static void unlock(void)
{
    soma__heap_debug_unlock();
    if (--depth > 0 || (npending == 0 && !pending_stop))
        return;
    for (unsigned i = 0; i < npending; i++) {
        char line[96];
        int len = npending == 1
                      ? snprintf(line, sizeof line, "  the block was made at:\n")
                      : snprintf(line, sizeof line, "  block %p was made at:\n", pending[i].block);
        soma__sink_write_all(STDERR_FILENO, line, (size_t)len);
        soma__leaks_print_stack(pending[i].stack, "    ");
    }
    npending = 0;
    if (pending_stop)
        stop();
}

/* fn: the call that found it, with p its argument; or, for a check that
 * no call of the program's asked for, who found it ("... found block p",
 * or "... found pool p" and the like when `what` starts with that noun). */
void soma__debug_start_as(text_t *t, const char *pre, const char *fn, const void *p,
                          const char *what)
{
    t->len = 0;
    t->stack = SOMA_STACK_NONE;
    t->block = NULL;
    if (fn[0] == '=' && (strncmp(what, "pool ", 5) == 0 || strncmp(what, "heap ", 5) == 0))
        add(t, "%s%s found %.4s %p: %s", pre, fn + 1, what, p, what + 5);
    else if (fn[0] == '=')
        add(t, "%s%s found block %p: %s", pre, fn + 1, p, what);
    else
        add(t, "%s%s(%p): %s", pre, fn, p, what);
}

static void start(text_t *t, const char *fn, const void *p, const char *what)
{
    soma__debug_start_as(t, "soma: debug: ", fn, p, what);
}

/* ---- finding a block ---- */

/* Eight bytes at a time: the check at exit reads every free block. */
static size_t first_not(const unsigned char *p, size_t len, unsigned want)
{
    uint64_t all = 0x0101010101010101u * want;
    size_t i = 0;
    for (uint64_t v; i + 8 <= len; i += 8) {
        memcpy(&v, p + i, 8);
        if (v != all)
            break;
    }
    for (; i < len; i++)
        if (p[i] != want)
            return i;
    return len;
}

static int plausible(const dbg_hdr_t *h, size_t pad, size_t span)
{
    unsigned st = state_of(h);
    return (st == ST_LIVE || st == ST_FREED || st == ST_RELEASED) && api_of(h) > 0 &&
           api_of(h) < SOMA_CALL_END && h->size + TRAIL <= span &&
           (st != ST_LIVE || h->pad == (pad ^ PAD_MAGIC));
}

/* The offset of a large block's header, from its first word; -1 if the
 * word is not one a debug block holds. */
static long large_pad(const unsigned char *b, size_t total)
{
    uint64_t pad = *(const uint64_t *)b ^ PAD_MAGIC;
    if (pad % 16 != 0 || pad > MAX_ALIGN || pad + HDR + TRAIL > total)
        return -1;
    return (long)pad;
}

/* NEED_PLACE: locate must know where p lies (place_of, outside the lock) */
enum { FOUND, FOREIGN, BAD, NEED_PLACE };

#ifdef SOMA_OVERRIDE
/* Where a pointer that is no block of soma's lies, asked with debug
 * mode's lock let go (place_of, locate_locked): naming a loaded object
 * takes the dynamic loader's lock, which a thread inside dlopen or dlclose
 * holds while it allocates or frees, that is while it waits for ours. */
typedef struct {
    int examined;  /* place_of has filled what follows */
    int on_stack;  /* on this thread's stack */
    int in_object; /* in a loaded object's code or data: info says which */
    Dl_info info;
} place_t;

static void place_of(const void *p, place_t *pl)
{
    char here;
    uintptr_t u = (uintptr_t)p, sp = (uintptr_t)&here;
    pl->examined = 1;
    pl->on_stack = u >= sp && u - sp < ((uintptr_t)8 << 20);
    /* (locate has found p outside soma's arenas: NEED_PLACE) */
    pl->in_object = !pl->on_stack && dladdr(p, &pl->info) != 0 && pl->info.dli_fname != NULL;
}

/* p is no block soma made: is it plainly no heap block at all (on this
 * thread's stack, or in a loaded object's code or data)?  1: said so in
 * t.  0: it may be one the system allocator made without soma (a library
 * opened with RTLD_DEEPBIND, a dlmopen namespace, a block soma failed to
 * record), which stays the system allocator's business. */
static int not_a_heap_block(text_t *t, const char *fn, const void *p, const place_t *pl)
{
    if (pl->on_stack) {
        start(t, fn, p, "not a heap block: the address lies on this thread's stack (a local "
                        "variable's, or alloca's)");
        return 1;
    }
    if (pl->in_object) {
        start(t, fn, p, "not a heap block: the address lies in the code or static data of ");
        add(t, "%s", pl->info.dli_fname);
        if (pl->info.dli_sname != NULL && pl->info.dli_saddr != NULL)
            add(t, " (%zu bytes into %s)", (size_t)((uintptr_t)p - (uintptr_t)pl->info.dli_saddr),
                pl->info.dli_sname);
        return 1;
    }
    return 0;
}
#else
typedef int place_t; /* the library leaves foreign pointers to the system allocator */
static void place_of(const void *p, place_t *pl)
{
    (void)p;
    *pl = 0;
}
#endif

/* Which block p is.  FOREIGN: not in soma's range and not a large block of
 * soma's (the system allocator's business, as without debug mode).  BAD:
 * reported; the caller must leave it alone. */
static int locate(const void *p, blk_t *out, const char *fn, const place_t *pl)
{
#ifndef SOMA_OVERRIDE
    (void)pl;
#endif
    text_t t;
    uintptr_t u = (uintptr_t)p;
    arena_t *a = soma__region_arena(p);
    if (a != NULL) {
        pool_t *pool = soma__pool_in(a, p);
        uintptr_t off = u & SOMA_POOL_MASK;
        unsigned char *b = NULL;
        if (off >= SOMA_POOL_OVERHEAD + HDR && pool->heap != NULL && pool->arena == a)
            b = soma__pool_block_start(pool, p); /* NULL: no class, or the pool's tail */
        if (b == NULL) {
            start(&t, fn, p, "not a block soma returned: an address in soma's arenas outside any "
                             "block (a pool header or tail, or a pool never handed out)");
            finish(&t);
            return BAD;
        }
        size_t size = soma__sizeclass_size(pool->szidx);
        size_t into = (size_t)((const unsigned char *)p - b);
        blk_t whole = {b + HDR, (dbg_hdr_t *)b, b, size - HDR, pool, 0};
        if (into != HDR) {
            start(&t, fn, p, "not a block soma returned");
            long delta = (long)((const unsigned char *)p - whole.u);
            if (plausible(whole.h, 0, whole.span)) {
                if (delta < 0)
                    add(&t, ": it points %ld bytes before this one, into its header", -delta);
                else
                    add(&t, ": it points %ld bytes into this one", delta);
                describe(&t, &whole);
            } else {
                add(&t, ": it points %zu bytes into a %zu-byte block of soma's at %p that was "
                        "never handed out", into, size, (void *)b);
            }
            finish(&t);
            return BAD;
        }
        *out = whole;
    } else {
        /* A large block starts at U - HDR, or, aligned, at U - a power of
         * two from ALIGN_MIN up (underlying()). */
        size_t total = 0, pad = 0;
        int found = soma__large_lookup((const void *)(u - HDR), &total);
        for (size_t al = ALIGN_MIN; !found && al <= MAX_ALIGN; al <<= 1)
            if (u % al == 0 && soma__large_lookup((const void *)(u - al), &total))
                pad = al - HDR, found = 1;
        if (!found || total < pad + HDR + TRAIL ||
            large_pad((const unsigned char *)(u - HDR - pad), total) != (long)pad) {
            if (soma__region_holds(p)) {
                start(&t, fn, p, "not a block soma has now: it lies in an arena soma has given "
                                 "back (a double free or a use after free, of a block whose "
                                 "arena emptied, or of a destroyed heap's)");
                finish(&t);
                return BAD;
            }
            uintptr_t at;
            size_t asked, mapped;
            if (soma__large_block_of(p, &at, &asked, &mapped)) {
                start(&t, fn, p, "not a block soma returned");
                add(&t, ": it points %zu bytes into a large block of soma's at %p (%zu bytes "
                        "mapped)", (size_t)(u - at), (void *)at, mapped);
                finish(&t);
                return BAD;
            }
            int freed = soma__large_freed(p);
            if (freed != 0) {
                start(&t, fn, p,
                      freed == SOMA_LARGE_CACHED
                          ? "not a block soma has now: it lies in a large block's mapping that soma "
                            "keeps free for reuse (a double free or a use after free of a large "
                            "block)"
                          : "not a block soma has now: it lies in a large block's mapping that soma "
                            "sealed when the block was freed (a double free or a use after free "
                            "of a large block)");
                finish(&t);
                return BAD;
            }
#ifdef SOMA_OVERRIDE
            /* In the override a block the program holds is soma's, or one
             * the system allocator made for soma (the large registry knows
             * it).  A pointer that is plainly none (the stack, a global)
             * is said so here, rather than in the system allocator's
             * words. */
            size_t sys;
            if (!soma__large_lookup(p, &sys)) {
                if (!pl->examined)
                    return NEED_PLACE; /* nothing said yet */
                if (not_a_heap_block(&t, fn, p, pl)) {
                    finish(&t);
                    return BAD;
                }
            }
#endif
            return FOREIGN;
        }
        unsigned char *b = (unsigned char *)(u - HDR - pad);
        *out = (blk_t){(unsigned char *)p, (dbg_hdr_t *)(b + pad), b, total - pad - HDR, NULL, 0};
    }
    if (!plausible(out->h, (size_t)((unsigned char *)out->h - out->b), out->span)) {
        start(&t, fn, p, "not a block soma returned, or its header was overwritten (an underflow "
                         "from this block, or an overflow from the one before)");
        add(&t, "\n  header at %p:", (void *)out->h);
        for (size_t i = 0; i < HDR; i++)
            add(&t, "%s%02x", i % 8 ? " " : "  ", ((unsigned char *)out->h)[i]);
        finish(&t);
        return BAD;
    }
    return FOUND;
}

/* locate, under the debug lock (the caller's), which it lets go to ask
 * where p lies when p is none of soma's blocks: only then, since a large
 * block's free must not wait for a dlopen.  (Held twice, by a debug call
 * made inside another on this thread, it stays held: rare, and no worse
 * than before.) */
static int locate_locked(const void *p, blk_t *out, const char *fn)
{
    place_t pl = {0};
    int where = locate(p, out, fn, &pl);
    if (where == NEED_PLACE) {
        unlock();
        place_of(p, &pl);
        lock();
        where = locate(p, out, fn, &pl);
    }
    return where;
}

/* The guard bytes in the pad before a block's header (a large block's,
 * aligned or on a page of its own): the pad's last bytes, at most a page
 * of them, after its first word (which holds the pad); none for pad 0. */
static unsigned char *pad_guard(unsigned char *under, size_t pad, size_t *len)
{
    size_t from = pad > 8 + PAGE ? pad - PAGE : 8;
    *len = pad > from ? pad - from : 0;
    return under + from;
}

/* Is the block alive and whole?  0 if it must be left alone (reported). */
static int check_live(const blk_t *b, const char *fn)
{
    text_t t;
    if (b->pool != NULL && b->pool->heap->destroyed) {
        start(&t, fn, b->u, "a block of a destroyed heap: soma_heap_destroy released it with its "
                            "heap, and it must not be used or freed after that");
        describe(&t, b);
        finish(&t);
        return 0;
    }
    unsigned st = state_of(b->h);
    if (st != ST_LIVE) {
        int freeing = strstr(fn, "free") != NULL;
        start(&t, fn, b->u, freeing ? "double free: the block is free already"
                                    : "use after free: the block was freed");
        describe(&t, b);
        finish(&t);
        return 0;
    }
    size_t bad = first_not(b->h->guard, sizeof b->h->guard, GUARD);
    /* A large block's pad (an aligned one's, or a page's: underlying()):
     * its last bytes before the header are guard bytes too (pad_guard). */
    size_t glen;
    unsigned char *g = pad_guard(b->b, (size_t)((unsigned char *)b->h - b->b), &glen);
    size_t padbad = bad == sizeof b->h->guard && glen > 0 ? first_not(g, glen, GUARD) : SIZE_MAX;
    if (bad < sizeof b->h->guard || padbad < glen) {
        start(&t, fn, b->u, "buffer underflow: the guard bytes before the block were overwritten");
        describe(&t, b);
        if (bad < sizeof b->h->guard)
            bytes_diff(&t, b, b->h->guard, sizeof b->h->guard, bad, GUARD);
        else
            bytes_diff(&t, b, g, glen, padbad, GUARD);
        finish(&t);
    }
    size_t n = b->h->size;
    bad = first_not(b->u + n, b->span - n, GUARD);
    if (bad < b->span - n) {
        start(&t, fn, b->u, "buffer overflow: the guard bytes after the block were overwritten");
        describe(&t, b);
        bytes_diff(&t, b, b->u + n, b->span - n, bad, GUARD);
        finish(&t);
    }
    return 1;
}

/* A freed block's fill must be intact from byte `from` of the block on
 * (the bytes before it sealed: below): 0 and a report if it is not. */
static int check_dead_from(const blk_t *b, size_t from, const char *fn, const char *when)
{
    text_t t;
    size_t bad = first_not(b->h->guard, sizeof b->h->guard, GUARD);
    const unsigned char *p = b->h->guard;
    size_t len = sizeof b->h->guard;
    unsigned want = GUARD;
    if (bad == len) {
        bad = from + first_not(b->u + from, b->span - from, DEAD);
        p = b->u, len = b->span, want = DEAD;
    }
    if (bad == len)
        return 1;
    start(&t, fn, b->u, "write after free: the block was changed after it was freed");
    add(&t, " (%s)", when);
    describe(&t, b);
    bytes_diff(&t, b, p, len, bad, want);
    finish(&t);
    return 0;
}

static int check_dead(const blk_t *b, const char *fn, const char *when)
{
    return check_dead_from(b, 0, fn, when);
}

/*
 * A large block in the quarantine, out of reach.  Its fill shows a write
 * after free when the block leaves the quarantine, but a read after free
 * leaves no trace (normal mode's seal of a freed mapping faults on one).
 * So, outside a checker's build (which sees every access itself), a
 * large block's program bytes start on a page of their own, its header
 * at the end of the page before (underlying()), and while the block waits
 * in the quarantine its whole pages are inaccessible (PROT_NONE): a read
 * or a write after free faults at the instruction, and guard.c's fault
 * handler asks soma__debug_fault which block that was.  The block leaves
 * the quarantine with its pages made accessible again, before its fill is
 * checked; the walk of soma_debug_check and of the check at exit skips
 * the pages of a block whose header says they are sealed (TAG_SEALED:
 * none can have changed).  The cost: a page more of each large block, two
 * mprotect calls at its free, in debug mode only.
 */
static int sealing(void)
{
    return !SOMA_TRACKING && soma__options.debug != 0;
}

/* The bytes from U that a large block's seal covers while it is in the
 * quarantine (its whole pages), or 0: none (a pooled block, a block made
 * before debug mode or too small to hold a page). */
static size_t sealed_len(const blk_t *b)
{
    uintptr_t u = (uintptr_t)b->u;
    if (!sealing() || b->pool != NULL || u % PAGE != 0)
        return 0;
    return ((u + b->span) & ~(PAGE - 1)) - u;
}

/* At most this many blocks sealed at once: each splits its mapping in
 * three, and the kernel's count of mappings (65,530 by default) is the
 * program's too.  (The default quarantine, 1 MiB, holds far fewer.) */
#define SEALED_MAX 4096
static unsigned nsealed;

/* b, a block put in the quarantine (lock held): its whole pages sealed.
 * The header's TAG_SEALED says the pages are shut now (the fault handler
 * of SOMA_DEBUG=report clears it when it opens them); b->sealed that this
 * entry holds a seal, undone and uncounted when it leaves.  (The handler
 * reads neither: it matches a fault by the seal's geometry.)  A refusal
 * (the count of mappings) leaves the block as before: its fill is checked
 * where it is walked and when it leaves. */
static void seal(blk_t *b)
{
    size_t len = sealed_len(b);
    if (len == 0 || nsealed >= SEALED_MAX)
        return;
    soma__fault_handler_install(); /* the first time: not before a program needs it */
    b->sealed = len;
    b->h->tag |= TAG_SEALED;
    if (mprotect(b->u, len, PROT_NONE) == 0) {
        nsealed++;
        return;
    }
    b->h->tag &= ~TAG_SEALED;
    b->sealed = 0;
}

/* b leaves the quarantine (lock held, b still in the ring): its pages
 * open again, before anything reads them. */
static void unseal(blk_t *b)
{
    size_t len = b->sealed;
    if (len == 0)
        return;
    if (mprotect(b->u, len, PROT_READ | PROT_WRITE) != 0)
        soma__fatal("debug mode: cannot open the pages of the freed block %p again "
                    "(mprotect: %s)", (void *)b->u, strerror(errno));
    b->h->tag &= ~TAG_SEALED;
    b->sealed = 0;
    nsealed--;
}

/* ---- giving blocks back ---- */

static void release(blk_t *b)
{
    b->h->tag = (b->h->tag & ~(uint64_t)0xff) | ST_RELEASED;
    if (b->pool == NULL) {
        soma__large_free(b->b);
        return;
    }
    heap_t *owner = b->pool->heap;
    if (owner->destroyed)
        return; /* it goes with its heap's tombstone */
    if (owner == soma__heap_tls)
        soma__pool_push(owner, b->pool, b->b);
    else
        soma__pool_free_remote(owner, b->b);
}

static void evict_oldest(void)
{
    blk_t *b = &ring[ring_head];
    unseal(b); /* while it is in the ring: an access meanwhile is still named */
    ring_head = (ring_head + 1) % RING_MAX;
    ring_len--;
    ring_bytes -= b->span + HDR;
    check_dead(b, "=the quarantine", "found as it left the quarantine, to be reused");
    release(b);
}

/* The block is freed: marked, filled, and kept out of reach a while. */
static void retire(blk_t *b)
{
    b->h->tag = (b->h->tag & ~(uint64_t)0xff) | ST_FREED;
    memset(b->u, DEAD, b->span);
    if (ring == NULL && !ring_failed && (size_t)soma__options.quarantine > 0) {
        ring = soma__os_map(RING_MAX * sizeof *ring);
        ring_failed = ring == NULL;
#ifdef SOMA_TRACK_ASAN
        /* Blocks waiting here are not leaked: LeakSanitizer must look. */
        if (ring != NULL)
            __lsan_register_root_region(ring, RING_MAX * sizeof *ring);
#endif
    }
    if (ring == NULL || (size_t)soma__options.quarantine == 0) {
        release(b);
        return;
    }
    while (ring_len > 0 && (ring_len == RING_MAX || ring_bytes + b->span + HDR > (size_t)soma__options.quarantine))
        evict_oldest();
    blk_t *q = &ring[(ring_head + ring_len) % RING_MAX];
    *q = *b;
    q->sealed = 0;
    ring_len++;
    ring_bytes += b->span + HDR;
    seal(q);
}

/* A fault at `a` (guard.c's handler; access: "a read of", "a write to"):
 * in the sealed pages of a large block in the quarantine?  Then said so,
 * with the block and the stack that made it: 1, and the program stops
 * with the signal; with SOMA_DEBUG=report, 2: the pages are made
 * accessible again, and the access is done when the handler returns.
 * 0: none of them.  No lock (a handler's: the thread that faulted may be
 * any), so the quarantine is read as it stands. */
int soma__debug_fault(uintptr_t a, const char *access)
{
    if (!sealing() || ring == NULL)
        return 0;
    size_t head = ring_head, len = ring_len;
    for (size_t i = 0; i < len && i < RING_MAX; i++) {
        blk_t e = ring[(head + i) % RING_MAX]; /* as it is now: the ring may move on */
        /* Its sealed bytes as the seal computed them: a fault there is a
         * use after free even if the block's eviction has just opened
         * them (the access then succeeds when the handler returns). */
        size_t sealed = sealed_len(&e);
        if (a - (uintptr_t)e.u >= sealed)
            continue;
        text_t t;
        t.len = 0;
        add(&t, "soma: debug: %s %p faulted: use after free: the block was freed", access,
            (void *)a);
        describe(&t, &e);
        add(&t, "\n  the address is U+%zu (U = %p; the block's %llu bytes end at U+%llu)",
            (size_t)(a - (uintptr_t)e.u), (void *)e.u, (unsigned long long)e.h->size,
            (unsigned long long)e.h->size);
        soma__debug_emit(&t);
        uint32_t stack = e.h->stack;
        if (stack != SOMA_STACK_NONE && stack != SOMA_STACK_OWN && stack != SOMA_STACK_FULL) {
            static const char made[] = "  the block was made at:\n";
            soma__sink_write_all(STDERR_FILENO, made, sizeof made - 1);
            soma__leaks_print_stack(stack, "    ");
        }
        if (soma__options.debug != SOMA_DEBUG_REPORT ||
            mprotect(e.u, sealed, PROT_READ | PROT_WRITE) != 0)
            return 1;
        /* Open now: the walk reads the block whole again (what the program
         * writes there is found), and its eviction counts the seal gone.
         * Only the bit: the rest of the word is the block's holder's. */
        __atomic_fetch_and(&e.h->tag, ~TAG_SEALED, __ATOMIC_RELAXED);
        static const char on[] = "soma: debug: its pages are made accessible again, and the "
                                 "program goes on (SOMA_DEBUG=report)\n";
        soma__sink_write_all(STDERR_FILENO, on, sizeof on - 1);
        return 2;
    }
    return 0;
}

/* ---- the calls ---- */

static heap_t *resolve(heap_t *heap)
{
    return heap == &soma__heap_empty ? soma__heap_current() : heap;
}

/* An underlying block for n bytes and its description (lock held). */
static int underlying(heap_t *heap, size_t n, size_t align, blk_t *out)
{
    unsigned char *b;
    size_t pad = 0, total;
    /* A large block that holds a page: its program bytes on a page of
     * their own, to be sealed in the quarantine (seal, above). */
    if (align < PAGE && sealing() && n >= PAGE && HDR + n + TRAIL > SOMA_MEDIUM_MAX)
        align = PAGE;
    if (align > SOMA_ALIGNMENT) {
        /* U = B + a, both aligned to a, and a holds the header. */
        size_t a = align < ALIGN_MIN ? ALIGN_MIN : align;
        total = a + n + TRAIL;
        b = soma__large_aligned_alloc(NULL, a, total);
        pad = a - HDR;
    } else {
        total = HDR + n + TRAIL;
        /* rounded up to 16: a small one gets a plain twin's block, all of
         * it debug mode's (base/config.h) */
        size_t whole = (total + 15) & ~(size_t)15;
        b = whole <= SOMA_MEDIUM_MAX ? soma__fastpath_malloc_class(heap, soma__sizeclass_of(whole))
                                     : soma__large_malloc(NULL, total);
    }
    if (b == NULL)
        return -1;
    pool_t *pool = NULL;
    if (soma__region_arena(b) != NULL) {
        pool = soma__pool_of(b);
        total = soma__sizeclass_size(pool->szidx);
    } else {
        soma__large_lookup(b, &total); /* may be more than asked: malloc.c's fallback */
    }
    *out = (blk_t){b + pad + HDR, (dbg_hdr_t *)(b + pad), b, total - pad - HDR, pool, 0};
    /* A block back from its pool must still be as it was freed. */
    if (pool != NULL && state_of(out->h) == ST_RELEASED)
        check_dead(out, "=" FN("soma_malloc", "malloc"), "found as it was handed out again");
    return 0;
}

/* A call on an explicit heap that soma_heap_destroy has destroyed (lock
 * held): reported, 1. */
static int heap_gone(heap_t *heap, const char *fn)
{
    if (!heap->destroyed)
        return 0;
    text_t t;
    start(&t, fn, (void *)heap, "the heap was destroyed by soma_heap_destroy");
    finish(&t);
    errno = EINVAL;
    return 1;
}

/* The call stack of the allocation being made, taken before the lock
 * (leaks.c): the unwinder may load itself, and that allocates. */
typedef struct {
    int n;
    void *frames[SOMA_LEAKS_DEPTH];
} here_t;

SOMA_ENTRY static void take_here(here_t *here, int api)
{
    here->n = soma__options.debug_leaks ? soma__leaks_take(here->frames, (unsigned)api) : 0;
}

/* A new debug block (lock held). */
static void *make(heap_t *heap, size_t n, int api, size_t align, const here_t *here)
{
    if (n > SIZE_MAX / 2 || align > MAX_ALIGN) {
        errno = ENOMEM;
        return NULL;
    }
    /* Under the lock: acquiring a thread's heap may adopt an orphan and
     * collect its pending frees, which soma_debug_check must not see half
     * done. */
    heap = resolve(heap);
    blk_t b;
    if (heap == NULL || heap_gone(heap, api_name((unsigned)api)) ||
        underlying(heap, n, align, &b) != 0)
        return NULL; /* errno = ENOMEM, or EINVAL */
    uint64_t pad = (uint64_t)((unsigned char *)b.h - b.b);
    b.h->pad = pad ^ PAD_MAGIC;
    *(uint64_t *)b.b = pad ^ PAD_MAGIC; /* the same word when pad is 0 */
    size_t glen;
    unsigned char *g = pad_guard(b.b, (size_t)pad, &glen);
    memset(g, GUARD, glen); /* checked as the front guard is (check_live) */
    b.h->size = n;
    b.h->tag = ++serial << 16 | (uint64_t)api << 8 | ST_LIVE;
    b.h->stack = soma__leaks_intern(here->frames, here->n);
    memset(b.h->guard, GUARD, sizeof b.h->guard);
    memset(b.u, CLEAN, n);
    memset(b.u + n, GUARD, b.span - n);
    return b.u;
}

/* SOMA_DEBUG=guard (or SOMA_GUARD_SAMPLE's pick): the block on pages of
 * its own (guard.c), with the serial and API of a debug block; its slot's
 * FIFO is its quarantine.  Not an explicit heap's: its destroy must
 * release every block.  guard.c keeps its own call stacks (it takes them
 * outside its lock), so such a block is in no leak report.  NULL: not
 * guarded (not picked, or guard.c could not), made as any debug block. */
static void *guard_block(heap_t *heap, size_t n, int api, size_t align)
{
    if (heap->explicit_heap || soma__guard_size == 0 || n > SIZE_MAX / 2 || align > MAX_ALIGN ||
        !(soma__options.debug == SOMA_DEBUG_GUARD ||
          (soma__options.guard_sample > 0 && soma__guard_sampled())))
        return NULL;
    lock();
    uint64_t s = ++serial;
    unlock();
    unsigned char *g = soma__guard_malloc(n, api, align, s);
    if (g != NULL)
        memset(g, CLEAN, n);
    return g;
}

SOMA_ENTRY void *soma__debug_malloc(heap_t *heap, size_t n, int api, size_t align)
{
    void *g = guard_block(heap, n, api, align); /* outside the lock: guard.c takes a stack */
    if (g != NULL)
        return g;
    here_t here;
    take_here(&here, api);
    lock();
    void *p = make(heap, n, api, align, &here);
    unlock();
    return p;
}

SOMA_ENTRY void *soma__debug_calloc(heap_t *heap, size_t nmemb, size_t size, int api)
{
    size_t total;
    if (soma__base_mul_overflow(nmemb, size, &total))
        return NULL;
    void *p = soma__debug_malloc(heap, total, api, 0);
    if (p != NULL)
        memset(p, 0, total);
    return p;
}

void soma__debug_free(void *p)
{
    if (p == NULL)
        return;
    if (soma__guard_holds(p)) {
        soma__guard_free(p, FN("soma_free", "free"));
        return;
    }
    lock();
    blk_t b;
    int where = locate_locked(p, &b, FN("soma_free", "free"));
    if (where == FOUND && check_live(&b, FN("soma_free", "free")))
        retire(&b);
    unlock();
    if (where == FOREIGN)
        soma__large_free(p); /* not soma's: the system allocator's */
}

SOMA_ENTRY void *soma__debug_realloc(heap_t *heap, void *p, size_t n, int api)
{
    if (p == NULL)
        return soma__debug_malloc(heap, n, api, 0);
    if (n == 0) {
        soma__debug_free(p);
        return NULL;
    }
    const char *fn = api == SOMA_CALL_REALLOC ? FN("soma_realloc", "realloc") : "soma_heap_realloc";
    size_t had;
    if (soma__guard_holds(p)) {
        if (!soma__guard_live(p, fn, &had))
            return errno = EINVAL, NULL; /* reported, and left alone */
        void *q = soma__debug_malloc(heap, n, api, 0);
        if (q != NULL) {
            memcpy(q, p, had < n ? had : n);
            soma__guard_free(p, fn);
        }
        return q;
    }
    here_t here;
    take_here(&here, api);
    /* A guarded new block is made before the lock, as malloc's: guard.c
     * takes its call stack, and an unwinder that finds the unwind tables
     * by dl_iterate_phdr (libgcc before _dl_find_object) takes the
     * loader's lock, which a thread in dlclose holds while it frees: the
     * deadlock locate's NEED_PLACE avoids.  Given back below if p turns
     * out not to be a live block (the program never sees it). */
    void *g = guard_block(heap, n, api, 0);
    lock();
    blk_t b;
    int where = locate_locked(p, &b, fn);
    void *q = NULL;
    if (where == FOUND && check_live(&b, fn)) {
        /* Always a new block, so that a stale pointer to the old one meets
         * the quarantine's checks. */
        q = g != NULL ? g : make(heap, n, api, 0, &here);
        if (q != NULL) {
            memcpy(q, b.u, b.h->size < n ? b.h->size : n);
            retire(&b);
        }
    } else if (where != FOREIGN) {
        errno = EINVAL; /* reported, and left alone */
    }
    unlock();
    if (g != NULL && q != g)
        soma__guard_free(g, fn);
    if (where == FOREIGN)
        return soma__large_realloc(p, n);
    return q;
}

size_t soma__debug_usable_size(const void *p)
{
    const char *fn = FN("soma_usable_size", "malloc_usable_size");
    size_t had;
    if (soma__guard_holds(p))
        return soma__guard_live(p, fn, &had) ? had : 0;
    lock();
    blk_t b;
    int where = locate_locked(p, &b, fn);
    size_t n = where == FOUND && check_live(&b, fn) ? b.h->size : 0;
    unlock();
    return where == FOREIGN ? soma__large_usable_size(p) : n;
}

/* A tombstone goes for good: its quarantined blocks first. */
static void bury(heap_t *h)
{
    size_t kept = 0;
    for (size_t i = 0; i < ring_len; i++) {
        blk_t e = ring[(ring_head + i) % RING_MAX];
        if (e.pool != NULL && e.pool->heap == h)
            ring_bytes -= e.span + HDR;
        else
            ring[(ring_head + kept++) % RING_MAX] = e;
    }
    ring_len = kept;
    soma__heap_release(h);
}

void soma__debug_heap_destroy(heap_t *h)
{
    lock();
    if (heap_gone(h, "soma_heap_destroy")) {
        unlock();
        return;
    }
    soma__heap_unlist(h); /* out of the statistics, as a destroyed heap is */
    h->destroyed = 1;
    h->next_orphan = tombs;
    tombs = h;
    if (++ntombs > MAX_TOMBS) {
        heap_t **at = &tombs;
        while ((*at)->next_orphan != NULL)
            at = &(*at)->next_orphan;
        heap_t *oldest = *at;
        *at = NULL;
        ntombs--;
        bury(oldest);
    }
    unlock();
}

/* ---- checked copies (soma__malloc_copy_check) ---- */

/* The debug block that holds the byte p, header included, if p lies in
 * one: 1 and *out.  No diagnosis: a copy into soma's memory that is no
 * block handed out (a pool's header, a block never handed out, a large
 * block made before soma started) goes ahead as it would without soma.
 * Lock held: no block changes state meanwhile. */
static int holder(const void *p, blk_t *out)
{
    arena_t *a = soma__region_arena(p);
    unsigned char *b;
    if (a != NULL) {
        pool_t *pool = soma__pool_in(a, p);
        if (pool->heap == NULL || pool->arena != a || !soma__pool_holds(pool, p) ||
            (b = soma__pool_block_start(pool, p)) == NULL)
            return 0;
        size_t size = soma__sizeclass_size(pool->szidx);
        *out = (blk_t){b + HDR, (dbg_hdr_t *)b, b, size - HDR, pool, 0};
    } else {
        uintptr_t start;
        size_t total, map;
        if (!soma__large_block_of(p, &start, &total, &map))
            return 0;
        b = (unsigned char *)start;
        long pad = large_pad(b, total);
        if (pad < 0)
            return 0;
        *out = (blk_t){b + pad + HDR, (dbg_hdr_t *)(b + pad), b, total - (size_t)pad - HDR, NULL, 0};
    }
    return plausible(out->h, (size_t)((unsigned char *)out->h - out->b), out->span);
}

int soma__debug_copy_check(const copy_t *c)
{
    if (c->len == 0)
        return 1;
    lock();
    blk_t b;
    uintptr_t last;
    /* A destination in no block: a copy that ends in one started before
     * it (an underflow, which may start far away: 1 MiB before). */
    if (!holder(c->dst, &b) &&
        (__builtin_add_overflow((uintptr_t)c->dst, c->from, &last) ||
         __builtin_add_overflow(last, c->len - 1, &last) || !holder((const void *)last, &b))) {
        uintptr_t at;
        size_t map;
        int sealed = soma__large_sealed(c->dst, &at, &map);
        if (sealed) {
            text_t t;
            t.len = 0;
            char call[160];
            soma__malloc_copy_call(call, sizeof call, c);
            add(&t, "soma: debug: %s: write after free: the copy writes into a large block's "
                    "mapping that soma sealed when the block was freed (%p, %zu bytes mapped)",
                call, (void *)at, map);
            finish(&t);
        }
        unlock();
        return !sealed;
    }
    /* the copy's bytes from U: [lo, hi), hi saturated */
    long long lo = (long long)((uintptr_t)c->dst - (uintptr_t)b.u), hi = 0;
    if (c->from > LLONG_MAX || c->len > LLONG_MAX ||
        __builtin_add_overflow(lo, (long long)c->from, &lo) ||
        __builtin_add_overflow(lo, (long long)c->len, &hi))
        hi = LLONG_MAX;
    size_t n = b.h->size;
    unsigned st = state_of(b.h);
    const char *what = NULL;
    char why[96];
    if (st != ST_LIVE) {
        what = "write after free: the copy writes into a freed block";
    } else if (lo < 0) {
        snprintf(why, sizeof why, "buffer underflow: the copy starts %lld byte%s before the block",
                 -lo, lo == -1 ? "" : "s");
        what = why;
    } else if (hi > (long long)n) {
        unsigned long long over = (unsigned long long)hi - n;
        snprintf(why, sizeof why, "buffer overflow: the copy runs %llu byte%s past the block", over,
                 over == 1 ? "" : "s");
        what = why;
    }
    if (what == NULL) {
        unlock();
        return 1;
    }
    text_t t;
    t.len = 0;
    char call[160];
    soma__malloc_copy_call(call, sizeof call, c);
    add(&t, "soma: debug: %s: %s", call, what);
    describe(&t, &b);
    add(&t, "\n  the copy writes U%+lld to U%+lld (U = %p; the block's %llu bytes end at U+%llu)",
        lo, hi - 1, (void *)b.u, (unsigned long long)n, (unsigned long long)n);
    finish(&t);
    unlock();
    return 0;
}

/* ---- the walk over blocks in use (stats/visit.c) ---- */

/* The walk reports what the program has: a live block's own pointer and
 * size asked.  A freed block is the program's no more, though its pool
 * still counts it (it waits in the quarantine, or on its owner's remote
 * stack once released). */
int soma__debug_visible(void *b, size_t total, int large, void **user, size_t *size)
{
    unsigned char *under = b;
    size_t pad = 0;
    if (large) {
        long at = large_pad(under, total);
        if (at < 0) { /* no debug block: made before soma started, or a foreign one */
            *user = b;
            *size = total;
            return 1;
        }
        pad = (size_t)at;
    }
    const dbg_hdr_t *h = (const dbg_hdr_t *)(under + pad);
    if (total < pad + HDR || !plausible(h, pad, total - pad - HDR) || state_of(h) != ST_LIVE)
        return 0;
    *user = under + pad + HDR;
    *size = h->size;
    return 1;
}

/* ---- soma_debug_check, and the check at exit ---- */

/* Who walks: the words of its diagnoses, and whether the live blocks go
 * to the leak report. */
typedef struct {
    const char *fn;        /* start()'s "=..." form: "<who> found block p" */
    const char *dead;      /* check_dead's `when` for a freed block */
    const char *free_dead; /* ... for a released one, free in its pool */
    int leaks;
} walk_t;

static const walk_t CHECK = {"=soma_debug_check", "found by the check",
                             "found by the check, free in its pool", 0};

/* A live block's guards checked, and the block added to the leak report. */
static void check_alive(const blk_t *b, const walk_t *w)
{
    check_live(b, w->fn);
    if (w->leaks)
        soma__leaks_add(b->h->stack, api_of(b->h), b->h->size);
}

/* One carved block of a pool, which is either on the pool's free list
 * (free) or handed out: live, in quarantine, or released to a remote
 * stack its owner has not collected yet. */
static void check_block(pool_t *pool, unsigned char *b, int on_free_list, const walk_t *w)
{
    size_t size = soma__sizeclass_size(pool->szidx);
    blk_t k = {b + HDR, (dbg_hdr_t *)b, b, size - HDR, pool, 0};
    unsigned st = state_of(k.h);
    if (on_free_list) {
        /* Released blocks; a carved block never handed out has st 0. */
        if (st == ST_RELEASED && plausible(k.h, 0, k.span))
            check_dead(&k, w->fn, w->free_dead);
        return;
    }
    text_t t;
    if (!plausible(k.h, 0, k.span)) {
        start(&t, w->fn, k.u, "the header of a block in use was overwritten (an underflow from "
                              "it, or an overflow from the block before)");
        finish(&t);
    } else if (st == ST_LIVE) {
        check_alive(&k, w);
    } else {
        check_dead(&k, w->fn, w->dead);
    }
}

static void check_pool(pool_t *pool, void *arg)
{
    const walk_t *w = arg;
    /* An empty pool whose pages went back to the OS (the decay's purge)
     * holds nothing: its free list pointed into pages that read as zeros
     * now. */
    if (pool->returned)
        return;
    size_t size = soma__sizeclass_size(pool->szidx);
    uint64_t free_bits[SOMA_POOL_BITMAP_WORDS];
    long carved = soma__check_free_map(pool, free_bits);
    if (carved < 0) {
        text_t t;
        start(&t, w->fn, (void *)pool->base, "pool its free list is corrupted (a write after "
                                             "free, or an overflow)");
        finish(&t);
        return;
    }
    for (size_t i = 0; i < (size_t)carved; i++)
        check_block(pool, (unsigned char *)pool->base + SOMA_POOL_OVERHEAD + i * size,
                    (int)(free_bits[i / 64] >> (i % 64) & 1), w);
}

static void check_heap(heap_t *heap, void *arg)
{
    soma__check_pools(heap, check_pool, arg);
}

static void check_large(void *p, size_t total, void *arg)
{
    const walk_t *w = arg;
    unsigned char *b = p;
    long pad = large_pad(b, total);
    if (pad < 0)
        return; /* not a debug block: made before soma started, or foreign */
    blk_t k = {b + pad + HDR, (dbg_hdr_t *)(b + pad), b, total - (size_t)pad - HDR, NULL, 0};
    if (!plausible(k.h, (size_t)pad, k.span)) {
        text_t t;
        start(&t, w->fn, k.u, "the header of a large block was overwritten (an underflow)");
        finish(&t);
    } else if (state_of(k.h) == ST_LIVE) {
        check_alive(&k, w);
    } else {
        /* in the quarantine: its sealed pages skipped (nothing can have
         * written them) */
        check_dead_from(&k, (k.h->tag & TAG_SEALED) ? sealed_len(&k) : 0, w->fn, w->dead);
    }
}

static void check_invariants(heap_t *heap, void *arg)
{
    const walk_t *w = arg;
    char why[256];
    if (soma__check_heap_locked(heap, why, sizeof why) != 0) {
        text_t t;
        start(&t, w->fn, (void *)heap, "heap it is inconsistent: ");
        add(&t, "%s", why);
        finish(&t);
    }
}

/* Every heap's invariants, then in debug mode every block (debug lock
 * held); how many problems were found. */
static size_t walk(const walk_t *w)
{
    size_t before = problems;
    soma__heap_foreach(check_invariants, (void *)w, 0);
    if (soma__options.debug) {
        soma__heap_foreach(check_heap, (void *)w, 0);
        soma__large_foreach(check_large, (void *)w);
    }
    (void)soma__guard_check(w->fn); /* guarded blocks' slack, in every mode */
    return problems - before;
}

size_t soma_debug_check(void)
{
    soma__start();
    lock();
    size_t found = walk(&CHECK);
    unlock();
    return found;
}

/* The program's stdout before soma's lines, as if it were unbuffered
 * (exit would flush it after this destructor).  Only if no thread holds
 * it: one blocked inside a write must not hang the exit. */
static void flush_stdout(void)
{
    if (ftrylockfile(stdout) == 0) {
        fflush_unlocked(stdout);
        funlockfile(stdout);
    }
}

/* At exit: every block checked, the diagnoses printed with the stacks of
 * their blocks, the leak report; an abort if anything was damaged and
 * SOMA_DEBUG=1.  Priority 101 runs it after the program's own destructors
 * when soma is linked into the program; a shared soma's destructors run
 * after those of the program and of what it loaded later. */
__attribute__((destructor(101))) static void debug_at_exit(void)
{
    static int done;
    if (soma__options.debug == SOMA_DEBUG_OFF || done)
        return;
    done = 1;
    static const walk_t AT_EXIT = {"=the check at exit", "found at exit",
                                   "found at exit, free in its pool", 1};
    walk_t w = AT_EXIT;
    lock();
    exit_log = soma__os_map(sizeof *exit_log); /* NULL: diagnoses print as found */
    exit_checking = exit_log != NULL;
    w.leaks = soma__options.debug_leaks && soma__leaks_begin() == 0;
    exit_log_t *log = exit_log;
    size_t found = walk(&w);
    exit_log = NULL;
    exit_checking = 0;
    unlock(); /* (anything pending only without exit_log: diagnoses printed as found) */

    if (found > 0 || w.leaks)
        flush_stdout();
    for (unsigned i = 0; log != NULL && i < log->n; i++) {
        const text_t *t = &log->shown[i];
        soma__sink_write_all(STDERR_FILENO, t->buf, t->len);
        if (t->stack != SOMA_STACK_NONE && t->stack != SOMA_STACK_OWN &&
            t->stack != SOMA_STACK_FULL) {
            static const char made[] = "  the block was made at:\n";
            soma__sink_write_all(STDERR_FILENO, made, sizeof made - 1);
            soma__leaks_print_stack(t->stack, "    ");
        }
    }
    if (log != NULL && log->more > 0) {
        char line[160];
        int len = snprintf(line, sizeof line, "soma: debug: the check at exit found %u more "
                                              "problems, not shown\n", log->more);
        soma__sink_write_all(STDERR_FILENO, line, (size_t)len);
    }
    if (log != NULL)
        soma__os_unmap(log, sizeof *log);
    if (w.leaks)
        soma__leaks_report(api_name);
    if (found > 0 && (soma__options.debug == SOMA_DEBUG_ABORT || soma__options.debug == SOMA_DEBUG_GUARD))
        stop();
}

int soma_debug_mode(void)
{
    soma__start();
    return soma__options.debug;
}
