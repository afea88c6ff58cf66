/*
 * init.c: what soma does once per process, before main() when it can.
 *
 *   - read the runtime options (options.c);
 *   - register fork handlers, so that a child forked while another thread is
 *     inside soma does not inherit a lock nobody will release.
 *
 * A constructor runs it at load time; the first arena and the first
 * snapshot also call it (through pthread_once), which keeps it linked into
 * static programs that use any part of soma.
 */
#include "internal.h"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* Locks are taken in the order they nest: a snapshot being printed holds
 * print_lock, then types_lock while a program's count function runs (which
 * may allocate), then heaps_lock and the heap locks, inside which an arena
 * may be mapped or unmapped (slab_lock, map_lock).  Released in the reverse order. */
static void (*const fork_order[])(int) = {soma__stats_print_fork, soma__types_fork,
                                          soma__heaps_fork, soma__arena_fork,
                                          soma__arena_map_fork};
#define NFORK (sizeof fork_order / sizeof fork_order[0])

static void fork_prepare(void)
{
    for (size_t i = 0; i < NFORK; i++)
        fork_order[i](SOMA_FORK_PREPARE);
}
static void fork_parent(void)
{
    for (size_t i = NFORK; i-- > 0;)
        fork_order[i](SOMA_FORK_PARENT);
}
static void fork_child(void)
{
    for (size_t i = NFORK; i-- > 0;)
        fork_order[i](SOMA_FORK_CHILD);
}

static void init_once_fn(void)
{
    soma__options_read();
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

void soma__init(void)
{
    pthread_once(&init_once, init_once_fn);
}

__attribute__((constructor)) static void soma_start(void)
{
    soma__init();
}
