/*
 * large.c: blocks soma takes from the system allocator (os/sys.c) for its
 * callers: requests above the medium classes, alignments above 16, and the
 * rare small request made when soma's address range is full.  They are
 * soma's blocks too, and the statistics count them ("Large blocks").
 *
 * soma must tell them apart from foreign pointers (memory the program got
 * from malloc before soma was loaded, or that a library bound to glibc with
 * RTLD_DEEPBIND allocated, or any malloc'ed memory given to soma_free):
 * those go to the system allocator untouched and are not counted.  Reading
 * a header in front of the block cannot decide it: in front of a foreign
 * block there may be no memory at all (allocators that pack blocks without
 * headers, such as the sanitizers' or jemalloc's, start a slab on a fresh
 * page).  So soma keeps a registry of its large blocks: a hash set of
 * pointers (with each block's requested size), split into shards by
 * address, each an open-addressing table (linear probing, deletion by
 * backward shift) under its own lock, in memory mapped from the OS (soma
 * cannot call malloc for its own bookkeeping).  A table grows by doubling
 * when it is half full.  The cost, a lock and a probe or two, is small
 * beside what the system allocator spends on a block of this size.
 */
#include <stdint.h>

#include "base/start.h"
#include "malloc/malloc.h"
#include "os/os.h"

#define SHARDS 16 /* few: fork holds them all at once, with every heap lock */
#define FIRST_SLOTS 256 /* per shard, a power of two */

typedef struct {
    uintptr_t p; /* 0 = empty */
    size_t n;    /* bytes requested */
} entry_t;

typedef struct {
    _Alignas(64) pthread_mutex_t lock; /* a cache line or two of its own */
    entry_t *slots;
    size_t cap, used;
    size_t bytes; /* requested bytes of the blocks in this shard */
} shard_t;

static shard_t shards[SHARDS] = {[0 ... SHARDS - 1] = {.lock = PTHREAD_MUTEX_INITIALIZER}};
static _Atomic size_t made_total;

static inline size_t mix(uintptr_t p)
{
    uint64_t x = (uint64_t)p >> 4;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x;
}

static shard_t *shard_of(uintptr_t p)
{
    return &shards[mix(p) % SHARDS];
}

/* The slot holding p, or the empty slot where it would go (lock held, cap > 0). */
static entry_t *find(shard_t *s, uintptr_t p)
{
    size_t i = (mix(p) / SHARDS) & (s->cap - 1);
    while (s->slots[i].p != 0 && s->slots[i].p != p)
        i = (i + 1) & (s->cap - 1);
    return &s->slots[i];
}

static int grow(shard_t *s)
{
    size_t cap = s->cap ? 2 * s->cap : FIRST_SLOTS;
    entry_t *slots = soma__os_map(cap * sizeof(entry_t));
    if (slots == NULL)
        return -1;
    entry_t *old = s->slots;
    size_t oldcap = s->cap;
    s->slots = slots;
    s->cap = cap;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].p != 0)
            *find(s, old[i].p) = old[i];
    if (old != NULL)
        soma__os_unmap(old, oldcap * sizeof(entry_t));
    return 0;
}

/* Record p (n bytes) and return it.  If the table cannot grow (no memory
 * for it), p is still returned, unrecorded: the block works, and is then
 * neither counted nor recognised, like a foreign one. */
static void *enter(void *p, size_t n)
{
    if (p == NULL)
        return NULL;
    shard_t *s = shard_of((uintptr_t)p);
    pthread_mutex_lock(&s->lock);
    if (2 * (s->used + 1) > s->cap && grow(s) != 0) {
        pthread_mutex_unlock(&s->lock);
        return p;
    }
    entry_t *e = find(s, (uintptr_t)p);
    e->p = (uintptr_t)p;
    e->n = n;
    s->used++;
    s->bytes += n;
    pthread_mutex_unlock(&s->lock);
    atomic_fetch_add_explicit(&made_total, 1, memory_order_relaxed);
    return p;
}

/* Forget p if it is registered: 1 (and its size in *n), else 0. */
static int leave(uintptr_t p, size_t *n)
{
    shard_t *s = shard_of(p);
    pthread_mutex_lock(&s->lock);
    if (s->cap == 0 || find(s, p)->p != p) {
        pthread_mutex_unlock(&s->lock);
        return 0;
    }
    /* Backward-shift deletion: pull later entries of the run into the hole
     * when their home slot is at or before it, so no probe run is broken. */
    size_t mask = s->cap - 1, hole = (size_t)(find(s, p) - s->slots);
    *n = s->slots[hole].n;
    s->bytes -= *n;
    s->used--;
    for (size_t j = (hole + 1) & mask; s->slots[j].p != 0; j = (j + 1) & mask) {
        size_t home = (mix(s->slots[j].p) / SHARDS) & mask;
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            s->slots[hole] = s->slots[j];
            hole = j;
        }
    }
    s->slots[hole].p = 0;
    pthread_mutex_unlock(&s->lock);
    return 1;
}

void *soma__large_malloc(size_t n)
{
    return enter(soma__sys_malloc(n), n);
}

void *soma__large_calloc(size_t n)
{
    return enter(soma__sys_calloc(1, n), n);
}

void *soma__large_aligned_alloc(size_t alignment, size_t n)
{
    if (alignment <= SOMA_ALIGNMENT)
        return soma__large_malloc(n);
    return enter(soma__sys_aligned_alloc(alignment, n), n);
}

void soma__large_free(void *p)
{
    size_t n;
    leave((uintptr_t)p, &n); /* soma's or not, the system frees it */
    soma__sys_free(p);
}

size_t soma__large_usable_size(const void *p)
{
    return soma__sys_usable_size(p);
}

void *soma__large_realloc(void *p, size_t n)
{
    size_t old;
    if (!leave((uintptr_t)p, &old))
        return soma__sys_realloc(p, n); /* not soma's: it stays the system's */
    void *q = soma__sys_realloc(p, n);
    /* Either way the block is entered again; it is still the same block. */
    atomic_fetch_sub_explicit(&made_total, 1, memory_order_relaxed);
    if (q == NULL) {
        enter(p, old); /* p untouched: still soma's */
        return NULL;
    }
    return enter(q, n);
}

void soma__large_counts(size_t *count, size_t *bytes, size_t *total)
{
    *count = *bytes = 0;
    for (size_t i = 0; i < SHARDS; i++) {
        pthread_mutex_lock(&shards[i].lock);
        *count += shards[i].used;
        *bytes += shards[i].bytes;
        pthread_mutex_unlock(&shards[i].lock);
    }
    *total = atomic_load_explicit(&made_total, memory_order_relaxed);
}

int soma__large_lookup(const void *p, size_t *n)
{
    shard_t *s = shard_of((uintptr_t)p);
    pthread_mutex_lock(&s->lock);
    int found = 0;
    if (s->cap > 0) {
        entry_t *e = find(s, (uintptr_t)p);
        if (e->p == (uintptr_t)p) {
            *n = e->n;
            found = 1;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return found;
}

void soma__large_foreach(void (*fn)(void *p, size_t n, void *arg), void *arg)
{
    for (size_t i = 0; i < SHARDS; i++) {
        shard_t *s = &shards[i];
        pthread_mutex_lock(&s->lock);
        for (size_t j = 0; j < s->cap; j++)
            if (s->slots[j].p != 0)
                fn((void *)s->slots[j].p, s->slots[j].n, arg);
        pthread_mutex_unlock(&s->lock);
    }
}

static void large_fork(int phase)
{
    for (size_t i = 0; i < SHARDS; i++)
        soma__start_fork_lock(&shards[i].lock, phase);
}
SOMA_HOOK(large, SOMA_ORDER_LARGE, NULL, large_fork);
