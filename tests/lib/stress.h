/*
 * stress.h: random malloc/calloc/realloc/free traffic against a shadow
 * model, shared by test_stress (one thread) and test_threads (several).
 *
 * A table of slots holds live blocks.  Each block is filled with a pattern
 * derived from its slot and a generation number (bumped at every write), so a
 * block that is overwritten, or handed out twice, or moved without its
 * contents, shows up when it is checked: at every free and realloc, and at
 * every periodic sweep of the whole table.
 *
 * The model also predicts who owns each block from the documented rules
 * (classes.h: soma's small and medium classes, the system's above them,
 * realloc in place or not; a system block stays the system's), so that the
 * per-class counts of soma_stats_get can be compared with it exactly.
 */
#ifndef SOMA_STRESS_H
#define SOMA_STRESS_H

#define _GNU_SOURCE
#include <malloc.h>

#include "classes.h"
#include "soma.h"
#include "test.h"

/* Linked (default): the traffic calls soma_* directly.  STRESS_VIA_MALLOC:
 * it calls the process's malloc family, which is soma's when the override is
 * preloaded (stress_stats_get is then found with dlsym) and glibc's
 * otherwise (no statistics: the run then checks contents only, which
 * validates the test itself). */
#ifdef STRESS_VIA_MALLOC
#include <dlfcn.h>
/* realloc's old pointer is compared with the new one on purpose (the model
 * predicts in-place reallocs). */
#pragma GCC diagnostic ignored "-Wpragmas"
#pragma GCC diagnostic ignored "-Wunknown-warning-option"
#pragma GCC diagnostic ignored "-Wuse-after-free"
#define api_malloc malloc
#define api_calloc calloc
#define api_realloc realloc
#define api_free free
#define api_usable_size malloc_usable_size
static void (*stress_stats_get)(soma_stats *);
static inline void stress_setup(void)
{
    stress_stats_get = (void (*)(soma_stats *))dlsym(RTLD_DEFAULT, "soma_stats_get");
    if (stress_stats_get != NULL) {
        static soma_stats st;
        stress_stats_get(&st);
        (void)classes_init(st.pool_size, st.medium_tail);
    }
}
#else
#define api_malloc soma_malloc
#define api_calloc soma_calloc
#define api_realloc soma_realloc
#define api_free soma_free
#define api_usable_size soma_usable_size
static void (*stress_stats_get)(soma_stats *) = soma_stats_get;
static inline void stress_setup(void)
{
    static soma_stats st;
    soma_stats_get(&st);
    (void)classes_init(st.pool_size, st.medium_tail);
}
#endif

enum { OWN_NONE = 0, OWN_SOMA = 1, OWN_SYS = 2 };

typedef struct {
    unsigned char *p;
    size_t size;  /* bytes requested (and patterned) */
    uint64_t key; /* pattern key: slot, generation, table id */
    int owner;
    int cls;  /* for OWN_SOMA */
    int twin; /* for OWN_SOMA: a tailed small block (classes.h) */
} stress_slot;

typedef struct {
    stress_slot *slots;
    size_t nslots;
    uint32_t table_id;
    uint64_t gen;
    test_rng rng;
    size_t live_soma[SOMA_NUM_CLASSES + SOMA_MAX_MEDIUM_CLASSES]; /* model: per class */
    size_t live_sys;
    unsigned long long ops, frees, reallocs, callocs, mallocs, checked_bytes;
    unsigned long long errors;
    /* Percentages: an empty slot picked is allocated with alloc_pct (else
     * the step does nothing); a live one is freed with free_pct (else
     * reallocated).  Switching between a filling and a draining setting
     * makes the live set swing, so arenas are mapped and unmapped. */
    unsigned alloc_pct, free_pct;
} stress_table;

static inline uint64_t stress_mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static inline void stress_fill(unsigned char *p, size_t n, uint64_t key)
{
    size_t j = 0;
    for (; j + 8 <= n; j += 8) {
        uint64_t w = key ^ (j * 0x9e3779b97f4a7c15ULL);
        memcpy(p + j, &w, 8);
    }
    if (j < n) {
        uint64_t w = key ^ (j * 0x9e3779b97f4a7c15ULL);
        memcpy(p + j, &w, n - j);
    }
}

/* 1 if the first n bytes of p still hold the pattern of key. */
static inline int stress_intact(const unsigned char *p, size_t n, uint64_t key)
{
    size_t j = 0;
    for (; j + 8 <= n; j += 8) {
        uint64_t w = key ^ (j * 0x9e3779b97f4a7c15ULL);
        if (memcmp(p + j, &w, 8) != 0)
            return 0;
    }
    if (j < n) {
        uint64_t w = key ^ (j * 0x9e3779b97f4a7c15ULL);
        if (memcmp(p + j, &w, n - j) != 0)
            return 0;
    }
    return 1;
}

static inline int stress_all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return 0;
    return 1;
}

/* Mostly small sizes, some at the top of the small range, a few above
 * (medium blocks, and a few of the system's). */
static inline size_t stress_size(test_rng *r)
{
    uint64_t k = test_rng_below(r, 1000);
    if (k < 5)
        return 0;
    if (k < 700)
        return 1 + (size_t)test_rng_below(r, 128);
    if (k < 950)
        return 1 + (size_t)test_rng_below(r, 512);
    if (k < 995)
        return 1 + (size_t)test_rng_below(r, 600);
    return 513 + (size_t)test_rng_below(r, 12000); /* medium, and above */
}

static inline int stress_init(stress_table *t, size_t nslots, uint32_t id, uint64_t seed)
{
    memset(t, 0, sizeof *t);
    t->slots = calloc(nslots, sizeof *t->slots);
    t->nslots = nslots;
    t->table_id = id;
    test_rng_seed(&t->rng, seed);
    t->alloc_pct = 100;
    t->free_pct = 55;
    return t->slots != NULL;
}

static inline void stress_model_add(stress_table *t, const stress_slot *s, int sign)
{
    if (s->owner == OWN_SOMA)
        t->live_soma[s->cls] += (size_t)sign;
    else if (s->owner == OWN_SYS)
        t->live_sys += (size_t)sign;
}

/* Check a freshly placed block: alignment, usable size per the model. */
static inline void stress_check_block(stress_table *t, const stress_slot *s)
{
    int ok = ((uintptr_t)s->p % 16) == 0;
    size_t usable = api_usable_size(s->p);
    if (stress_stats_get == NULL) /* not soma: only the promise of malloc */
        ok &= usable >= s->size;
    else /* soma's: its class's size; a large block: the system's usable size */
        ok &= classes_usable_ok(s->owner == OWN_SOMA ? s->cls : CLASSES_LARGE, s->twin, s->size,
                                usable);
    if (!CHECK(ok)) {
        t->errors++;
        test_note("  block %p of %zu bytes (owner %d, class %d): usable %zu", (void *)s->p,
                  s->size, s->owner, s->cls, usable);
    }
}

static inline void stress_verify_slot(stress_table *t, size_t i, size_t n, const char *when)
{
    stress_slot *s = &t->slots[i];
    t->checked_bytes += n;
    if (!stress_intact(s->p, n, s->key)) {
        t->errors++;
        FAIL("table %u slot %zu: block %p (%zu bytes, owner %d) corrupted (%s)", t->table_id, i,
             (void *)s->p, s->size, s->owner, when);
    }
}

static inline void stress_new_key(stress_table *t, size_t i)
{
    t->gen++;
    t->slots[i].key = stress_mix(((uint64_t)t->table_id << 48) ^ ((uint64_t)i << 32) ^ t->gen);
}

/* Allocate a block of n bytes in empty slot i, by malloc, calloc or
 * realloc(NULL). */
static inline void stress_alloc(stress_table *t, size_t i, size_t n)
{
    stress_slot *s = &t->slots[i];
    uint64_t how = test_rng_below(&t->rng, 100);
    if (how < 60) {
        s->p = api_malloc(n);
        t->mallocs++;
    } else if (how < 85) {
        size_t nmemb = (n % 4 == 0 && n) ? 4 : 1;
        s->p = api_calloc(nmemb, n / nmemb);
        t->callocs++;
        if (s->p && !CHECK(stress_all_zero(s->p, n))) {
            t->errors++;
            test_note("  calloc of %zu bytes not zeroed", n);
        }
    } else {
        s->p = api_realloc(NULL, n);
        t->mallocs++;
    }
    if (!CHECK(s->p != NULL)) {
        t->errors++;
        return;
    }
    s->size = n;
    s->cls = classes_of(n);
    s->twin = classes_twin_of(n);
    s->owner = s->cls >= 0 ? OWN_SOMA : OWN_SYS;
    stress_model_add(t, s, +1);
    stress_check_block(t, s);
    stress_new_key(t, i);
    stress_fill(s->p, n, s->key);
}

static inline void stress_free(stress_table *t, size_t i)
{
    stress_slot *s = &t->slots[i];
    stress_verify_slot(t, i, s->size, "before free");
    stress_model_add(t, s, -1);
    api_free(s->p);
    memset(s, 0, sizeof *s);
    t->frees++;
}

static inline void stress_realloc(stress_table *t, size_t i, size_t n)
{
    stress_slot *s = &t->slots[i];
    stress_verify_slot(t, i, s->size, "before realloc");
    t->reallocs++;
    if (n == 0) {
        /* realloc(p, 0) frees p. */
        stress_model_add(t, s, -1);
        unsigned char *q = api_realloc(s->p, 0);
        if (!CHECK(q == NULL))
            t->errors++;
        memset(s, 0, sizeof *s);
        return;
    }
    stress_slot old = *s;
    unsigned char *q = api_realloc(s->p, n);
    if (!CHECK(q != NULL)) {
        t->errors++;
        return;
    }
    stress_model_add(t, s, -1);
    if (old.owner == OWN_SOMA && stress_stats_get != NULL) { /* soma's rules */
        /* In place when it fits and either keeps 3/4 of the block or stays
         * in the same class. */
        if (classes_realloc_in_place(old.cls, old.twin, n)) {
            if (!CHECK_PTR_EQ(q, old.p))
                t->errors++;
        } else {
            if (!CHECK(q != old.p))
                t->errors++;
            s->cls = classes_of(n);
            s->twin = classes_twin_of(n);
            s->owner = s->cls >= 0 ? OWN_SOMA : OWN_SYS;
        }
    }
    s->p = q;
    s->size = n;
    stress_model_add(t, s, +1);
    stress_check_block(t, s);
    size_t keep = old.size < n ? old.size : n;
    if (!stress_intact(q, keep, old.key)) {
        t->errors++;
        FAIL("table %u slot %zu: realloc %p (%zu bytes) -> %p (%zu bytes) lost contents",
             t->table_id, i, (void *)old.p, old.size, (void *)q, n);
    }
    stress_new_key(t, i);
    stress_fill(q, n, s->key);
}

/* Fill (phase 0) or drain (phase 1) the table. */
static inline void stress_phase(stress_table *t, int draining)
{
    t->alloc_pct = draining ? 10 : 100;
    t->free_pct = draining ? 90 : 20;
}

/* One random operation on a random slot. */
static inline void stress_step(stress_table *t)
{
    size_t i = (size_t)test_rng_below(&t->rng, t->nslots);
    t->ops++;
    if (t->slots[i].p == NULL) {
        if (test_rng_below(&t->rng, 100) < t->alloc_pct)
            stress_alloc(t, i, stress_size(&t->rng));
    } else if (test_rng_below(&t->rng, 100) < t->free_pct) {
        stress_free(t, i);
    } else {
        stress_realloc(t, i, stress_size(&t->rng));
    }
}

/* ---- whole-table checks ---- */

typedef struct {
    uintptr_t lo, hi;
} stress_span;

static inline int stress_span_cmp(const void *a, const void *b)
{
    const stress_span *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Every live block of the given tables: contents intact, and no two blocks'
 * [p, p + usable) intervals overlap.  Returns the number of live blocks. */
static inline size_t stress_sweep(stress_table **tables, size_t ntables)
{
    size_t n = 0;
    for (size_t k = 0; k < ntables; k++)
        for (size_t i = 0; i < tables[k]->nslots; i++)
            n += tables[k]->slots[i].p != NULL;
    stress_span *spans = malloc((n ? n : 1) * sizeof *spans);
    if (!CHECK(spans != NULL))
        return n;
    size_t m = 0;
    for (size_t k = 0; k < ntables; k++) {
        stress_table *t = tables[k];
        for (size_t i = 0; i < t->nslots; i++) {
            stress_slot *s = &t->slots[i];
            if (s->p == NULL)
                continue;
            stress_verify_slot(t, i, s->size, "sweep");
            size_t usable = api_usable_size(s->p);
            spans[m].lo = (uintptr_t)s->p;
            spans[m].hi = (uintptr_t)s->p + usable;
            m++;
        }
    }
    qsort(spans, m, sizeof *spans, stress_span_cmp);
    size_t overlaps = 0;
    for (size_t j = 1; j < m; j++) {
        if (spans[j - 1].hi > spans[j].lo) {
            if (overlaps < 5)
                FAIL("blocks overlap: [%#lx, %#lx) and [%#lx, %#lx)", (unsigned long)spans[j - 1].lo,
                     (unsigned long)spans[j - 1].hi, (unsigned long)spans[j].lo,
                     (unsigned long)spans[j].hi);
            overlaps++;
        }
    }
    CHECK_EQ(overlaps, 0);
    free(spans);
    return m;
}

/* soma_stats_get against the model: per class, blocks in use - baseline =
 * live soma blocks of the tables. */
static inline int stress_compare_stats(stress_table **tables, size_t ntables,
                                       const soma_stats *base, const soma_stats *now)
{
    int ok = 1;
    size_t total_model = 0, total_stats = 0;
    for (unsigned c = 0; c < classes_count(); c++) {
        size_t model = 0;
        for (size_t k = 0; k < ntables; k++)
            model += tables[k]->live_soma[c];
        size_t stats = classes_stats(now, (int)c)->blocks_in_use -
                       classes_stats(base, (int)c)->blocks_in_use;
        if (!CHECK_EQ(stats, model)) {
            test_note("  class %u: stats say %zu blocks in use above baseline, model %zu", c,
                      stats, model);
            ok = 0;
        }
        total_model += model;
        total_stats += stats;
    }
    if (!CHECK_EQ(total_stats, total_model))
        ok = 0;
    if (!CHECK_EQ(now->total, now->arenas_current * now->arena_size))
        ok = 0;
    if (!CHECK_EQ(now->medium.total, now->medium.arenas_current * now->arena_size))
        ok = 0;
    /* The model's system blocks are soma's large blocks. */
    size_t live_sys = 0;
    for (size_t k = 0; k < ntables; k++)
        live_sys += tables[k]->live_sys;
    if (!CHECK_EQ(now->large.blocks_in_use - base->large.blocks_in_use, live_sys))
        ok = 0;
    return ok;
}

/* Free every live block (verifying each). */
static inline void stress_drain(stress_table *t)
{
    for (size_t i = 0; i < t->nslots; i++)
        if (t->slots[i].p != NULL)
            stress_free(t, i);
}

#endif /* SOMA_STRESS_H */
