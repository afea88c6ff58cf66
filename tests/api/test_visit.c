/*
 * test_visit.c: soma_blocks_visit, every block in use, one callback each.
 *
 *  - blocks of many small, medium and large sizes, in the main thread's
 *    heap, an explicit heap, an exited thread's heap (an orphan) and a live
 *    thread's heap, some freed: the walk reports exactly the blocks still
 *    allocated (plus those freed into the live thread's heap and not yet
 *    collected, which the statistics count as in use too), each once, none
 *    overlapping, with the right size, class and heap; its per-class counts
 *    equal soma_stats_get's, and the large blocks' count and bytes too;
 *  - visiting the explicit heap reports exactly its blocks, heap == it;
 *  - a callback that returns nonzero stops the walk, and its value is
 *    returned; a NULL callback is EINVAL;
 *  - a callback that allocates and frees (the same classes, the same heap),
 *    takes statistics and visits again neither deadlocks nor loses a block;
 *    nor does one that frees blocks ahead of the walk, so that arenas are
 *    given back under it, or one that destroys the explicit heap the walk
 *    is in and makes a new one in its record;
 *  - a freed block is not reported;
 *  - visits while other threads allocate, free and come and go: the main
 *    thread's blocks, which stay allocated, are each reported exactly once
 *    in every visit, and every address reported is a block's start (the
 *    ThreadSanitizer build runs this).
 *
 * With SOMA_DEBUG=1 (test_visit_debug) the same checks, as debug mode
 * defines the walk: the program's pointers and the sizes it asked for;
 * blocks freed into the quarantine are not reported, so the statistics,
 * which count them, can only be above the walk's counts.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "soma.h"
#include "test.h"

#define NCLASSES (SOMA_NUM_CLASSES + SOMA_MAX_MEDIUM_CLASSES)
/* Debug mode adds a 32-byte header and 8 guard bytes: above this a block
 * asked for is a large block underneath. */
#define DEBUG_POOLED_MAX (geo.medium.max_size - 40)

#define REQUIRE_VOID(p)                                                                            \
    do {                                                                                           \
        if (!CHECK((p) != NULL))                                                                   \
            return;                                                                                \
    } while (0)

static int debug;
static soma_stats geo; /* the geometry: pool size, medium classes */

/* ---- what a walk reported (kept in the system's memory, not soma's) ---- */

typedef struct {
    soma_block_info *v;
    size_t n, cap;
} seen_t;

static int collect(const soma_block_info *b, void *arg)
{
    seen_t *s = arg;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 4096;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        if (s->v == NULL)
            abort();
    }
    s->v[s->n++] = *b;
    return 0;
}

static int by_block(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const soma_block_info *)a)->block;
    uintptr_t y = (uintptr_t)((const soma_block_info *)b)->block;
    return (x > y) - (x < y);
}

/* ---- what the test allocated ---- */

enum { WHO_MAIN, WHO_ORPHAN, WHO_LIVE, WHO_EXPLICIT, WHO_N };

typedef struct {
    void *p;
    size_t n;     /* bytes asked */
    int cls;      /* the class expected outside debug mode */
    int who;      /* whose heap (large blocks: any) */
    int expected; /* must be reported */
    int freed;
} rec_t;

typedef struct {
    rec_t *r;
    size_t n, cap;
} recs_t;

static void rec_add(recs_t *rs, void *p, size_t n, int cls, int who)
{
    if (rs->n == rs->cap) {
        rs->cap = rs->cap ? 2 * rs->cap : 4096;
        rs->r = realloc(rs->r, rs->cap * sizeof *rs->r);
        if (rs->r == NULL)
            abort();
    }
    rs->r[rs->n++] = (rec_t){p, n, cls, who, 1, 0};
}

static int rec_by_p(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const rec_t *)a)->p, y = (uintptr_t)((const rec_t *)b)->p;
    return (x > y) - (x < y);
}

/* Is the record's block its heap's (not a large block, not even underneath)? */
/* Visited with its explicit heap: its small and medium blocks, and the
 * large ones asked of it (debug mode's large blocks are its own, no heap's). */
static int in_heap(const rec_t *r)
{
    return debug ? r->cls >= 0 && r->n <= DEBUG_POOLED_MAX : 1;
}

/* The class soma serves n bytes from (alignment 16), -1 for a large block. */
static int class_of(size_t n)
{
    if (n <= SOMA_SMALL_THRESHOLD)
        return n == 0 ? 0 : (int)((n - 1) / SOMA_ALIGNMENT);
    for (size_t i = 0; i < geo.medium.num_classes; i++) /* a class holds size - tail */
        if (n <= geo.medium.classes[i].size - geo.medium_tail)
            return SOMA_NUM_CLASSES + (int)i;
    return -1;
}

static size_t class_size(int c)
{
    return c < SOMA_NUM_CLASSES ? (size_t)(c + 1) * SOMA_ALIGNMENT
                                : geo.medium.classes[c - SOMA_NUM_CLASSES].size;
}

/* Sizes to allocate, with how many blocks of each. */
static const struct {
    size_t n;
    size_t count;
} plan[] = {
    {0, 50},      {1, 300},      {8, 200},      {16, 1500},    {17, 300},     {24, 100},
    {32, 700},    {33, 60},      {48, 300},     {64, 500},     {100, 300},    {128, 200},
    {200, 150},   {256, 100},    {300, 90},     {384, 80},     {500, 70},     {512, 100},
    {513, 60},    {600, 50},     {1000, 40},    {1024, 40},    {2000, 30},    {2048, 30},
    {3000, 20},   {4096, 20},    {5000, 12},    {6000, 12},    {8000, 10},    {8144, 10},
    {8145, 3},    {8160, 3},     {8161, 3},    {10000, 3},    {65536, 2},    {100000, 2},   {1 << 20, 1},  {3 << 20, 1},
};
#define NPLAN (sizeof plan / sizeof plan[0])

/* Allocate the plan from heap h (NULL: the thread's), then free every
 * third block and all of one small size (its pools empty): into rs. */
static void allocate_plan(recs_t *rs, soma_heap *h, int who, size_t skew)
{
    size_t first = rs->n;
    for (size_t k = 0; k < NPLAN; k++) {
        size_t n = plan[k].n + (plan[k].n > 16 && plan[k].n < 2000 ? skew % 7 : 0);
        for (size_t i = 0; i < plan[k].count; i++) {
            void *p = h ? soma_heap_malloc(h, n) : soma_malloc(n);
            if (!CHECK(p != NULL))
                return;
            memset(p, 0x5a, n < 64 ? n : 64);
            int cls = class_of(n);
            /* A large block belongs to the explicit heap it was asked of. */
            rec_add(rs, p, n, cls, cls < 0 && who != WHO_EXPLICIT ? -1 : who);
        }
    }
    /* A few of the other ways a block is made. */
    void *c = h ? soma_heap_calloc(h, 10, 30) : soma_calloc(10, 30);
    CHECK(c != NULL);
    rec_add(rs, c, 300, class_of(300), who);
    void *r = h ? soma_heap_malloc(h, 40) : soma_malloc(40);
    r = h ? soma_heap_realloc(h, r, 700) : soma_realloc(r, 700);
    CHECK(r != NULL);
    rec_add(rs, r, 700, class_of(700), who);
    if (h == NULL) {
        void *a = soma_aligned_alloc(64, 100); /* aligned above 16: a large block */
        CHECK(a != NULL);
        rec_add(rs, a, 100, -1, -1);
    }
    for (size_t i = first; i < rs->n; i++) {
        if ((i - first) % 3 == 1 || rs->r[i].n == 48) {
            soma_free(rs->r[i].p);
            rs->r[i].expected = 0;
            rs->r[i].freed = 1;
        }
    }
}

/* ---- the threads whose heaps are walked ---- */

static recs_t orphan_recs, live_recs;
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t live_cond = PTHREAD_COND_INITIALIZER;
static int live_ready, live_go;

static void *orphan_main(void *arg)
{
    (void)arg;
    allocate_plan(&orphan_recs, NULL, WHO_ORPHAN, 3);
    return NULL;
}

/* Allocates, then waits (quiet) until told to free everything and exit. */
static void *live_main(void *arg)
{
    (void)arg;
    allocate_plan(&live_recs, NULL, WHO_LIVE, 5);
    pthread_mutex_lock(&live_lock);
    live_ready = 1;
    pthread_cond_broadcast(&live_cond);
    while (!live_go)
        pthread_cond_wait(&live_cond, &live_lock);
    pthread_mutex_unlock(&live_lock);
    for (size_t i = 0; i < live_recs.n; i++)
        if (!live_recs.r[i].freed)
            soma_free(live_recs.r[i].p);
    return NULL;
}

/* ---- (1) exactness ---- */

/* Every block reported against the records: each expected one once, no
 * other, none overlapping; sizes, classes and heaps as they should be.
 * heap_of[who] learns each thread heap's identity. */
static void match(seen_t *s, recs_t *all, soma_heap *e, const void **heap_of)
{
    qsort(s->v, s->n, sizeof *s->v, by_block);
    qsort(all->r, all->n, sizeof *all->r, rec_by_p);
    size_t j = 0, expected = 0, reported_bad = 0;
    for (size_t i = 0; i < all->n; i++)
        expected += all->r[i].expected;
    CHECK_EQ(s->n, expected);
    for (size_t i = 0; i < s->n; i++) {
        const soma_block_info *b = &s->v[i];
        if (i + 1 < s->n && !CHECK((uintptr_t)b->block + b->size <= (uintptr_t)s->v[i + 1].block))
            test_note("  %p (%zu bytes) overlaps %p", b->block, b->size, s->v[i + 1].block);
        while (j < all->n && (uintptr_t)all->r[j].p < (uintptr_t)b->block)
            j++;
        /* A freed block's address may have been handed out again: of the
         * records at it, the one expected. */
        size_t k = all->n, live = 0;
        for (size_t m = j; m < all->n && all->r[m].p == b->block; m++)
            if (all->r[m].expected)
                k = m, live++;
        CHECK_LE(live, 1);
        if (k == all->n) {
            if (reported_bad++ < 5)
                FAIL("reported %p (%zu bytes, class %d): not a block the test has", b->block,
                     b->size, b->size_class);
            continue;
        }
        const rec_t *r = &all->r[k];
        if (debug) {
            CHECK_EQ(b->size, r->n);
            CHECK(b->size_class >= -1 && b->size_class < NCLASSES);
        } else {
            CHECK_EQ(b->size_class, r->cls);
            CHECK_EQ(b->size, r->cls < 0 ? r->n : class_size(r->cls));
        }
        if (debug && b->size_class < 0) {
            CHECK(b->heap == NULL);
        } else if (r->cls < 0) {
            CHECK_PTR_EQ(b->heap, r->who == WHO_EXPLICIT ? (const void *)e : NULL);
        } else if (r->who == WHO_EXPLICIT) {
            CHECK_PTR_EQ(b->heap, e);
        } else {
            if (heap_of[r->who] == NULL)
                heap_of[r->who] = b->heap;
            CHECK(b->heap != NULL);
            CHECK_PTR_EQ(b->heap, heap_of[r->who]);
        }
    }
}

static void counts(const seen_t *s, size_t *per_class, size_t *large, size_t *large_bytes)
{
    memset(per_class, 0, NCLASSES * sizeof *per_class);
    *large = *large_bytes = 0;
    for (size_t i = 0; i < s->n; i++) {
        int c = s->v[i].size_class;
        if (c < 0) {
            (*large)++;
            *large_bytes += s->v[i].size;
        } else if (c < NCLASSES) {
            per_class[c]++;
        }
    }
}

/* The walk's counts against soma_stats_get's (outside debug mode: equal;
 * in it, the statistics also count the quarantine's blocks). */
static void against_stats(const seen_t *s)
{
    soma_stats st;
    soma_stats_get(&st);
    size_t per_class[NCLASSES], large, large_bytes;
    counts(s, per_class, &large, &large_bytes);
    for (int c = 0; c < SOMA_NUM_CLASSES + (int)st.medium.num_classes; c++) {
        size_t want = c < SOMA_NUM_CLASSES ? st.classes[c].blocks_in_use
                                           : st.medium.classes[c - SOMA_NUM_CLASSES].blocks_in_use;
        if (!(debug ? CHECK_LE(per_class[c], want) : CHECK_EQ(per_class[c], want)))
            test_note("  class %d", c);
    }
    if (debug) {
        CHECK_LE(large, st.large.blocks_in_use);
    } else {
        CHECK_EQ(large, st.large.blocks_in_use);
        CHECK_EQ(large_bytes, st.large.bytes_in_use);
    }
}

static recs_t main_recs, explicit_recs;
static soma_heap *explicit_heap;

static void test_exact(void)
{
    /* This thread's heap first: a thread whose first call frees an exited
     * thread's block would adopt that heap. */
    allocate_plan(&main_recs, NULL, WHO_MAIN, 0);

    /* A live thread's heap, its thread waiting (made first: a new thread
     * adopts an exited thread's heap). */
    pthread_t live;
    CHECK_EQ(pthread_create(&live, NULL, live_main, NULL), 0);
    pthread_mutex_lock(&live_lock);
    while (!live_ready)
        pthread_cond_wait(&live_cond, &live_lock);
    pthread_mutex_unlock(&live_lock);

    /* An exited thread's heap: an orphan, with its blocks. */
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, orphan_main, NULL), 0);
    pthread_join(t, NULL);
    /* Some of its blocks freed by this thread: pending on the orphan's
     * remote stack, which the walk collects first. */
    for (size_t i = 0; i < orphan_recs.n; i += 5)
        if (!orphan_recs.r[i].freed) {
            soma_free(orphan_recs.r[i].p);
            orphan_recs.r[i].expected = 0;
            orphan_recs.r[i].freed = 1;
        }
    /* Freed into it from here: pending until its owner collects them, and
     * in use to the statistics and the walk alike (debug mode: freed into
     * the quarantine, and not the program's any more). */
    for (size_t i = 0; i < live_recs.n; i += 4)
        if (!live_recs.r[i].freed) {
            soma_free(live_recs.r[i].p);
            live_recs.r[i].freed = 1;
            if (debug || live_recs.r[i].cls < 0)
                live_recs.r[i].expected = 0;
        }

    /* An explicit heap; the blocks freed into it collected by its own
     * snapshot, which its user may take. */
    explicit_heap = soma_heap_new();
    REQUIRE_VOID(explicit_heap);
    allocate_plan(&explicit_recs, explicit_heap, WHO_EXPLICIT, 1);
    soma_stats hs;
    soma_heap_stats_get(explicit_heap, &hs);

    recs_t all = {0};
    const recs_t *parts[] = {&main_recs, &orphan_recs, &live_recs, &explicit_recs};
    for (size_t k = 0; k < 4; k++)
        for (size_t i = 0; i < parts[k]->n; i++)
            rec_add(&all, parts[k]->r[i].p, parts[k]->r[i].n, parts[k]->r[i].cls,
                    parts[k]->r[i].who), all.r[all.n - 1].expected = parts[k]->r[i].expected;

    seen_t s = {0};
    CHECK_EQ(soma_blocks_visit(NULL, collect, &s), 0);
    against_stats(&s);
    const void *heap_of[WHO_N] = {0};
    match(&s, &all, explicit_heap, heap_of);
    CHECK(heap_of[WHO_MAIN] != heap_of[WHO_ORPHAN]);
    CHECK(heap_of[WHO_MAIN] != heap_of[WHO_LIVE]);
    CHECK(heap_of[WHO_ORPHAN] != heap_of[WHO_LIVE]);
    CHECK(heap_of[WHO_MAIN] != (const void *)explicit_heap);
    test_note("visited %zu blocks of %zu made", s.n, all.n);

    /* The explicit heap alone: its small and medium blocks, no large one. */
    recs_t mine = {0};
    for (size_t i = 0; i < explicit_recs.n; i++) {
        const rec_t *r = &explicit_recs.r[i];
        rec_add(&mine, r->p, r->n, r->cls, r->who);
        mine.r[mine.n - 1].expected = r->expected && in_heap(r);
    }
    seen_t se = {0};
    CHECK_EQ(soma_blocks_visit(explicit_heap, collect, &se), 0);
    for (size_t i = 0; i < se.n; i++)
        if (!CHECK_PTR_EQ(se.v[i].heap, explicit_heap))
            break;
    match(&se, &mine, explicit_heap, heap_of);
    soma_heap_stats_get(explicit_heap, &hs);
    size_t in_heap = 0;
    for (int c = 0; c < SOMA_NUM_CLASSES; c++)
        in_heap += hs.classes[c].blocks_in_use;
    for (size_t i = 0; i < hs.medium.num_classes; i++)
        in_heap += hs.medium.classes[i].blocks_in_use;
    in_heap += hs.large.blocks_in_use; /* the large blocks asked of it */
    if (debug)
        CHECK_LE(se.n, in_heap);
    else
        CHECK_EQ(se.n, in_heap);

    pthread_mutex_lock(&live_lock);
    live_go = 1;
    pthread_cond_broadcast(&live_cond);
    pthread_mutex_unlock(&live_lock);
    pthread_join(live, NULL);
    free(s.v);
    free(se.v);
    free(all.r);
    free(mine.r);
}

/* ---- (2) stopping, and bad arguments ---- */

typedef struct {
    int calls, stop_at, value;
} stop_t;

static int stop_cb(const soma_block_info *b, void *arg)
{
    (void)b;
    stop_t *s = arg;
    return ++s->calls == s->stop_at ? s->value : 0;
}

static void test_stop(void)
{
    stop_t s = {0, 5, 7};
    CHECK_EQ(soma_blocks_visit(NULL, stop_cb, &s), 7);
    CHECK_EQ(s.calls, 5);
    s = (stop_t){0, 1, -3};
    CHECK_EQ(soma_blocks_visit(explicit_heap, stop_cb, &s), -3);
    CHECK_EQ(s.calls, 1);
    /* Stopped in the large blocks: past every pool. */
    s = (stop_t){0, 0, 0};
    CHECK_EQ(soma_blocks_visit(NULL, stop_cb, &s), 0);
    int total = s.calls;
    s = (stop_t){0, total, 11};
    CHECK_EQ(soma_blocks_visit(NULL, stop_cb, &s), 11);
    CHECK_EQ(s.calls, total);

    errno = 0;
    CHECK_EQ(soma_blocks_visit(NULL, NULL, NULL), -1);
    CHECK_EQ(errno, EINVAL);
    errno = 0;
    CHECK_EQ(soma_blocks_visit(explicit_heap, NULL, NULL), -1);
    CHECK_EQ(errno, EINVAL);
}

/* ---- (3) a callback that allocates, frees and takes statistics ---- */

typedef struct {
    seen_t seen;
    void **kept;
    size_t nkept, cap;
    soma_heap *heap; /* the explicit heap being walked, or NULL */
} busy_t;

static int busy_cb(const soma_block_info *b, void *arg)
{
    busy_t *x = arg;
    collect(b, &x->seen);
    if (x->seen.n == 10) { /* a walk inside the walk */
        stop_t s = {0, 3, 9};
        CHECK_EQ(soma_blocks_visit(x->heap, stop_cb, &s), 9);
    }
    size_t n = b->size_class >= 0 ? b->size : 100;
    /* Same class, same heap: one freed at once, one kept (new arenas come
     * as the walk goes). */
    void *p = x->heap ? soma_heap_malloc(x->heap, n) : soma_malloc(n);
    void *q = x->heap ? soma_heap_malloc(x->heap, n) : soma_malloc(n);
    if (p == NULL || q == NULL)
        return 1;
    memset(q, 1, n < 32 ? n : 32);
    soma_free(p);
    if (x->nkept < x->cap)
        x->kept[x->nkept++] = q;
    else
        soma_free(q);
    if (x->seen.n % 1000 == 0) {
        soma_stats st;
        soma_stats_get(&st);
    }
    return 0;
}

/* Each of the records' expected blocks reported once, whatever else was. */
static void each_once(seen_t *s, const recs_t *rs, int who_only)
{
    qsort(s->v, s->n, sizeof *s->v, by_block);
    size_t missing = 0, twice = 0;
    for (size_t i = 0; i < rs->n; i++) {
        const rec_t *r = &rs->r[i];
        if (!r->expected || (who_only && !in_heap(r)))
            continue;
        soma_block_info key = {.block = r->p};
        soma_block_info *f = bsearch(&key, s->v, s->n, sizeof *s->v, by_block);
        if (f == NULL) {
            missing++;
            continue;
        }
        twice += (f > s->v && f[-1].block == r->p) || (f + 1 < s->v + s->n && f[1].block == r->p);
    }
    CHECK_EQ(missing, 0);
    CHECK_EQ(twice, 0);
}

static void test_callback_allocates(void)
{
    busy_t x = {0};
    x.cap = 200000;
    x.kept = malloc(x.cap * sizeof *x.kept);
    REQUIRE_VOID(x.kept);
    CHECK_EQ(soma_blocks_visit(NULL, busy_cb, &x), 0);
    each_once(&x.seen, &main_recs, 0);
    each_once(&x.seen, &explicit_recs, 0);
    test_note("a busy callback: %zu blocks visited, %zu kept", x.seen.n, x.nkept);
    for (size_t i = 0; i < x.nkept; i++)
        soma_free(x.kept[i]);

    /* The same into the explicit heap being walked. */
    busy_t y = {0};
    y.heap = explicit_heap;
    y.cap = 200000;
    y.kept = malloc(y.cap * sizeof *y.kept);
    REQUIRE_VOID(y.kept);
    CHECK_EQ(soma_blocks_visit(explicit_heap, busy_cb, &y), 0);
    each_once(&y.seen, &explicit_recs, 1);
    for (size_t i = 0; i < y.nkept; i++)
        soma_free(y.kept[i]);
    free(x.kept);
    free(y.kept);
    free(x.seen.v);
    free(y.seen.v);
}

/* A callback that, at the first block of `doomed` it meets, frees them
 * all: arenas the walk is in, or has yet to reach, are given back under
 * it, and the walk must find its place again. */
typedef struct {
    seen_t seen;
    void **doomed;
    size_t ndoomed;
    int freed;
} doom_t;

static int by_ptr(const void *a, const void *b);

static int doom_cb(const soma_block_info *b, void *arg)
{
    doom_t *d = arg;
    if (d->freed || bsearch(&b->block, d->doomed, d->ndoomed, sizeof *d->doomed, by_ptr) == NULL) {
        collect(b, &d->seen);
        return 0;
    }
    for (size_t i = 0; i < d->ndoomed; i++)
        soma_free(d->doomed[i]);
    d->freed = 1;
    return 0;
}

static void test_callback_frees(void)
{
    /* Blocks that stay, then (in arenas of their own, the newest, which
     * the walk meets first) blocks the callback frees. */
    recs_t keep = {0};
    for (int i = 0; i < 3000; i++) {
        void *p = soma_malloc(64);
        REQUIRE_VOID(p);
        rec_add(&keep, p, 64, class_of(64), WHO_MAIN);
    }
    doom_t d = {0};
    d.ndoomed = 4 * (geo.arena_size / 512);
    d.doomed = malloc(d.ndoomed * sizeof *d.doomed);
    REQUIRE_VOID(d.doomed);
    for (size_t i = 0; i < d.ndoomed; i++) {
        d.doomed[i] = soma_malloc(512);
        REQUIRE_VOID(d.doomed[i]);
    }
    qsort(d.doomed, d.ndoomed, sizeof *d.doomed, by_ptr);
    soma_stats before, after;
    soma_stats_get(&before);
    CHECK_EQ(soma_blocks_visit(NULL, doom_cb, &d), 0);
    CHECK(d.freed);
    soma_stats_get(&after);
    /* Arenas were given back under the walk (with no decay, as ctest runs
     * it; debug mode's quarantine keeps the blocks a while). */
    if (!debug)
        CHECK_GT(after.arenas_reclaimed, before.arenas_reclaimed);
    each_once(&d.seen, &keep, 0);
    each_once(&d.seen, &main_recs, 0);
    each_once(&d.seen, &explicit_recs, 0);
    for (size_t i = 0; i < keep.n; i++)
        soma_free(keep.r[i].p);
    free(keep.r);
    free(d.doomed);
    free(d.seen.v);
}

/* A callback that, at the first block of the explicit heap `victim`,
 * destroys it and makes a new heap, which takes its record: the walk must
 * see that its heap has gone and go on with the next. */
typedef struct {
    seen_t seen;
    soma_heap *victim, *fresh;
    void *fresh_block[100];
} swap_t;

static int swap_cb(const soma_block_info *b, void *arg)
{
    swap_t *x = arg;
    if (x->victim != NULL && b->heap == (const void *)x->victim) {
        soma_heap_destroy(x->victim);
        x->victim = NULL;
        x->fresh = soma_heap_new();
        for (int i = 0; x->fresh != NULL && i < 100; i++)
            x->fresh_block[i] = soma_heap_malloc(x->fresh, (size_t)(16 + i * 8));
        return 0;
    }
    collect(b, &x->seen);
    return 0;
}

static void test_heap_destroyed(void)
{
    swap_t x = {0};
    x.victim = soma_heap_new();
    REQUIRE_VOID(x.victim);
    for (int i = 0; i < 2000; i++)
        REQUIRE_VOID(soma_heap_malloc(x.victim, (size_t)(1 + i % 3000)));
    CHECK_EQ(soma_blocks_visit(NULL, swap_cb, &x), 0);
    CHECK(x.victim == NULL);
    each_once(&x.seen, &main_recs, 0);
    each_once(&x.seen, &explicit_recs, 0);
    soma_heap_destroy(x.fresh);
    free(x.seen.v);
}

/* ---- (5) a freed block is not reported ---- */

static int find_cb(const soma_block_info *b, void *arg)
{
    void **want = arg;
    for (int i = 0; want[i] != NULL; i++)
        if (b->block == want[i])
            return 1;
    return 0;
}

static void test_freed(void)
{
    void *p[6] = {soma_malloc(40), soma_malloc(2000), soma_malloc(50000),
                  soma_heap_malloc(explicit_heap, 300), soma_malloc(0), NULL};
    for (int i = 0; i < 5; i++) {
        REQUIRE_VOID(p[i]);
        void *one[2] = {p[i], NULL};
        CHECK_EQ(soma_blocks_visit(NULL, find_cb, one), 1);
    }
    for (int i = 0; i < 5; i++)
        soma_free(p[i]);
    /* The explicit heap's block waits on its remote stack until its user
     * collects it: the heap's own walk does (as its snapshot does). */
    CHECK_EQ(soma_blocks_visit(explicit_heap, find_cb, p), 0);
    CHECK_EQ(soma_blocks_visit(NULL, find_cb, p), 0);
    /* A whole pool's worth freed: none of it. */
    void *many[600];
    for (int i = 0; i < 599; i++)
        many[i] = soma_malloc(208);
    many[599] = NULL;
    CHECK_EQ(soma_blocks_visit(NULL, find_cb, many), 1);
    for (int i = 0; i < 599; i++)
        soma_free(many[i]);
    CHECK_EQ(soma_blocks_visit(NULL, find_cb, many), 0);
}

/* ---- (4) other threads allocating while the main thread visits ---- */

static atomic_int stop_workers;

static size_t random_size(test_rng *r)
{
    uint64_t k = test_rng_below(r, 100);
    if (k < 80)
        return (size_t)test_rng_below(r, 513);
    if (k < 98)
        return 513 + (size_t)test_rng_below(r, 8144 - 512);
    return 8145 + (size_t)test_rng_below(r, 200000);
}

static void *worker(void *arg)
{
    test_rng r;
    test_rng_seed(&r, (uint64_t)(uintptr_t)arg);
    enum { SLOTS = 2000 };
    void **slot = calloc(SLOTS, sizeof *slot);
    soma_heap *h = (uintptr_t)arg % 2 ? soma_heap_new() : NULL; /* its own explicit heap */
    while (!atomic_load(&stop_workers)) {
        for (int i = 0; i < 500; i++) {
            size_t k = (size_t)test_rng_below(&r, SLOTS);
            if (slot[k] != NULL) {
                soma_free(slot[k]);
                slot[k] = NULL;
            } else {
                size_t n = random_size(&r);
                slot[k] = h && n <= geo.medium.max_size ? soma_heap_malloc(h, n) : soma_malloc(n);
            }
        }
    }
    for (size_t k = 0; k < SLOTS; k++)
        soma_free(slot[k]);
    soma_heap_destroy(h);
    free(slot);
    return NULL;
}

/* Threads that come and go, leaving their heaps to the next (orphans
 * adopted during the walks), and blocks behind that this one frees. */
static void *short_lived(void *arg)
{
    void **out = arg;
    for (int i = 0; i < 64; i++)
        out[i] = soma_malloc((size_t)(i * 37 % 900));
    for (int i = 0; i < 64; i += 2) {
        soma_free(out[i]);
        out[i] = NULL;
    }
    return NULL;
}

static void *churner(void *arg)
{
    (void)arg;
    void *left[64];
    while (!atomic_load(&stop_workers)) {
        pthread_t t;
        if (pthread_create(&t, NULL, short_lived, left) != 0)
            continue;
        pthread_join(t, NULL);
        for (int i = 0; i < 64; i++)
            soma_free(left[i]);
    }
    return NULL;
}

typedef struct {
    void **mine; /* this thread's blocks, sorted; stay allocated */
    size_t nmine;
    unsigned char *seen; /* per block of mine, this visit */
    size_t total, bad;
    size_t pool_size;
} watch_t;

static int watch_cb(const soma_block_info *b, void *arg)
{
    watch_t *w = arg;
    w->total++;
    uintptr_t p = (uintptr_t)b->block;
    int ok = p != 0 && p % SOMA_ALIGNMENT == 0 && b->size_class >= -1 &&
             b->size_class < NCLASSES && (b->size_class < 0 || b->heap != NULL);
    if (ok && b->size_class >= 0 && !debug) {
        uintptr_t off = p % w->pool_size;
        ok = b->size == class_size(b->size_class) && off >= 48 && (off - 48) % b->size == 0;
    }
    if (!ok && w->bad++ < 5)
        FAIL("a bad block reported: %p, %zu bytes, class %d, heap %p", b->block, b->size,
             b->size_class, b->heap);
    /* This thread's own blocks: found, and safe to read (no other thread
     * frees them). */
    size_t lo = 0, hi = w->nmine;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if ((uintptr_t)w->mine[mid] < p)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < w->nmine && w->mine[lo] == b->block) {
        w->seen[lo]++;
        CHECK_EQ(*(unsigned char *)b->block, 0x5a);
    }
    /* And now and then, allocate and free meanwhile. */
    if (w->total % 512 == 0)
        soma_free(soma_malloc(b->size_class >= 0 ? b->size : 64));
    return 0;
}

static int by_ptr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return (x > y) - (x < y);
}

static void test_concurrent(void)
{
    enum { NWORKERS = 3, NMINE = 3000 };
    watch_t w = {0};
    w.pool_size = geo.pool_size;
    w.mine = malloc(NMINE * sizeof *w.mine);
    w.seen = malloc(NMINE);
    REQUIRE_VOID(w.mine);
    REQUIRE_VOID(w.seen);
    test_rng r;
    test_rng_seed(&r, 42);
    for (size_t i = 0; i < NMINE; i++) {
        size_t n = i % 100 == 0 ? 9000 + i : 1 + random_size(&r) % 8000;
        w.mine[i] = soma_malloc(n);
        REQUIRE_VOID(w.mine[i]);
        memset(w.mine[i], 0x5a, n < 16 ? n : 16);
    }
    qsort(w.mine, NMINE, sizeof *w.mine, by_ptr);
    w.nmine = NMINE;

    atomic_store(&stop_workers, 0);
    pthread_t t[NWORKERS + 1];
    for (uintptr_t i = 0; i < NWORKERS; i++)
        CHECK_EQ(pthread_create(&t[i], NULL, worker, (void *)(i + 1)), 0);
    CHECK_EQ(pthread_create(&t[NWORKERS], NULL, churner, NULL), 0);

    unsigned visits = (unsigned)test_env_ull("TEST_VISIT_ROUNDS", 30);
    size_t missed = 0, twice = 0;
    for (unsigned v = 0; v < visits; v++) {
        memset(w.seen, 0, NMINE);
        CHECK_EQ(soma_blocks_visit(NULL, watch_cb, &w), 0);
        for (size_t i = 0; i < NMINE; i++) {
            missed += w.seen[i] == 0;
            twice += w.seen[i] > 1;
        }
    }
    atomic_store(&stop_workers, 1);
    for (int i = 0; i <= NWORKERS; i++)
        pthread_join(t[i], NULL);
    CHECK_EQ(missed, 0);
    CHECK_EQ(twice, 0);
    CHECK_EQ(w.bad, 0);
    test_note("%u visits while %d threads allocated: %zu blocks reported", visits, NWORKERS,
              w.total);
    for (size_t i = 0; i < NMINE; i++)
        soma_free(w.mine[i]);
    free(w.mine);
    free(w.seen);
}

int main(void)
{
    test_begin("test_visit");
    debug = soma_debug_mode() != 0;
    soma_stats_get(&geo);
    test_note("debug mode %s", debug ? "on" : "off");
    test_exact();
    test_stop();
    test_callback_allocates();
    test_callback_frees();
    test_heap_destroyed();
    test_freed();
    test_concurrent();
    /* Quiet again: the walk and the statistics agree once more. */
    seen_t s = {0};
    CHECK_EQ(soma_blocks_visit(NULL, collect, &s), 0);
    against_stats(&s);
    free(s.v);
    soma_heap_destroy(explicit_heap);
    return test_summary();
}
