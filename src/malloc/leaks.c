/*
 * leaks.c: debug mode's call stacks, and its leak report at exit.
 *
 * With SOMA_DEBUG_LEAKS on (debug mode's default), every debug block's
 * header holds the number of the call stack that made it (debug.c).  The
 * stack is taken with base/trace.h at each allocation, before debug mode's
 * lock, and interned under it: a table of distinct stacks, each kept once
 * and found again by its hash, so a block pays 4 bytes for it however
 * deep its stack and however many blocks share it.
 *
 *   stacks   an array of records (hash, length, LEAK_DEPTH frames) in a
 *            NORESERVE mapping reserved once, appended to and never moved
 *            or changed: a record read after the lock is let go is whole.
 *            Number k is stacks[k - 1]; 0 is "no stack".
 *   index    an open-addressed table of numbers by hash, twice as many
 *            slots as stacks at least, mapped afresh and filled again from
 *            the records when it grows.
 * Both are mapped with the os layer, never with malloc: this runs inside
 * malloc.  A full table gives SOMA_STACK_FULL; an allocation made while
 * this thread is taking a stack (glibc's backtrace loads libgcc_s on its
 * first call, which allocates) gets SOMA_STACK_OWN: it is the unwinder's,
 * not the program's, and the report leaves it out.
 *
 * Which frames are soma's: every function that may stand between the
 * program's call and the take is placed in one linker section (SOMA_ENTRY,
 * malloc.h; in the override, the whole shared object counts), and the
 * leading frames whose return address lies in it are dropped.  A fixed number to skip would not do: which of those calls the
 * compiler inlines or turns into jumps (a tail call leaves no frame)
 * differs between gcc and clang, paths and builds.
 *
 * The report (soma__leaks_report) is debug.c's exit check's second half:
 * the walk over every live block adds each to a tally (under the lock),
 * and the tally is printed after the lock is let go, because naming a
 * frame takes the dynamic loader's lock (dladdr), which a thread inside
 * dlopen holds while it allocates, that is while it waits for ours.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/sink.h"
#include "base/trace.h"
#include "common/text.h"
#include "malloc/malloc.h"
#include "os/os.h"

/* Frames kept per stack: the allocating function and its callers.  Each
 * frame is one more step of the unwinder at every allocation (the cost is
 * in docs/BENCHMARKS.md#debug-mode). */
#define LEAK_DEPTH SOMA_LEAKS_DEPTH
/* soma's own frames at most above a take (what a compiler that made no
 * tail call would leave): leaks_take, debug_malloc, debug_calloc or
 * debug_realloc, calloc_in or realloc_in, soma_calloc or soma_realloc,
 * the override's calloc or realloc, and one spare. */
#define ENTRY_FRAMES 7
_Static_assert(LEAK_DEPTH + ENTRY_FRAMES <= SOMA_TRACE_MAX, "trace.h takes that many frames");
#define MAX_STACKS ((uint32_t)(sizeof(void *) == 8 ? 1u << 20 : 1u << 16))
#define FIRST_SLOTS 4096u
#define SHOW_SITES 10 /* allocation sites printed, most bytes first */
#define SHOW_SIZES 8  /* sizes asked printed, most bytes first */
#define SIZE_SLOTS 65536u

typedef struct {
    uint64_t hash;
    uint32_t n;
    void *frames[LEAK_DEPTH];
} stack_rec_t;

/* The debug lock guards all of these. */
static stack_rec_t *stacks;
static uint32_t nstacks;
static uint32_t *slots; /* stack numbers, 0 for an empty slot */
static uint32_t nslots; /* a power of two */
static int table_failed;

/* The linker's bounds of soma's entry points: the override's whole code
 * (its ELF header to the end of its text), or the section SOMA_ENTRY puts
 * them in (malloc.h).  Hidden: this object's own, not the program's. */
#ifdef SOMA_OVERRIDE
extern const char __ehdr_start[] __attribute__((visibility("hidden")));
extern const char _etext[] __attribute__((visibility("hidden")));
#define ENTRY_START __ehdr_start
#define ENTRY_END _etext
#else
extern const char __start_soma_entry[] __attribute__((visibility("hidden")));
extern const char __stop_soma_entry[] __attribute__((visibility("hidden")));
#define ENTRY_START __start_soma_entry
#define ENTRY_END __stop_soma_entry
#endif

/* This thread is taking a stack: an allocation now is the unwinder's. */
static __thread int taking __attribute__((tls_model("initial-exec")));

/* How many of soma's frames a take makes room for, by call: the most seen
 * so far.  Unwinding is most of what a take costs, frame by frame, and
 * soma's are 2 on malloc's path (leaks_take, debug_malloc: the rest are
 * tail calls) but more on realloc's; so room is made for what has been
 * seen, and a take that finds more of them takes again, once, with more. */
static atomic_int room[SOMA_CALL_END];

static int is_soma(const void *ret)
{
    /* A return address points after its call: the byte before it is in
     * the calling function. */
    const char *c = (const char *)ret - 1;
    return c >= ENTRY_START && c < ENTRY_END;
}

SOMA_ENTRY int soma__leaks_take(void **frames, unsigned call)
{
    if (taking)
        return -1;
    void *all[LEAK_DEPTH + ENTRY_FRAMES];
    atomic_int *r = &room[call < SOMA_CALL_END ? call : 0];
    int extra = atomic_load_explicit(r, memory_order_relaxed);
    if (extra < 2)
        extra = 2;
    int n, first;
    for (;;) {
        taking = 1;
        n = soma__trace_take(all, LEAK_DEPTH + extra, 0);
        taking = 0;
        /* Below leaks_take, the tracer's own frames if it left any (the
         * backtrace of AddressSanitizer's runtime leaves one); then soma's. */
        for (first = 0; first < n && !is_soma(all[first]); first++)
            ;
        if (first == n)
            first = 0;
        while (first < n && is_soma(all[first]))
            first++;
        /* Every frame asked for came, but too few of them are the
         * program's: soma had more frames than there was room for. */
        if (n < LEAK_DEPTH + extra || n - first >= LEAK_DEPTH || extra >= ENTRY_FRAMES)
            break;
        int more = first > extra ? first : extra + 1;
        extra = more < ENTRY_FRAMES ? more : ENTRY_FRAMES;
        int seen_room = atomic_load_explicit(r, memory_order_relaxed);
        while (seen_room < extra && !atomic_compare_exchange_weak_explicit(
                                        r, &seen_room, extra, memory_order_relaxed,
                                        memory_order_relaxed))
            ;
    }
    int k = 0;
    for (int i = first; i < n && k < LEAK_DEPTH; i++)
        frames[k++] = all[i];
    return k;
}

static uint64_t hash_frames(void *const *frames, int n)
{
    uint64_t h = 0x9e3779b97f4a7c15u ^ (uint64_t)n;
    for (int i = 0; i < n; i++) {
        h ^= (uint64_t)(uintptr_t)frames[i];
        h *= 0xff51afd7ed558ccdu;
        h ^= h >> 32;
    }
    return h;
}

/* The index at twice its size (or its first), filled from the records. */
static int grow_index(void)
{
    uint32_t n = nslots ? nslots * 2 : FIRST_SLOTS;
    uint32_t *fresh = soma__os_map((size_t)n * sizeof *fresh);
    if (fresh == NULL)
        return -1;
    for (uint32_t k = 1; k <= nstacks; k++) {
        uint32_t i = (uint32_t)stacks[k - 1].hash & (n - 1);
        while (fresh[i] != 0)
            i = (i + 1) & (n - 1);
        fresh[i] = k;
    }
    if (slots != NULL)
        soma__os_unmap(slots, (size_t)nslots * sizeof *slots);
    slots = fresh;
    nslots = n;
    return 0;
}

uint32_t soma__leaks_intern(void *const *frames, int n)
{
    if (n < 0)
        return SOMA_STACK_OWN;
    if (n == 0)
        return SOMA_STACK_NONE;
    if (stacks == NULL && !table_failed) {
        stacks = soma__os_map_sparse((size_t)MAX_STACKS * sizeof *stacks);
        table_failed = stacks == NULL || grow_index() != 0;
    }
    if (table_failed)
        return SOMA_STACK_FULL;
    uint64_t h = hash_frames(frames, n);
    uint32_t i = (uint32_t)h & (nslots - 1);
    for (uint32_t probes = 0; slots[i] != 0; i = (i + 1) & (nslots - 1), probes++) {
        /* never full (grow_index): a probe past every slot, or a slot
         * naming no stack, is the index written over by a wild write */
        if (probes == nslots || slots[i] > nstacks)
            soma__fatal("debug mode's table of call stacks (%p) was written over: a write "
                        "far outside a block reached soma's own memory",
                        (void *)slots);
        const stack_rec_t *s = &stacks[slots[i] - 1];
        if (s->hash == h && s->n == (uint32_t)n &&
            memcmp(s->frames, frames, (size_t)n * sizeof *frames) == 0)
            return slots[i];
    }
    if (nstacks == MAX_STACKS)
        return SOMA_STACK_FULL;
    stack_rec_t *s = &stacks[nstacks];
    s->hash = h;
    s->n = (uint32_t)n;
    memcpy(s->frames, frames, (size_t)n * sizeof *frames);
    /* a release store: soma__leaks_print_stack reads the count unlocked */
    __atomic_store_n(&nstacks, nstacks + 1, __ATOMIC_RELEASE);
    slots[i] = nstacks;
    /* At most half full, so that a search ends soon; a failed growth only
     * makes later searches longer until the last slot (kept free) is
     * needed: then the table counts as full. */
    if (nstacks * 2 > nslots && grow_index() != 0 && nstacks + 1 >= nslots)
        table_failed = 1;
    return nstacks;
}

/* ---- the report ---- */

typedef struct {
    uint64_t count, bytes;
    size_t min, max; /* sizes asked */
} tally_t;

typedef struct {
    size_t size;
    tally_t t;
} size_slot_t;

/* One tally, mapped at exit (debug lock held while it is filled). */
typedef struct {
    tally_t total, own, calls[SOMA_CALL_END];
    uint32_t nsites;     /* by_site[0]: no stack; [k]: stack k; [nstacks + 1]: table full */
    tally_t *by_site;    /* nsites entries */
    size_slot_t *sizes;  /* SIZE_SLOTS, open-addressed by size */
    tally_t other_sizes; /* the sizes that found no slot */
    uint32_t nsizes;
} report_t;

static report_t *report;
static size_t report_bytes;
static uint32_t seen; /* nstacks when the tally began: numbers above it are no stack's */

static void tally_add(tally_t *t, size_t size)
{
    if (t->count == 0 || size < t->min)
        t->min = size;
    if (size > t->max)
        t->max = size;
    t->count++;
    t->bytes += size;
}

int soma__leaks_begin(void)
{
    seen = nstacks;
    uint32_t nsites = nstacks + 2;
    report_bytes = sizeof *report + (size_t)nsites * sizeof(tally_t) +
                   (size_t)SIZE_SLOTS * sizeof(size_slot_t);
    report = soma__os_map(report_bytes);
    if (report == NULL)
        return -1;
    report->nsites = nsites;
    report->by_site = (tally_t *)(report + 1);
    report->sizes = (size_slot_t *)(report->by_site + nsites);
    return 0;
}

void soma__leaks_add(uint32_t stack, unsigned call, size_t size)
{
    report_t *r = report;
    if (stack == SOMA_STACK_OWN) {
        tally_add(&r->own, size);
        return;
    }
    tally_add(&r->total, size);
    tally_add(&r->calls[call < SOMA_CALL_END ? call : 0], size);
    uint32_t site = stack == SOMA_STACK_FULL || stack >= r->nsites - 1 ? r->nsites - 1 : stack;
    tally_add(&r->by_site[site], size);
    uint32_t i = (uint32_t)(size * 0x9e3779b97f4a7c15u >> 40) & (SIZE_SLOTS - 1);
    for (uint32_t tries = 0; tries < 64; tries++, i = (i + 1) & (SIZE_SLOTS - 1)) {
        size_slot_t *s = &r->sizes[i];
        if (s->t.count == 0) {
            s->size = size;
            r->nsizes++;
        }
        if (s->size == size) {
            tally_add(&s->t, size);
            return;
        }
    }
    tally_add(&r->other_sizes, size);
}

/* The `want` largest of n tallies by bytes (tally i at base + i * stride),
 * their positions into best, largest first; how many. */
static unsigned top(const void *base, size_t stride, size_t n, unsigned want, size_t *best)
{
    unsigned k = 0;
    for (size_t i = 0; i < n; i++) {
        const tally_t *t = (const tally_t *)((const char *)base + i * stride);
        if (t->count == 0)
            continue;
        unsigned at = k < want ? k++ : want;
        while (at > 0) {
            const tally_t *o = (const tally_t *)((const char *)base + best[at - 1] * stride);
            if (o->bytes >= t->bytes)
                break;
            if (at < want)
                best[at] = best[at - 1];
            at--;
        }
        if (at < want)
            best[at] = i;
    }
    return k;
}

/* A line of the report: debug mode's diagnosis buffer and its writer
 * (malloc.h), which never allocate. */
typedef debug_text_t line_t;
#define put soma__debug_add

static void emit(line_t *l)
{
    put(l, "\n");
    soma__sink_write_all(STDERR_FILENO, l->buf, l->len);
    l->len = 0;
}

/* "N blocks (B bytes)", or "B bytes in N blocks", with the commas of
 * soma's dumps. */
static void put_count(line_t *l, const tally_t *t, int bytes_first)
{
    char c[SOMA_TEXT_COMMAS_LEN], b[SOMA_TEXT_COMMAS_LEN];
    soma_text_commas(c, sizeof c, (size_t)t->count);
    soma_text_commas(b, sizeof b, (size_t)t->bytes);
    if (bytes_first)
        put(l, "%s bytes in %s block%s", b, c, t->count == 1 ? "" : "s");
    else
        put(l, "%s block%s (%s bytes)", c, t->count == 1 ? "" : "s", b);
}

void soma__leaks_print_stack(uint32_t stack, const char *indent)
{
    /* Records are only appended, so one numbered at most nstacks is whole
     * (SOMA_STACK_OWN and _FULL lie above any count). */
    if (stack == SOMA_STACK_NONE || stack > __atomic_load_n(&nstacks, __ATOMIC_ACQUIRE))
        return;
    const stack_rec_t *s = &stacks[stack - 1];
    soma__trace_print(STDERR_FILENO, indent, s->frames, (int)s->n);
}

void soma__leaks_report(const char *(*call_name)(unsigned))
{
    report_t *r = report;
    if (r == NULL)
        return;
    line_t l = {.len = 0};
    if (r->total.count > 0) {
        size_t best[SHOW_SITES > SHOW_SIZES ? SHOW_SITES : SHOW_SIZES];
        size_t sites = 0;
        for (uint32_t i = 0; i < r->nsites; i++)
            sites += r->by_site[i].count > 0;
        put(&l, "soma: leaks at exit (pid %d): ", (int)getpid());
        put_count(&l, &r->total, 0);
        put(&l, " still in use, from %zu allocation site%s (SOMA_DEBUG_LEAKS=0: no report)",
            sites, sites == 1 ? "" : "s");
        emit(&l);

        put(&l, "  by call:");
        const char *sep = " ";
        for (unsigned c = 0; c < SOMA_CALL_END; c++)
            if (r->calls[c].count > 0) {
                put(&l, "%s%s ", sep, call_name(c));
                put_count(&l, &r->calls[c], 0);
                sep = "; ";
            }
        emit(&l);

        put(&l, "  by size asked:");
        unsigned nb = top((const char *)r->sizes + offsetof(size_slot_t, t), sizeof *r->sizes, SIZE_SLOTS, SHOW_SIZES, best);
        sep = " ";
        for (unsigned i = 0; i < nb; i++) {
            const size_slot_t *s = &r->sizes[best[i]];
            char c[SOMA_TEXT_COMMAS_LEN];
            put(&l, "%s%zu bytes x %s", sep, s->size,
                soma_text_commas(c, sizeof c, (size_t)s->t.count));
            sep = ", ";
        }
        if (r->other_sizes.count > 0)
            put(&l, " (and more sizes)");
        else if (r->nsizes > nb)
            put(&l, " (and %u more size%s)", r->nsizes - nb, r->nsizes - nb == 1 ? "" : "s");
        emit(&l);

        nb = top(r->by_site, sizeof *r->by_site, r->nsites, SHOW_SITES, best);
        tally_t shown = {0, 0, 0, 0};
        for (unsigned i = 0; i < nb; i++) {
            const tally_t *t = &r->by_site[best[i]];
            shown.count += t->count;
            shown.bytes += t->bytes;
            put(&l, "  ");
            put_count(&l, t, 1);
            if (t->min == t->max)
                put(&l, " of %zu bytes", t->min);
            else
                put(&l, " of %zu to %zu bytes", t->min, t->max);
            if (best[i] == 0)
                put(&l, ", made with no call stack (none could be taken)");
            else if (best[i] == r->nsites - 1)
                put(&l, ", their call stacks not kept (the table of %u was full)",
                    (unsigned)MAX_STACKS);
            else
                put(&l, ", made at:");
            emit(&l);
            if (best[i] != 0 && best[i] != r->nsites - 1)
                soma__leaks_print_stack((uint32_t)best[i], "    ");
        }
        if (sites > nb) {
            tally_t rest = {r->total.count - shown.count, r->total.bytes - shown.bytes, 0, 0};
            put(&l, "  and %zu more allocation site%s: ", sites - nb, sites - nb == 1 ? "" : "s");
            put_count(&l, &rest, 1);
            emit(&l);
        }
    }
    soma__os_unmap(r, report_bytes);
    report = NULL;
}
