/*
 * figures.c: the process's figures, small + medium (figures.h).
 */
#include "figures.h"

tool_figures tool_process_figures(const soma_stats *st)
{
    tool_figures f;
#define X(m) f.m = st->m + st->medium.m;
    TOOL_SUMMED_FIGURES(X)
#undef X
    f.returned_pools = st->returned.pools + st->returned.medium_pools;
    f.returned_bytes = st->returned.pool_bytes + st->returned.medium_pool_bytes;
    return f;
}

size_t tool_small_blocks_in_use(const soma_stats *st)
{
    size_t n = 0;
    for (size_t c = 0; c < st->num_classes; c++)
        n += st->classes[c].blocks_in_use;
    return n;
}

size_t tool_blocks_in_use(const soma_stats *st)
{
    size_t n = tool_small_blocks_in_use(st);
    for (size_t c = 0; c < st->medium.num_classes; c++)
        n += st->medium.classes[c].blocks_in_use;
    return n;
}
