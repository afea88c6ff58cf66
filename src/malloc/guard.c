/*
 * guard.c: guarded blocks, GWP-ASan's idea.  SOMA_GUARD_SAMPLE=N puts one
 * allocation in N (at random intervals averaging N, per thread) on pages
 * of its own; SOMA_DEBUG=guard does it for every debug block.  A guarded
 * block ends where an inaccessible guard area begins, so a read or write
 * past its end faults at the instruction; freed, its pages become
 * inaccessible too, and stay so while the slot waits in a FIFO, so a use
 * after free faults as well.  A SIGSEGV handler turns such a fault into a
 * diagnosis in debug mode's form, with the call stacks that made the block
 * and freed it.
 *
 * The range: one reservation made at start-up, PROT_NONE, split into
 * NCLASS parts of 1 GiB of addresses.  Part k holds slots of 2^(k+1)
 * pages: 2^k pages for a block, then 2^k pages that are never accessible
 * (the guard area).  So "is p guarded?" is one range compare
 * (soma__guard_holds), and p's slot is two shifts.
 *
 *   slot of class k:  | ... PROT_NONE ... | 0.. FD.. | U: n bytes | FD.. | guard area, 2^k pages |
 *                     ^ slot              ^ page      ^ U          ^ U+n  ^ slot + 2^k pages
 *
 * The block is right-aligned: U + n rounded up to U's alignment (16, or an
 * aligned_alloc's) is where the guard area starts.  The bytes between U + n
 * and there, and the 64 before U on its first page, are filled with FD and
 * checked when the block is freed: an overflow into that slack, or an
 * underflow that stays on the block's page, is caught then.  Only the block's own pages are made accessible (mprotect); the
 * rest of its slot stays inaccessible, and a free hands the pages back to
 * the OS and makes them inaccessible again in one mmap(MAP_FIXED).  A slot
 * is taken from its class's never-used slots first, then the oldest freed
 * one: a freed block's pages stay inaccessible as long as possible.
 *
 * What each slot's block was (its address, the size asked, serial, API,
 * state, and call stacks taken when it was made and freed) is kept apart,
 * in a table mapped at start-up, so that an overflow cannot damage it and
 * the handler finds it after the block is gone.
 *
 * Bounds and falling back: a block of more than 256 MiB (2^16 pages), an
 * explicit heap's block, and blocks asked for when MAX_LIVE guarded blocks
 * are live (each costs the kernel two more mappings, of its 65530 by
 * default) or when a class has no slot left or the kernel refuses, are not
 * guarded: they are made as if guarding were off (one line says so the
 * first time).
 *
 * Locks: guard_lock, for the slots and their records; nothing else of
 * soma's is taken inside it, and it is taken inside the debug lock
 * (SOMA_ORDER_GUARD).  Call stacks are taken before it (taking one may
 * allocate: trace.h); the first is taken at start-up, outside any lock.
 * The handler reads the records without it (the process is dying).
 *
 * The handler: installed at start-up when guarding is on, and by debug
 * mode when it first seals a large block in its quarantine (debug.c), for
 * SIGSEGV and SIGBUS, on an alternate stack for the thread that installs
 * it (where a thread's stack is small, the handler needs about 6 KiB of
 * it).  A fault
 * outside the range, or a signal not raised by a fault, goes to the
 * handler that was there before (or the default action).  A program that
 * installs its own handler later replaces soma's: guard faults then reach
 * its handler as plain SIGSEGVs (Python's faulthandler, which chains to
 * the handler it replaced, keeps soma's diagnosis).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include "base/options.h"
#include "base/sink.h"
#include "base/start.h"
#include "base/trace.h"
#include "malloc/malloc.h"
#include "os/os.h"
#include "os/track.h"

#define PAGE_SHIFT 12
#define PAGE ((uintptr_t)1 << PAGE_SHIFT)
#define NCLASS 17      /* slots of 1 .. 2^16 pages: blocks up to 256 MiB */
#define CLASS_SHIFT 30 /* each class's part of the range: 1 GiB of addresses */
#define MAX_SLOTS 65536
#define MAX_LIVE 16384
#define FRAMES 8
#define FILL 0xFD /* debug mode's guard byte */
/* The bytes before a block filled and checked: at most this many (a whole
 * page's were 19,000 instructions a free, byte by byte; an underflow is
 * nearly always by a few bytes). */
#define FRONT 64
_Static_assert(SOMA_OS_PAGE_SIZE == PAGE, "guard.c's page is the OS page");

enum { UNUSED = 0, LIVE, FREED };

typedef struct {
    uintptr_t u;     /* the block the slot holds or held */
    size_t n;        /* bytes asked */
    uint64_t serial; /* debug mode's serial, or the count of guarded blocks */
    uint32_t next;   /* the FIFO of freed slots: the next record's index + 1 */
    uint8_t api, state, nmade, nfreed;
    void *made[FRAMES], *freed[FRAMES];
} rec_t;

typedef struct {
    uint32_t first;  /* its first record */
    uint32_t nslots;
    uint32_t fresh;  /* slots never used: from here to nslots */
    uint32_t head, tail; /* freed slots, oldest first (record index + 1; 0: none) */
} class_t;

uintptr_t soma__guard_base;
size_t soma__guard_size;
__thread long soma__guard_countdown __attribute__((tls_model("initial-exec")));
static __thread uint64_t rng __attribute__((tls_model("initial-exec")));

static pthread_mutex_t guard_lock = PTHREAD_MUTEX_INITIALIZER;
static class_t classes[NCLASS];
static rec_t *recs;
static size_t live; /* guarded blocks live now: at most MAX_LIVE */
/* For the statistics (soma__guard_counts): the bytes asked of the live
 * blocks, their pages made accessible, and the blocks ever made. */
static size_t live_bytes, live_mapped, made_total;
/* Blocks picked to be guarded but made as usual: the live limit, no slot
 * left, the kernel's refusal (say_once counts them). */
static size_t unguarded_total;
static uint64_t guarded_serial;
static int warned;
/* Soma's own code, when it is an object of its own (the override, libsoma.so):
 * the innermost frames of a call stack that lie there are left out. */
static uintptr_t own_lo, own_hi;

/* ---- sampling ---- */

/* The next countdown. */
static long draw(void)
{
    if (rng == 0)
        rng = ((uint64_t)(uintptr_t)&rng * 0x9E3779B97F4A7C15u) | 1; /* per thread, per run */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    uint64_t r = rng * 0x2545F4914F6CDD1Du;
    uint64_t n = (uint64_t)soma__options.guard_sample;
    /* Uniform over 1 .. 2N - 1: N on average, and no pattern of the
     * program's allocations can line up with it. */
    return (long)(1 + (r >> 1) % (2 * n - 1));
}

int soma__guard_next(void)
{
    long left = soma__guard_countdown - 1; /* 0: this one; < 0: the thread's first */
    if (left < 0) { /* the thread's first allocation: this one counts too */
        left = draw() - 1;
        if (left > 0) {
            soma__guard_countdown = left;
            return 0;
        }
    }
    soma__guard_countdown = draw();
    return 1;
}

/* ---- slots ---- */

static uintptr_t slot_addr(unsigned k, uint32_t s)
{
    return soma__guard_base + ((uintptr_t)k << CLASS_SHIFT) + ((uintptr_t)s << (PAGE_SHIFT + k + 1));
}

static uintptr_t data_end(unsigned k, uint32_t s)
{
    return slot_addr(k, s) + (PAGE << k);
}

/* The class and slot of an address in the range: 0, or -1 past a class's
 * slots. */
static int slot_of(uintptr_t a, unsigned *k, uint32_t *s)
{
    uintptr_t off = a - soma__guard_base;
    *k = (unsigned)(off >> CLASS_SHIFT);
    *s = (uint32_t)((off & (((uintptr_t)1 << CLASS_SHIFT) - 1)) >> (PAGE_SHIFT + *k + 1));
    return *k < NCLASS && *s < classes[*k].nslots ? 0 : -1;
}

static rec_t *rec_at(unsigned k, uint32_t s)
{
    return &recs[classes[k].first + s];
}

static uintptr_t page_floor(uintptr_t a)
{
    return a & ~(PAGE - 1);
}

/* Where the FD before a block at u starts: FRONT bytes before it, or its
 * page's start. */
static uintptr_t front_of(uintptr_t u)
{
    return u - page_floor(u) < FRONT ? page_floor(u) : u - FRONT;
}

/* The smallest class whose slot holds n bytes aligned to `al` placed
 * against its end; NCLASS if none. */
static unsigned class_for(size_t n, size_t al)
{
    size_t bytes = (n + al - 1) & ~(al - 1);
    if (al > PAGE)
        bytes += al - PAGE; /* the slot's end need not be so aligned */
    unsigned k = 0;
    while (k < NCLASS && (PAGE << k) < bytes)
        k++;
    return k;
}

static void say_once(int expected, const char *why)
{
    unguarded_total++;
    /* SOMA_DEBUG=guard asks for every block: any real program reaches the
     * live limit (`expected`), and a line on stderr there would be noise
     * that breaks programs checking their own stderr (CPython's tests
     * do); the statistics count these blocks (blocks_unguarded_total). */
    if (warned || (expected && soma__options.debug == SOMA_DEBUG_GUARD))
        return;
    warned = 1;
    char line[256];
    int len = snprintf(line, sizeof line, "soma: warning: guard: %s; such blocks are made unguarded "
                                          "from here on while it lasts\n", why);
    soma__sink_write_all(STDERR_FILENO, line, (size_t)len < sizeof line ? (size_t)len
                                                                       : sizeof line - 1);
}

/* A call stack for a record, soma's own frames left out. */
static int take(void **frames)
{
    void *all[FRAMES + 4]; /* soma's own frames are about 3: unwinding costs by the frame */
    int n = soma__trace_take(all, FRAMES + 4, 1), i = 0;
    while (i < n && (uintptr_t)all[i] - own_lo < own_hi - own_lo)
        i++;
    int k = 0;
    for (; i < n && k < FRAMES; i++)
        frames[k++] = all[i];
    return k;
}

void *soma__guard_malloc(size_t n, int api, size_t align, uint64_t serial)
{
    if (soma__guard_size == 0)
        return NULL;
    size_t al = align > SOMA_ALIGNMENT ? align : SOMA_ALIGNMENT;
    size_t want = n == 0 ? 1 : n;
    if (want > (PAGE << (NCLASS - 1)) || al > (PAGE << (NCLASS - 2)))
        return NULL; /* too large to guard */
    unsigned k = class_for(want, al);
    if (k >= NCLASS)
        return NULL;
    void *frames[FRAMES];
    int nframes = take(frames); /* before the lock: it may allocate */
    int saved = errno;
    pthread_mutex_lock(&guard_lock);
    class_t *c = &classes[k];
    uint32_t s;
    if (live >= MAX_LIVE) {
        say_once(1, "as many guarded blocks are live as soma allows (16384: each costs the kernel "
                 "two mappings)");
        pthread_mutex_unlock(&guard_lock);
        return NULL;
    }
    if (c->fresh < c->nslots) {
        s = c->fresh++;
    } else if (c->head != 0) {
        s = c->head - 1 - c->first;
        c->head = recs[c->head - 1].next;
        if (c->head == 0)
            c->tail = 0;
    } else {
        say_once(1, "every guard slot of a size class is in use");
        pthread_mutex_unlock(&guard_lock);
        return NULL;
    }
    rec_t *r = rec_at(k, s);
    uintptr_t end = data_end(k, s);
    uintptr_t u = (end - want) & ~(uintptr_t)(al - 1);
    uintptr_t lo = page_floor(u);
    if (mprotect((void *)lo, end - lo, PROT_READ | PROT_WRITE) != 0) {
        /* The kernel's count of mappings, most likely: the slot goes back
         * to the front of the FIFO, untouched. */
        r->next = c->head;
        c->head = (uint32_t)(c->first + s + 1);
        if (c->tail == 0)
            c->tail = c->head;
        say_once(0, "the kernel refused to make a guarded block's pages accessible");
        pthread_mutex_unlock(&guard_lock);
        errno = saved;
        return NULL;
    }
    memset((void *)front_of(u), FILL, u - front_of(u));
    memset((void *)(u + n), FILL, end - u - n);
    r->u = u;
    r->n = n;
    r->serial = serial != 0 ? serial : ++guarded_serial;
    r->api = (uint8_t)api;
    r->state = LIVE;
    r->next = 0;
    r->nmade = (uint8_t)nframes;
    r->nfreed = 0;
    memcpy(r->made, frames, sizeof frames);
    live++;
    live_bytes += n;
    live_mapped += end - lo;
    made_total++;
    pthread_mutex_unlock(&guard_lock);
    return (void *)u;
}

/* ---- diagnoses ---- */

/* Debug mode's diagnoses say "soma: debug: "; SOMA_GUARD_SAMPLE's alone,
 * "soma: guard: ". */
static const char *prefix(void)
{
    return soma__options.debug ? "soma: debug: " : "soma: guard: ";
}

static const char *state_name(unsigned st)
{
    return st == LIVE ? "live" : st == FREED ? "freed (its pages made inaccessible)" : "never used";
}

static void describe(debug_text_t *t, const rec_t *r)
{
    soma__debug_add(t, "\n  block %p: %zu bytes asked, serial %llu, made by %s, a guarded block; %s",
                    (void *)r->u, r->n, (unsigned long long)r->serial,
                    soma__debug_api_name(r->api), state_name(r->state));
}

/* The diagnosis is written, then the call stacks, then what happens next. */
static void stacks(const rec_t *r)
{
    static const char made[] = "  made at:\n", freed[] = "  freed at:\n";
    if (r->nmade > 0) {
        soma__sink_write_all(STDERR_FILENO, made, sizeof made - 1);
        soma__trace_print(STDERR_FILENO, "    ", r->made, r->nmade);
    }
    if (r->state == FREED && r->nfreed > 0) {
        soma__sink_write_all(STDERR_FILENO, freed, sizeof freed - 1);
        soma__trace_print(STDERR_FILENO, "    ", r->freed, r->nfreed);
    }
}

/* What a report made under guard_lock leaves for after the unlock: the
 * block's call stacks (naming a frame takes the dynamic loader's lock,
 * and a thread inside dlopen that holds it may be waiting for guard_lock
 * to make its own allocation) and the ruling (abort or go on).  One per
 * thread; a walk that reports several blocks (soma__guard_check) keeps
 * the first one's stacks. */
typedef struct {
    int set, stacks, go_on;
    rec_t r;
} later_t;
static __thread later_t later __attribute__((tls_model("initial-exec")));

/* The text written now (or, at exit, kept for after the check's walk:
 * then the stacks, which would come before it, are left out); the rest
 * waits for settle().  guard_lock held. */
static void report(debug_text_t *t, const rec_t *r, int go_on)
{
    int shown = soma__debug_emit(t);
    if (later.set) {
        later.go_on &= go_on;
        return;
    }
    later.set = 1;
    later.stacks = shown && r != NULL;
    later.go_on = go_on;
    if (r != NULL)
        later.r = *r;
}

/* After guard_lock is let go: the stacks of what report() wrote, then
 * debug mode's rule (abort unless SOMA_DEBUG=report), or, sampling in
 * production, abort (but soma_debug_check reports and goes on, as it
 * does without debug mode). */
static void settle(void)
{
    if (!later.set)
        return;
    later.set = 0;
    if (later.stacks)
        stacks(&later.r);
    if (soma__options.debug || later.go_on) {
        soma__debug_stop();
        return;
    }
    static const char tail[] = "soma: guard: aborting\n";
    soma__sink_write_all(STDERR_FILENO, tail, sizeof tail - 1);
    abort();
}

/* p's record if p is a live guarded block; else reported, NULL (lock held). */
static rec_t *find_live(const void *p, const char *fn)
{
    unsigned k;
    uint32_t s;
    debug_text_t t;
    rec_t *r = slot_of((uintptr_t)p, &k, &s) == 0 ? rec_at(k, s) : NULL;
    if (r != NULL && r->u == (uintptr_t)p && r->state == LIVE)
        return r;
    if (r != NULL && r->u == (uintptr_t)p && r->state == FREED) {
        soma__debug_start_as(&t, prefix(), fn, p, strstr(fn, "free") != NULL
                                         ? "double free: the block is free already"
                                         : "use after free: the block was freed");
        describe(&t, r);
    } else if (r != NULL && r->state != UNUSED && (uintptr_t)p - page_floor(r->u) <
                                                      data_end(k, s) - page_floor(r->u)) {
        long delta = (long)((uintptr_t)p - r->u);
        soma__debug_start_as(&t, prefix(), fn, p, "not a block soma returned");
        soma__debug_add(&t, ": it points %ld bytes %s this one", delta < 0 ? -delta : delta,
                        delta < 0 ? "before" : "into");
        describe(&t, r);
    } else {
        soma__debug_start_as(&t, prefix(), fn, p, "not a block soma returned: an address in soma's range of "
                                     "guarded blocks where no block starts");
        r = NULL;
    }
    report(&t, r, 0);
    return NULL;
}

/* Is the slack around r's block still FD?  Reported if not. */
static void check_slack(const rec_t *r, const char *fn, int go_on)
{
    unsigned k;
    uint32_t s;
    (void)slot_of(r->u, &k, &s);
    const unsigned char *lo = (const unsigned char *)front_of(r->u);
    const unsigned char *u = (const unsigned char *)r->u;
    const unsigned char *end = (const unsigned char *)data_end(k, s);
    for (const unsigned char *q = lo; q < u; q++)
        if (*q != FILL) {
            debug_text_t t;
            soma__debug_start_as(&t, prefix(), fn, u, "buffer underflow: the bytes before the block, on its "
                                         "page, were overwritten");
            describe(&t, r);
            soma__debug_diff(&t, u, r->n, q, (size_t)(u - q), 0, FILL);
            report(&t, r, go_on);
            break;
        }
    for (const unsigned char *q = u + r->n; q < end; q++)
        if (*q != FILL) {
            debug_text_t t;
            soma__debug_start_as(&t, prefix(), fn, u, "buffer overflow: the bytes after the block, before its "
                                         "guard page, were overwritten");
            describe(&t, r);
            soma__debug_diff(&t, u, r->n, q, (size_t)(end - q), 0, FILL);
            report(&t, r, go_on);
            break;
        }
}

int soma__guard_live(const void *p, const char *fn, size_t *n)
{
    pthread_mutex_lock(&guard_lock);
    rec_t *r = find_live(p, fn);
    if (r != NULL)
        *n = r->n;
    pthread_mutex_unlock(&guard_lock);
    settle();
    return r != NULL;
}

void soma__guard_retag(void *p, int api)
{
    unsigned k;
    uint32_t s;
    pthread_mutex_lock(&guard_lock);
    if (slot_of((uintptr_t)p, &k, &s) == 0 && rec_at(k, s)->u == (uintptr_t)p)
        rec_at(k, s)->api = (uint8_t)api;
    pthread_mutex_unlock(&guard_lock);
}

void soma__guard_free(void *p, const char *fn)
{
    void *frames[FRAMES];
    int nframes = take(frames);
    int saved = errno; /* free never changes errno */
    pthread_mutex_lock(&guard_lock);
    rec_t *r = find_live(p, fn);
    if (r != NULL) {
        check_slack(r, fn, 0);
        unsigned k;
        uint32_t s;
        (void)slot_of(r->u, &k, &s);
        uintptr_t lo = page_floor(r->u);
        soma__os_decommit((void *)lo, data_end(k, s) - lo);
        r->state = FREED;
        r->nfreed = (uint8_t)nframes;
        memcpy(r->freed, frames, sizeof frames);
        live--;
        live_bytes -= r->n;
        live_mapped -= data_end(k, s) - lo;
        class_t *c = &classes[k];
        uint32_t idx = (uint32_t)(r - recs) + 1;
        r->next = 0;
        if (c->tail != 0)
            recs[c->tail - 1].next = idx;
        else
            c->head = idx;
        c->tail = idx;
    }
    pthread_mutex_unlock(&guard_lock);
    settle();
    errno = saved;
}

void soma__guard_counts(soma_guarded_stats *g)
{
    pthread_mutex_lock(&guard_lock);
    g->blocks_allocated_total = made_total;
    g->blocks_in_use = live;
    g->bytes_in_use = live_bytes;
    g->bytes_mapped = live_mapped;
    g->blocks_unguarded_total = unguarded_total;
    pthread_mutex_unlock(&guard_lock);
}

size_t soma__guard_check(const char *fn)
{
    size_t n = 0;
    pthread_mutex_lock(&guard_lock);
    for (unsigned k = 0; k < NCLASS && recs != NULL; k++)
        for (uint32_t s = 0; s < classes[k].fresh; s++)
            if (rec_at(k, s)->state == LIVE) {
                check_slack(rec_at(k, s), fn, 1);
                n++;
            }
    pthread_mutex_unlock(&guard_lock);
    settle();
    return n;
}

/* ---- the fault handler ---- */

static struct sigaction before[2]; /* SIGSEGV's and SIGBUS's handlers before soma's */

static struct sigaction *before_of(int sig)
{
    return &before[sig == SIGBUS];
}

/* The guarded block a faulting address belongs to: the freed block whose
 * pages it lies in (a use after free), else the nearest block of the slot
 * and its neighbours.  *dist: how far past the end (> 0), before the start
 * (< 0), or 0 inside. */
static const rec_t *culprit(uintptr_t a, long *dist)
{
    unsigned k;
    uint32_t s;
    if (slot_of(a, &k, &s) != 0)
        return NULL;
    const rec_t *best = NULL;
    uintptr_t best_far = UINTPTR_MAX;
    for (uint32_t i = s == 0 ? 0 : s - 1; i <= s + 1 && i < classes[k].nslots; i++) {
        const rec_t *r = rec_at(k, i);
        if (r->state == UNUSED)
            continue;
        uintptr_t end = r->u + r->n;
        if (a >= page_floor(r->u) && a < data_end(k, i) && (r->state == FREED || a >= r->u)) {
            *dist = a >= end ? (long)(a - end) + 1 : a < r->u ? -(long)(r->u - a) : 0;
            return r;
        }
        uintptr_t far = a >= end ? a - end : r->u - a;
        if (far < best_far) {
            best_far = far;
            best = r;
            *dist = a >= end ? (long)far + 1 : -(long)far;
        }
    }
    return best;
}

static const char *ordinal(long n)
{
    if (n % 100 >= 11 && n % 100 <= 13)
        return "th";
    return n % 10 == 1 ? "st" : n % 10 == 2 ? "nd" : n % 10 == 3 ? "rd" : "th";
}

/* What the faulting instruction did, as the diagnosis says it. */
static const char *access_of(const ucontext_t *uc)
{
#if defined(__x86_64__)
    /* The page fault's error code: bit 1 set for a write. */
    return uc->uc_mcontext.gregs[REG_ERR] & 2 ? "a write to" : "a read of";
#else
    (void)uc;
    return "an access to";
#endif
}

/* The diagnosis's last line: the program dies of the signal, as usual. */
static void stops(int sig)
{
    char tail[128];
    int len = snprintf(tail, sizeof tail, "%sthe program stops with %s, as the access raised it\n",
                       prefix(), sig == SIGBUS ? "SIGBUS" : "SIGSEGV");
    soma__sink_write_all(STDERR_FILENO, tail, (size_t)len);
}

/* A fault in a large block's mapping sealed at its free (large.c): not a
 * guarded block, but the handler is there and knows the range. */
static void diagnose_sealed(uintptr_t a, uintptr_t start, size_t map, int sig,
                            const ucontext_t *uc)
{
    debug_text_t t = {.len = 0};
    soma__debug_add(&t, "%s%s %p faulted: use after free: it lies in a large block's mapping "
                        "that soma sealed when the block was freed\n  the address is B%+ld (B = "
                        "%p, the block's start; %zu bytes mapped)",
                    prefix(), access_of(uc), (void *)a, (long)(a - start), (void *)start, map);
    soma__debug_emit(&t);
    stops(sig);
}

static void diagnose(uintptr_t a, int sig, const ucontext_t *uc)
{
    const char *access = access_of(uc);
    long dist = 0;
    const rec_t *r = culprit(a, &dist);
    debug_text_t t = {.len = 0};
    soma__debug_add(&t, "%s%s %p faulted: ", prefix(), access, (void *)a);
    if (r == NULL) {
        soma__debug_add(&t, "an address in soma's range of guarded blocks that no block is near");
    } else if (r->state == FREED) {
        soma__debug_add(&t, "use after free: the block was freed");
    } else if (dist > 0) {
        soma__debug_add(&t, "buffer overflow: the %ld%s byte past the end of a guarded block",
                        dist, ordinal(dist));
    } else {
        soma__debug_add(&t, "buffer underflow: the %ld%s byte before a guarded block", -dist,
                        ordinal(-dist));
    }
    if (r != NULL) {
        describe(&t, r);
        long off = (long)(a - r->u);
        soma__debug_add(&t, "\n  the address is U%+ld (U = %p; the block's %zu bytes end at U+%zu)",
                        off, (void *)r->u, r->n, r->n);
    }
    soma__debug_emit(&t);
    if (r != NULL)
        stacks(r);
    stops(sig);
}

static void on_fault(int sig, siginfo_t *si, void *uc)
{
    int saved = errno;
    uintptr_t a = (uintptr_t)si->si_addr;
    struct sigaction *prev = before_of(sig);
    uintptr_t start;
    size_t map;
    int debugged;
    if (si->si_code > 0 && soma__guard_holds((const void *)a)) {
        diagnose(a, sig, uc);
    } else if (si->si_code > 0 && soma__large_sealed_quick(a, &start, &map)) {
        diagnose_sealed(a, start, map, sig, uc);
    } else if (si->si_code > 0 && (debugged = soma__debug_fault(a, access_of(uc))) != 0) {
        errno = saved;
        if (debugged == 2) /* SOMA_DEBUG=report: the access is made now */
            return;
        /* Dies of the signal even if the access would now succeed (the
         * block's eviction, racing, opened its pages): sent again, it is
         * delivered once the handler returns. */
        stops(sig);
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    } else if ((prev->sa_flags & SA_SIGINFO) && prev->sa_sigaction != NULL) {
        prev->sa_sigaction(sig, si, uc);
        errno = saved;
        return;
    } else if (prev->sa_handler != SIG_DFL && prev->sa_handler != SIG_IGN) {
        prev->sa_handler(sig);
        errno = saved;
        return;
    }
    /* The default action: a fault repeats when the handler returns and
     * kills the process as usual; a signal sent by kill() is sent again. */
    signal(sig, SIG_DFL);
    if (si->si_code <= 0)
        raise(sig);
    errno = saved;
}

/* ---- start-up ---- */

static int find_own(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    uintptr_t me = (uintptr_t)arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X) && me - lo < ph->p_memsz) {
            /* Linked into the program itself, soma's frames cannot be told
             * from the program's: keep them all. */
            if (info->dlpi_name != NULL && info->dlpi_name[0] != '\0') {
                own_lo = lo;
                own_hi = lo + ph->p_memsz;
            }
            return 1;
        }
    }
    return 0;
}

/* The handler, installed once (its first caller: guard_start, or debug
 * mode's first seal), with an alternate stack for the calling thread
 * unless it has one: a small thread stack must not stop the diagnosis. */
void soma__fault_handler_install(void)
{
    static atomic_int installed;
    if (atomic_exchange_explicit(&installed, 1, memory_order_relaxed))
        return;
    stack_t ss;
    if (sigaltstack(NULL, &ss) == 0 && (ss.ss_flags & SS_DISABLE)) {
        size_t sz = 64 << 10;
        ss.ss_sp = soma__os_map(sz);
        ss.ss_size = sz;
        ss.ss_flags = 0;
        if (ss.ss_sp != NULL)
            sigaltstack(&ss, NULL);
    }
    /* The handlers before ours are read first: installed while other
     * threads run (debug mode's first seal), ours may be called at once,
     * and must find them. */
    sigaction(SIGSEGV, NULL, &before[0]);
    sigaction(SIGBUS, NULL, &before[1]);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
}

static void guard_start(void)
{
    if (soma__options.guard_sample <= 0 && soma__options.debug != SOMA_DEBUG_GUARD)
        return;
    if (SOMA_TRACKING) {
        /* A checker's build: the checker owns the faults, and its books
         * know nothing of these pages. */
        fprintf(stderr, "soma: warning: guarded blocks are off in a memory checker's build\n");
        return;
    }
    size_t total = 0;
    for (unsigned k = 0; k < NCLASS; k++) {
        size_t n = ((size_t)1 << CLASS_SHIFT) >> (PAGE_SHIFT + k + 1);
        classes[k].first = (uint32_t)total;
        classes[k].nslots = (uint32_t)(n < MAX_SLOTS ? n : MAX_SLOTS);
        classes[k].fresh = 1; /* slot 0 is never used: an underflow of slot 1 lands in it */
        total += classes[k].nslots;
    }
    void *range = soma__os_reserve((size_t)NCLASS << CLASS_SHIFT);
    recs = soma__os_map_sparse(total * sizeof *recs);
    if (range == NULL || recs == NULL) {
        fprintf(stderr, "soma: warning: no address range for guarded blocks: guarding is off\n");
        if (range != NULL)
            soma__os_unmap(range, (size_t)NCLASS << CLASS_SHIFT);
        return;
    }
    dl_iterate_phdr(find_own, (void *)(uintptr_t)soma__guard_malloc);
    soma__trace_warm(); /* its first call allocates: here, outside any lock */
    soma__fault_handler_install();
    soma__guard_base = (uintptr_t)range;
    soma__guard_size = (size_t)NCLASS << CLASS_SHIFT; /* last: from here on blocks are made */
}

static void guard_fork(int phase)
{
    soma__start_fork_lock(&guard_lock, phase);
}
SOMA_HOOK(guard, SOMA_ORDER_GUARD, guard_start, guard_fork);
