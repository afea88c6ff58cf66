/*
 * init.c: what soma does once per process, before main() when it can.
 *
 *   - read the runtime options (options.c);
 *   - register fork handlers, so that a child forked while another thread is
 *     inside soma does not inherit a lock nobody will release.
 *
 * A constructor runs it at load time; the first arena and the first
 * snapshot also call it (an atomic flag: see below), which keeps it linked into
 * static programs that use any part of soma.
 */
#include <sys/random.h>
#include <sys/single_threaded.h>
#include <time.h>

#include "internal.h"

/* Not pthread_once: the work below may itself allocate (atexit and
 * pthread_atfork may call calloc, which is soma's own when soma is the
 * process's malloc), and an allocation's slow path calls soma__init again.
 * A flag set before the work lets that inner call return at once instead of
 * waiting for itself; nothing the inner call needs depends on the work. */
static atomic_int started;
static struct timespec start_time; /* for the snapshots' elapsed_ms */
uintptr_t soma__link_key;          /* link.h: set once, before the first pool */

/* A secret for the free-list links: from the kernel's random pool, or,
 * should getrandom fail (seccomp, an old kernel), from what ASLR and the
 * clock make unpredictable enough to keep corrupted links from decoding
 * to chosen addresses.  Never 0, so that a zeroed word is never a link. */
static void make_link_key(void)
{
    uintptr_t key = 0;
    if (getrandom(&key, sizeof key, GRND_NONBLOCK) != (ssize_t)sizeof key) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        key = ((uintptr_t)&ts * 0x9e3779b97f4a7c15u) ^ (uintptr_t)ts.tv_nsec ^
              ((uintptr_t)&soma__link_key << 17);
    }
    soma__link_key = key | 1;
}

double soma__elapsed_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start_time.tv_sec) * 1e3 +
           (double)(now.tv_nsec - start_time.tv_nsec) / 1e6;
}

/* Locks are taken in the order they nest: debug.c's lock (a debug call
 * holds it while it allocates underneath), types_lock (held only to copy the
 * registry), heaps_lock and the heap locks, inside which an arena may be
 * mapped or released (slab_lock, region_lock); last, the shards of the large
 * blocks' registry (large.c), which are never held with another lock of
 * soma's.  print_lock and report.c's dump_lock are not held across
 * fork (stats_print.c says why); the child resets them.  Released in the
 * reverse order. */
static void (*const fork_order[])(int) = {
    soma__report_fork, soma__stats_print_fork, soma__stats_json_fork, soma__debug_fork,
    soma__types_fork,  soma__heaps_fork,       soma__arena_fork,      soma__region_fork,
    soma__large_fork};
#define NFORK (sizeof fork_order / sizeof fork_order[0])

/* A single-threaded process may fork from a signal handler that
 * interrupted soma itself (fork is async-signal-safe): taking the locks
 * would then wait for the very thread that holds them.  With one thread no
 * other can hold a lock either, so, like glibc, soma takes none; what the
 * interrupted code was doing resumes in both processes.  The decision is
 * made once per fork and remembered for the two after-handlers. */
static int fork_locked;

static void fork_prepare(void)
{
    fork_locked = !__libc_single_threaded;
    if (!fork_locked)
        return;
    for (size_t i = 0; i < NFORK; i++)
        fork_order[i](SOMA_FORK_PREPARE);
}
static void fork_parent(void)
{
    if (!fork_locked)
        return;
    for (size_t i = NFORK; i-- > 0;)
        fork_order[i](SOMA_FORK_PARENT);
}
static void fork_child(void)
{
    if (!fork_locked)
        return;
    for (size_t i = NFORK; i-- > 0;)
        fork_order[i](SOMA_FORK_CHILD);
}

void soma__init(void)
{
    if (atomic_load_explicit(&started, memory_order_acquire) ||
        atomic_exchange_explicit(&started, 1, memory_order_acq_rel))
        return;
    make_link_key();
    clock_gettime(CLOCK_MONOTONIC, &start_time);
    soma__sizeclass_init();
    soma__options_read();
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

__attribute__((constructor)) static void soma_start(void)
{
    soma__init();
    /* Threads the options ask for start here, at load time, not inside
     * whatever allocation ran soma__init first. */
    soma__options_start();
}
