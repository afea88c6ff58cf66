/*
 * soma run [--output FILE] [--no-children] [--format text|json]
 *          [--interval MS] [--timeline PAGE.html] [--debug[=report]]
 *          [--] PROG [ARGS...]
 *
 * Runs PROG with soma as its malloc (LD_PRELOAD of libsoma-override.so)
 * and, when it ends, prints the statistics of every process of the run
 * that used soma, labelled with its pid and command line: PROG first, then
 * the children it forked and exec'd (unless --no-children), in pid order.
 *
 * Python programs run with PYTHONMALLOC=malloc (unless it is set), so that
 * their objects come to soma rather than to CPython's own pymalloc.
 *
 * The dumps never travel over PROG's stderr, which PROG may close or a
 * test suite may compare: each process writes its own file
 * (SOMA_STATS_FILE=DIR/%p, report.c) in a private directory that this
 * command creates and removes.  They are always JSON (SOMA_STATS_FORMAT):
 * soma run prints them as CPython's text itself (--format text, the
 * default) or passes them on (--format json).  With --interval, each
 * process also samples its figures every MS ms (SOMA_STATS_INTERVAL_MS:
 * a thread of soma's, report.c); --timeline draws those samples, and the
 * arena map at exit, into one self-contained HTML page (timeline.c).
 * --debug runs PROG in soma's debug mode (SOMA_DEBUG=1: guards, fill
 * patterns, a diagnosis and an abort on the first misuse; =report: every
 * misuse reported, and PROG goes on; src/malloc/debug.c; =guard: as 1, and
 * every block against an inaccessible guard page, so that an overflow or a
 * use after free faults where it happens and is diagnosed: guard.c).
 * The exit status is PROG's own, or 128 + the
 * signal that killed it (as a shell reports it).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "page.h"
#include "snapshot.h"
#include "tool.h"

#define DEFAULT_INTERVAL_MS 10 /* --timeline without --interval */

static void run_usage(FILE *out)
{
    fputs("usage: soma run [OPTIONS] [--] PROG [ARGS...]\n"
          "  runs PROG with soma as its malloc and prints, when it ends, the allocator\n"
          "  statistics of PROG and of the programs it starts (to stderr, or FILE)\n"
          "  --output FILE        write the statistics to FILE instead of stderr\n"
          "  --no-children        only PROG's own statistics\n"
          "  --format text|json   CPython's text layout (the default), or JSON snapshots\n"
          "                       (docs/stats.schema.json), one value after another\n"
          "  --interval MS        sample the statistics every MS ms while PROG runs\n"
          "                       (the samples appear in --format json; default 10 with\n"
          "                       --timeline)\n"
          "  --timeline PAGE.html draw the samples and the arenas at exit into PAGE.html,\n"
          "                       a self-contained page (no script, no network)\n"
          "  --debug              debug mode (SOMA_DEBUG=1): guard bytes, fill patterns,\n"
          "                       and a diagnosis and an abort at the first overflow,\n"
          "                       double free, bad pointer or write after free\n"
          "  --debug=report       the same, but report every misuse and go on\n"
          "  --debug=guard        as --debug, and every block against an inaccessible\n"
          "                       guard page, inaccessible once freed: an overflow or a\n"
          "                       use after free is diagnosed where it happens\n"
          "  (PYTHONMALLOC=malloc is set unless it is set already: Python's objects then\n"
          "  come to soma instead of to CPython's own allocator)\n",
          out);
}

/* The override library: beside this executable (the build tree), or in the
 * library directory of the installation. */
static int find_override(char *out, size_t len)
{
    const char *env = getenv("SOMA_OVERRIDE_LIB");
    if (env != NULL && *env != '\0') {
        snprintf(out, len, "%s", env);
        return access(out, R_OK) == 0 ? 0 : -1;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return -1;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash == NULL)
        return -1;
    *slash = '\0';
    static const char *const places[] = {"libsoma-override.so",
                                         SOMA_BIN_TO_LIB "/libsoma-override.so"};
    for (size_t i = 0; i < sizeof places / sizeof places[0]; i++) {
        int n2 = snprintf(out, len, "%s/%s", exe, places[i]);
        if (n2 > 0 && (size_t)n2 < len && access(out, R_OK) == 0)
            return 0;
    }
    return -1;
}

static int by_pid(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

typedef struct {
    FILE *out;
    int json;             /* --format json */
    int children;         /* not --no-children */
    const char *timeline; /* --timeline FILE, or NULL */
} run_opts;

/* The snapshot files in dir (one per process, named by pid): PROG's first,
 * then the others in pid order.  Returns how many; *pids is malloc'd. */
static size_t list_pids(const char *dir, long main_pid, long **pids)
{
    size_t n = 0, cap = 0;
    *pids = NULL;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*e->d_name == '\0' || *end != '\0')
            continue;
        if (n == cap) {
            long *more = realloc(*pids, (cap = cap ? 2 * cap : 256) * sizeof **pids);
            if (more == NULL)
                break;
            *pids = more;
        }
        (*pids)[n++] = pid;
    }
    if (d != NULL)
        closedir(d);
    if (n > 1)
        qsort(*pids, n, sizeof **pids, by_pid);
    for (size_t i = 0; i < n; i++)
        if ((*pids)[i] == main_pid) {
            memmove(*pids + 1, *pids, i * sizeof **pids);
            (*pids)[0] = main_pid;
        }
    return n;
}

/* "at exit", "on signal USR2": the text dump's header, as report.c words it. */
static void when(const tool_snapshot *s, char *out, size_t len)
{
    if (strcmp(s->reason, "exit") == 0)
        snprintf(out, len, "at exit");
    else if (strcmp(s->reason, "signal") == 0)
        snprintf(out, len, "on signal %s", s->signal);
    else
        snprintf(out, len, "%s", s->reason);
}

/* The first `len` bytes of the process's file: its whole values, as it
 * wrote them (a damaged last one left out). */
static void copy_prefix(const char *path, size_t len, FILE *out)
{
    FILE *in = fopen(path, "r");
    if (in == NULL)
        return;
    char buf[65536];
    for (size_t left = len; left > 0;) {
        size_t n = fread(buf, 1, left < sizeof buf ? left : sizeof buf, in);
        if (n == 0)
            break;
        fwrite(buf, 1, n, out);
        left -= n;
    }
    fputc('\n', out);
    fclose(in);
}

/* One process's dumps, as text; or, as JSON, every value it wrote
 * (samples too: the timeline's thinning does not apply).  Returns how many
 * dumps. */
static size_t print_process(const run_opts *o, const char *path, const tool_snapshot *snaps,
                            size_t n, size_t valid_bytes, int first)
{
    size_t dumps = 0;
    if (o->json)
        copy_prefix(path, valid_bytes, o->out);
    for (size_t i = 0; i < n; i++) {
        const tool_snapshot *s = &snaps[i];
        if (strcmp(s->reason, "sample") == 0)
            continue;
        dumps++;
        if (!o->json) {
            char w[64];
            when(s, w, sizeof w);
            fprintf(o->out, "%s# soma: pid %ld (%s), %s\n", first && dumps == 1 ? "" : "\n",
                    s->pid, s->program, w);
            soma_stats_fprint(o->out, &s->st);
        }
    }
    return dumps;
}

/* A line about a process that left no dump: in the text output, or on
 * stderr when the output is JSON (which must stay a stream of values). */
static void note(const run_opts *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(const run_opts *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    FILE *to = o->json ? stderr : o->out;
    fputs(o->json ? "soma run: " : "# soma: ", to);
    vfprintf(to, fmt, ap);
    fputc('\n', to);
    va_end(ap);
}

#define TIMELINE_MAX_SAMPLES 4000 /* per process; more are thinned (snapshot.h) */
#define TIMELINE_MAX_PROCESSES 16

static void write_timeline(const run_opts *o, page_process *procs, size_t nprocs, size_t total,
                           const char *prog, long interval)
{
    FILE *f = fopen(o->timeline, "w");
    if (f == NULL) {
        fprintf(stderr, "soma run: cannot write %s: %s\n", o->timeline, strerror(errno));
        return;
    }
    char title[600], text[800];
    snprintf(title, sizeof title, "soma: the allocator's life in %.500s", prog);
    snprintf(text, sizeof text,
             "Sampled every %ld ms by a thread of soma's inside each process (it takes the "
             "figures without allocating). %zu process%s of the run used soma%s.",
             interval, total, total == 1 ? "" : "es",
             total > nprocs ? "; the first ones are drawn" : "");
    page_timeline_html(f, title, text, procs, nprocs);
    if (fclose(f) != 0)
        fprintf(stderr, "soma run: cannot write %s\n", o->timeline);
}

/* Report every process of the run whose file is in dir: PROG's first. */
static void report(const char *dir, long main_pid, const run_opts *o, const char *prog,
                   int status, long interval)
{
    char path[PATH_MAX], err[600];
    long *pids;
    size_t npids = list_pids(dir, main_pid, &pids);
    page_process procs[TIMELINE_MAX_PROCESSES];
    size_t nprocs = 0, others = 0, used = 0;
    int main_dumped = 0;
    for (size_t i = 0; i < npids; i++) {
        int is_main = pids[i] == main_pid;
        if (!is_main && !o->children && !o->timeline) {
            others++;
            continue;
        }
        tool_snapshot *snaps;
        size_t n, valid;
        snprintf(path, sizeof path, "%s/%ld", dir, pids[i]);
        int rc = tool_snapshots_read(path, 1, o->timeline ? TIMELINE_MAX_SAMPLES : 0, &snaps, &n,
                                     &valid, err, sizeof err);
        if (rc < 0) {
            note(o, "pid %ld: its statistics could not be read (%s)", pids[i], err);
            continue;
        }
        if (rc > 0) /* killed while writing: what came before is good */
            note(o, "pid %ld: its last snapshot is damaged (%s); the ones before are used",
                 pids[i], err);
        used++;
        size_t dumps = 0;
        if (is_main || o->children)
            dumps = print_process(o, path, snaps, n, valid, is_main);
        else
            others++;
        main_dumped |= is_main && dumps > 0;
        if (o->timeline && nprocs < TIMELINE_MAX_PROCESSES)
            procs[nprocs++] = (page_process){snaps, n};
        else
            tool_snapshots_free(snaps, n);
    }
    if (!main_dumped && WIFSIGNALED(status))
        note(o, "pid %ld (%s) was killed by signal %d (%s): no statistics at exit", main_pid,
             prog, WTERMSIG(status), strsignal(WTERMSIG(status)));
    else if (!main_dumped)
        note(o, "pid %ld (%s) left no statistics: it exited without running exit handlers "
                "(_exit), or did not use soma (statically linked, setuid, or LD_PRELOAD removed)",
             main_pid, prog);
    if (!o->children && others > 0)
        note(o, "%zu other process%s of the run left out (--no-children)", others,
             others == 1 ? "" : "es");
    if (o->timeline)
        write_timeline(o, procs, nprocs, used, prog, interval);
    for (size_t i = 0; i < nprocs; i++)
        tool_snapshots_free((tool_snapshot *)procs[i].snaps, procs[i].n);
    for (size_t i = 0; i < npids; i++) {
        snprintf(path, sizeof path, "%s/%ld", dir, pids[i]);
        unlink(path);
    }
    free(pids);
}

int soma_tool_run(int argc, char **argv)
{
    const char *output = NULL;
    run_opts o = {stderr, 0, 1, NULL};
    long interval = 0;
    const char *debug = NULL; /* SOMA_DEBUG for PROG */
    int i = 1;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        } else if (strcmp(argv[i], "--output") == 0 && i + 1 < argc) {
            output = argv[++i];
        } else if (strcmp(argv[i], "--no-children") == 0) {
            o.children = 0;
        } else if (strcmp(argv[i], "--format") == 0 && i + 1 < argc) {
            const char *f = argv[++i];
            if (strcmp(f, "json") != 0 && strcmp(f, "text") != 0) {
                fprintf(stderr, "soma run: --format is text or json, not '%s'\n", f);
                return 2;
            }
            o.json = strcmp(f, "json") == 0;
        } else if (strcmp(argv[i], "--timeline") == 0 && i + 1 < argc) {
            o.timeline = argv[++i];
        } else if (strcmp(argv[i], "--interval") == 0 && i + 1 < argc) {
            char *end;
            errno = 0;
            interval = strtol(argv[++i], &end, 10);
            if (errno || *end || end == argv[i] || interval < 1 || interval > 3600000) {
                fprintf(stderr, "soma run: --interval wants milliseconds, 1 to 3600000\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--debug") == 0) {
            debug = "1";
        } else if (strcmp(argv[i], "--debug=report") == 0) {
            debug = "report";
        } else if (strcmp(argv[i], "--debug=guard") == 0) {
            debug = "guard";
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            run_usage(stdout);
            return 0;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "soma run: unknown option '%s'\n", argv[i]);
            run_usage(stderr);
            return 2;
        } else {
            break;
        }
    }
    if (i >= argc) {
        run_usage(stderr);
        return 2;
    }
    char lib[PATH_MAX];
    if (find_override(lib, sizeof lib) != 0) {
        fprintf(stderr, "soma run: libsoma-override.so not found beside %s or in its library "
                        "directory (set SOMA_OVERRIDE_LIB)\n",
                argv[0]);
        return 2;
    }
    if (o.timeline != NULL && interval == 0)
        interval = DEFAULT_INTERVAL_MS;
    if (output != NULL && (o.out = fopen(output, "we")) == NULL) { /* PROG does not inherit it */
        fprintf(stderr, "soma run: cannot write %s: %s\n", output, strerror(errno));
        return 2;
    }
    char dir[] = "/tmp/soma-run-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        fprintf(stderr, "soma run: cannot make a directory in /tmp: %s\n", strerror(errno));
        return 2;
    }

    /* The environment PROG (and what it starts) inherits. */
    char pattern[sizeof dir + 8], preload[2 * PATH_MAX], every[32];
    snprintf(every, sizeof every, "%ld", interval);
    snprintf(pattern, sizeof pattern, "%s/%%p", dir);
    const char *old = getenv("LD_PRELOAD");
    snprintf(preload, sizeof preload, "%s%s%s", lib, old && *old ? " " : "", old ? old : "");
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        setenv("LD_PRELOAD", preload, 1);
        setenv("SOMA_SHOW_STATS", "1", 1);
        setenv("SOMA_STATS_FILE", pattern, 1);
        /* Always JSON: soma run prints it as text itself, and draws from it. */
        setenv("SOMA_STATS_FORMAT", "json", 1);
        if (debug != NULL)
            setenv("SOMA_DEBUG", debug, 1);
        if (interval > 0)
            setenv("SOMA_STATS_INTERVAL_MS", every, 1);
        else
            unsetenv("SOMA_STATS_INTERVAL_MS");
        /* CPython gives its objects to its own allocator (pymalloc), which
         * maps its arenas itself: soma would see none of them. */
        setenv("PYTHONMALLOC", "malloc", 0);
        execvp(argv[i], argv + i);
        fprintf(stderr, "soma run: cannot run %s: %s\n", argv[i], strerror(errno));
        _exit(127);
    }
    if (pid < 0) {
        fprintf(stderr, "soma run: fork: %s\n", strerror(errno));
        rmdir(dir);
        return 2;
    }
    /* PROG's terminal signals are for PROG: this process waits for it. */
    signal(SIGINT, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    int status = 0;
    pid_t w;
    while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
        ;
    if (w < 0) {
        fprintf(stderr, "soma run: waitpid: %s\n", strerror(errno));
        status = 1 << 8; /* reported as exit status 1 */
    }
    report(dir, (long)pid, &o, argv[i], status, interval);
    rmdir(dir);
    if (o.out != stderr)
        fclose(o.out);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
