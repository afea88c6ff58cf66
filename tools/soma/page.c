/*
 * page.c: SVG and HTML for soma's pictures (page.h).  The arena map is
 * laid out before it is written (the <svg> element states its size), then
 * written row by row: one <rect> per pool.  A thousand arenas make 64,000
 * rectangles, a few MB of SVG that a browser draws in a moment; per-pool
 * tooltips are left out above 200 arenas to keep it at that.  page_text
 * writes every line of text of the pictures, the timeline's (timeline.c)
 * too; the figures that add small and medium come from figures.c.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "figures.h"
#include "page.h"
#include "common/text.h"

#define LABEL_W 178 /* the arena labels' column */
#define MARGIN 12
/* A pool whose pages went back to the OS: very pale, dotted, a dashed
 * border, told apart from an empty resident pool (white, solid border). */
#define RETURNED_ID "returned"
#define RETURNED_ATTRS                                                                             \
    "fill=\"url(#" RETURNED_ID ")\" stroke=\"#8a8a8a\" stroke-width=\"0.6\" stroke-dasharray=\"2 1\""

void page_escape(FILE *out, const char *text)
{
    const unsigned char *p = (const unsigned char *)text;
    size_t left = strlen(text);
    while (left > 0) {
        size_t n = soma_text_utf8_len(p, left);
        if (n == 0) { /* XML must be UTF-8: U+FFFD for a stray byte */
            fputs("\xef\xbf\xbd", out);
            p++, left--;
            continue;
        }
        switch (*p) {
        case '&': fputs("&amp;", out); break;
        case '<': fputs("&lt;", out); break;
        case '>': fputs("&gt;", out); break;
        case '"': fputs("&quot;", out); break;
        default:
            if (*p >= 0x20 || *p == '\n' || *p == '\t')
                fwrite(p, 1, n, out);
        }
        p += n, left -= n;
    }
}

void page_text(FILE *out, double x, double y, int decimals, int size, const char *weight,
               const char *anchor, const char *fill, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(out, "<text x=\"%.*f\" y=\"%.*f\" font-size=\"%d\"", decimals, x, decimals, y, size);
    if (weight)
        fprintf(out, " font-weight=\"%s\"", weight);
    if (anchor)
        fprintf(out, " text-anchor=\"%s\"", anchor);
    if (fill)
        fprintf(out, " fill=\"%s\"", fill);
    fputc('>', out);
    page_escape(out, buf);
    fputs("</text>\n", out);
}

static void hsl(double h, double s, double l, char *out, size_t len)
{
    double c = (1 - fabs(2 * l - 1)) * s, hp = fmod(h, 360) / 60;
    double x = c * (1 - fabs(fmod(hp, 2) - 1)), m = l - c / 2, r = 0, g = 0, b = 0;
    if (hp < 1) r = c, g = x;
    else if (hp < 2) r = x, g = c;
    else if (hp < 3) g = c, b = x;
    else if (hp < 4) g = x, b = c;
    else if (hp < 5) r = x, b = c;
    else r = c, b = x;
    snprintf(out, len, "#%02x%02x%02x", (int)lround((r + m) * 255), (int)lround((g + m) * 255),
             (int)lround((b + m) * 255));
}

void page_class_color(const tool_snapshot *s, int cls, double full, char *out, size_t len)
{
    size_t nsmall = s->st.num_classes, nmed = s->st.medium.num_classes;
    double hue, sat;
    if (cls < 0) {
        snprintf(out, len, "#999999");
        return;
    }
    if ((size_t)cls < nsmall) { /* blue (16 B) to red (512 B) */
        hue = 215.0 - 215.0 * (double)cls / (double)(nsmall > 1 ? nsmall - 1 : 1);
        sat = 0.72;
    } else { /* violet to magenta */
        size_t m = (size_t)cls - nsmall;
        hue = 265.0 + 60.0 * (double)m / (double)(nmed > 1 ? nmed - 1 : 1);
        sat = 0.45;
    }
    if (full < 0) full = 0;
    if (full > 1) full = 1;
    hsl(hue, sat, 0.88 - 0.50 * full, out, len);
}

void page_html_begin(FILE *out, const char *title)
{
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>", out);
    page_escape(out, title);
    fputs("</title>\n<style>\n"
          "body { font-family: sans-serif; margin: 16px; color: #222; background: #fff; }\n"
          "h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 24px; }\n"
          "p.note { color: #555; font-size: 13px; max-width: 900px; }\n"
          ".row { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }\n"
          "svg text { font-family: sans-serif; }\n"
          "</style>\n</head>\n<body>\n",
          out);
}

void page_html_end(FILE *out)
{
    fputs("</body>\n</html>\n", out);
}

void page_svg_begin(FILE *out, int width, int height, int standalone)
{
    fprintf(out, "<svg %swidth=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\">\n",
            standalone ? "xmlns=\"http://www.w3.org/2000/svg\" " : "", width, height, width,
            height);
}

static void commas(char *buf, size_t value)
{
    soma_text_commas(buf, SOMA_TEXT_COMMAS_LEN, value);
}

/* Row geometry for n rows: height, gap, and every how many rows a label. */
static void row_layout(size_t n, int *rh, int *label_every)
{
    if (n <= 40) *rh = 14;
    else if (n <= 100) *rh = 9;
    else if (n <= 300) *rh = 5;
    else *rh = 3;
    *label_every = *rh >= 9 ? 1 : (int)ceil(13.0 / *rh);
}

/* The totals in five short lines, for a map among others (soma demo --html). */
static int totals_compact(FILE *out, const tool_snapshot *s, int y)
{
    const soma_stats *st = &s->st;
    tool_figures f = tool_process_figures(st);
    char a[32], b[32], c[32];
    page_text(out, MARGIN, y, 0, 11, NULL, NULL, NULL,
              "arenas mapped: %zu small + %zu medium (highwater %zu + %zu)", st->arenas_current,
              st->medium.arenas_current, st->arenas_highwater, st->medium.arenas_highwater);
    page_text(out, MARGIN, y + 14, 0, 11, NULL, NULL, NULL,
              "arenas reclaimed so far: %zu small, %zu medium", st->arenas_reclaimed,
              st->medium.arenas_reclaimed);
    commas(a, tool_blocks_in_use(st));
    commas(b, f.bytes_in_allocated_blocks);
    page_text(out, MARGIN, y + 28, 0, 11, NULL, NULL, NULL, "blocks in use: %s (%s bytes)", a, b);
    commas(a, f.bytes_in_available_blocks);
    commas(b, f.unused_pool_bytes);
    commas(c, f.returned_bytes);
    page_text(out, MARGIN, y + 42, 0, 11, NULL, NULL, NULL,
              "available blocks: %s bytes; unused pools: %s (%s returned)", a, b, c);
    commas(c, f.total);
    page_text(out, MARGIN, y + 56, 0, 11, "bold", NULL, NULL, "Total in arenas: %s bytes", c);
    return 70;
}

static int totals(FILE *out, const tool_snapshot *s, int y)
{
    const soma_stats *st = &s->st;
    tool_figures f = tool_process_figures(st);
    char a[32], b[32], c[32], d[32], e[32];
    page_text(out, MARGIN, y, 0, 12, NULL, NULL, NULL,
              "small arenas: %zu mapped now, highwater %zu, %zu reclaimed of %zu ever mapped;  "
              "medium arenas: %zu now, %zu reclaimed of %zu", st->arenas_current,
              st->arenas_highwater, st->arenas_reclaimed, st->arenas_allocated_total,
              st->medium.arenas_current, st->medium.arenas_reclaimed,
              st->medium.arenas_allocated_total);
    commas(a, f.bytes_in_allocated_blocks);
    commas(b, f.bytes_in_available_blocks);
    commas(c, f.unused_pool_bytes);
    commas(d, f.bytes_lost_to_pool_headers + f.bytes_lost_to_quantization +
                  st->bytes_lost_to_arena_alignment);
    commas(e, f.total);
    page_text(out, MARGIN, y + 16, 0, 12, NULL, NULL, NULL,
              "bytes in allocated blocks %s, in available blocks %s, in unused pools %s, "
              "lost to headers and quantization %s: Total %s", a, b, c, d, e);
    commas(a, tool_blocks_in_use(st));
    commas(b, st->large.bytes_in_use);
    commas(c, f.returned_bytes);
    page_text(out, MARGIN, y + 32, 0, 12, NULL, NULL, NULL,
              "blocks in use in the pools: %s;  large blocks (soma's mappings): %zu in "
              "use, %s bytes;  unused pools with pages returned: %zu, %s bytes", a,
              st->large.blocks_in_use, b, f.returned_pools, c);
    return 46;
}

/* The legend; compact: two narrower rows that fit a small map.  Returns
 * its height. */
static int legend(FILE *out, const tool_snapshot *s, int y, int compact)
{
    char col[16];
    int x = MARGIN, sw = compact ? 5 : 9;
    page_text(out, x, y + 10, 0, 12, "bold", NULL, NULL, "block size");
    x += 80;
    size_t nsmall = s->st.num_classes, nmed = s->st.medium.num_classes;
    for (size_t c = 0; c < nsmall + nmed; c++) {
        page_class_color(s, (int)c, 0.8, col, sizeof col);
        int cx = x + (int)c * sw + (c >= nsmall ? 26 : 0);
        fprintf(out, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"12\" fill=\"%s\"><title>class "
                     "%zu: %zu bytes</title></rect>\n",
                cx, y, sw, col, c, tool_class_size(s, (int)c));
        if (c == 0 || c == nsmall - 1 || c == nsmall || c == nsmall + nmed - 1 ||
            (c < nsmall && (c + 1) % 8 == 0))
            page_text(out, cx - 2, y + 25, 0, 10, NULL, NULL, NULL, "%zu",
                      tool_class_size(s, (int)c));
    }
    y += 40;
    int top = y - 40;
    x = MARGIN;
    page_text(out, x, y + 10, 0, 12, "bold", NULL, NULL, "how full");
    x += 80;
    static const double shades[] = {0.05, 0.25, 0.5, 0.75, 1.0};
    for (size_t i = 0; i < 5; i++) {
        page_class_color(s, (int)(nsmall / 3), shades[i], col, sizeof col);
        fprintf(out, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"12\" fill=\"%s\"/>\n",
                x + (int)i * 22, y, 20, col);
        page_text(out, x + (int)i * 22 + 2, y + 25, 0, 10, NULL, NULL, NULL, "%d%%",
                  (int)(shades[i] * 100));
    }
    if (compact) { /* the three kinds of unused space on a row of their own */
        y += 34;
        x = MARGIN;
    } else {
        x += 5 * 22 + 24;
    }
    fprintf(out, "<rect x=\"%d\" y=\"%d\" width=\"20\" height=\"12\" fill=\"#ffffff\" "
                 "stroke=\"#aaa\"/>\n", x, y);
    page_text(out, x + 26, y + 10, 0, 12, NULL, NULL, NULL, "empty pool");
    x += 100;
    fprintf(out, "<rect x=\"%d\" y=\"%d\" width=\"20\" height=\"12\" " RETURNED_ATTRS "/>\n", x,
            y);
    page_text(out, x + 26, y + 10, 0, 12, NULL, NULL, NULL,
              compact ? "returned" : "pages returned");
    x += compact ? 80 : 118;
    fprintf(out, "<rect x=\"%d\" y=\"%d\" width=\"20\" height=\"12\" fill=\"#e4e4e4\"/>\n", x, y);
    page_text(out, x + 26, y + 10, 0, 12, NULL, NULL, NULL, "never carved");
    x += 112;
    fprintf(out, "<rect x=\"%d\" y=\"%d\" width=\"20\" height=\"12\" fill=\"url(#hatch)\" "
                 "stroke=\"#bbb\"/>\n", x, y);
    page_text(out, x + 26, y + 10, 0, 12, NULL, NULL, NULL,
              compact ? "reclaimed arena" : "reclaimed arena (memory returned)");
    return y + 30 - top;
}

static void arena_row(FILE *out, const tool_snapshot *s, const tool_arena *a, int x0, int y,
                      int cw, int rh, int label, int titles, int compact)
{
    char col[16];
    unsigned ppa = s->pools_per_arena ? s->pools_per_arena : 64;
    int gap = rh >= 5 ? 1 : 0;
    int font = rh >= 11 ? 11 : rh >= 9 ? 9 : 10;
    if (label && compact)
        page_text(out, MARGIN, y + rh - (rh >= 9 ? 2 : 0), 0, font, NULL, NULL, NULL, "%llx %s",
                  a->address, a->reclaimed ? "r" : a->medium ? "M" : "S");
    else if (label)
        page_text(out, MARGIN, y + rh - (rh >= 9 ? 2 : 0), 0, font, NULL, NULL, NULL, "0x%llx %s%s",
                  a->address, a->reclaimed ? "reclaimed" : a->medium ? "medium" : "small",
                  a->reclaimed ? "" : a->explicit_heap ? " (heap)" : "");
    if (a->reclaimed) {
        fprintf(out, "<rect x=\"%d\" y=\"%d\" width=\"%u\" height=\"%d\" fill=\"url(#hatch)\">"
                     "<title>0x%llx: reclaimed arena slot (memory given back to the OS)</title>"
                     "</rect>\n", x0, y, ppa * (unsigned)cw - 1, rh - gap, a->address);
        return;
    }
    size_t used = 0, empty = 0, returned = 0;
    for (size_t p = 0; p < a->npools; p++) {
        used += a->pools[p].used > 0;
        empty += a->pools[p].used == 0;
        returned += a->pools[p].returned;
    }
    /* The row's own tooltip, on what has none of its own (its label). */
    if (titles)
        fprintf(out, "<g class=\"arena\"><title>0x%llx, a %s arena's pools: %zu in use, %zu empty "
                     "(%zu of them with pages returned to the OS), %u never carved</title>\n",
                a->address, a->medium ? "medium" : "small", used, empty, returned, a->fresh);
    for (size_t p = 0; p < a->npools; p++) {
        const tool_pool *pool = &a->pools[p];
        size_t cap = tool_capacity(s, pool->cls);
        int x = x0 + (int)p * cw;
        if (pool->returned) {
            fprintf(out, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" " RETURNED_ATTRS ">",
                    x, y, cw - 1, rh - gap);
        } else {
            if (pool->used == 0)
                snprintf(col, sizeof col, "#ffffff");
            else
                page_class_color(s, pool->cls, cap ? (double)pool->used / (double)cap : 1, col,
                                 sizeof col);
            fprintf(out, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\"%s>", x,
                    y, cw - 1, rh - gap, col,
                    pool->used == 0 ? " stroke=\"#ccc\" stroke-width=\"0.5\"" : "");
        }
        if (titles) {
            if (pool->used)
                fprintf(out, "<title>0x%llx pool %zu: class %d (%zu bytes), %u of %zu blocks in "
                             "use</title>", a->address + p * s->st.pool_size, p, pool->cls,
                        tool_class_size(s, pool->cls), pool->used, cap);
            else if (pool->returned)
                fprintf(out, "<title>0x%llx pool %zu: empty, its pages returned to the OS (class "
                             "%d last)</title>", a->address + p * s->st.pool_size, p, pool->cls);
            else
                fprintf(out, "<title>0x%llx pool %zu: empty</title>",
                        a->address + p * s->st.pool_size, p);
        }
        fputs("</rect>\n", out);
    }
    if (a->fresh > 0)
        fprintf(out, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#e4e4e4\">"
                     "<title>%u pools never carved</title></rect>\n",
                x0 + (int)a->npools * cw, y, (int)a->fresh * cw - 1, rh - gap, a->fresh);
    if (titles)
        fputs("</g>\n", out);
}

static int map_svg(FILE *out, const tool_snapshot *s, const char *title, int cell,
                   size_t max_rows, int standalone, int compact)
{
    size_t n = s->narenas, shown = n < max_rows ? n : max_rows;
    int rh, every;
    row_layout(shown, &rh, &every);
    int cw = cell > 0 ? cell : (shown <= 100 ? 10 : 8);
    unsigned ppa = s->pools_per_arena ? s->pools_per_arena : 64;
    int x0 = compact ? 112 : LABEL_W;
    int grid_y = compact ? 138 : 118;
    int grid_h = (int)shown * rh + (shown == 0 ? 20 : 0);
    int width = x0 + (int)ppa * cw + MARGIN;
    if (width < (compact ? 440 : 800)) /* the legend's widest row */
        width = compact ? 440 : 800;
    int below = grid_y + grid_h + (shown < n ? 24 : 8) + (s->dropped ? 16 : 0);
    int height = below + (compact ? 114 : 80);
    page_svg_begin(out, width, height, standalone);
    /* Hatched: an arena gone back whole; dotted: a pool's pages gone back
     * (a dot every 3 pixels, so that the smallest cells show one). */
    fputs("<defs><pattern id=\"hatch\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" "
          "patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#f4f4f4\"/>"
          "<line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#b0b0b0\" stroke-width=\"2\"/>"
          "</pattern><pattern id=\"" RETURNED_ID "\" width=\"3\" height=\"3\" "
          "patternUnits=\"userSpaceOnUse\"><rect width=\"3\" height=\"3\" fill=\"#fbfbfb\"/>"
          "<rect width=\"1.2\" height=\"1.2\" fill=\"#9a9a9a\"/></pattern></defs>\n",
          out);
    fprintf(out, "<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", width, height);
    page_text(out, MARGIN, 22, 0, compact ? 14 : 16, "bold", NULL, NULL, "%s", title);
    if (compact)
        page_text(out, MARGIN, 40, 0, 11, NULL, NULL, NULL, "%.0f ms after start", s->elapsed_ms);
    else
        page_text(out, MARGIN, 42, 0, 12, NULL, NULL, NULL,
                  "pid %ld (%.50s), %s snapshot at %s, %.0f ms after start", s->pid, s->program,
                  s->reason, s->timestamp, s->elapsed_ms);
    if (compact)
        totals_compact(out, s, 58);
    else
        totals(out, s, 62);
    page_text(out, MARGIN, grid_y - 6, 0, 11, "bold", NULL, NULL,
              compact ? "arena" : "arena (by address)");
    page_text(out, x0, grid_y - 6, 0, 11, "bold", NULL, NULL,
              "its %u pools of %zu bytes, in address order", ppa, s->st.pool_size);
    if (n == 0)
        page_text(out, x0, grid_y + 14, 0, 12, NULL, NULL, NULL,
                  "no arena: nothing allocated in soma's pools");
    int titles = shown <= 200;
    for (size_t i = 0; i < shown; i++)
        arena_row(out, s, &s->arenas[i], x0, grid_y + (int)i * rh, cw, rh,
                  (int)(i % (size_t)every) == 0, titles, compact);
    if (shown < n) {
        size_t used = 0, full = 0, empty = 0, returned = 0, fresh = 0, live = 0;
        for (size_t i = shown; i < n; i++) {
            const tool_arena *a = &s->arenas[i];
            live += !a->reclaimed;
            fresh += a->fresh;
            for (size_t p = 0; p < a->npools; p++) {
                size_t cap = tool_capacity(s, a->pools[p].cls);
                returned += a->pools[p].returned;
                if (a->pools[p].used == 0) empty++;
                else if (a->pools[p].used >= cap) full++;
                else used++;
            }
        }
        page_text(out, MARGIN, grid_y + grid_h + 16, 0, 12, "bold", NULL, NULL,
                  "%zu of %zu arena rows drawn; the other %zu (%zu live) are summarised: %zu pools "
                  "full, %zu partly used, %zu empty (%zu with pages returned), %zu never carved",
                  shown, n, n - shown, live, full, used, empty, returned, fresh);
    }
    if (s->dropped)
        page_text(out, MARGIN, below - 4, 0, 11, NULL, NULL, NULL,
                  "(%zu arenas were mapped while the snapshot was taken and are not drawn)",
                  s->dropped);
    legend(out, s, below + 6, compact);
    fputs("</svg>\n", out);
    return height;
}

int page_map_svg(FILE *out, const tool_snapshot *s, const char *title, int cell, size_t max_rows,
                 int standalone)
{
    return map_svg(out, s, title, cell, max_rows, standalone, 0);
}

int page_map_svg_compact(FILE *out, const tool_snapshot *s, const char *title, size_t max_rows)
{
    return map_svg(out, s, title, 5, max_rows, 0, 1);
}
