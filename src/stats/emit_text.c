/*
 * emit_text.c: a snapshot as text, in the exact layout of CPython 3.12's
 * sys._debugmallocstats(), so that whoever can read one can read the other:
 *
 *   Small block threshold = 512, in 32 size classes.
 *   <class table: one row per class with at least one pool in use>
 *   <arena counters, then where the arena bytes are, adding up to Total>
 *   <the arena map: nodes and the bytes they cost>
 *   <one line per registered object cache>
 *   [soma's medium blocks, in the same layout, if any medium arena was ever
 *    mapped, its large blocks (its own mappings), if it ever
 *    handed one out, and the unused pools whose pages went back to the OS,
 *    if any ever did: a program that never asks for more than 512 bytes
 *    and frees nothing for long gets CPython's dump and nothing else]
 *
 * The labels are the figures' own (common/stats_fields.h, through emit.c's
 * table), but for the lines whose label holds a figure ("15 arenas *
 * 1048576 bytes/arena"), as CPython's do.  The medium section's byte lines
 * keep CPython's words, as the section's title says what they are of.
 */
#include <stdio.h>

#include "stats/emit.h"

/* The class table: rows numbered from `first`, classes with no pool left out. */
static void classes(emit_t *e, const soma_class_stats *cls, size_t n, size_t first)
{
    soma__sink_put(e->sink, "class   size   num pools   blocks in use  avail blocks\n"
                            "-----   ----   ---------   -------------  ------------\n");
    for (size_t c = 0; c < n; c++) {
        const soma_class_stats *cs = &cls[c];
        if (cs->num_pools == 0)
            continue;
        soma__sink_printf(e->sink, "%5zu %6zu %11zu %15zu %13zu\n", first + c, cs->size,
                          cs->num_pools, cs->blocks_in_use, cs->avail_blocks);
    }
    soma__sink_put(e->sink, "\n");
}

/* The arena counters and the byte lines adding up to Total, for the small
 * arenas (CPython's) or the medium ones: the same figures of either
 * section (common/stats_fields.h). */
static void arena_lines(emit_t *e, const soma_stats *st, int medium)
{
#define F(m) (medium ? SOMA_F_medium_##m : SOMA_F_##m)
    char label[128];
    soma__emit_figure(e, st, F(arenas_allocated_total));
    soma__emit_figure(e, st, F(arenas_reclaimed));
    soma__emit_figure(e, st, F(arenas_highwater));
    soma__emit_figure(e, st, F(arenas_current));
    snprintf(label, sizeof label, "%zu arenas * %zu bytes/arena",
             soma__emit_value(st, F(arenas_current)), st->arena_size);
    soma__emit_line(e, label, soma__emit_value(st, F(arena_bytes)));
    soma__sink_put(e->sink, "\n");

    /* Byte lines: CPython's label for the value of this section. */
#define BYTES(m) soma__emit_line(e, soma__emit_fields[SOMA_F_##m].label, soma__emit_value(st, F(m)))
    BYTES(bytes_in_allocated_blocks);
    BYTES(bytes_in_available_blocks);
    snprintf(label, sizeof label, "%zu unused pools * %zu bytes",
             soma__emit_value(st, F(unused_pools)), st->pool_size);
    soma__emit_line(e, label, soma__emit_value(st, F(unused_pool_bytes)));
    BYTES(bytes_lost_to_pool_headers);
    BYTES(bytes_lost_to_quantization);
    if (!medium) /* CPython's line; soma's medium arenas are always aligned */
        soma__emit_figure(e, st, SOMA_F_bytes_lost_to_arena_alignment);
    BYTES(total);
#undef BYTES
#undef F
}

void soma__emit_text(emit_t *e, const soma_stats *st)
{
    sink_t *s = e->sink;
    soma__sink_printf(s, "Small block threshold = %zu, in %zu size classes.\n\n", st->threshold,
                      st->num_classes);
    classes(e, st->classes, st->num_classes, 0);
    arena_lines(e, st, 0);
    soma__sink_put(s, "\n");

    soma__sink_put(s, "arena map counts\n");
    soma__emit_figure(e, st, SOMA_F_arena_map_mid_nodes);
    soma__emit_figure(e, st, SOMA_F_arena_map_bot_nodes);
    soma__sink_put(s, "\n");
    soma__emit_figure(e, st, SOMA_F_arena_map_root_bytes);
    soma__emit_figure(e, st, SOMA_F_arena_map_mid_bytes);
    soma__emit_figure(e, st, SOMA_F_arena_map_bot_bytes);
    soma__emit_line(e, soma__emit_fields[SOMA_F_total].label, st->arena_map_total);
    soma__sink_put(s, "\n");

    for (size_t i = 0; i < st->num_types; i++) {
        const soma_type_stats *t = &st->types[i];
        char label[128], padded[160];
        snprintf(label, sizeof label, "%zu free %s * %zu bytes each", t->count, t->name,
                 t->elem_size);
        snprintf(padded, sizeof padded, "%48s ", label);
        soma__emit_line(e, padded, t->count * t->elem_size);
    }
    if (st->medium.arenas_allocated_total > 0) {
        soma__sink_printf(s, "\nMedium blocks (soma's own, not in CPython's dump): %zu to %zu "
                             "bytes, in %zu size classes.\n\n",
                          st->threshold + 1, st->medium.max_size, st->medium.num_classes);
        classes(e, st->medium.classes, st->medium.num_classes, st->num_classes);
        arena_lines(e, st, 1);
    }
    if (st->large.blocks_allocated_total > 0 || st->large.blocks_in_use > 0) {
        soma__sink_printf(s, "\nLarge blocks (soma's own mappings, freed ones cached): above %zu "
                             "bytes, or aligned above %d.\n\n",
                          st->medium.max_size, SOMA_ALIGNMENT);
        soma__emit_figure(e, st, SOMA_F_large_blocks_allocated_total);
        soma__emit_figure(e, st, SOMA_F_large_blocks_in_use);
        soma__emit_figure(e, st, SOMA_F_large_bytes_in_use);
        /* A snapshot read back from an older soma has none of these: its
         * size stops before them (emit.c zeroed the rest).  An explicit
         * heap's has none either: the mappings and their cache are the
         * process's (its total is 0, its blocks in use its own). */
        if ((st->size == 0 || st->size >= offsetof(soma_stats, large_map) + sizeof st->large_map) &&
            st->large.blocks_allocated_total > 0) {
            soma__emit_figure(e, st, SOMA_F_large_bytes_mapped);
            soma__emit_figure(e, st, SOMA_F_large_cached_blocks);
            soma__emit_figure(e, st, SOMA_F_large_cached_bytes);
            soma__emit_figure(e, st, SOMA_F_large_cache_max_bytes);
            soma__emit_figure(e, st, SOMA_F_large_maps_made_total);
            soma__emit_figure(e, st, SOMA_F_large_maps_reused_total);
            soma__emit_figure(e, st, SOMA_F_large_maps_released_total);
        }
    }
    /* Pools whose pages went back stay in their arenas, counted among the
     * unused pools of the sections above (the byte lines still add up to
     * Total); this says how much of those is not resident.  Version 3: an
     * older snapshot's size stops before it. */
    if ((st->size == 0 || st->size >= offsetof(soma_stats, returned) + sizeof st->returned) &&
        st->returned.pools_total > 0) {
        soma__sink_put(s, "\nReturned pools (soma's own: unused pools above whose pages went back "
                          "to the OS).\n\n");
        soma__emit_figure(e, st, SOMA_F_returned_pools);
        soma__emit_figure(e, st, SOMA_F_returned_pool_bytes);
        if (st->medium.arenas_allocated_total > 0) {
            soma__emit_figure(e, st, SOMA_F_returned_medium_pools);
            soma__emit_figure(e, st, SOMA_F_returned_medium_pool_bytes);
        }
        soma__emit_figure(e, st, SOMA_F_returned_pools_total);
    }
    /* Guarded blocks lie in no arena and no mapping above.  Version 5. */
    if ((st->size == 0 || st->size > offsetof(soma_stats, guarded)) &&
        (st->guarded.blocks_allocated_total > 0 || st->guarded.blocks_unguarded_total > 0)) {
        soma__sink_put(s, "\nGuarded blocks (soma's own: each on pages of its own against an "
                          "inaccessible guard page).\n\n");
        soma__emit_figure(e, st, SOMA_F_guarded_blocks_allocated_total);
        soma__emit_figure(e, st, SOMA_F_guarded_blocks_in_use);
        soma__emit_figure(e, st, SOMA_F_guarded_bytes_in_use);
        soma__emit_figure(e, st, SOMA_F_guarded_bytes_mapped);
        soma__emit_figure(e, st, SOMA_F_guarded_blocks_unguarded_total);
    }
}
