/*
 * thread.c: which heap a thread allocates from.
 *
 * Every thread gets a heap of its own the first time it allocates a small
 * block, and keeps it in an initial-exec thread-local (no __tls_get_addr
 * call, which could itself allocate).  Until then the thread-local points at
 * soma__empty_heap, which has no pools, so the fast path needs no "has this
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
 * thread churn reuses memory instead of growing it.  Nothing is lost: an
 * orphan's pending frees are collected when it is adopted, and by every
 * statistics walk.
 *
 * heaps_lock guards both lists, the `orphaned` flags, and adoption; a heap's
 * own lock is taken inside it.
 */
#include "internal.h"

__thread heap_t *soma__tls_heap __attribute__((tls_model("initial-exec"))) = &soma__empty_heap;
heap_t soma__empty_heap;

static pthread_mutex_t heaps_lock = PTHREAD_MUTEX_INITIALIZER;
static heap_t *all_heaps;
static heap_t *orphans;
static heap_t *heap_slab_free; /* unused heap records, through next_heap */
static pthread_key_t exit_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

#define HEAP_SLAB_BYTES ((size_t)64 * 1024)

static void thread_exit(void *arg);

static void make_key(void)
{
    pthread_key_create(&exit_key, thread_exit);
}

/* A fresh heap record (heaps_lock held).  Records come from mmap'd slabs:
 * soma cannot ask malloc for its own bookkeeping. */
static heap_t *heap_new(void)
{
    if (heap_slab_free == NULL) {
        heap_t *slab = soma__os_map(HEAP_SLAB_BYTES);
        if (slab == NULL)
            return NULL;
        for (size_t i = HEAP_SLAB_BYTES / sizeof(heap_t); i-- > 0;) {
            slab[i].next_heap = heap_slab_free;
            heap_slab_free = &slab[i];
        }
    }
    heap_t *h = heap_slab_free;
    heap_slab_free = h->next_heap;
    memset(h, 0, sizeof *h);
    pthread_mutex_init(&h->lock, NULL);
    h->next_heap = all_heaps;
    all_heaps = h;
    return h;
}

heap_t *soma__thread_heap_acquire(void)
{
    soma__init();
    pthread_once(&key_once, make_key);
    /* The start-up work may itself have allocated (atexit may calloc when
     * soma is malloc), and so given this thread its heap already. */
    if (soma__tls_heap != &soma__empty_heap)
        return soma__tls_heap;
    pthread_mutex_lock(&heaps_lock);
    heap_t *h = orphans;
    if (h != NULL) {
        orphans = h->next_orphan;
        h->orphaned = 0;
    } else {
        h = heap_new();
    }
    pthread_mutex_unlock(&heaps_lock);
    if (h == NULL)
        return NULL; /* errno = ENOMEM from the map */
    soma__tls_heap = h;
    pthread_setspecific(exit_key, h);
    soma__debug_enter(); /* debug mode: not while soma_debug_check walks */
    soma__heap_collect(h); /* what others freed while it was an orphan */
    soma__debug_leave();
    return h;
}

heap_t *soma__thread_heap(void)
{
    heap_t *h = soma__tls_heap;
    return h != &soma__empty_heap ? h : soma__thread_heap_acquire();
}

heap_t *soma__heap_create_explicit(void)
{
    soma__init();
    pthread_mutex_lock(&heaps_lock);
    heap_t *h = heap_new();
    if (h != NULL)
        h->explicit_heap = 1;
    pthread_mutex_unlock(&heaps_lock);
    return h;
}

/* soma_heap_destroy: off the list of heaps (so no walk can reach it), every
 * arena given back to the OS, the record back to the slab.  Debug mode
 * unlists it at once and releases it later (debug.c keeps it a while, so
 * that a block of it freed too late is diagnosed). */
void soma__heap_unlist(heap_t *h)
{
    pthread_mutex_lock(&heaps_lock);
    for (heap_t **at = &all_heaps; *at != NULL; at = &(*at)->next_heap) {
        if (*at == h) {
            *at = h->next_heap;
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
    size_t size = soma__class_size(pool->szidx);
    uint64_t free_bits[SOMA_POOL_BITMAP_WORDS];
    long carved = soma__pool_free_map(pool, free_bits);
    for (long i = 0; i < carved; i++)
        if (!(free_bits[i / 64] >> (i % 64) & 1))
            VALGRIND_FREELIKE_BLOCK((char *)pool + SOMA_POOL_OVERHEAD + i * size, 0);
}

static void forget_live_blocks(heap_t *h)
{
    soma__heap_collect(h);
    soma__heap_pools(h, forget_pool_blocks, NULL);
}
#endif

void soma__heap_release(heap_t *h)
{
#ifdef SOMA_TRACK_VALGRIND
    if (!soma__debug)
        forget_live_blocks(h);
#endif
    pthread_mutex_lock(&heaps_lock);
    soma__arena_release_all(h); /* pending cross-thread frees go with their arenas */
    pthread_mutex_destroy(&h->lock);
    h->next_heap = heap_slab_free;
    heap_slab_free = h;
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
    h->orphaned = 1;
    h->next_orphan = orphans;
    orphans = h;
}

static void thread_exit(void *arg)
{
    heap_t *h = arg;
    soma__debug_enter(); /* debug mode: not while soma_debug_check walks */
    soma__heap_collect(h);
    soma__heap_unpark(h, 1);
    soma__arena_trim(h, 1);
    soma__debug_leave();
    /* Later allocations by this thread (other TLS destructors run after
     * this one) acquire a heap again and re-arm the destructor. */
    soma__tls_heap = &soma__empty_heap;
    pthread_mutex_lock(&heaps_lock);
    orphan(h);
    pthread_mutex_unlock(&heaps_lock);
}

void soma__heaps_foreach(void (*fn)(heap_t *, void *), void *arg, int tidy_orphans)
{
    pthread_mutex_lock(&heaps_lock);
    for (heap_t *h = all_heaps; h != NULL; h = h->next_heap) {
        /* Nobody owns an orphan while heaps_lock is held (adoption takes
         * it), so its pending frees can be collected here: the figures for
         * exited threads are then exact.  Not for samples: collecting may
         * empty arenas and release them, and an observer must not. */
        if (h->orphaned && tidy_orphans) {
            soma__heap_collect(h);
            soma__heap_unpark(h, 1);
            soma__arena_trim(h, 1);
        }
        pthread_mutex_lock(&h->lock);
        fn(h, arg);
        pthread_mutex_unlock(&h->lock);
    }
    pthread_mutex_unlock(&heaps_lock);
}

/* fork(): take every heap lock so no walk or arena change is half done; in
 * the child, only the forking thread exists, so every other heap becomes an
 * orphan, adoptable by the child's future threads. */
void soma__heaps_fork(int phase)
{
    if (phase == SOMA_FORK_PREPARE) {
        pthread_mutex_lock(&heaps_lock);
        for (heap_t *h = all_heaps; h != NULL; h = h->next_heap)
            pthread_mutex_lock(&h->lock);
        return;
    }
    for (heap_t *h = all_heaps; h != NULL; h = h->next_heap) {
        if (phase == SOMA_FORK_CHILD && h != soma__tls_heap)
            orphan(h);
        pthread_mutex_unlock(&h->lock);
    }
    pthread_mutex_unlock(&heaps_lock);
}
