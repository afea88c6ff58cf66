/*
 * help.c: `soma help options [--markdown]`: the runtime options, from the
 * one table the library parses them with (common/options.h).  --markdown
 * prints the table of docs/OPTIONS.md, which test_options compares with
 * the file, so that the docs and the code cannot disagree.
 */
#include <stdio.h>
#include <string.h>

#include "common/options.h"
#include "tool.h"

typedef struct {
    const char *name, *type, *deflt, *deflt_override, *range, *doc;
} option_row;

static const option_row rows[] = {
#define ROW(field, name, type, tn, d, od, min, max, dw, odw, what, doc) {name, tn, dw, odw, what, doc},
    SOMA_OPTIONS(ROW)
#undef ROW
};

static void markdown(FILE *out)
{
    fputs("| Option | Type | Default | Range | Meaning |\n|---|---|---|---|---|\n", out);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const option_row *r = &rows[i];
        fprintf(out, "| `%s` | %s | `%s`", r->name, r->type, r->deflt);
        if (strcmp(r->deflt, r->deflt_override) != 0)
            fprintf(out, " (`%s` in the override)", r->deflt_override);
        fprintf(out, " | %s | %s |\n", r->range, r->doc);
    }
}

static void text(FILE *out)
{
    fputs("soma's runtime options, read from the environment when a program starts\n"
          "(a bad value: one warning line, and the default; a setuid program ignores them):\n\n",
          out);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const option_row *r = &rows[i];
        fprintf(out, "%s (%s; default %s", r->name, r->type, r->deflt);
        if (strcmp(r->deflt, r->deflt_override) != 0)
            fprintf(out, ", %s in the override", r->deflt_override);
        fprintf(out, ")\n    %s\n    value: %s\n\n", r->doc, r->range);
    }
}

int soma_tool_help(int argc, char **argv, void (*usage)(FILE *))
{
    if (argc >= 2 && strcmp(argv[1], "options") == 0) {
        if (argc >= 3 && strcmp(argv[2], "--markdown") == 0)
            markdown(stdout);
        else
            text(stdout);
        return 0;
    }
    usage(stdout);
    return 0;
}
