/*
 * wake.h: how the layers that keep memory for reuse tell the purge thread
 * (runtime/purge.c) that something has begun its decay (wake.c).
 *
 * The thread sleeps until the earliest expiry it knows of; when it knows
 * of none it waits, and only then does it want to hear of a new one.  So
 * the cost to the layers below is one relaxed load where a pool goes back
 * to its arena or a large mapping into the cache, and a signal only for
 * the first such event after the thread began to wait.  No event is lost:
 * the thread arms (soma__wake_arm) before its sweep, and an event's layer
 * makes its change and then tests under the same lock the sweep takes, so
 * an event the sweep missed sees the thread armed and wakes it.
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

/* The purge thread's side: arm before a sweep; then wait until the time
 * `until_ms` (soma__process_now_ms's clock), and, if `ring`, not longer
 * than until an event. */
SOMA_INTERNAL void soma__wake_arm(void);
SOMA_INTERNAL void soma__wake_wait(uint64_t until_ms, int ring);

#endif /* SOMA_WAKE_H */
