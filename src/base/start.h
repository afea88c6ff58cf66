/*
 * start.h: soma's start-up and its fork handlers, one place for both.
 *
 * soma__start() runs once per process, before the first heap, arena,
 * large block or snapshot (every layer that needs it calls it; the first
 * call does the work, a constructor makes sure it happens before main).
 * It runs every module's start hook and registers the fork handlers.
 *
 * Hooks are registered by the modules themselves, at link time: each
 * declares one SOMA_HOOK in its own file, and start.c finds them all in
 * the linker section soma_hooks (the __start_/__stop_ symbols the linker
 * defines).  So the lowest layer runs code of the higher ones without
 * naming them: the callbacks are passed down by the linker.  The static
 * library is one object (CMakeLists.txt), so a program that links any of
 * soma links every hook.
 *
 * `order`, in one list below: start hooks run in increasing order (the
 * links' key first: a start hook may allocate, and a pool carved before
 * the key is set would hold links encoded with another key); fork's
 * prepare phase takes the modules' locks in increasing order, which is
 * soma's lock order, and the parent and child phases release them in
 * decreasing order.
 */
#ifndef SOMA_START_H
#define SOMA_START_H

#include "base/base.h"

enum {
    SOMA_ORDER_LINK = 1,      /* pool/link.c: the links' key (start only) */
    SOMA_ORDER_SIZECLASS = 2, /* pool/sizeclass.c: the medium table (start only) */
    SOMA_ORDER_OPTIONS = 5,   /* base/options.c: reads the environment (start only) */
    SOMA_ORDER_REPORT = 10,   /* runtime/report.c: the exit dump; dump lock (reset in
                                 the child, not held: DESIGN.md's lock table says why) */
    SOMA_ORDER_PURGE = 12,    /* runtime/purge.c: wants the purge thread, after the
                                 options are read (start only) */
    SOMA_ORDER_DEBUG = 30,    /* heap/heap.c: debug mode's recursive lock */
    SOMA_ORDER_GUARD = 35,    /* malloc/guard.c: the guard range and its handler (after
                                 the options); the slots' lock, taken inside the
                                 debug lock and around no other */
    SOMA_ORDER_TYPES = 40,    /* stats/types.c: the type registry's lock */
    SOMA_ORDER_HEAPS = 50,    /* heap/heap.c: heaps_lock, then every heap's lock */
    SOMA_ORDER_ARENA = 60,    /* pool/arena.c: the arena-record slab */
    SOMA_ORDER_REGION = 70,   /* os/region.c: the address range */
    SOMA_ORDER_LARGE = 80,    /* malloc/large.c: the large blocks' shards and cache,
                                 always taken last (inside the debug, dump or types
                                 lock at most), never two at once, and no other
                                 lock of soma's taken while one is held */
    SOMA_ORDER_WAKE = 90,     /* base/wake.c: taken inside any other lock, never held
                                 across fork (reset in the child) */
    SOMA_ORDER_SYS = 95,      /* os/sys.c (the override's): no lock; the child forgets a
                                 lookup of glibc's malloc another thread was writing */
};

/* fork phases (a module's fork hook gets one) */
enum { SOMA_FORK_PREPARE, SOMA_FORK_PARENT, SOMA_FORK_CHILD };

typedef struct {
    int order;
    void (*start)(void);     /* at start-up, or NULL */
    void (*fork)(int phase); /* around fork(), or NULL */
} hook_t;

/* One per module, at file scope.  Not const (the pointers need relocating
 * in a shared library); aligned so that the section is an array; sanitizers
 * leave globals of named sections alone.  `retain` keeps the section from a
 * linker's garbage collection (--gc-sections with -z start-stop-gc, or
 * lld's), which `used` alone does not. */
#if defined(__has_attribute)
#if __has_attribute(retain)
#define SOMA_HOOK_RETAIN retain,
#endif
#endif
#ifndef SOMA_HOOK_RETAIN
#define SOMA_HOOK_RETAIN
#endif
#define SOMA_HOOK(name, order_, start_, fork_)                                                     \
    __attribute__((used, SOMA_HOOK_RETAIN section("soma_hooks"), aligned(sizeof(void *))))        \
    static hook_t soma__hook_##name = {(order_), (start_), (fork_)}

SOMA_INTERNAL void soma__start(void);

/* The common fork hook: take the lock before fork, release it after, in
 * parent and child (the child's one thread is the one that locked it). */
static inline void soma__start_fork_lock(pthread_mutex_t *m, int phase)
{
    if (phase == SOMA_FORK_PREPARE)
        pthread_mutex_lock(m);
    else
        pthread_mutex_unlock(m);
}

#endif /* SOMA_START_H */
