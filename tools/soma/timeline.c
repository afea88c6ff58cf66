/*
 * timeline.c: the timeline page (page.h), a process's samples drawn over
 * time.  A long run has ten thousand samples or more and the page must stay
 * small enough for a browser to open at once, so every series is thinned
 * to what the screen can show: within one pixel column only the first,
 * lowest, highest and last points are kept (the drawn envelope is the
 * same), flat stretches become one segment, and the heat map merges the
 * samples that share a pixel, and neighbouring cells of one colour, into
 * one rectangle.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "figures.h"
#include "page.h"
#include "common/text.h"

/* Every chart of a process shares this horizontal layout, so that one
 * instant is at the same x in all of them, the heat map included. */
#define PLOT_X 136 /* wide enough for the heat map's "class 60 (8160 B)" */
#define PLOT_W 900
#define RIGHT_W 104 /* the heat map's peak counts */
#define SVG_W (PLOT_X + PLOT_W + RIGHT_W)
#define LEGEND_Y 14
#define PLOT_TOP 28
#define AXIS_BELOW 36 /* tick labels and the axis caption */
#define MAX_HEAT_ROWS 40
/* page.c's stylesheet sizes h2 only; a chart's heading must read smaller
 * than its process's. */
#define H3 "<h3 style=\"font-size:14px; margin:18px 0 4px\">"
#define P "<p style=\"font-size:14px\">"

#define C_SMALL "#3a78c4"
#define C_MEDIUM "#9b59c9"
#define C_TOTAL "#222222"
#define C_EMPTY "#8a8a8a"  /* arenas with no block in use, kept for the decay */
#define C_HIGH "#d4640f"
#define C_RECLAIM "#13966a"
#define C_PURGE C_RECLAIM /* given back to the OS too: pools' pages, not arenas */
#define C_ALLOC "#4a8fd8"
#define C_AVAIL "#b7d5f2"
#define C_ARENA "#333333"
#define C_LARGE "#e08a00"
#define C_GRID "#e6e6e6"
#define C_AXIS "#888888"

typedef double (*getter)(const tool_snapshot *s);

typedef struct {
    double lo, hi; /* ms since start at the plot's left and right edges */
} xscale;

typedef struct {
    double max, step; /* the top of the axis (a whole number of steps) */
    double unit;      /* 1 for counts, 1024^k for bytes */
    const char *uname; /* NULL for counts */
    int top, h;
} yscale;

static const char *commas(char *buf, size_t value)
{
    return soma_text_commas(buf, SOMA_TEXT_COMMAS_LEN, value);
}

/* "1 MiB", "16 KiB", "1.5 MiB": the geometry and the summaries. */
static const char *human_bytes(char *buf, size_t len, double bytes)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024 && u < 4) {
        bytes /= 1024;
        u++;
    }
    if (bytes == floor(bytes) || u == 0)
        snprintf(buf, len, "%.0f %s", bytes, units[u]);
    else
        snprintf(buf, len, "%.1f %s", bytes, units[u]);
    return buf;
}

/* Milliseconds as people read them: "20 ms", "1,234 ms", "12.3 s". */
static const char *human_ms(char *buf, size_t len, double ms)
{
    char c[16]; /* below 100,000 ms: "100,000" at most, once rounded */
    if (ms < 0)
        ms = 0;
    if (ms < 10 && ms != floor(ms))
        snprintf(buf, len, "%.1f ms", ms);
    else if (ms < 100000)
        snprintf(buf, len, "%s ms", soma_text_commas(c, sizeof c, (size_t)llround(ms)));
    else
        snprintf(buf, len, "%.1f s", ms / 1000);
    return buf;
}

/* 1, 2 or 5 times a power of ten, close to span / target. */
static double nice_step(double span, int target)
{
    if (!(span > 0))
        return 1;
    double raw = span / target, p = pow(10, floor(log10(raw))), f = raw / p;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

static double xpix(const xscale *xs, double t)
{
    double x = PLOT_X + (t - xs->lo) / (xs->hi - xs->lo) * PLOT_W;
    return x < PLOT_X ? PLOT_X : x > PLOT_X + PLOT_W ? PLOT_X + PLOT_W : x;
}

static double ypix(const yscale *ys, double v)
{
    return ys->top + ys->h - v / ys->max * ys->h;
}

static double round1(double v)
{
    return round(v * 10) / 10;
}

static xscale make_xscale(const tool_snapshot *s, size_t n)
{
    xscale xs;
    double first = s[0].elapsed_ms, last = s[n - 1].elapsed_ms;
    /* Start at 0 ("since start") unless the record begins late in the run,
     * where an empty stretch would squeeze the part that matters. */
    xs.lo = first <= 0.1 * (last - first) || first < 0 ? 0 : first;
    if (first < xs.lo)
        xs.lo = first;
    xs.hi = last > xs.lo ? last : xs.lo + 1;
    return xs;
}

/* Counts: whole-number ticks.  Bytes: ticks round in the largest unit the
 * maximum reaches, so the labels read "1.5 MiB", not "1,572,864". */
static yscale make_yscale(double vmax, int bytes, int top, int h)
{
    yscale ys = {0, 1, 1, NULL, top, h};
    if (bytes) {
        static const char *const names[] = {"KiB", "MiB", "GiB"};
        int u = 0;
        ys.unit = 1024;
        while (u < 2 && vmax >= ys.unit * 1024) {
            ys.unit *= 1024;
            u++;
        }
        ys.uname = names[u];
        if (!(vmax > 0))
            vmax = ys.unit;
        ys.step = nice_step(vmax / ys.unit, 4) * ys.unit;
    } else {
        if (!(vmax > 0))
            vmax = 1;
        ys.step = nice_step(vmax, 4);
        if (ys.step < 1)
            ys.step = 1;
    }
    ys.max = ceil(vmax / ys.step - 1e-9) * ys.step;
    if (!(ys.max > 0))
        ys.max = ys.step;
    return ys;
}

static void y_axis(FILE *out, const yscale *ys, const char *caption)
{
    int steps = (int)llround(ys->max / ys->step);
    for (int k = 0; k <= steps; k++) {
        double v = k * ys->step, y = ypix(ys, v);
        char c[SOMA_TEXT_COMMAS_LEN];
        if (k > 0)
            fprintf(out, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"" C_GRID
                         "\"/>\n", PLOT_X, y, PLOT_X + PLOT_W, y);
        if (ys->uname && k > 0)
            page_text(out, PLOT_X - 6, y + 4, 1, 11, NULL, "end", "#444", "%g %s", v / ys->unit,
                      ys->uname);
        else
            page_text(out, PLOT_X - 6, y + 4, 1, 11, NULL, "end", "#444", "%s",
                      commas(c, (size_t)llround(v)));
    }
    /* The caption stands rotated along the axis, clear of the tick labels. */
    fprintf(out, "<text x=\"14\" y=\"%d\" font-size=\"11\" fill=\"#444\" text-anchor=\"middle\" "
                 "transform=\"rotate(-90 14 %d)\">", ys->top + ys->h / 2, ys->top + ys->h / 2);
    page_escape(out, caption);
    fputs("</text>\n", out);
}

static void x_axis(FILE *out, const xscale *xs, int top, int h, int grid)
{
    double step = nice_step(xs->hi - xs->lo, 9);
    int bottom = top + h;
    double first = ceil(xs->lo / step - 1e-9);
    for (int k = 0; (first + k) * step <= xs->hi + step * 1e-9; k++) {
        double t = (first + k) * step, x = xpix(xs, t);
        char c[SOMA_TEXT_COMMAS_LEN];
        if (grid && x > PLOT_X + 0.5)
            fprintf(out, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"" C_GRID
                         "\"/>\n", x, top, x, bottom);
        fprintf(out, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"" C_AXIS "\"/>\n",
                x, bottom, x, bottom + 4);
        if (step >= 1)
            page_text(out, x, bottom + 16, 1, 11, NULL, "middle", "#444", "%s",
                      commas(c, (size_t)llround(t)));
        else
            page_text(out, x, bottom + 16, 1, 11, NULL, "middle", "#444", "%g", t);
    }
    page_text(out, PLOT_X + PLOT_W, bottom + 31, 1, 11, NULL, "end", "#444", "ms since start");
}

static void frame(FILE *out, int top, int h)
{
    fprintf(out, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\""
                 C_AXIS "\"/>\n", PLOT_X, top, PLOT_W, h);
}

/* One legend entry at *x (advanced past it).  kind: 'l' a line, 'd' a
 * dashed line, 'a' a filled area, 'v' a marker (a reclamation, a purge). */
static void legend_item(FILE *out, int *x, int y, char kind, const char *colour, int width,
                        const char *what)
{
    switch (kind) {
    case 'a':
        fprintf(out, "<rect x=\"%d\" y=\"%d\" width=\"18\" height=\"10\" fill=\"%s\" "
                     "stroke=\"%s\"/>\n", *x, y - 9, colour, C_ARENA);
        break;
    case 'v':
        fprintf(out, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" "
                     "stroke-width=\"1.5\"/>\n", *x + 9, y - 11, *x + 9, y + 2, colour);
        break;
    default:
        fprintf(out, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" "
                     "stroke-width=\"%d\"%s/>\n", *x, y - 4, *x + 18, y - 4, colour, width,
                kind == 'd' ? " stroke-dasharray=\"5 3\"" : "");
    }
    page_text(out, *x + 23, y, 1, 11, NULL, NULL, "#333", "%s", what);
    *x += 23 + (int)((double)strlen(what) * 6.1) + 16;
}

/* ---- polylines thinned to the pixel ---- */

/* Points go out rounded to a tenth of a pixel; a point between two others
 * at the same height is held back and dropped, so flat stretches cost two
 * points whatever their length. */
typedef struct {
    FILE *out;
    int emitted, pending;
    double ey, px, py;
} line_writer;

static void lw_emit(line_writer *lw, double x, double y)
{
    fprintf(lw->out, "%.1f,%.1f ", x, y);
    lw->emitted = 1;
    lw->ey = y;
}

static void lw_add(line_writer *lw, double x, double y)
{
    x = round1(x);
    y = round1(y);
    if (lw->pending && x == lw->px && y == lw->py)
        return;
    if (lw->pending && lw->emitted && lw->py == lw->ey && y == lw->py) {
        lw->px = x;
        return;
    }
    if (lw->pending)
        lw_emit(lw, lw->px, lw->py);
    lw->pending = 1;
    lw->px = x;
    lw->py = y;
}

static void lw_finish(line_writer *lw)
{
    if (lw->pending)
        lw_emit(lw, lw->px, lw->py);
    lw->pending = 0;
}

static double value_of(const tool_snapshot *s, getter g, getter g2)
{
    return g(s) + (g2 ? g2(s) : 0);
}

/* Adds the series g (+ g2) to lw, forwards or backwards (the lower edge
 * of a stacked area is traced back).  Of the samples in one pixel column
 * only the first, the lowest, the highest and the last are kept. */
static void trace(line_writer *lw, const tool_snapshot *s, size_t n, const xscale *xs,
                  const yscale *ys, getter g, getter g2, int reverse)
{
    size_t k = 0;
    while (k < n) {
        size_t i0 = reverse ? n - 1 - k : k;
        long col = (long)floor(xpix(xs, s[i0].elapsed_ms));
        size_t first = k, last = k, lo = k, hi = k;
        double vlo = value_of(&s[i0], g, g2), vhi = vlo;
        for (k++; k < n; k++) {
            size_t i = reverse ? n - 1 - k : k;
            if ((long)floor(xpix(xs, s[i].elapsed_ms)) != col)
                break;
            double v = value_of(&s[i], g, g2);
            if (v < vlo)
                vlo = v, lo = k;
            if (v > vhi)
                vhi = v, hi = k;
            last = k;
        }
        size_t keep[4] = {first, lo < hi ? lo : hi, lo < hi ? hi : lo, last};
        for (int j = 0; j < 4; j++) {
            if (j > 0 && keep[j] == keep[j - 1])
                continue;
            size_t i = reverse ? n - 1 - keep[j] : keep[j];
            lw_add(lw, xpix(xs, s[i].elapsed_ms), ypix(ys, value_of(&s[i], g, g2)));
        }
    }
}

static void polyline(FILE *out, const tool_snapshot *s, size_t n, const xscale *xs,
                     const yscale *ys, getter g, const char *attrs)
{
    line_writer lw = {out, 0, 0, 0, 0, 0};
    fprintf(out, "<polyline %s fill=\"none\" stroke-linejoin=\"round\" points=\"", attrs);
    trace(&lw, s, n, xs, ys, g, NULL, 0);
    lw_finish(&lw);
    fputs("\"/>\n", out);
}

/* A value that holds from one sample to the next, as a count of arenas
 * does: horizontal runs, a vertical step where it changes. */
static void step_path(FILE *out, const tool_snapshot *s, size_t n, const xscale *xs,
                      const yscale *ys, getter g, const char *attrs)
{
    double y = round1(ypix(ys, g(&s[0])));
    fprintf(out, "<path %s fill=\"none\" d=\"M%.1f,%.1f", attrs, round1(xpix(xs, s[0].elapsed_ms)),
            y);
    for (size_t i = 1; i < n; i++) {
        double yi = round1(ypix(ys, g(&s[i])));
        if (yi != y)
            fprintf(out, "H%.1fV%.1f", round1(xpix(xs, s[i].elapsed_ms)), yi);
        y = yi;
    }
    fprintf(out, "H%.1f\"/>\n", round1(xpix(xs, s[n - 1].elapsed_ms)));
}

/* ---- the figures ---- */

static double g_small(const tool_snapshot *s) { return (double)s->st.arenas_current; }
static double g_medium(const tool_snapshot *s) { return (double)s->st.medium.arenas_current; }
static double g_arenas(const tool_snapshot *s)
{
    return (double)tool_process_figures(&s->st).arenas_current;
}
static double g_empty(const tool_snapshot *s)
{
    return (double)tool_process_figures(&s->st).arenas_empty;
}
static double g_highwater(const tool_snapshot *s)
{
    return (double)tool_process_figures(&s->st).arenas_highwater;
}
static size_t reclaimed(const tool_snapshot *s)
{
    return tool_process_figures(&s->st).arenas_reclaimed;
}
static double g_alloc(const tool_snapshot *s)
{
    return (double)tool_process_figures(&s->st).bytes_in_allocated_blocks;
}
static double g_avail(const tool_snapshot *s)
{
    return (double)tool_process_figures(&s->st).bytes_in_available_blocks;
}
static double g_arena_bytes(const tool_snapshot *s)
{
    return (double)tool_process_figures(&s->st).arena_bytes;
}
static double g_large(const tool_snapshot *s) { return (double)s->st.large.bytes_in_use; }
/* Pools whose pages went back, ever: a rise between two samples is a purge. */
static size_t purged(const tool_snapshot *s) { return s->st.returned.pools_total; }
static double g_returned_bytes(const tool_snapshot *s)
{
    return (double)tool_process_figures(&s->st).returned_bytes;
}
/* The arenas' bytes less the pages of their pools that went back: what of
 * them can be resident (never-carved pools, untouched, are not either). */
static double g_resident_arena_bytes(const tool_snapshot *s)
{
    return g_arena_bytes(s) - g_returned_bytes(s);
}

static double series_max(const tool_snapshot *s, size_t n, getter g, getter g2)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (value_of(&s[i], g, g2) > m)
            m = value_of(&s[i], g, g2);
    return m;
}

static void svg_open(FILE *out, int height, const char *what)
{
    fprintf(out, "<svg width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" "
                 "aria-label=\"", SVG_W, height, SVG_W, height);
    page_escape(out, what);
    fprintf(out, "\">\n<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", SVG_W, height);
}

typedef size_t (*counter)(const tool_snapshot *s);
/* A marker's label and tooltip for a rise of k in its counter. */
typedef void (*wording)(const tool_snapshot *s, size_t k, char *label, size_t llen, char *what,
                        size_t wlen);

static void reclaim_words(const tool_snapshot *s, size_t k, char *label, size_t llen, char *what,
                          size_t wlen)
{
    (void)s;
    snprintf(label, llen, "-%zu", k);
    snprintf(what, wlen, "%zu arena%s given back to the OS", k, k == 1 ? "" : "s");
}

static void purge_words(const tool_snapshot *s, size_t k, char *label, size_t llen, char *what,
                        size_t wlen)
{
    char b[32], c[SOMA_TEXT_COMMAS_LEN];
    human_bytes(b, sizeof b, (double)k * (double)s->st.pool_size);
    snprintf(label, llen, "-%s", b);
    snprintf(what, wlen, "the pages of %s empty pool%s (%s) given back to the OS", commas(c, k),
             k == 1 ? "" : "s", b);
}

/* A marker where the counter c rose since the sample before (something went
 * back to the OS in between): a line across the plot, in <g class=cls>
 * with a tooltip naming the interval, and a label at its top.  A label
 * closer than `spacing` pixels to the previous one would overprint it: it
 * is left to the tooltip, the marker is still drawn. */
static void markers(FILE *out, const tool_snapshot *s, size_t n, const xscale *xs, int top, int h,
                    counter c, wording w, const char *cls, int spacing)
{
    double last_label = -1000;
    for (size_t i = 1; i < n; i++) {
        size_t before = c(&s[i - 1]), now = c(&s[i]);
        if (now <= before)
            continue;
        double x = round1(xpix(xs, s[i].elapsed_ms));
        char t1[32], t2[32], label[48], what[160];
        w(&s[i], now - before, label, sizeof label, what, sizeof what);
        human_ms(t1, sizeof t1, s[i - 1].elapsed_ms);
        human_ms(t2, sizeof t2, s[i].elapsed_ms);
        /* "between 20 and 40 ms": a unit the two share is said once. */
        size_t l1 = strlen(t1);
        if (l1 > 3 && strcmp(t1 + l1 - 3, " ms") == 0 && strcmp(t2 + strlen(t2) - 3, " ms") == 0)
            t1[l1 - 3] = '\0';
        fprintf(out, "<g class=\"%s\"><title>", cls);
        page_escape(out, what);
        fprintf(out, " between %s and %s</title>", t1, t2);
        fprintf(out, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"" C_RECLAIM
                     "\" stroke-width=\"1.5\" stroke-opacity=\"0.75\"/>", x, top, x, top + h);
        if (x - last_label >= spacing) {
            fprintf(out, "<text x=\"%.1f\" y=\"%d\" font-size=\"10\" fill=\"" C_RECLAIM
                         "\" font-weight=\"bold\">", x + 2, top + 11);
            page_escape(out, label);
            fputs("</text>", out);
            last_label = x;
        }
        fputs("</g>\n", out);
    }
}

static void arenas_chart(FILE *out, const tool_snapshot *s, size_t n, const xscale *xs)
{
    const int h = 180;
    double vmax = series_max(s, n, g_highwater, NULL);
    if (series_max(s, n, g_arenas, NULL) > vmax)
        vmax = series_max(s, n, g_arenas, NULL);
    yscale ys = make_yscale(vmax, 0, PLOT_TOP, h);
    svg_open(out, PLOT_TOP + h + AXIS_BELOW, "arenas mapped over time");
    int lx = PLOT_X;
    legend_item(out, &lx, LEGEND_Y, 'l', C_TOTAL, 2, "small + medium");
    legend_item(out, &lx, LEGEND_Y, 'l', C_SMALL, 1, "small");
    legend_item(out, &lx, LEGEND_Y, 'l', C_MEDIUM, 1, "medium");
    legend_item(out, &lx, LEGEND_Y, 'd', C_HIGH, 1, "high-water mark");
    legend_item(out, &lx, LEGEND_Y, 'l', C_EMPTY, 2, "of them empty, kept for reuse");
    legend_item(out, &lx, LEGEND_Y, 'v', C_RECLAIM, 1,
                "arenas given back to the OS (-k: how many)");
    y_axis(out, &ys, "arenas mapped");
    x_axis(out, xs, PLOT_TOP, h, 1);

    /* Markers first, so the lines stay readable on top of them. */
    markers(out, s, n, xs, PLOT_TOP, h, reclaimed, reclaim_words, "reclaim", 22);
    step_path(out, s, n, xs, &ys, g_highwater,
              "class=\"arenas-highwater\" stroke=\"" C_HIGH "\" stroke-width=\"1.5\" "
              "stroke-dasharray=\"6 4\"");
    step_path(out, s, n, xs, &ys, g_empty,
              "class=\"arenas-empty\" stroke=\"" C_EMPTY "\" stroke-width=\"2\" "
              "stroke-dasharray=\"2 2\"");
    step_path(out, s, n, xs, &ys, g_small,
              "class=\"arenas-current\" stroke=\"" C_SMALL "\" stroke-width=\"1.2\"");
    step_path(out, s, n, xs, &ys, g_medium,
              "class=\"arenas-current\" stroke=\"" C_MEDIUM "\" stroke-width=\"1.2\"");
    step_path(out, s, n, xs, &ys, g_arenas,
              "class=\"arenas-current\" stroke=\"" C_TOTAL "\" stroke-width=\"2\"");
    frame(out, PLOT_TOP, h);
    fputs("</svg>\n", out);
}

/* Did pools' pages go back to the OS during the record (or before it)? */
static int has_purges(const tool_snapshot *s, size_t n)
{
    return purged(&s[n - 1]) > 0 || series_max(s, n, g_returned_bytes, NULL) > 0;
}

static void bytes_chart(FILE *out, const tool_snapshot *s, size_t n, const xscale *xs)
{
    const int h = 200;
    /* Purges take a second row of legend. */
    int purges = has_purges(s, n), top = PLOT_TOP + (purges ? 16 : 0);
    double vmax = series_max(s, n, g_arena_bytes, NULL);
    if (series_max(s, n, g_alloc, g_avail) > vmax)
        vmax = series_max(s, n, g_alloc, g_avail);
    if (series_max(s, n, g_large, NULL) > vmax)
        vmax = series_max(s, n, g_large, NULL);
    yscale ys = make_yscale(vmax, 1, top, h);
    svg_open(out, top + h + AXIS_BELOW, "bytes over time");
    int lx = PLOT_X;
    legend_item(out, &lx, LEGEND_Y, 'a', C_ALLOC, 1, "in allocated blocks");
    legend_item(out, &lx, LEGEND_Y, 'a', C_AVAIL, 1, "in available blocks (stacked on top)");
    legend_item(out, &lx, LEGEND_Y, 'l', C_ARENA, 2, "arenas mapped");
    legend_item(out, &lx, LEGEND_Y, 'l', C_LARGE, 2, "large blocks (system allocator)");
    if (purges) {
        lx = PLOT_X;
        legend_item(out, &lx, LEGEND_Y + 16, 'd', C_ARENA, 2,
                    "arenas mapped less the pages of pools returned");
        legend_item(out, &lx, LEGEND_Y + 16, 'v', C_PURGE, 1,
                    "empty pools' pages given back to the OS (-bytes)");
    }
    y_axis(out, &ys, "bytes");
    x_axis(out, xs, top, h, 1);
    if (purges)
        markers(out, s, n, xs, top, h, purged, purge_words, "purge", 44);

    double x0 = round1(xpix(xs, s[0].elapsed_ms)), xn = round1(xpix(xs, s[n - 1].elapsed_ms));
    double base = ypix(&ys, 0);
    line_writer lw = {out, 0, 0, 0, 0, 0};
    fputs("<polygon fill=\"" C_ALLOC "\" fill-opacity=\"0.8\" points=\"", out);
    trace(&lw, s, n, xs, &ys, g_alloc, NULL, 0);
    lw_add(&lw, xn, base);
    lw_add(&lw, x0, base);
    lw_finish(&lw);
    fputs("\"><title>bytes in allocated blocks (small and medium)</title></polygon>\n", out);

    line_writer lw2 = {out, 0, 0, 0, 0, 0};
    fputs("<polygon fill=\"" C_AVAIL "\" fill-opacity=\"0.9\" points=\"", out);
    trace(&lw2, s, n, xs, &ys, g_alloc, g_avail, 0);
    trace(&lw2, s, n, xs, &ys, g_alloc, NULL, 1);
    lw_finish(&lw2);
    fputs("\"><title>bytes in available blocks: free blocks of the pools in use</title>"
          "</polygon>\n", out);

    polyline(out, s, n, xs, &ys, g_arena_bytes,
             "class=\"arena-bytes\" stroke=\"" C_ARENA "\" stroke-width=\"1.8\"");
    if (purges)
        polyline(out, s, n, xs, &ys, g_resident_arena_bytes,
                 "class=\"arena-resident-bytes\" stroke=\"" C_ARENA "\" stroke-width=\"1.5\" "
                 "stroke-dasharray=\"5 3\"");
    polyline(out, s, n, xs, &ys, g_large,
             "class=\"large-bytes\" stroke=\"" C_LARGE "\" stroke-width=\"1.8\"");
    frame(out, top, h);
    fputs("</svg>\n", out);
}

/* ---- the heat map of blocks in use ---- */

typedef struct {
    int cls;
    size_t size, peak;
    double peak_bytes, peak_ms;
} heat_row;

static int by_peak_bytes(const void *a, const void *b)
{
    const heat_row *x = a, *y = b;
    if (x->peak_bytes != y->peak_bytes)
        return x->peak_bytes < y->peak_bytes ? 1 : -1;
    return x->cls - y->cls;
}

static int by_class(const void *a, const void *b)
{
    return ((const heat_row *)a)->cls - ((const heat_row *)b)->cls;
}

static size_t blocks_of(const tool_snapshot *s, int cls)
{
    size_t nsmall = s->st.num_classes;
    if ((size_t)cls < nsmall)
        return s->st.classes[cls].blocks_in_use;
    return s->st.medium.classes[(size_t)cls - nsmall].blocks_in_use;
}

/* A run of equal-coloured pixels waiting to be written as one rect. */
typedef struct {
    FILE *out;
    int y, h, left, right;
    char colour[16];
} cell_run;

static void run_flush(cell_run *r)
{
    if (r->right > r->left && r->colour[0])
        fprintf(r->out, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\"/>", r->left,
                r->y, r->right - r->left, r->h, r->colour);
    r->left = r->right = 0;
    r->colour[0] = '\0';
}

static void run_add(cell_run *r, int left, int right, const char *colour)
{
    if (r->right == left && strcmp(r->colour, colour) == 0) {
        r->right = right;
        return;
    }
    run_flush(r);
    r->left = left;
    r->right = right;
    snprintf(r->colour, sizeof r->colour, "%s", colour);
}

static void heat_row_cells(FILE *out, const tool_snapshot *s, size_t n, const xscale *xs,
                           const heat_row *row, int y, int h)
{
    cell_run run = {out, y, h, 0, 0, ""};
    int gl = 0, gr = 0, open = 0;
    size_t gmax = 0, gidx = 0;
    /* Each sample owns the stretch from halfway after the one before to
     * halfway before the next; the samples whose stretches fall on one
     * pixel are merged, keeping the largest count. */
    for (size_t i = 0; i <= n; i++) {
        int l = 0, r = 0;
        size_t v = 0;
        if (i < n) {
            double a = i == 0 ? s[0].elapsed_ms : (s[i - 1].elapsed_ms + s[i].elapsed_ms) / 2;
            double b = i == n - 1 ? s[i].elapsed_ms : (s[i].elapsed_ms + s[i + 1].elapsed_ms) / 2;
            l = (int)floor(xpix(xs, a));
            r = (int)floor(xpix(xs, b));
            if (r <= l)
                r = l + 1;
            v = blocks_of(&s[i], row->cls);
            if (open && l < gr) {
                if (r > gr)
                    gr = r;
                if (v > gmax)
                    gmax = v, gidx = i;
                continue;
            }
        }
        if (open) {
            /* Twenty shades are as many as the eye tells apart here, and
             * fewer colours let neighbouring cells merge. */
            char col[16] = "";
            if (gmax > 0)
                page_class_color(&s[gidx], row->cls,
                                 ceil((double)gmax / (double)row->peak * 20) / 20, col,
                                 sizeof col);
            run_add(&run, gl, gr, col);
        }
        open = 1;
        gl = l;
        gr = r;
        gmax = v;
        gidx = i;
    }
    run_flush(&run);
}

static void heat_map(FILE *out, const tool_snapshot *s, size_t n, const xscale *xs)
{
    size_t nsmall = s[0].st.num_classes, nmed = s[0].st.medium.num_classes;
    if (nsmall > SOMA_NUM_CLASSES)
        nsmall = SOMA_NUM_CLASSES;
    if (nmed > SOMA_MAX_MEDIUM_CLASSES)
        nmed = SOMA_MAX_MEDIUM_CLASSES;
    heat_row *rows = malloc((nsmall + nmed + 1) * sizeof *rows);
    if (rows == NULL) {
        fputs(P "(out of memory: the blocks-in-use chart is left out)</p>\n", out);
        return;
    }
    size_t nrows = 0;
    for (size_t c = 0; c < nsmall + nmed; c++) {
        heat_row r = {(int)c, tool_class_size(&s[0], (int)c), 0, 0, 0};
        for (size_t i = 0; i < n; i++) {
            size_t b = blocks_of(&s[i], (int)c);
            if (b > r.peak)
                r.peak = b, r.peak_ms = s[i].elapsed_ms;
        }
        if (r.peak == 0)
            continue;
        r.peak_bytes = (double)r.peak * (double)r.size;
        rows[nrows++] = r;
    }
    size_t left_out = 0;
    if (nrows > MAX_HEAT_ROWS) {
        qsort(rows, nrows, sizeof *rows, by_peak_bytes);
        left_out = nrows - MAX_HEAT_ROWS;
        nrows = MAX_HEAT_ROWS;
        qsort(rows, nrows, sizeof *rows, by_class);
    }
    if (nrows == 0) {
        fputs(P "No block was in use in soma's pools in any snapshot.</p>\n", out);
        free(rows);
        return;
    }
    int rh = nrows <= 20 ? 15 : 12;
    int grid_h = (int)nrows * rh;
    int height = PLOT_TOP + grid_h + AXIS_BELOW + (left_out ? 18 : 0);
    svg_open(out, height, "blocks in use per class over time");

    char col[16];
    int lx = PLOT_X;
    page_text(out, lx, LEGEND_Y, 1, 11, NULL, NULL, "#333",
              "blocks in use, as a share of the class's peak:");
    lx += 258;
    static const double shades[] = {0.1, 0.25, 0.5, 0.75, 1.0};
    for (int i = 0; i < 5; i++) {
        page_class_color(&s[0], (int)(nsmall / 3), shades[i], col, sizeof col);
        fprintf(out, "<rect x=\"%d\" y=\"%d\" width=\"26\" height=\"11\" fill=\"%s\"/>\n",
                lx + i * 28, LEGEND_Y - 9, col);
        page_text(out, lx + i * 28 + 13, LEGEND_Y + 11, 1, 9, NULL, "middle", "#555", "%d%%",
                  (int)(shades[i] * 100));
    }
    lx += 5 * 28 + 12;
    fprintf(out, "<rect x=\"%d\" y=\"%d\" width=\"26\" height=\"11\" fill=\"#ffffff\" "
                 "stroke=\"#bbb\"/>\n", lx, LEGEND_Y - 9);
    page_text(out, lx + 32, LEGEND_Y, 1, 11, NULL, NULL, "#333", "none");
    lx += 76;
    page_text(out, lx, LEGEND_Y, 1, 11, NULL, NULL, "#333",
              "hue: block size (blue 16 B to red %zu B, violet to magenta medium)",
              tool_class_size(&s[0], (int)nsmall - 1));

    for (size_t k = 0; k < nrows; k++) {
        const heat_row *row = &rows[k];
        int y = PLOT_TOP + (int)k * rh;
        char a[SOMA_TEXT_COMMAS_LEN], b[SOMA_TEXT_COMMAS_LEN], t[32], sz[32];
        fprintf(out, "<g class=\"heat-row\"><title>class %d (%zu-byte blocks): at most %s in use "
                     "(%s), at %s</title>\n",
                row->cls, row->size, commas(a, row->peak),
                human_bytes(sz, sizeof sz, row->peak_bytes), human_ms(t, sizeof t, row->peak_ms));
        fprintf(out, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>",
                PLOT_X, y, PLOT_W, rh - 1);
        heat_row_cells(out, s, n, xs, row, y, rh - 1);
        page_text(out, PLOT_X - 6, y + rh - 4, 1, 11, NULL, "end", "#333", "class %d (%zu B)",
                  row->cls, row->size);
        page_text(out, PLOT_X + PLOT_W + 6, y + rh - 4, 1, 11, NULL, NULL, "#333", "peak %s",
                  commas(b, row->peak));
        fputs("</g>\n", out);
    }
    frame(out, PLOT_TOP, grid_h);
    x_axis(out, xs, PLOT_TOP, grid_h, 0);
    if (left_out)
        page_text(out, PLOT_X, height - 4, 1, 11, NULL, NULL, "#333",
                  "%zu more class%s had blocks in use and %s left out: shown are the %d with the "
                  "largest peak bytes.", left_out, left_out == 1 ? "" : "es",
                  left_out == 1 ? "is" : "are", MAX_HEAT_ROWS);
    fputs("</svg>\n", out);
    free(rows);
}

/* ---- the page ---- */

typedef struct {
    size_t samples, peak_arenas, reclaimed, purged;
    int has_exit;
} proc_summary;

static proc_summary summarise(const page_process *p)
{
    proc_summary sum = {0, 0, 0, 0, 0};
    for (size_t i = 0; i < p->n; i++) {
        const tool_snapshot *s = &p->snaps[i];
        size_t a = (size_t)g_arenas(s), hw = (size_t)g_highwater(s);
        if (strcmp(s->reason, "sample") == 0)
            sum.samples++;
        if (strcmp(s->reason, "exit") == 0)
            sum.has_exit = 1;
        if (a > sum.peak_arenas)
            sum.peak_arenas = a;
        if (hw > sum.peak_arenas)
            sum.peak_arenas = hw;
        if (reclaimed(s) > sum.reclaimed)
            sum.reclaimed = reclaimed(s);
        if (purged(s) > sum.purged)
            sum.purged = purged(s);
    }
    return sum;
}

static void heading_text(FILE *out, const tool_snapshot *s)
{
    fprintf(out, "pid %ld: ", s->pid);
    page_escape(out, s->program[0] ? s->program : "(unknown program)");
}

static void explain(FILE *out, const page_process *procs, size_t nprocs)
{
    const tool_snapshot *g = NULL;
    for (size_t i = 0; i < nprocs && g == NULL; i++)
        if (procs[i].n > 0)
            g = &procs[i].snaps[0];
    char arena[32] = "1 MiB", pool[32] = "16 KiB", medium_max[32] = "8,144";
    size_t threshold = SOMA_SMALL_THRESHOLD;
    long decay = g ? g->decay_ms : 0;
    if (g) {
        human_bytes(arena, sizeof arena, (double)g->st.arena_size);
        human_bytes(pool, sizeof pool, (double)g->st.pool_size);
        if (g->st.medium.max_size)
            commas(medium_max, g->st.medium.max_size);
        if (g->st.threshold)
            threshold = g->st.threshold;
    }
    fprintf(out,
            "<p style=\"font-size:14px; max-width:1100px; line-height:1.45\"><b>How to read this "
            "page.</b> soma serves requests of up to %zu bytes (small) and up to %s bytes "
            "(medium) from pools of %s, each pool holding blocks of one size, and cuts the pools "
            "from arenas of %s that it maps from the OS and gives back once all their pools are "
            "empty. Each process has a section. <b>Arenas</b>: how many arenas were mapped at "
            "each sample (small, medium and their sum, as steps) and the high-water mark "
            "(dashed); the grey dotted line counts those with no block in use, kept for "
            "reuse: they go back to the OS once they have been empty for %ld ms "
            "(SOMA_ARENA_DECAY_MS), checked when the program next frees or takes a pool and, "
            "with SOMA_BACKGROUND_PURGE (the override's default), by a thread of soma's when "
            "they expire; a green vertical marker is "
            "a moment arenas were given back to the OS "
            "(reclaimed), labelled <span style=\"white-space:nowrap\">&minus;<i>k</i></span> "
            "with how many since the sample before. "
            "<b>Bytes</b>: the arenas' memory (outline) and how much of it is in allocated "
            "blocks and in free blocks of the pools in use (the rest is empty pools and "
            "headers); large blocks come from the system allocator, outside the arenas. "
            "An empty pool's pages go back to the OS too once it has been empty for the decay "
            "time, while its arena stays: where that happened, a green marker labelled with the "
            "bytes given back since the sample before, and a dashed line, the arenas' bytes less "
            "those pages (the rest of what they hold may be resident). "
            "<b>Blocks in use per class</b>: a row per block size over time, its colour the "
            "block size (blue for 16 bytes to red for %zu, violet to magenta for the medium "
            "classes), its shade how many blocks are in use against that class's own peak "
            "(pale: few, deep: at the peak). <b>The arena map</b> draws every arena of the last "
            "snapshot with detail as a row of its pools in the same colours, the shade saying "
            "how full each pool is. Hover over a marker, a row or a pool for the figures. The "
            "horizontal axis is milliseconds since soma started in the process.</p>\n",
            threshold, medium_max, pool, arena, decay, threshold);
}

static void summary_list(FILE *out, const page_process *procs, size_t nprocs)
{
    fputs("<ul style=\"font-size:14px\">\n", out);
    for (size_t p = 0; p < nprocs; p++) {
        const page_process *pr = &procs[p];
        fprintf(out, "<li><a href=\"#p%zu\">", p);
        if (pr->n == 0) {
            fprintf(out, "process %zu</a>: no snapshot</li>\n", p + 1);
            continue;
        }
        heading_text(out, &pr->snaps[0]);
        proc_summary sum = summarise(pr);
        const tool_snapshot *last = &pr->snaps[pr->n - 1];
        char a[SOMA_TEXT_COMMAS_LEN], b[SOMA_TEXT_COMMAS_LEN], c[SOMA_TEXT_COMMAS_LEN];
        char t[32], m[32];
        fprintf(out, "</a>: %s sample%s%s, %s recorded; peak %s arena%s (%s); %s arena%s "
                     "reclaimed in all",
                commas(a, sum.samples), sum.samples == 1 ? "" : "s",
                sum.has_exit ? " and the exit snapshot" : "",
                human_ms(t, sizeof t, last->elapsed_ms), commas(b, sum.peak_arenas),
                sum.peak_arenas == 1 ? "" : "s",
                human_bytes(m, sizeof m, (double)sum.peak_arenas * (double)last->st.arena_size),
                commas(c, sum.reclaimed), sum.reclaimed == 1 ? "" : "s");
        if (sum.purged > 0)
            fprintf(out, "; the pages of %s empty pool%s (%s) returned in all", commas(a, sum.purged),
                    sum.purged == 1 ? "" : "s",
                    human_bytes(m, sizeof m, (double)sum.purged * (double)last->st.pool_size));
        fputs("</li>\n", out);
    }
    fputs("</ul>\n", out);
}

static void map_section(FILE *out, const page_process *pr)
{
    const tool_snapshot *d = NULL;
    for (size_t i = pr->n; i-- > 0;)
        if (pr->snaps[i].has_detail) {
            d = &pr->snaps[i];
            break;
        }
    if (d == NULL) {
        fputs(P "No snapshot of this process has the arena detail, so there is no arena map "
              "(the detail comes with the exit snapshot, SOMA_SHOW_STATS=1).</p>\n", out);
        return;
    }
    int at_exit = strcmp(d->reason, "exit") == 0;
    char t[32], title[700];
    fprintf(out, H3 "Arenas and pools %s</h3>\n", at_exit ? "at exit" : "at the last snapshot");
    /* The program is on the map's own second line: the title stays short
     * enough for the map's width. */
    snprintf(title, sizeof title, "Arenas and pools of pid %ld, %s (%s)", d->pid,
             at_exit ? "at exit" : d->reason, human_ms(t, sizeof t, d->elapsed_ms));
    page_map_svg(out, d, title, 0, 1000, 0);
}

static void process_section(FILE *out, const page_process *pr, size_t index)
{
    fprintf(out, "<section id=\"p%zu\">\n<h2 style=\"font-size:18px; border-top:1px solid #ccc; "
                 "padding-top:12px; margin-top:32px\">", index);
    if (pr->n == 0) {
        fprintf(out, "process %zu</h2>\n" P "No snapshot was recorded for this process.</p>\n"
                     "</section>\n", index + 1);
        return;
    }
    heading_text(out, &pr->snaps[0]);
    fputs("</h2>\n", out);
    const tool_snapshot *s = pr->snaps;
    size_t n = pr->n;
    if (n < 2) {
        char t[32];
        fputs(P "Only one snapshot was recorded (", out);
        page_escape(out, s[0].reason[0] ? s[0].reason : "no reason given");
        fprintf(out, ", at %s), too few to draw anything over time; sample with "
                     "SOMA_STATS_INTERVAL_MS to see the charts.</p>\n",
                human_ms(t, sizeof t, s[0].elapsed_ms));
    } else {
        xscale xs = make_xscale(s, n);
        fprintf(out, H3 "Arenas</h3>\n");
        arenas_chart(out, s, n, &xs);
        fprintf(out, H3 "Bytes</h3>\n");
        bytes_chart(out, s, n, &xs);
        fprintf(out, H3 "Blocks in use per class</h3>\n");
        heat_map(out, s, n, &xs);
    }
    map_section(out, pr);
    fputs("</section>\n", out);
}

void page_timeline_html(FILE *out, const char *title, const char *note, const page_process *procs,
                        size_t nprocs)
{
    if (title == NULL)
        title = "soma timeline";
    page_html_begin(out, title);
    fputs("<h1>", out);
    page_escape(out, title);
    fputs("</h1>\n", out);
    if (note) {
        fputs("<p class=\"note\">", out);
        page_escape(out, note);
        fputs("</p>\n", out);
    }
    explain(out, procs, nprocs);
    if (nprocs == 0)
        fputs(P "No process was recorded.</p>\n", out);
    else
        summary_list(out, procs, nprocs);
    for (size_t p = 0; p < nprocs; p++)
        process_section(out, &procs[p], p);
    page_html_end(out);
}
