/*
 * options.c: runtime options, read once from the environment when soma
 * starts.  A bad value gets one warning line on stderr and the default;
 * it never stops the program.
 *
 *   SOMA_SHOW_STATS   1/yes/on/true: print the stats dump to stderr at exit
 *                     (CPython's PYTHONMALLOCSTATS); 0/no/off/false or
 *                     empty: don't (the default).
 */
#include <stdio.h>
#include <stdlib.h>
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

static void show_stats_at_exit(void)
{
    soma_stats_print(stderr);
}

void soma__options_read(void)
{
    const char *v = getenv("SOMA_SHOW_STATS");
    if (v == NULL)
        return;
    int on = parse_bool(v);
    if (on < 0) {
        fprintf(stderr, "soma: warning: SOMA_SHOW_STATS=%s is not a boolean (1/0, yes/no, on/off, true/false); "
                        "using the default, 0\n", v);
        return;
    }
    if (on)
        atexit(show_stats_at_exit);
}
