/*
 * report.c: statistics dumps a program did not ask for: at exit
 * (SOMA_SHOW_STATS) and on a signal (SOMA_STATS_SIGNAL), to stderr or to a
 * file of soma's own (SOMA_STATS_FILE, "%p" standing for the pid).
 *
 * A file is the channel `soma run` listens on: a program's own stderr may
 * be closed at exit (ls, sleep) or compared by a test suite, and a
 * program's children write files of their own.  Each dump starts with a
 * header line naming the process, so that the reader can label it:
 *
 *     # soma: pid 4242 (sort -n data.txt), at exit
 *     Small block threshold = 512, in 32 size classes.
 *     ...
 *
 * The pid is read when the dump is written, so a forked child that exits
 * normally writes its own file.  Dumps are appended: a process that
 * received the signal twice and then exited has three dumps in its file.
 *
 * With SOMA_STATS_FORMAT=json a dump is the JSON snapshot instead, arena
 * detail included (stats/emit_json.c), and carries its process, time and reason
 * inside; no header line.  The file then holds a stream of JSON values.
 *
 * Samples (SOMA_STATS_INTERVAL_MS): soma's thread takes a snapshot every N
 * ms and appends it as one JSON line, reason "sample", without the arena
 * detail.  The thread never allocates: the snapshot and the sink are a
 * scratch mapped once and kept (stats/emit.h), the text is formatted into
 * the sink's buffer and written with write(2) (base/sink.h), so it has no
 * heap of its own and the figures it samples are the program's alone.  Its
 * cost to the program is the walk's: each heap's lock is held while that
 * heap's pools are counted, which delays the owner only if it needs a new
 * pool meanwhile (docs/BENCHMARKS.md gives the measured cost).  Samples stop once the
 * exit dump is written, which is always the last value in the file.
 *
 * Signals: a dump takes soma's locks, and the signal may arrive while the
 * interrupted thread holds one of them, so the handler does no more than
 * write one byte to a pipe (async-signal-safe, errno kept).  A thread of
 * soma's own, started when the option is set, waits on that pipe and
 * writes the dump as any thread would.  It is started after soma's
 * start-up, and lives in the process that read the option: a child forked
 * without exec has no such thread, and the handler it inherits ignores the
 * signal there (the pipe is shared with the parent, which would otherwise
 * dump for it).  The signals a fault raises (SEGV, BUS, FPE, ILL, ABRT,
 * TRAP, SYS) are refused: their handler would return into the fault.  The
 * thread makes the process multithreaded, which a program that must stay
 * single-threaded (unshare(CLONE_NEWUSER)) should keep in mind.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/options.h"
#include "base/process.h"
#include "base/start.h"
#include "stats/emit.h"

static int signal_pipe[2] = {-1, -1};
static int dump_signal;
static pid_t signal_pid; /* the process whose thread reads the pipe */
static pthread_mutex_t dump_lock = PTHREAD_MUTEX_INITIALIZER;
static int exited; /* the exit dump is written (dump_lock): no more samples */

/* dump_lock is not held across fork (a dump calls the program's count
 * functions, which may wait for a lock the forking thread holds); the
 * child's copy is reset: the thread that held it does not exist there. */
static void report_fork(int phase)
{
    if (phase == SOMA_FORK_CHILD)
        pthread_mutex_init(&dump_lock, NULL);
}

/* The pattern with every "%p" replaced by the pid ("%%" is a '%'). */
static void expand(char *out, size_t len, const char *pattern, pid_t pid)
{
    size_t n = 0;
    for (const char *p = pattern; *p && n + 1 < len; p++) {
        if (p[0] == '%' && p[1] == 'p') {
            n += (size_t)snprintf(out + n, len - n, "%d", (int)pid);
            p++;
        } else if (p[0] == '%' && p[1] == '%') {
            out[n++] = '%';
            p++;
        } else {
            out[n++] = *p;
        }
        if (n >= len)
            n = len - 1;
    }
    out[n] = '\0';
}

/* The stats file of this process, opened for appending; -1 with a warning
 * (one per process: a sampler that cannot write stops, it does not repeat
 * it every interval).  strerrordesc_np: no locale, no allocation. */
static int open_stats_file(void)
{
    static char path[1100];
    static int warned;
    expand(path, sizeof path, soma__options.stats_file, getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0 && !warned) {
        const char *why = strerrordesc_np(errno);
        fprintf(stderr, "soma: cannot write statistics to %s: %s\n", path, why ? why : "error");
        warned = 1;
    }
    return fd;
}

/* A snapshot into the stats file or stderr, dump_lock held: JSON (a dump
 * with the arena detail, or a sample: read only, soma__walk_sample) or
 * the text dump with its header line.  Allocates nothing when it writes to
 * the file (stats/emit.h).  Returns 0, or -1 if the file cannot be
 * opened. */
static int write_snapshot(const char *when, const char *reason, int sample)
{
    static char header[512]; /* dump_lock */
    /* One scratch for all of this process's dumps and samples, kept (they
     * are serialised by dump_lock): a sample every ms maps nothing. */
    static void *scratch;
    emit_request_t r = {stderr, -1, soma__options.json || sample, sample, reason, NULL, &scratch};
    if (soma__options.stats_file[0] != '\0') {
        if ((r.fd = open_stats_file()) < 0)
            return -1;
        r.file = NULL;
        if (!r.json) {
            char cmd[256];
            soma__process_command_line(cmd, sizeof cmd);
            snprintf(header, sizeof header, "# soma: pid %d (%s), %s\n", (int)getpid(), cmd, when);
            r.header = header;
        }
    }
    soma__emit_snapshot(&r);
    if (r.file == NULL)
        close(r.fd);
    return 0;
}

static void dump(const char *when, const char *reason)
{
    pthread_mutex_lock(&dump_lock);
    /* The exit dump is the file's last value: no sample after it (the
     * flag is set under the same lock the sampler takes). */
    if (strcmp(reason, "exit") == 0)
        exited = 1;
    write_snapshot(when, reason, 0);
    pthread_mutex_unlock(&dump_lock);
}

static void dump_at_exit(void)
{
    dump("at exit", "exit");
}

/* Without an exit dump, samples still stop when exit begins: the
 * program's teardown is not its life. */
static void stop_samples(void)
{
    pthread_mutex_lock(&dump_lock);
    exited = 1;
    pthread_mutex_unlock(&dump_lock);
}

/* At start-up (the options are read): the exit dump, if asked for. */
static void report_at_start(void)
{
    if (soma__options.show_stats)
        atexit(dump_at_exit);
}
SOMA_HOOK(report, SOMA_ORDER_REPORT, report_at_start, report_fork);

/* 0, or -1 when the samples cannot be written (the sampler then stops). */
static int sample(void)
{
    int rc = 0;
    pthread_mutex_lock(&dump_lock);
    if (!exited)
        rc = write_snapshot(NULL, "sample", 1);
    pthread_mutex_unlock(&dump_lock);
    return rc;
}

static void on_signal(int sig)
{
    (void)sig;
    if (getpid() != signal_pid)
        return; /* a forked child: no thread of soma's reads the pipe here */
    int saved = errno;
    char byte = 1;
    ssize_t rc = write(signal_pipe[1], &byte, 1); /* full pipe: a dump is pending anyway */
    (void)rc;
    errno = saved;
}

/* soma's report thread: waits for the signal's byte on the pipe (if a
 * signal is set) and, between, takes a sample every interval (if set). */
static void *report_thread(void *arg)
{
    (void)arg;
    char byte, when[64];
    const char *name = dump_signal ? sigabbrev_np(dump_signal) : NULL;
    if (name != NULL)
        snprintf(when, sizeof when, "on signal %s", name);
    else
        snprintf(when, sizeof when, "on signal %d", dump_signal);
    long interval = soma__options.interval_ms;
    struct pollfd pfd = {signal_pipe[0], POLLIN, 0}; /* fd -1: poll ignores it */
    uint64_t next = soma__process_precise_ms();
    for (;;) {
        int timeout = -1;
        if (interval > 0) {
            uint64_t now = soma__process_precise_ms();
            if (now >= next) {
                if (sample() != 0) {
                    interval = 0; /* the warning is printed; no more samples */
                    if (pfd.fd < 0)
                        return NULL;
                    continue;
                }
                /* On schedule, but never a burst to catch up after a stall. */
                next += (uint64_t)interval;
                if (next <= now)
                    next = now + (uint64_t)interval;
            }
            now = soma__process_precise_ms();
            timeout = next > now ? (int)(next - now) : 0;
        }
        int rc = poll(&pfd, 1, timeout);
        if (rc < 0 && errno != EINTR)
            return NULL;
        if (rc > 0 && (pfd.revents & POLLIN)) {
            ssize_t n = read(signal_pipe[0], &byte, 1);
            if (n == 1)
                dump(when, "signal");
            else if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
                pfd.fd = -1; /* the pipe is gone: samples only */
        } else if (rc > 0) {
            pfd.fd = -1;
        }
        if (pfd.fd < 0 && interval <= 0)
            return NULL;
    }
}

/* At load time, once soma has started (the thread allocates), not inside
 * whatever allocation started soma: the report thread, if the signal or
 * sampling needs it. */
__attribute__((constructor)) static void report_at_load(void)
{
    soma__start();
    int sig = (int)soma__options.stats_signal;
    if (sig == 0 && soma__options.interval_ms <= 0)
        return;
    if (sig != 0 && pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
        sig = 0;
    if (sig == 0 && soma__options.interval_ms <= 0)
        return;
    dump_signal = sig;
    signal_pid = getpid();
    /* All signals blocked in it: it must not take the dump's signal itself
     * (it only reads the pipe), nor the program's. */
    if (soma__process_thread(report_thread, 0, "soma-report") != 0) {
        fprintf(stderr, "soma: warning: cannot start the thread SOMA_STATS_SIGNAL and "
                        "SOMA_STATS_INTERVAL_MS need\n");
        return;
    }
    if (soma__options.interval_ms > 0)
        atexit(stop_samples); /* registered after the exit dump's: runs before it */
    if (sig == 0)
        return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
}
