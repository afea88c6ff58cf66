/*
 * start.c: what soma does once per process, before main() when it can
 * (start.h says how the hooks are found):
 *
 *   - note when soma started (the snapshots' elapsed time);
 *   - run every module's start hook, in order: the links' key, the size
 *     class table, the runtime options (options.c, which may turn on
 *     debug mode and so must come before the first block), the exit dump;
 *   - register the fork handlers, so that a child forked while another
 *     thread is inside soma does not inherit a lock nobody will release.
 *
 * A constructor runs it at load time; before that, the first heap, large
 * block or snapshot calls it (another library's constructor may allocate
 * before soma's runs).
 */
#include <sys/single_threaded.h>

#include "base/process.h"
#include "base/start.h"
#include "base/wake.h"

/* The section every SOMA_HOOK is placed in; the linker defines its bounds.
 * Not weak: a library linked without the section (which would run no
 * start-up and take no lock across fork) must fail to link. */
extern hook_t __start_soma_hooks[] __attribute__((visibility("hidden")));
extern hook_t __stop_soma_hooks[] __attribute__((visibility("hidden")));

/* The hooks in order, sorted once by soma__start (before any fork handler
 * can run: they are registered after). */
#define MAX_HOOKS 32
static hook_t *hooks[MAX_HOOKS];
static size_t nhooks;

static void sort_hooks(void)
{
    size_t n = (size_t)(__stop_soma_hooks - __start_soma_hooks);
    /* Without the links' key, the options and the fork handlers soma would
     * run wrongly, silently: better to say so and stop. */
    if (n == 0 || n > MAX_HOOKS)
        soma__fatal("%zu start-up hooks in section soma_hooks (expected 1 to %d): the "
                    "library was linked wrongly",
                    n, MAX_HOOKS);
    for (hook_t *h = __start_soma_hooks; h < __stop_soma_hooks; h++) {
        size_t i = nhooks++;
        for (; i > 0 && hooks[i - 1]->order > h->order; i--)
            hooks[i] = hooks[i - 1];
        hooks[i] = h;
    }
}

/* A single-threaded process may fork from a signal handler that
 * interrupted soma itself (fork is async-signal-safe): taking the locks
 * would then wait for the very thread that holds them.  With one thread no
 * other can hold a lock either, so, like glibc, soma takes none; what the
 * interrupted code was doing resumes in both processes.  The decision is
 * made once per fork and remembered for the two after-handlers. */
static int fork_locked;
/* The same when the only other thread is soma's purge thread, which the
 * program does not know of: then the gate keeps it out of soma's locks
 * across the fork (base/wake.h), and the locks are not taken. */
static int fork_gated;

static void fork_prepare(void)
{
    fork_locked = !__libc_single_threaded;
    fork_gated = fork_locked && soma__wake_gate_fork();
    if (fork_gated)
        fork_locked = 0;
    if (!fork_locked)
        return;
    for (size_t i = 0; i < nhooks; i++)
        if (hooks[i]->fork != NULL)
            hooks[i]->fork(SOMA_FORK_PREPARE);
}
static void fork_after(int phase)
{
    if (!fork_locked)
        return;
    for (size_t i = nhooks; i-- > 0;)
        if (hooks[i]->fork != NULL)
            hooks[i]->fork(phase);
}
static void fork_parent(void)
{
    if (fork_gated)
        soma__wake_gate_open(0);
    fork_after(SOMA_FORK_PARENT);
}
static void fork_child(void)
{
    if (fork_gated)
        soma__wake_gate_open(1);
    fork_after(SOMA_FORK_CHILD);
}

/* Not pthread_once: the work below may itself allocate (atexit and
 * pthread_atfork may call calloc, which is soma's own when soma is the
 * process's malloc), and an allocation's slow path calls soma__start
 * again.  A flag set before the work lets that inner call return at once
 * instead of waiting for itself; nothing the inner call needs depends on
 * the work. */
static atomic_int started;

void soma__start(void)
{
    if (atomic_load_explicit(&started, memory_order_acquire) ||
        atomic_exchange_explicit(&started, 1, memory_order_acq_rel))
        return;
    soma__process_mark_start();
    sort_hooks();
    for (size_t i = 0; i < nhooks; i++)
        if (hooks[i]->start != NULL)
            hooks[i]->start();
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

__attribute__((constructor)) static void start_at_load(void)
{
    soma__start();
}
