/*
 * options.c: runtime options, read once from the environment when soma
 * starts.  A bad value gets one warning line on stderr and the default;
 * it never stops the program.
 *
 *   SOMA_SHOW_STATS      1/yes/on/true: print the stats dump to stderr at
 *                        exit (CPython's PYTHONMALLOCSTATS); 0/no/off/false
 *                        or empty: don't (the default).
 *   SOMA_STATS_FILE      where dumps go instead of stderr; "%p" is replaced
 *                        by the pid of the process writing (report.c).
 *   SOMA_STATS_SIGNAL    a signal (USR2, SIGUSR2, 12) on which the running
 *                        program writes a dump (report.c says how that is
 *                        safe at any moment).
 *   SOMA_STATS_FORMAT    text (CPython's layout, the default) or json (the
 *                        snapshot with every arena, docs/stats.schema.json)
 *                        for every dump.
 *   SOMA_STATS_INTERVAL_MS  N > 0: a thread of soma's takes a snapshot every
 *                        N ms and appends it to SOMA_STATS_FILE as one JSON
 *                        line (the samples `soma run --timeline` draws;
 *                        report.c); the dumps are then JSON too.  0, the
 *                        default: no sampling.
 *   SOMA_ARENA_DECAY_MS  how long a wholly empty arena stays mapped for
 *                        reuse before it goes back to the OS, in ms (0 to
 *                        3600000).  0: at once, as CPython does (the one
 *                        last empty arena excepted); the library's default.
 *                        The override's default is 1000: a program that
 *                        frees and rebuilds its objects in rounds then
 *                        reuses its pages instead of faulting them back in.
 *
 *   SOMA_DEBUG           1/yes/on/true: debug mode (debug.c): every block
 *                        with a header and guards, fill patterns, checks on
 *                        free; a detected misuse aborts.  report: the same,
 *                        but print and carry on.  0/no/off/false or empty:
 *                        off, the default.
 *   SOMA_DEBUG_QUARANTINE  bytes of freed blocks debug mode keeps from reuse
 *                        (0 to 1 GiB; default 1 MiB; 0: none).
 *
 * Read with secure_getenv: a setuid or setgid program (AT_SECURE) ignores
 * them, so that whoever runs it cannot make it write a dump or change how
 * it uses memory.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

/* 1 or 0 for a recognised boolean, -1 otherwise. */
static int parse_bool(const char *v)
{
    static const char *yes[] = {"1", "yes", "on", "true"};
    static const char *no[] = {"0", "no", "off", "false", ""};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        if (strcasecmp(v, yes[i]) == 0)
            return 1;
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (strcasecmp(v, no[i]) == 0)
            return 0;
    return -1;
}

#ifdef SOMA_OVERRIDE
#define DECAY_DEFAULT 1000
#else
#define DECAY_DEFAULT 0
#endif
long soma__arena_decay_ms = DECAY_DEFAULT;
soma__options_t soma__opt;

/* A duration in ms, 0 to an hour, into *out; a bad value keeps *out and
 * says what the default (`deflt`, as words) is. */
static void read_ms(const char *name, long *out, const char *deflt)
{
    const char *v = secure_getenv(name);
    if (v == NULL)
        return;
    char *end;
    long ms = strtol(v, &end, 10);
    if (*v == '\0' || *end != '\0' || ms < 0 || ms > 3600000) {
        fprintf(stderr, "soma: warning: %s=%s is not a number of milliseconds from 0 to "
                        "3600000; using the default, %s\n", name, v, deflt);
        return;
    }
    *out = ms;
}

static void read_show_stats(void)
{
    const char *v = secure_getenv("SOMA_SHOW_STATS");
    if (v == NULL)
        return;
    int on = parse_bool(v);
    if (on < 0) {
        fprintf(stderr, "soma: warning: SOMA_SHOW_STATS=%s is not a boolean (1/0, yes/no, on/off, true/false); "
                        "using the default, 0\n", v);
        return;
    }
    soma__opt.show_stats = on;
}

static void read_stats_format(void)
{
    const char *v = secure_getenv("SOMA_STATS_FORMAT");
    if (v == NULL || *v == '\0')
        return;
    if (strcasecmp(v, "json") == 0)
        soma__opt.json = 1;
    else if (strcasecmp(v, "text") != 0)
        fprintf(stderr, "soma: warning: SOMA_STATS_FORMAT=%s is not text or json; "
                        "using the default, text\n", v);
}


static void read_stats_file(void)
{
    const char *v = secure_getenv("SOMA_STATS_FILE");
    if (v == NULL)
        return;
    if (*v == '\0' || strlen(v) >= 1000) {
        fprintf(stderr, "soma: warning: SOMA_STATS_FILE=%s is not a file name (empty or longer "
                        "than 999 bytes); using the default, stderr\n", v);
        return;
    }
    snprintf(soma__opt.stats_file, sizeof soma__opt.stats_file, "%s", v);
}

static void read_stats_signal(void)
{
    const char *v = secure_getenv("SOMA_STATS_SIGNAL");
    if (v == NULL || *v == '\0')
        return;
    soma__opt.stats_signal = soma__report_parse_signal(v);
    if (soma__opt.stats_signal == 0)
        fprintf(stderr, "soma: warning: SOMA_STATS_SIGNAL=%s is not a signal (a name such as "
                        "USR2 or SIGUSR2, or a number; not KILL, STOP or a fault signal such as SEGV); "
                        "using the default, none\n",
                v);
}

static void read_debug(void)
{
    const char *v = secure_getenv("SOMA_DEBUG");
    if (v == NULL)
        return;
    int on = parse_bool(v);
    if (strcasecmp(v, "report") == 0) {
        soma__debug = SOMA_DEBUG_REPORT;
    } else if (on < 0) {
        fprintf(stderr, "soma: warning: SOMA_DEBUG=%s is not 1/0, yes/no, on/off, true/false or "
                        "report; using the default, 0\n", v);
        return;
    } else {
        soma__debug = on ? SOMA_DEBUG_ABORT : SOMA_DEBUG_OFF;
    }
    if (!soma__debug)
        return;
    v = secure_getenv("SOMA_DEBUG_QUARANTINE");
    if (v != NULL) {
        char *end;
        unsigned long long n = strtoull(v, &end, 10);
        if (*v == '\0' || *v == '-' || *end != '\0' || n > (1ull << 30))
            fprintf(stderr, "soma: warning: SOMA_DEBUG_QUARANTINE=%s is not a number of bytes "
                            "from 0 to 1073741824; using the default, 1048576\n", v);
        else
            soma__debug_set_quarantine((size_t)n);
    }
    /* Close the fast paths (the gate, internal.h): from here on every call
     * reaches the slow paths, which send it to debug.c. */
    soma__gate.small_limit = 0;
    soma__gate.medium_limit = 0;
    soma__gate.min_offset = SOMA_POOL_SIZE;
}

void soma__options_read(void)
{
    read_debug();
    read_ms("SOMA_ARENA_DECAY_MS", &soma__arena_decay_ms, DECAY_DEFAULT == 0 ? "0" : "1000");
    read_stats_file();
    read_stats_signal();
    read_show_stats();
    read_stats_format();
    read_ms("SOMA_STATS_INTERVAL_MS", &soma__opt.interval_ms, "0 (no sampling)");
    /* Samples are JSON; the dumps in the same file must be too, or the file
     * would be neither one stream of JSON values nor a text dump. */
    if (soma__opt.interval_ms > 0 && !soma__opt.json) {
        const char *v = secure_getenv("SOMA_STATS_FORMAT");
        if (v != NULL && strcasecmp(v, "text") == 0)
            fprintf(stderr, "soma: warning: SOMA_STATS_INTERVAL_MS writes JSON samples, so "
                            "the dumps are JSON too (SOMA_STATS_FORMAT=text ignored)\n");
        soma__opt.json = 1;
    }
    if (soma__opt.show_stats)
        soma__report_at_exit();
}

void soma__options_start(void)
{
    soma__report_start();
}
