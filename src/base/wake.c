/* wake.c: the purge thread's alarm clock and doorbell (wake.h). */
#include <time.h>

#include "base/options.h"
#include "base/process.h"
#include "base/start.h"
#include "base/wake.h"

_Atomic int soma__wake_armed;
_Atomic int soma__wake_state;
_Atomic int soma__wake_urgent;
_Atomic unsigned soma__wake_pools;
_Atomic uint64_t soma__wake_due_ms;
static int (*starter)(void);
static int (*worth)(void);
static _Atomic uint64_t worth_asked_ms; /* when worth() last said no */
static pthread_mutex_t wake_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake_cond;

static void wake_start(void)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&wake_cond, &attr);
    pthread_condattr_destroy(&attr);
}

/* Not held across fork: the lock is only ever taken for a signal or a
 * wait, never with another of soma's inside it, and the child has no
 * thread waiting; its copies start afresh.  A child of a process with the
 * thread wants one of its own, started at its first safe point: a child
 * that execs at once never makes it. */
static void wake_child(void)
{
    pthread_mutex_init(&wake_lock, NULL);
    wake_start();
    atomic_store_explicit(&soma__wake_armed, 0, memory_order_relaxed);
    if (atomic_load_explicit(&soma__wake_state, memory_order_relaxed) == SOMA_WAKE_STARTED) {
        atomic_store_explicit(&soma__wake_due_ms, 0, memory_order_relaxed);
        atomic_store_explicit(&soma__wake_state, SOMA_WAKE_WANTED, memory_order_relaxed);
    }
}

static void wake_fork(int phase)
{
    if (phase == SOMA_FORK_CHILD)
        wake_child();
}
SOMA_HOOK(wake, SOMA_ORDER_WAKE, wake_start, wake_fork);

void soma__wake_gate_enter(void)
{
    pthread_mutex_lock(&gate);
}

void soma__wake_gate_leave(void)
{
    pthread_mutex_unlock(&gate);
}

/* Are this process's threads the caller and the purge thread alone?  (A
 * main thread that has exited still counts, so such a process takes
 * soma's locks as before.)  The caller may be a signal handler:
 * soma__process_threads only opens and reads. */
static int only_purge_besides(void)
{
    char main_state;
    return atomic_load_explicit(&soma__wake_state, memory_order_relaxed) == SOMA_WAKE_STARTED &&
           soma__process_threads(&main_state) == 2;
}

int soma__wake_gate_fork(void)
{
    if (!only_purge_besides())
        return 0;
    /* Bounded: a sweep never waits on a lock, and the thread holds none of
     * soma's outside it (wake_lock only inside a wait, reset in the child). */
    pthread_mutex_lock(&gate);
    return 1;
}

void soma__wake_gate_open(int child)
{
    if (!child) {
        pthread_mutex_unlock(&gate);
        return;
    }
    pthread_mutex_init(&gate, NULL);
    wake_child();
}

void soma__wake_want(int (*start)(void), int (*worth_it)(void))
{
    starter = start;
    worth = worth_it;
    /* not before a decay period has run (soma__wake_start), unless
     * something was urgent already */
    atomic_store_explicit(&soma__wake_due_ms,
                          atomic_load_explicit(&soma__wake_urgent, memory_order_relaxed)
                              ? 0
                              : soma__process_start_ms() + (uint64_t)soma__options.decay_ms,
                          memory_order_relaxed);
    atomic_store_explicit(&soma__wake_state, SOMA_WAKE_WANTED, memory_order_release);
}

#define WORTH_MS 100

void soma__wake_start(uint64_t now)
{
    /* now, the coarse clock, the caller's: this runs at every pool
     * transition until the thread starts, and pools of few blocks empty
     * and fill all the time (a clock read of its own, and the precise
     * clock at that, doubled their cost) */
    if (!atomic_load_explicit(&soma__wake_urgent, memory_order_relaxed) &&
        now - soma__process_start_ms() < (uint64_t)soma__options.decay_ms)
        return;
    /* worth() takes a lock: asked again only WORTH_MS after a no. */
    uint64_t asked = atomic_load_explicit(&worth_asked_ms, memory_order_relaxed);
    if (asked != 0 && now - asked < WORTH_MS)
        return;
    if (!worth()) {
        atomic_store_explicit(&worth_asked_ms, now | 1, memory_order_relaxed);
        /* (an urgent event meanwhile sets it to 0 again) */
        if (!atomic_load_explicit(&soma__wake_urgent, memory_order_relaxed))
            atomic_store_explicit(&soma__wake_due_ms, now + WORTH_MS, memory_order_relaxed);
        return;
    }
    int wanted = SOMA_WAKE_WANTED;
    /* One thread starts it; the allocation inside pthread_create, which
     * may reach a safe point again, finds it started. */
    if (atomic_compare_exchange_strong_explicit(&soma__wake_state, &wanted, SOMA_WAKE_STARTED,
                                                memory_order_acquire, memory_order_relaxed) &&
        starter() != 0)
        atomic_store_explicit(&soma__wake_state, SOMA_WAKE_OFF, memory_order_relaxed);
}

void soma__wake_post(void)
{
    if (!atomic_exchange_explicit(&soma__wake_armed, 0, memory_order_relaxed))
        return; /* another event rang first */
    pthread_mutex_lock(&wake_lock);
    pthread_cond_signal(&wake_cond);
    pthread_mutex_unlock(&wake_lock);
}

void soma__wake_arm(void)
{
    atomic_store_explicit(&soma__wake_armed, 1, memory_order_seq_cst);
}

/* The precise clock's time, `ms` from now (coarse clock's until_ms a few
 * ms late is as good, and never early). */
static struct timespec deadline(uint64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    return ts;
}

void soma__wake_wait(uint64_t until_ms, int ring)
{
    uint64_t now = soma__process_now_ms();
    if (until_ms <= now)
        return;
    struct timespec ts = deadline(until_ms - now + 5);
    pthread_mutex_lock(&wake_lock);
    if (!ring) {
        /* The sweep found something that will expire: no event can come
         * earlier than it, so none needs to ring. */
        atomic_store_explicit(&soma__wake_armed, 0, memory_order_relaxed);
        pthread_cond_timedwait(&wake_cond, &wake_lock, &ts);
    } else {
        while (atomic_load_explicit(&soma__wake_armed, memory_order_relaxed))
            if (pthread_cond_timedwait(&wake_cond, &wake_lock, &ts) != 0)
                break; /* the time is up */
    }
    pthread_mutex_unlock(&wake_lock);
}
