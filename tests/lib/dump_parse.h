/*
 * dump_parse.h: reads a statistics dump (CPython's sys._debugmallocstats()
 * layout, as soma_stats_print writes it) back into numbers, checking the
 * layout strictly on the way:
 *
 *   - the first line, the two table headers and every fixed label exactly;
 *   - each class row re-formatted from the parsed numbers must give back the
 *     very same line ("%5zu %6zu %11zu %15zu %13zu", 54 characters);
 *   - each "label = value" line likewise: label padded to column 35, '=', the
 *     value with a ',' every three digits right-aligned in 21 columns;
 *   - each type line: "N free NAME * S bytes each" right-aligned in 48
 *     columns, a space, '=', the 21-column value (71 characters).
 *
 * The re-formatting here is this file's own (dp_commas), written from the
 * specification, not taken from soma.  The parser is also run on a real
 * CPython dump in test_dump, which checks the parser itself.
 */
#ifndef SOMA_DUMP_PARSE_H
#define SOMA_DUMP_PARSE_H

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DP_MAX_ROWS 64
#define DP_MAX_TYPES 96

typedef struct {
    size_t cls, size, pools, in_use, avail;
} dp_row;

typedef struct {
    char name[128];
    size_t count, elem_size, value;
} dp_type;

typedef struct {
    size_t threshold, nclasses;
    size_t nrows;
    dp_row rows[DP_MAX_ROWS];

    size_t arenas_total, arenas_reclaimed, arenas_highwater, arenas_current;
    size_t label_arenas, label_arena_size, arena_bytes; /* "N arenas * S bytes/arena = V" */

    size_t alloc_bytes, avail_bytes;
    size_t label_unused_pools, label_pool_size, unused_pool_bytes; /* "N unused pools * S bytes" */
    size_t pool_headers, quantization, arena_alignment, total;

    size_t map_mid_nodes, map_bot_nodes;
    size_t map_root_bytes, map_mid_bytes, map_bot_bytes, map_total;

    size_t ntypes;
    dp_type types[DP_MAX_TYPES];
} dp_dump;

/* value -> "1,234,567" */
static inline void dp_commas(char *buf, size_t len, size_t value)
{
    char rev[64];
    size_t n = 0, digits = 0;
    do {
        if (digits > 0 && digits % 3 == 0)
            rev[n++] = ',';
        rev[n++] = (char)('0' + value % 10);
        value /= 10;
        digits++;
    } while (value != 0);
    size_t j = 0;
    while (n > 0 && j + 1 < len)
        buf[j++] = rev[--n];
    buf[j] = '\0';
}

/* ---- a cursor over the lines of the text ---- */
typedef struct {
    const char *p;   /* start of the next line */
    const char *end; /* end of the text */
    char line[512];  /* the current line, without '\n' */
    size_t len;
    int lineno;
    char *err;
    size_t errlen;
} dp_cursor;

static inline int dp_error(dp_cursor *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline int dp_error(dp_cursor *c, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(c->err, c->errlen, "dump line %d: %s\n    line: \"%s\"", c->lineno, msg, c->line);
    return -1;
}

/* Read the next line; 0 at the end of the text. */
static inline int dp_next(dp_cursor *c)
{
    if (c->p >= c->end) {
        c->line[0] = '\0';
        c->len = 0;
        return 0;
    }
    const char *nl = memchr(c->p, '\n', (size_t)(c->end - c->p));
    const char *stop = nl ? nl : c->end;
    size_t n = (size_t)(stop - c->p);
    if (n >= sizeof c->line)
        n = sizeof c->line - 1;
    memcpy(c->line, c->p, n);
    c->line[n] = '\0';
    c->len = n;
    c->p = nl ? nl + 1 : c->end;
    c->lineno++;
    return 1;
}

static inline int dp_expect_exact(dp_cursor *c, const char *want)
{
    if (!dp_next(c))
        return dp_error(c, "unexpected end of text, wanted \"%s\"", want);
    if (strcmp(c->line, want) != 0)
        return dp_error(c, "wanted exactly \"%s\"", want);
    return 0;
}

/* Parse an unsigned decimal that fills s completely. */
static inline int dp_parse_size(const char *s, size_t *out)
{
    if (!isdigit((unsigned char)*s))
        return -1;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0')
        return -1;
    *out = (size_t)v;
    return 0;
}

/* The value of a printone-style line: its last 21 columns. */
static inline int dp_value_field(dp_cursor *c, size_t *value)
{
    if (c->len < 22 || c->line[c->len - 22] != '=')
        return dp_error(c, "no '=' before a 21-column value");
    char digits[32];
    size_t n = 0;
    for (size_t i = c->len - 21; i < c->len; i++) {
        char ch = c->line[i];
        if (ch == ' ' || ch == ',')
            continue;
        if (!isdigit((unsigned char)ch) || n + 1 >= sizeof digits)
            return dp_error(c, "bad character '%c' in the value field", ch);
        digits[n++] = ch;
    }
    digits[n] = '\0';
    if (n == 0 || dp_parse_size(digits, value) != 0)
        return dp_error(c, "empty value field");
    return 0;
}

/* A printone line.  want_label: the exact label, or NULL to accept any label
 * (returned in label_out, trailing padding removed). */
static inline int dp_printone(dp_cursor *c, const char *want_label, char *label_out,
                              size_t label_len, size_t *value)
{
    if (!dp_next(c))
        return dp_error(c, "unexpected end of text, wanted \"%s = ...\"",
                        want_label ? want_label : "label");
    if (dp_value_field(c, value) != 0)
        return -1;
    char label[256];
    size_t ln = c->len - 22;
    if (ln >= sizeof label)
        return dp_error(c, "label too long");
    memcpy(label, c->line, ln);
    label[ln] = '\0';
    while (ln > 0 && label[ln - 1] == ' ')
        label[--ln] = '\0';
    if (want_label && strcmp(label, want_label) != 0)
        return dp_error(c, "wanted the label \"%s\", got \"%s\"", want_label, label);
    if (label_out)
        snprintf(label_out, label_len, "%s", label);
    /* The whole line, as the specification lays it out. */
    char num[32], expect[512];
    dp_commas(num, sizeof num, *value);
    snprintf(expect, sizeof expect, "%-35s=%21s", label, num);
    if (strcmp(expect, c->line) != 0)
        return dp_error(c, "layout differs from the specification:\n    want: \"%s\"", expect);
    return 0;
}

/* "N arenas * S bytes/arena", "N unused pools * S bytes": label with numbers. */
static inline int dp_printone_2num(dp_cursor *c, const char *fmt, size_t *a, size_t *b,
                                   size_t *value)
{
    char label[256];
    if (dp_printone(c, NULL, label, sizeof label, value) != 0)
        return -1;
    char tail[64];
    int consumed = 0;
    /* fmt is e.g. "%zu arenas * %zu bytes/arena%n" */
    if (sscanf(label, fmt, a, b, &consumed) != 2 || (size_t)consumed != strlen(label))
        return dp_error(c, "label \"%s\" does not match \"%s\"", label, fmt);
    char again[256];
    /* Re-format (without the %n) and compare: no leading zeros, no commas. */
    snprintf(tail, sizeof tail, "%s", fmt);
    char *pn = strstr(tail, "%n");
    if (pn)
        *pn = '\0';
    snprintf(again, sizeof again, tail, *a, *b);
    if (strcmp(again, label) != 0)
        return dp_error(c, "label \"%s\" is not canonical (\"%s\")", label, again);
    return 0;
}

/* A type line: "%48s =%21s" of "N free NAME * S bytes each". 1 if it is one,
 * 0 if the line is something else, -1 if it looks like one but is malformed. */
static inline int dp_type_line(dp_cursor *c, dp_type *t)
{
    const char *s = c->line;
    if (c->len < 71 || strstr(s, " free ") == NULL || strstr(s, " bytes each") == NULL)
        return 0;
    if (dp_value_field(c, &t->value) != 0)
        return -1;
    char label[256];
    size_t ln = c->len - 22;
    if (ln >= sizeof label)
        return dp_error(c, "label too long");
    memcpy(label, s, ln);
    label[ln] = '\0';
    if (ln == 0 || label[ln - 1] != ' ')
        return dp_error(c, "no space before '='");
    label[--ln] = '\0';
    const char *q = label;
    while (*q == ' ')
        q++;
    /* count */
    char *end;
    if (!isdigit((unsigned char)*q))
        return dp_error(c, "type line does not start with a count");
    t->count = (size_t)strtoull(q, &end, 10);
    if (strncmp(end, " free ", 6) != 0)
        return dp_error(c, "no \" free \" after the count");
    const char *name = end + 6;
    const char *star = NULL;
    for (const char *x = strstr(name, " * "); x; x = strstr(x + 1, " * "))
        star = x;
    if (star == NULL)
        return dp_error(c, "no \" * \" in the type line");
    size_t nl = (size_t)(star - name);
    if (nl == 0 || nl >= sizeof t->name)
        return dp_error(c, "bad type name length %zu", nl);
    memcpy(t->name, name, nl);
    t->name[nl] = '\0';
    const char *es = star + 3;
    if (!isdigit((unsigned char)*es))
        return dp_error(c, "no element size after \" * \"");
    t->elem_size = (size_t)strtoull(es, &end, 10);
    if (strcmp(end, " bytes each") != 0)
        return dp_error(c, "type line does not end in \" bytes each\"");
    /* Re-format the whole line from the parsed parts. */
    char core[256], padded[320], num[32], expect[512];
    snprintf(core, sizeof core, "%zu free %s * %zu bytes each", t->count, t->name, t->elem_size);
    snprintf(padded, sizeof padded, "%48s ", core);
    dp_commas(num, sizeof num, t->value);
    snprintf(expect, sizeof expect, "%-35s=%21s", padded, num);
    if (strcmp(expect, s) != 0)
        return dp_error(c, "type line layout differs:\n    want: \"%s\"", expect);
    return 1;
}

static inline int dp_blank(dp_cursor *c)
{
    if (!dp_next(c))
        return dp_error(c, "unexpected end of text, wanted a blank line");
    if (c->len != 0)
        return dp_error(c, "wanted a blank line");
    return 0;
}

/*
 * Parse one dump at the start of text[0..len).  Returns 0 and fills *d, or -1
 * with a message in err.  *consumed (if not NULL) gets the number of bytes of
 * text that belong to the dump (the type lines end at the first line that is
 * not one).
 */
static inline int dp_parse(const char *text, size_t len, dp_dump *d, char *err, size_t errlen,
                           size_t *consumed)
{
    memset(d, 0, sizeof *d);
    dp_cursor cur = {.p = text, .end = text + len, .err = err, .errlen = errlen};
    dp_cursor *c = &cur;
    err[0] = '\0';

    if (!dp_next(c))
        return dp_error(c, "empty text");
    int used = 0;
    if (sscanf(c->line, "Small block threshold = %zu, in %zu size classes.%n", &d->threshold,
               &d->nclasses, &used) != 2 ||
        (size_t)used != c->len)
        return dp_error(c, "not the threshold line");
    char again[128];
    snprintf(again, sizeof again, "Small block threshold = %zu, in %zu size classes.",
             d->threshold, d->nclasses);
    if (strcmp(again, c->line) != 0)
        return dp_error(c, "threshold line is not canonical");
    if (dp_blank(c) || dp_expect_exact(c, "class   size   num pools   blocks in use  avail blocks") ||
        dp_expect_exact(c, "-----   ----   ---------   -------------  ------------"))
        return -1;

    for (;;) {
        if (!dp_next(c))
            return dp_error(c, "unexpected end of text in the class table");
        if (c->len == 0)
            break;
        if (d->nrows == DP_MAX_ROWS)
            return dp_error(c, "too many class rows");
        dp_row *r = &d->rows[d->nrows];
        used = 0;
        if (sscanf(c->line, "%zu %zu %zu %zu %zu%n", &r->cls, &r->size, &r->pools, &r->in_use,
                   &r->avail, &used) != 5 ||
            (size_t)used != c->len)
            return dp_error(c, "not a class row");
        char row[128];
        snprintf(row, sizeof row, "%5zu %6zu %11zu %15zu %13zu", r->cls, r->size, r->pools,
                 r->in_use, r->avail);
        if (strcmp(row, c->line) != 0)
            return dp_error(c, "class row layout differs:\n    want: \"%s\"", row);
        if (c->len != 54)
            return dp_error(c, "class row is %zu characters, not 54", c->len);
        if (d->nrows > 0 && r->cls <= d->rows[d->nrows - 1].cls)
            return dp_error(c, "class rows out of order");
        d->nrows++;
    }

    if (dp_printone(c, "# arenas allocated total", NULL, 0, &d->arenas_total) ||
        dp_printone(c, "# arenas reclaimed", NULL, 0, &d->arenas_reclaimed) ||
        dp_printone(c, "# arenas highwater mark", NULL, 0, &d->arenas_highwater) ||
        dp_printone(c, "# arenas allocated current", NULL, 0, &d->arenas_current) ||
        dp_printone_2num(c, "%zu arenas * %zu bytes/arena%n", &d->label_arenas,
                         &d->label_arena_size, &d->arena_bytes) ||
        dp_blank(c))
        return -1;
    if (dp_printone(c, "# bytes in allocated blocks", NULL, 0, &d->alloc_bytes) ||
        dp_printone(c, "# bytes in available blocks", NULL, 0, &d->avail_bytes) ||
        dp_printone_2num(c, "%zu unused pools * %zu bytes%n", &d->label_unused_pools,
                         &d->label_pool_size, &d->unused_pool_bytes) ||
        dp_printone(c, "# bytes lost to pool headers", NULL, 0, &d->pool_headers) ||
        dp_printone(c, "# bytes lost to quantization", NULL, 0, &d->quantization) ||
        dp_printone(c, "# bytes lost to arena alignment", NULL, 0, &d->arena_alignment) ||
        dp_printone(c, "Total", NULL, 0, &d->total) || dp_blank(c))
        return -1;
    if (dp_expect_exact(c, "arena map counts") ||
        dp_printone(c, "# arena map mid nodes", NULL, 0, &d->map_mid_nodes) ||
        dp_printone(c, "# arena map bot nodes", NULL, 0, &d->map_bot_nodes) || dp_blank(c) ||
        dp_printone(c, "# bytes lost to arena map root", NULL, 0, &d->map_root_bytes) ||
        dp_printone(c, "# bytes lost to arena map mid", NULL, 0, &d->map_mid_bytes) ||
        dp_printone(c, "# bytes lost to arena map bot", NULL, 0, &d->map_bot_bytes) ||
        dp_printone(c, "Total", NULL, 0, &d->map_total) || dp_blank(c))
        return -1;

    /* Type lines, up to the first line that is not one. */
    const char *after = c->p;
    while (dp_next(c)) {
        if (d->ntypes == DP_MAX_TYPES)
            return dp_error(c, "too many type lines");
        int r = dp_type_line(c, &d->types[d->ntypes]);
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        d->ntypes++;
        after = c->p;
    }
    if (consumed)
        *consumed = (size_t)(after - text);
    return 0;
}

/*
 * The arithmetic every dump must satisfy (CPython's as much as soma's):
 * returns 0, or -1 with the first broken relation described in err.
 * pool_overhead is 48 for both.
 */
static inline int dp_consistent(const dp_dump *d, size_t pool_overhead, char *err, size_t errlen)
{
#define DP_REL(cond)                                                                               \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            snprintf(err, errlen, "dump arithmetic broken: %s", #cond);                            \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)
    size_t pool_size = d->label_pool_size, arena_size = d->label_arena_size;
    size_t alloc = 0, avail = 0, pools = 0, quant = 0;
    for (size_t i = 0; i < d->nrows; i++) {
        const dp_row *r = &d->rows[i];
        DP_REL(r->size == (r->cls + 1) * 16);
        DP_REL(r->pools > 0);
        DP_REL(r->in_use + r->avail == r->pools * ((pool_size - pool_overhead) / r->size));
        alloc += r->in_use * r->size;
        avail += r->avail * r->size;
        pools += r->pools;
        quant += r->pools * ((pool_size - pool_overhead) % r->size);
    }
    DP_REL(d->nclasses * 16 == d->threshold);
    DP_REL(d->arenas_reclaimed == d->arenas_total - d->arenas_current);
    DP_REL(d->arenas_highwater >= d->arenas_current);
    DP_REL(d->arenas_total >= d->arenas_highwater);
    DP_REL(d->label_arenas == d->arenas_current);
    DP_REL(d->arena_bytes == d->arenas_current * arena_size);
    DP_REL(d->alloc_bytes == alloc);
    DP_REL(d->avail_bytes == avail);
    DP_REL(d->unused_pool_bytes == d->label_unused_pools * pool_size);
    DP_REL(d->pool_headers == pools * pool_overhead);
    DP_REL(d->quantization == quant);
    DP_REL(d->arena_alignment % pool_size == 0);
    DP_REL(d->total == d->alloc_bytes + d->avail_bytes + d->unused_pool_bytes + d->pool_headers +
                           d->quantization + d->arena_alignment);
    DP_REL(d->total == d->arena_bytes);
    DP_REL(d->map_total == d->map_root_bytes + d->map_mid_bytes + d->map_bot_bytes);
    for (size_t i = 0; i < d->ntypes; i++)
        DP_REL(d->types[i].value == d->types[i].count * d->types[i].elem_size);
#undef DP_REL
    return 0;
}

/* The row of class cls, or NULL when the dump has none. */
static inline const dp_row *dp_find_row(const dp_dump *d, size_t cls)
{
    for (size_t i = 0; i < d->nrows; i++)
        if (d->rows[i].cls == cls)
            return &d->rows[i];
    return NULL;
}

#endif /* SOMA_DUMP_PARSE_H */
