/*
 * heap.c: heap records, and which heap a thread allocates from.
 *
 * Every thread gets a heap of its own the first time it allocates a small
 * block, and keeps it in an initial-exec thread-local (no __tls_get_addr
 * call, which could itself allocate).  Until then the thread-local points at
 * soma__heap_empty, which has no pools, so the fast path needs no "has this
 * thread a heap?" test: the first malloc simply misses and takes the slow
 * path, which acquires a heap.
 *
 *   heaps:    H1 -> H2 -> H3 -> ...      every heap ever made (never freed)
 *   orphans:  H2 -> ...                  heaps whose thread has exited
 *
 * When a thread exits (pthread key destructor), its heap collects what other
 * threads freed into it and becomes an orphan, with all its arenas and the
 * blocks still allocated from them: other threads may still hold and free
 * those blocks (their frees go to the orphan's remote stack).  The next
 * thread that needs a heap adopts an orphan before making a new one, so
 * thread churn reuses memory instead of growing it.  A thread whose first
 * call is a free of an orphan's block adopts that orphan (soma__heap_adopt):
 * a successor inheriting its predecessor's blocks frees them locally.  Nothing is lost: an
 * orphan's pending frees are collected when it is adopted, and by every
 * statistics walk.
 *
 * heaps_lock guards both lists, the `orphaned` flags, and adoption; a heap's
 * own lock is taken inside it.
 */
#define _GNU_SOURCE /* PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP */
#include "base/start.h"
#include "heap/heap.h"
#include "os/slab.h"

__thread heap_t *soma__heap_tls __attribute__((tls_model("initial-exec"))) = &soma__heap_empty;
heap_t soma__heap_empty;

static pthread_mutex_t heaps_lock = PTHREAD_MUTEX_INITIALIZER;
static heap_t *all_heaps;
static heap_t *orphans;
static uint64_t heap_serials; /* the last heap's serial (heaps_lock) */
static slab_t records = {.size = sizeof(heap_t)}; /* heap records; heaps_lock */
static pthread_key_t exit_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void thread_exit(void *arg);

static void make_key(void)
{
    pthread_key_create(&exit_key, thread_exit);
}

/* Debug mode's lock (heap.h).  Recursive: a debug call that starts soma
 * or a thread (pthread_setspecific, atexit) may allocate again inside it. */
static pthread_mutex_t debug_lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;

void soma__heap_debug_lock(void)
{
    pthread_mutex_lock(&debug_lock);
}

void soma__heap_debug_unlock(void)
{
    pthread_mutex_unlock(&debug_lock);
}

/* The same, only in debug mode: around the work of this layer (and a
 * snapshot's) that changes pools outside the owner's own calls. */
static void debug_enter(void)
{
    if (soma__options.debug)
        pthread_mutex_lock(&debug_lock);
}

static void debug_leave(void)
{
    if (soma__options.debug)
        pthread_mutex_unlock(&debug_lock);
}

/* The child's thread is not the one that took the lock in its parent (a
 * new thread id), and a recursive mutex refuses an unlock from another
 * thread: the child gets a fresh lock instead. */
static void debug_lock_fork(int phase)
{
    if (phase == SOMA_FORK_CHILD) {
        pthread_mutex_t fresh = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
        memcpy(&debug_lock, &fresh, sizeof debug_lock);
        return;
    }
    soma__start_fork_lock(&debug_lock, phase);
}
SOMA_HOOK(debug_lock, SOMA_ORDER_DEBUG, NULL, debug_lock_fork);

void soma__heap_collect(heap_t *h)
{
    debug_enter();
    soma__pool_collect(h);
    debug_leave();
}

/* A heap nobody is using any more (its thread exited, or an orphan under
 * heaps_lock): what others freed into it goes back to its pools, parked
 * pools to their arenas, and empty arenas to the OS. */
static void tidy(heap_t *h)
{
    debug_enter();
    soma__pool_collect(h);
    soma__pool_unpark(h, 1);
    soma__arena_trim(h, SOMA_TRIM_ARENAS, NULL);
    debug_leave();
}

/* A fresh heap record (heaps_lock held). */
static heap_t *heap_new(void)
{
    heap_t *h = soma__slab_take(&records);
    if (h == NULL)
        return NULL;
    pthread_mutex_init(&h->lock, NULL);
    h->serial = ++heap_serials; /* newest first: the list is in decreasing serials */
    h->next_heap = all_heaps;
    all_heaps = h;
    return h;
}

/* h, just taken off the orphan list (or new), is the calling thread's. */
static heap_t *adopted(heap_t *h)
{
    soma__heap_tls = h;
    pthread_setspecific(exit_key, h);
    soma__heap_collect(h); /* what others freed while it was an orphan */
    return h;
}

/* Take o off the orphan list, if it is on it (heaps_lock held). */
static int unorphan(heap_t *o)
{
    for (heap_t **at = &orphans; *at != NULL; at = &(*at)->next_orphan) {
        if (*at == o) {
            *at = o->next_orphan;
            atomic_store_explicit(&o->orphaned, 0, memory_order_relaxed);
            return 1;
        }
    }
    return 0;
}

heap_t *soma__heap_acquire(void)
{
    soma__start();
    pthread_once(&key_once, make_key);
    /* The start-up work may itself have allocated (atexit may calloc when
     * soma is malloc), and so given this thread its heap already. */
    if (soma__heap_tls != &soma__heap_empty)
        return soma__heap_tls;
    pthread_mutex_lock(&heaps_lock);
    heap_t *h = orphans;
    if (h != NULL) {
        orphans = h->next_orphan;
        atomic_store_explicit(&h->orphaned, 0, memory_order_relaxed);
    } else {
        h = heap_new();
    }
    pthread_mutex_unlock(&heaps_lock);
    if (h == NULL)
        return NULL; /* errno = ENOMEM from the map */
    return adopted(h);
}

/* A thread with no heap yet frees a block of o, an orphan: it adopts o
 * itself rather than the first orphan on the list.  A successor that
 * inherits its predecessor's blocks (larson, thread pools) then frees
 * them into its own heap, locally, and allocates where they were. */
int soma__heap_adopt(heap_t *o)
{
    if (soma__options.debug || soma__heap_tls != &soma__heap_empty)
        return 0;
    soma__start();
    pthread_once(&key_once, make_key);
    pthread_mutex_lock(&heaps_lock);
    int mine = unorphan(o);
    pthread_mutex_unlock(&heaps_lock);
    if (mine)
        adopted(o);
    return mine;
}

heap_t *soma__heap_current(void)
{
    heap_t *h = soma__heap_tls;
    return h != &soma__heap_empty ? h : soma__heap_acquire();
}

heap_t *soma__heap_create_explicit(void)
{
    soma__start();
    pthread_mutex_lock(&heaps_lock);
    heap_t *h = heap_new();
    if (h != NULL)
        h->explicit_heap = 1;
    pthread_mutex_unlock(&heaps_lock);
    return h;
}

/* soma_heap_destroy: off the list of heaps (so no walk can reach it), every
 * arena given back to the OS, the record back to the slab.  Debug mode
 * unlists it at once and releases it later (malloc/debug.c keeps it a while, so
 * that a block of it freed too late is diagnosed). */
void soma__heap_unlist(heap_t *h)
{
    pthread_mutex_lock(&heaps_lock);
    for (heap_t **at = &all_heaps; *at != NULL; at = &(*at)->next_heap) {
        if (*at == h) {
            *at = h->next_heap;
            h->serial = 0; /* a walk's place in it is lost (soma__heap_step) */
            break;
        }
    }
    pthread_mutex_unlock(&heaps_lock);
}

#ifdef SOMA_TRACK_VALGRIND
/* memcheck must forget the blocks a destroyed heap still had in use, or
 * it would call them leaked: every carved block that is neither free in
 * its pool nor waiting on the remote stack (collected first). */
static void forget_pool_blocks(pool_t *pool, void *arg)
{
    (void)arg;
    if (soma__pool_count(pool) == 0)
        return;
    size_t size = soma__sizeclass_size(pool->szidx);
    uint64_t free_bits[SOMA_POOL_BITMAP_WORDS];
    long carved = soma__check_free_map(pool, free_bits);
    for (long i = 0; i < carved; i++)
        if (!(free_bits[i / 64] >> (i % 64) & 1))
            VALGRIND_FREELIKE_BLOCK(pool->base + SOMA_POOL_OVERHEAD + i * size, 0);
}

static void forget_live_blocks(heap_t *h)
{
    soma__pool_collect(h);
    soma__check_pools(h, forget_pool_blocks, NULL);
}
#endif

void soma__heap_release(heap_t *h)
{
#ifdef SOMA_TRACK_VALGRIND
    if (!soma__options.debug)
        forget_live_blocks(h);
#endif
    pthread_mutex_lock(&heaps_lock);
    soma__arena_release_all(h); /* pending cross-thread frees go with their arenas */
    pthread_mutex_destroy(&h->lock);
    soma__slab_give(&records, h);
    pthread_mutex_unlock(&heaps_lock);
}

void soma__heap_destroy(heap_t *h)
{
    soma__heap_unlist(h);
    soma__heap_release(h);
}

/* Make h an orphan (heaps_lock held).  Explicit heaps have no thread to
 * lose: they are never orphaned. */
static void orphan(heap_t *h)
{
    if (h->orphaned || h->explicit_heap)
        return;
    atomic_store_explicit(&h->orphaned, 1, memory_order_relaxed);
    h->next_orphan = orphans;
    orphans = h;
}

static void thread_exit(void *arg)
{
    heap_t *h = arg;
    tidy(h);
    /* Later allocations by this thread (other TLS destructors run after
     * this one) acquire a heap again and re-arm the destructor. */
    soma__heap_tls = &soma__heap_empty;
    pthread_mutex_lock(&heaps_lock);
    orphan(h);
    pthread_mutex_unlock(&heaps_lock);
}

void soma__heap_foreach(void (*fn)(heap_t *, void *), void *arg, int tidy_orphans)
{
    if (tidy_orphans)
        debug_enter(); /* before heaps_lock: the lock order */
    pthread_mutex_lock(&heaps_lock);
    for (heap_t *h = all_heaps; h != NULL; h = h->next_heap) {
        /* Nobody owns an orphan while heaps_lock is held (adoption takes
         * it), so its pending frees can be collected here: the figures for
         * exited threads are then exact.  Not for samples: collecting may
         * empty arenas and release them, and an observer must not. */
        if (h->orphaned && tidy_orphans)
            tidy(h);
        pthread_mutex_lock(&h->lock);
        fn(h, arg);
        pthread_mutex_unlock(&h->lock);
    }
    pthread_mutex_unlock(&heaps_lock);
    if (tidy_orphans)
        debug_leave();
}

int soma__heap_foreach_try(void (*fn)(heap_t *, void *), void *arg)
{
    if (pthread_mutex_trylock(&heaps_lock) != 0)
        return -1;
    int busy = 0;
    for (heap_t *h = all_heaps; h != NULL; h = h->next_heap) {
        if (pthread_mutex_trylock(&h->lock) != 0) {
            busy++;
            continue;
        }
        fn(h, arg);
        pthread_mutex_unlock(&h->lock);
    }
    pthread_mutex_unlock(&heaps_lock);
    return busy;
}

/* A walk that holds no lock between its steps (stats/visit.c calls back
 * the program between them).  The heap it was in may have left the list
 * meanwhile (an explicit heap destroyed), and its record may even serve a
 * new heap, so the place is the heap and its serial: records are never
 * unmapped, their serials are written under heaps_lock only, and an
 * unlisted heap's is 0, so under heaps_lock a serial that still matches
 * means the same heap, still listed.  A heap that left is succeeded by
 * the first heap made before it (the list is in decreasing serials).
 * Heaps made after the walk began come before its place and are not
 * reached; a heap listed all along is reached exactly once. */
int soma__heap_step(heap_place_t *at, int (*fn)(heap_t *, int, void *), void *arg)
{
    pthread_mutex_lock(&heaps_lock);
    heap_t *h;
    int again = 0;
    if (at->serial == 0) {
        h = all_heaps; /* the first step */
    } else if (at->heap->serial == at->serial) {
        again = !at->done;
        h = again ? at->heap : at->heap->next_heap;
    } else {
        for (h = all_heaps; h != NULL && h->serial > at->serial; h = h->next_heap)
            ;
    }
    if (h == NULL) {
        pthread_mutex_unlock(&heaps_lock);
        return 0;
    }
    pthread_mutex_lock(&h->lock);
    at->done = !fn(h, again, arg);
    pthread_mutex_unlock(&h->lock);
    at->heap = h;
    at->serial = h->serial;
    pthread_mutex_unlock(&heaps_lock);
    return 1;
}

/* fork(): take every heap lock so no walk or arena change is half done; in
 * the child, only the forking thread exists, so every other heap becomes an
 * orphan, adoptable by the child's future threads. */
static void heaps_fork(int phase)
{
    if (phase == SOMA_FORK_PREPARE) {
        pthread_mutex_lock(&heaps_lock);
        for (heap_t *h = all_heaps; h != NULL; h = h->next_heap)
            pthread_mutex_lock(&h->lock);
        return;
    }
    for (heap_t *h = all_heaps; h != NULL; h = h->next_heap) {
        if (phase == SOMA_FORK_CHILD && h != soma__heap_tls) {
            soma__pool_mark_parked_all(h);
            orphan(h);
        }
        pthread_mutex_unlock(&h->lock);
    }
    pthread_mutex_unlock(&heaps_lock);
}
SOMA_HOOK(heaps, SOMA_ORDER_HEAPS, NULL, heaps_fork);
