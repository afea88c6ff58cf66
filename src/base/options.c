/*
 * options.c: the runtime options, read once from the environment when soma
 * starts, from the one table in common/options.h (which also gives
 * `soma help options` and docs/OPTIONS.md their rows).  A bad value gets
 * one warning line on stderr, naming the option and what a value must be,
 * and the default; it never stops the program.
 *
 * Read with secure_getenv: a setuid or setgid program (AT_SECURE) ignores
 * them, so that whoever runs it cannot make it write a dump or change how
 * it uses memory.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/options.h"
#include "base/start.h"
#include "common/options.h"

/* No copy checked until the options are read (a constructor's copies) */
options_t soma__options = {.copies_above = SIZE_MAX};
gate_t soma__options_gate = {SOMA_SMALL_THRESHOLD, SOMA_MEDIUM_MAX, SOMA_POOL_OVERHEAD, 0};

typedef struct {
    const char *name;
    int type;
    size_t offset; /* of its long in options_t (stats_file: of the char array) */
    long deflt, min, max;
    const char *deflt_words, *what;
} option_t;

/* The library's defaults, or the override's (libsoma-override.so). */
#ifdef SOMA_OVERRIDE
#define ROW(field, name, type, tn, d, od, min, max, dw, odw, what, doc)                                \
    {name, type, offsetof(options_t, field), od, min, max, odw, what},
#else
#define ROW(field, name, type, tn, d, od, min, max, dw, odw, what, doc)                                \
    {name, type, offsetof(options_t, field), d, min, max, dw, what},
#endif
static const option_t table[] = {SOMA_OPTIONS(ROW)};
#undef ROW

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

/* A signal soma may take: not KILL or STOP (no handler), nor one a fault
 * raises (the handler would return into the fault, over and over). */
static int usable(long sig)
{
    static const int refused[] = {SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGFPE,
                                  SIGILL,  SIGABRT, SIGTRAP, SIGSYS};
    if (sig <= 0 || sig >= NSIG)
        return 0;
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        if (sig == refused[i])
            return 0;
    return 1;
}

/* The signal named by v ("USR2", "SIGUSR2", "12"), or 0 if there is none
 * or soma may not take it (KILL, STOP, a fault signal). */
static int parse_signal(const char *v)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (*v != '\0' && *end == '\0')
        return usable(n) ? (int)n : 0;
    if (strncasecmp(v, "SIG", 3) == 0)
        v += 3;
    for (int sig = 1; sig < NSIG; sig++) {
        const char *name = sigabbrev_np(sig);
        if (name != NULL && strcasecmp(v, name) == 0)
            return usable(sig) ? sig : 0;
    }
    return 0;
}

/* v parsed as o's type into *out; 0, 1 when v means "the default" (an
 * empty signal or format), or -1 when v is no such value. */
static int parse(const option_t *o, const char *v, long *out)
{
    char *end;
    switch (o->type) {
    case SOMA_OPT_BOOL:
        return (*out = parse_bool(v)) < 0 ? -1 : 0;
    case SOMA_OPT_DEBUG:
        if (strcasecmp(v, "report") == 0)
            return *out = SOMA_DEBUG_REPORT, 0;
        if (strcasecmp(v, "guard") == 0)
            return *out = SOMA_DEBUG_GUARD, 0;
        return (*out = parse_bool(v)) < 0 ? -1 : 0;
    case SOMA_OPT_COPIES: {
        int b = parse_bool(v);
        if (b >= 0)
            return *out = b, 0;
        long long n = strtoll(v, &end, 10);
        *out = (long)n;
        return *v == '\0' || *end != '\0' || n < 2 || n > o->max ? -1 : 0;
    }
    case SOMA_OPT_SIGNAL:
        if (*v == '\0')
            return 1;
        return (*out = parse_signal(v)) == 0 ? -1 : 0;
    case SOMA_OPT_FORMAT:
        if (*v == '\0')
            return 1;
        *out = strcasecmp(v, "json") == 0;
        return *out || strcasecmp(v, "text") == 0 ? 0 : -1;
    case SOMA_OPT_NUMBER: {
        long long n = strtoll(v, &end, 10);
        *out = (long)n;
        return *v == '\0' || *end != '\0' || n < o->min || n > o->max ? -1 : 0;
    }
    default: /* SOMA_OPT_PATH */
        *out = (long)strlen(v);
        return *out < o->min || *out > o->max ? -1 : 0;
    }
}

static void read_one(const option_t *o)
{
    char *field = (char *)&soma__options + o->offset;
    if (o->type == SOMA_OPT_PATH)
        *field = '\0';
    else
        *(long *)field = o->deflt;
    const char *v = secure_getenv(o->name);
    long value;
    if (v == NULL)
        return;
    int rc = parse(o, v, &value);
    if (rc < 0)
        fprintf(stderr, "soma: warning: %s=%s is not %s; using the default, %s\n", o->name, v,
                o->what, o->deflt_words);
    else if (rc == 0 && o->type == SOMA_OPT_PATH)
        memcpy(field, v, (size_t)value + 1); /* the table's max fits the field */
    else if (rc == 0)
        *(long *)field = value;
}
_Static_assert(sizeof soma__options.stats_file > 999, "SOMA_STATS_FILE's longest name fits");

static void read_all(void)
{
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        read_one(&table[i]);
    /* Samples are JSON; the dumps in the same file must be too, or the file
     * would be neither one stream of JSON values nor a text dump. */
    if (soma__options.interval_ms > 0 && !soma__options.json) {
        const char *v = secure_getenv("SOMA_STATS_FORMAT");
        if (v != NULL && strcasecmp(v, "text") == 0)
            fprintf(stderr, "soma: warning: SOMA_STATS_INTERVAL_MS writes JSON samples, so "
                            "the dumps are JSON too (SOMA_STATS_FORMAT=text ignored)\n");
        soma__options.json = 1;
    }
#if defined(SOMA_HARDEN) && !SOMA_HARDEN
    /* The build that measures hardening (link.h) checks no copy unless told
     * (debug mode's, below, still checks every one) */
    if (secure_getenv("SOMA_CHECK_COPIES") == NULL)
        soma__options.check_copies = 0;
#endif
    /* Debug mode closes the fast paths (the gate, options.h): from here on
     * every call reaches the slow paths, which send it to malloc/debug.c. */
    if (soma__options.debug) {
        soma__options_gate.small_limit = 0;
        soma__options_gate.medium_limit = 0;
        soma__options_gate.min_offset = SOMA_POOL_SIZE;
        soma__options.check_copies = 1; /* always, in debug mode */
    }
    soma__options.copies_above = (size_t)soma__options.check_copies - 1;
    /* Sampled guarded blocks (malloc/guard.c): every malloc goes out of
     * line, to soma__malloc_sized, which counts down to the next one; free
     * keeps its fast path (a guarded block is outside soma's arenas). */
    if (soma__options.guard_sample > 0 && !soma__options.debug) {
        soma__options_gate.small_limit = 0;
        soma__options_gate.medium_limit = 0;
        soma__options_gate.sample = 1;
    }
}
SOMA_HOOK(options, SOMA_ORDER_OPTIONS, read_all, NULL);
