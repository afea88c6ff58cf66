/*
 * page.h: the pictures soma draws (soma map, the timeline, soma demo
 * --html): SVG written straight to a FILE, and self-contained HTML pages
 * around it (no script, no network: styles inline, tooltips as SVG
 * <title> elements).
 *
 * Colours: a pool's hue says its block size (small classes from blue, 16
 * bytes, to red, 512 bytes; medium classes violet to magenta), its
 * lightness how full it is (pale: nearly empty, deep: full).  Empty pools
 * are white, those whose pages went back to the OS dotted with a dashed
 * border, never-carved ones light grey, reclaimed arenas hatched.
 */
#ifndef SOMA_TOOL_PAGE_H
#define SOMA_TOOL_PAGE_H

#include <stdio.h>

#include "snapshot.h"

/* text with & < > " escaped for XML/HTML */
void page_escape(FILE *out, const char *text);
/* "#rrggbb" for a pool of class cls that is `full` (0..1] full. */
void page_class_color(const tool_snapshot *s, int cls, double full, char *out, size_t len);
/* A <text> element at (x, y) holding the line fmt formats, escaped.  x and
 * y are written with `decimals` digits after the point (0: the map's whole
 * pixels; 1: the charts' tenths); font-weight (weight), text-anchor (anchor)
 * and fill are written where they are not NULL. */
void page_text(FILE *out, double x, double y, int decimals, int size, const char *weight,
               const char *anchor, const char *fill, const char *fmt, ...)
    __attribute__((format(printf, 9, 10)));
void page_html_begin(FILE *out, const char *title);
void page_html_end(FILE *out);
/* A standalone SVG document's opening tag (xmlns) of the given size. */
void page_svg_begin(FILE *out, int width, int height, int standalone);

/* The arena map of one snapshot (with detail) as an <svg> element: the
 * totals, every arena a row of its pools, a legend.  At most max_rows
 * arena rows are drawn (1000 for soma map); the rest are summarised in a
 * line that says so.  Up to 200 rows, every pool and every row has a
 * tooltip (a row's: its pools by state).  cell: the width of one pool in pixels (0: chosen
 * from the number of arenas).  Returns the height drawn. */
int page_map_svg(FILE *out, const tool_snapshot *s, const char *title, int cell, size_t max_rows,
                 int standalone);
/* The same, narrow (five-pixel pools, short labels and totals), for maps
 * shown side by side (soma demo --html). */
int page_map_svg_compact(FILE *out, const tool_snapshot *s, const char *title, size_t max_rows);

/* One process's life for the timeline: its snapshots in time order (samples
 * taken every interval, reason "sample", without detail; usually a last one
 * at exit, reason "exit", with detail). */
typedef struct {
    const tool_snapshot *snaps;
    size_t n;
} page_process;
/* A self-contained HTML page (inline SVG only: no script, no network) with, for
 * each process, charts over time and the arena map of its last snapshot that has
 * detail.  note: an optional paragraph under the title (may be NULL). */
void page_timeline_html(FILE *out, const char *title, const char *note, const page_process *procs, size_t nprocs);

#endif
