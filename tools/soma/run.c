/*
 * soma run [--output FILE] [--no-children] [--] PROG [ARGS...]
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
 * command creates and removes.  The exit status is PROG's own, or 128 + the
 * signal that killed it (as a shell reports it).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tool.h"

static void run_usage(FILE *out)
{
    fputs("usage: soma run [--output FILE] [--no-children] [--] PROG [ARGS...]\n"
          "  runs PROG with soma as its malloc and prints, when it ends, the allocator\n"
          "  statistics of PROG and of the programs it starts (to stderr, or FILE)\n"
          "  --output FILE   write the statistics to FILE instead of stderr\n"
          "  --no-children   only PROG's own statistics\n"
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

static void copy_file(const char *path, FILE *out)
{
    FILE *in = fopen(path, "r");
    if (in == NULL)
        return;
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        fwrite(buf, 1, n, out);
    fclose(in);
}

/* Print the dumps found in dir: PROG's (pid main_pid) first. */
static void report(const char *dir, long main_pid, int children, FILE *out, const char *prog,
                   int status)
{
    char path[PATH_MAX];
    long *pids = NULL;
    size_t npids = 0, cap = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*e->d_name == '\0' || *end != '\0')
            continue;
        if (npids == cap) {
            long *more = realloc(pids, (cap = cap ? 2 * cap : 256) * sizeof *pids);
            if (more == NULL)
                break;
            pids = more;
        }
        pids[npids++] = pid;
    }
    if (d != NULL)
        closedir(d);
    if (npids > 1)
        qsort(pids, npids, sizeof pids[0], by_pid);

    int found_main = 0;
    for (size_t i = 0; i < npids; i++)
        found_main |= pids[i] == main_pid;
    if (found_main) {
        snprintf(path, sizeof path, "%s/%ld", dir, main_pid);
        copy_file(path, out);
    } else if (WIFSIGNALED(status)) {
        fprintf(out, "# soma: pid %ld (%s) was killed by signal %d (%s): no statistics at exit\n",
                main_pid, prog, WTERMSIG(status), strsignal(WTERMSIG(status)));
    } else {
        fprintf(out, "# soma: pid %ld (%s) left no statistics: it exited without running exit "
                     "handlers (_exit), or did not use soma (statically linked, setuid, or "
                     "LD_PRELOAD removed)\n",
                main_pid, prog);
    }
    size_t others = 0;
    for (size_t i = 0; i < npids; i++) {
        if (pids[i] == main_pid)
            continue;
        others++;
        if (children) {
            snprintf(path, sizeof path, "%s/%ld", dir, pids[i]);
            fputc('\n', out);
            copy_file(path, out);
        }
    }
    if (!children && others > 0)
        fprintf(out, "# soma: %zu other process%s of the run left out (--no-children)\n", others,
                others == 1 ? "" : "es");
    for (size_t i = 0; i < npids; i++) {
        snprintf(path, sizeof path, "%s/%ld", dir, pids[i]);
        unlink(path);
    }
    free(pids);
}

int soma_tool_run(int argc, char **argv)
{
    const char *output = NULL;
    int children = 1, i = 1;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        } else if (strcmp(argv[i], "--output") == 0 && i + 1 < argc) {
            output = argv[++i];
        } else if (strcmp(argv[i], "--no-children") == 0) {
            children = 0;
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
    FILE *out = stderr;
    if (output != NULL && (out = fopen(output, "we")) == NULL) { /* PROG does not inherit it */
        fprintf(stderr, "soma run: cannot write %s: %s\n", output, strerror(errno));
        return 2;
    }
    char dir[] = "/tmp/soma-run-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        fprintf(stderr, "soma run: cannot make a directory in /tmp: %s\n", strerror(errno));
        return 2;
    }

    /* The environment PROG (and what it starts) inherits. */
    char pattern[sizeof dir + 8], preload[2 * PATH_MAX];
    snprintf(pattern, sizeof pattern, "%s/%%p", dir);
    const char *old = getenv("LD_PRELOAD");
    snprintf(preload, sizeof preload, "%s%s%s", lib, old && *old ? " " : "", old ? old : "");
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        setenv("LD_PRELOAD", preload, 1);
        setenv("SOMA_SHOW_STATS", "1", 1);
        setenv("SOMA_STATS_FILE", pattern, 1);
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
    report(dir, (long)pid, children, out, argv[i], status);
    rmdir(dir);
    if (out != stderr)
        fclose(out);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
