/*
 * wake.h: the purge thread's clock and doorbell, and when it starts
 * (wake.c; the thread itself is runtime/purge.c's).
 *
 * The thread sleeps until the earliest expiry it knows of; when it knows
 * of none it waits, and only then does it want to hear of a new one.  So
 * the cost to the layers below is one relaxed load where a pool goes back
 * to its arena or a large mapping into the cache, and a signal only for
 * the first such event after the thread began to wait.  No event is lost:
 * the thread arms (soma__wake_arm) before its sweep, and an event's layer
 * makes its change and then tests under the same lock the sweep takes, so
 * an event the sweep missed sees the thread armed and wakes it.
 *
 * Starting: creating a thread allocates (glibc callocs its TLS vector),
 * so it is done from a "safe point", a slow path that holds no lock of
 * soma's and leaves its structures consistent (pool.c's sweeps, a large
 * mapping put in the cache: both call soma__wake_safe_point), never from
 * the event itself, which may run under a heap lock.  And only once the
 * thread is worth its cost (a stack, some 100 KiB of RSS in all): once
 * soma's memory has been large enough for the thread to give back more
 * than it costs (runtime/purge.c's `worth`: 8 MiB), and then once the
 * process has run for a decay period, or sooner if a whole arena, or an
 * arena's worth of pools, waits to go back (soma__wake_urgent).  A program
 * that ends within a second and frees little never has one, nor does a
 * small one (a few MiB) at all.
 */
#ifndef SOMA_WAKE_H
#define SOMA_WAKE_H

#include "base/base.h"

/* 1 while the thread is armed: it will wait for an event if its sweep
 * finds nothing to wait for. */
extern SOMA_INTERNAL _Atomic int soma__wake_armed;
SOMA_INTERNAL void soma__wake_post(void);

/* Something began its decay (any thread, any lock held). */
static inline void soma__wake(void)
{
    if (atomic_load_explicit(&soma__wake_armed, memory_order_relaxed))
        soma__wake_post();
}

/* The thread's state: none wanted, wanted and not started, started. */
enum { SOMA_WAKE_OFF, SOMA_WAKE_WANTED, SOMA_WAKE_STARTED };
extern SOMA_INTERNAL _Atomic int soma__wake_state;
extern SOMA_INTERNAL _Atomic int soma__wake_urgent; /* a whole arena waits to go back */
extern SOMA_INTERNAL _Atomic unsigned soma__wake_pools; /* pools emptied while it was wanted */
/* While the thread is wanted: no safe point before this time (the coarse
 * clock's) need ask soma__wake_start, which would find it not due, or not
 * worth it yet; 0 once something is urgent. */
extern SOMA_INTERNAL _Atomic uint64_t soma__wake_due_ms;
SOMA_INTERNAL void soma__wake_start(uint64_t now);

/* A whole arena, or an arena's worth of pools, waits to go back: the
 * thread is worth starting at the next safe point. */
static inline void soma__wake_make_urgent(void)
{
    atomic_store_explicit(&soma__wake_urgent, 1, memory_order_relaxed);
    atomic_store_explicit(&soma__wake_due_ms, 0, memory_order_relaxed);
}

/* A pool went back to its arena: an arena's worth of them (64) waiting
 * makes the thread worth starting at once, as a whole empty arena does
 * (a program that drops most of a large structure empties many pools but
 * perhaps no arena: one live block in each keeps them). */
static inline void soma__wake_pool_emptied(void)
{
    if (atomic_load_explicit(&soma__wake_state, memory_order_relaxed) == SOMA_WAKE_WANTED &&
        atomic_fetch_add_explicit(&soma__wake_pools, 1, memory_order_relaxed) >= 63)
        soma__wake_make_urgent();
}

/* A point where the caller holds no lock of soma's and may allocate: the
 * thread starts here if it is wanted and due (see above).  now: the
 * caller's soma__process_now_ms(), read once for both. */
static inline void soma__wake_safe_point(uint64_t now)
{
    /* Two loads and compares where a pool parks (a call, a clock and a
     * lock's worth of tests took some 30 instructions a park, and the
     * thread is wanted for the whole first decay period of a run) */
    if (atomic_load_explicit(&soma__wake_state, memory_order_relaxed) == SOMA_WAKE_WANTED &&
        now >= atomic_load_explicit(&soma__wake_due_ms, memory_order_relaxed))
        soma__wake_start(now);
}

/* runtime/purge.c's: the thread is wanted, `start` starts it (returns 0,
 * or -1 if it could not), and `worth` says whether it is worth starting
 * yet (1); asked at most every 100 ms. */
SOMA_INTERNAL void soma__wake_want(int (*start)(void), int (*worth)(void));

/* The gate: the purge thread holds it for each sweep, in which it only
 * ever tries soma's locks (it never waits on one).  A fork from a process
 * whose only thread besides the forking one is the purge thread closes
 * the gate instead of taking soma's locks (base/start.c): the process is
 * single-threaded as far as the program knows, and its signal handler may
 * fork while the thread it interrupted holds one of them.  1 if it closed
 * the gate (then soma__wake_gate_open after the fork, in both processes). */
SOMA_INTERNAL void soma__wake_gate_enter(void);
SOMA_INTERNAL void soma__wake_gate_leave(void);
SOMA_INTERNAL int soma__wake_gate_fork(void);
SOMA_INTERNAL void soma__wake_gate_open(int child);

/* The purge thread's side: arm before a sweep; then wait until the time
 * `until_ms` (soma__process_now_ms's clock), and, if `ring`, not longer
 * than until an event. */
SOMA_INTERNAL void soma__wake_arm(void);
SOMA_INTERNAL void soma__wake_wait(uint64_t until_ms, int ring);

#endif /* SOMA_WAKE_H */
