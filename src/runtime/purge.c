/*
 * purge.c: giving back what has stayed unused, without waiting for the
 * program: soma's purge thread (SOMA_BACKGROUND_PURGE) and soma_purge.
 *
 * What soma keeps for reuse ages in three places: empty pools inside
 * arenas still in use (their pages), wholly empty arenas, and the large
 * blocks' cache.  Each goes back once it has stayed unused for
 * SOMA_ARENA_DECAY_MS.  The program's own calls check for it on their slow
 * paths (pool.c's sweeps, the cache's put), so a program that keeps
 * allocating gives back on its own; one that stops (it waits for input,
 * sleeps, computes without allocating) would keep its peak until exit.
 * The thread closes that gap: it sweeps every heap and the cache, and
 * sleeps until the earliest expiry the sweep saw; when nothing is left to
 * expire it waits for an event (base/wake.h), so an idle program with
 * nothing to give back never wakes it.
 *
 * A sweep holds heaps_lock, and each heap's lock while that heap is swept
 * (the owner waits only if it needs a new pool meanwhile); the pages of
 * pools that touch go back with one madvise, and an expired empty arena
 * goes whole when the slab's and the region's locks are free at once
 * (else 10 ms later: its record, 4 KiB out of the arena, stays resident
 * until then).  It only ever tries a lock (a busy heap is looked at again
 * 10 ms later): a fork from a signal handler must never find it waiting
 * on a lock the interrupted thread holds (base/wake.h's gate).  It never touches a heap's
 * parked pools or pending frees (the owner's alone): at most one parked
 * pool per class and thread stays resident.
 *
 * The thread is wanted if the option asks for it and there is a decay, and
 * started at a point where that is safe and worth it: a slow path holding
 * no lock, once the process has run for a decay period, or a whole arena
 * or an arena's worth of pools waits to go back (base/wake.h).  A child
 * forked without exec gets one of its own the same way.  Not in debug
 * mode, whose checks walk pools that only the owner changes.  Once it is
 * the process's last thread (the program's all ended with pthread_exit) it
 * ends too, within a second, and with it the process.
 */
#include <stdio.h>

#include "base/options.h"
#include "base/process.h"
#include "base/start.h"
#include "base/wake.h"
#include "heap/heap.h"
#include "malloc/malloc.h"

typedef struct {
    unsigned all;   /* SOMA_TRIM_* */
    uint64_t next;  /* the earliest expiry seen */
    size_t bytes;   /* given back */
} sweep_t;

static void sweep_heap(heap_t *h, void *arg)
{
    sweep_t *w = arg;
    w->bytes += soma__arena_trim_locked(h, w->all, &w->next);
}

/* A lock found busy: look again this soon. */
#define RETRY_MS 10

/* The thread's sweep: every heap and the cache, trying their locks only,
 * inside the gate (base/wake.h): expired pools' pages, and expired empty
 * arenas when the slab's and the region's locks are free at once (an
 * arena's record then goes back to its slab, whose pages go back once all
 * its records have: os/slab.h).  *next: the earliest expiry seen, or a
 * retry soon if something was busy. */
static void sweep_try(uint64_t *next)
{
    sweep_t w = {SOMA_TRIM_TRY, UINT64_MAX, 0};
    uint64_t retry = soma__process_now_ms() + RETRY_MS;
    soma__wake_gate_enter();
    if (soma__heap_foreach_try(sweep_heap, &w) != 0 && retry < w.next)
        w.next = retry;
    soma__large_trim(SOMA_LARGE_TRIM_TRY, retry, &w.next);
    soma__wake_gate_leave();
    *next = w.next;
}

/* Is this the process's last thread?  A process ends when its last thread
 * does: when the program's threads have all called pthread_exit (a main
 * that ends that way, a child forked by a thread that then returns), this
 * one must not keep it alive.  The count includes the main thread until
 * the process ends.  No /proc: no. */
static int alone(void)
{
    char main_state;
    int threads = soma__process_threads(&main_state);
    return threads == 1 || (threads == 2 && main_state == 'Z');
}

/* Idle (nothing left to expire), the thread still looks every ALONE_MS
 * whether it is the last one. */
#define ALONE_MS 1000

static void *purge_thread(void *arg)
{
    (void)arg;
    for (;;) {
        uint64_t next;
        soma__wake_arm(); /* before the sweep: an event it misses rings */
        sweep_try(&next);
        int idle = next == UINT64_MAX;
        /* Not more often than every quarter decay, as the owners' sweeps:
         * under steady churn something expires every few ms, and a sweep
         * holds every heap's lock in turn.  What expires goes back within
         * 1.25 decays of its emptying. */
        uint64_t soonest = soma__process_now_ms() + (uint64_t)soma__options.decay_ms / 4;
        soma__wake_wait(idle ? soma__process_now_ms() + ALONE_MS : next > soonest ? next : soonest,
                        idle);
        if (alone())
            return NULL; /* the process ends, as it would have without soma */
    }
}

static int start_thread(void)
{
    /* Its frames are small: 256 KiB of stack. */
    if (soma__process_thread(purge_thread, (size_t)256 << 10, "soma-purge") == 0)
        return 0;
    fprintf(stderr, "soma: warning: cannot start the thread SOMA_BACKGROUND_PURGE needs; "
                    "memory goes back on the program's own allocations only\n");
    return -1;
}

/* Worth starting (once nothing is urgent) when soma's memory has once
 * reached PURGE_WORTH: the arenas ever in use at once and the recent peak
 * of large mappings.  Below it, all the thread could give back is about
 * what it costs (its stack and TLS, some 100 KiB): a program whose blocks
 * never pass a few MiB is better off without it, and its own slow paths
 * still return what decays. */
#define PURGE_WORTH ((size_t)8 << 20)

static int worth(void)
{
    return soma__region_slots_used() * SOMA_ARENA_SIZE + soma__large_peak() >= PURGE_WORTH;
}

/* Wanted when the option asks for it and something ages; started later,
 * by the pool layer (base/wake.h says when).  Not in the build for
 * memcheck (libsoma-override-valgrind.so): memcheck calls the thread's
 * TLS, which glibc allocates with the program's calloc and the thread
 * holds to the end, possibly lost. */
static void purge_start(void)
{
#ifndef SOMA_TRACK_VALGRIND
    if (soma__options.purge_thread && soma__options.decay_ms > 0 && !soma__options.debug)
        soma__wake_want(start_thread, worth);
#else
    (void)start_thread, (void)worth;
#endif
}
SOMA_HOOK(purge, SOMA_ORDER_PURGE, purge_start, NULL);

size_t soma_purge(int all)
{
    soma__start();
    if (soma__options.debug)
        return 0;
    size_t bytes = 0;
    /* The caller's own parked pools go back first (only their owner may
     * touch them), so that their arenas may empty. */
    heap_t *own = soma__heap_tls;
    if (all && own != &soma__heap_empty) {
        soma__heap_collect(own);
        soma__pool_unpark(own, 1);
    }
    sweep_t w = {all ? SOMA_TRIM_ARENAS | SOMA_TRIM_POOLS : 0, UINT64_MAX, 0};
    soma__heap_foreach(sweep_heap, &w, 0);
    bytes += w.bytes + soma__large_trim(all ? SOMA_LARGE_TRIM_ALL : 0, 0, &w.next);
    return bytes;
}
