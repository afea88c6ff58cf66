/*
 * figures.h: the figures the CLI shows for the whole process.  soma_stats
 * keeps the small arenas' figures at its top level and the medium arenas'
 * in .medium (the dump prints them apart); where a page or a chart shows
 * one number for both, the process's figure is small + medium, and that
 * sum is taken here only.
 */
#ifndef SOMA_TOOL_FIGURES_H
#define SOMA_TOOL_FIGURES_H

#include <stddef.h>

#include "soma.h"

/* The figures that the small arenas and the medium ones both have (every
 * member of soma_stats.medium but its geometry and class table), each the
 * sum of the two.  arenas_highwater is the sum of the two marks, which may
 * have been reached at different times. */
#define TOOL_SUMMED_FIGURES(X)                                                                     \
    X(arenas_allocated_total)                                                                      \
    X(arenas_reclaimed)                                                                            \
    X(arenas_highwater)                                                                            \
    X(arenas_current)                                                                              \
    X(arenas_empty)                                                                                \
    X(arena_bytes)                                                                                 \
    X(bytes_in_allocated_blocks)                                                                   \
    X(bytes_in_available_blocks)                                                                   \
    X(unused_pools)                                                                                \
    X(unused_pool_bytes)                                                                           \
    X(bytes_lost_to_pool_headers)                                                                  \
    X(bytes_lost_to_quantization)                                                                  \
    X(total)

typedef struct {
#define X(m) size_t m;
    TOOL_SUMMED_FIGURES(X)
#undef X
    /* soma_stats.returned keeps the two apart under names of its own: the
     * unused pools whose pages went back, and their bytes. */
    size_t returned_pools, returned_bytes;
} tool_figures;

/* The process's figures of st: small + medium. */
tool_figures tool_process_figures(const soma_stats *st);

/* Blocks in use in the small classes' pools. */
size_t tool_small_blocks_in_use(const soma_stats *st);
/* Blocks in use in every pool, small classes and medium. */
size_t tool_blocks_in_use(const soma_stats *st);

#endif
