/*
 * common/stats_fields.h: the figures of a soma_stats, listed once, and
 * shared deliberately by the library (src/) and the CLI (tools/soma).
 *
 * Three things must agree on every figure: the JSON snapshot (its key is
 * the struct member's name), the reader that turns a snapshot back into a
 * soma_stats (the CLI's soma diff and soma map), and soma_stats_diff (its
 * label, as the text dump words it).  Each list below is an X-macro:
 * X(member, "label", group).  Groups:
 *
 *   SOMA_FIELD_GEOMETRY  fixed by the build; two snapshots can be compared
 *                        only if these are equal
 *   SOMA_FIELD_COUNT     a count (arenas, pools, nodes, blocks)
 *   SOMA_FIELD_BYTES     bytes
 *
 * The class tables, the medium, large, returned and guarded sections and the types
 * are lists of their own (SOMA_CLASS_FIELDS, SOMA_MEDIUM_FIELDS,
 * SOMA_LARGE_FIELDS, SOMA_LARGE_MAP_FIELDS, SOMA_RETURNED_FIELDS,
 * SOMA_GUARDED_FIELDS).
 */
#ifndef SOMA_STATS_FIELDS_H
#define SOMA_STATS_FIELDS_H

enum { SOMA_FIELD_GEOMETRY, SOMA_FIELD_COUNT, SOMA_FIELD_BYTES };

#define SOMA_STATS_FIELDS(X)                                                                       \
    X(threshold, "small block threshold", SOMA_FIELD_GEOMETRY)                                     \
    X(num_classes, "size classes", SOMA_FIELD_GEOMETRY)                                            \
    X(pool_size, "pool size", SOMA_FIELD_GEOMETRY)                                                 \
    X(arena_size, "arena size", SOMA_FIELD_GEOMETRY)                                               \
    X(pool_overhead, "pool overhead", SOMA_FIELD_GEOMETRY)                                         \
    X(arenas_allocated_total, "# arenas allocated total", SOMA_FIELD_COUNT)                        \
    X(arenas_reclaimed, "# arenas reclaimed", SOMA_FIELD_COUNT)                                    \
    X(arenas_highwater, "# arenas highwater mark", SOMA_FIELD_COUNT)                               \
    X(arenas_current, "# arenas allocated current", SOMA_FIELD_COUNT)                              \
    X(arenas_empty, "# arenas empty (kept for reuse)", SOMA_FIELD_COUNT)                           \
    X(arena_bytes, "# bytes in arenas", SOMA_FIELD_BYTES)                                          \
    X(bytes_in_allocated_blocks, "# bytes in allocated blocks", SOMA_FIELD_BYTES)                  \
    X(bytes_in_available_blocks, "# bytes in available blocks", SOMA_FIELD_BYTES)                  \
    X(unused_pools, "# unused pools", SOMA_FIELD_COUNT)                                            \
    X(unused_pool_bytes, "# bytes in unused pools", SOMA_FIELD_BYTES)                              \
    X(bytes_lost_to_pool_headers, "# bytes lost to pool headers", SOMA_FIELD_BYTES)                \
    X(bytes_lost_to_quantization, "# bytes lost to quantization", SOMA_FIELD_BYTES)                \
    X(bytes_lost_to_arena_alignment, "# bytes lost to arena alignment", SOMA_FIELD_BYTES)          \
    X(total, "Total", SOMA_FIELD_BYTES)                                                            \
    X(arena_map_mid_nodes, "# arena map mid nodes", SOMA_FIELD_COUNT)                              \
    X(arena_map_bot_nodes, "# arena map bot nodes", SOMA_FIELD_COUNT)                              \
    X(arena_map_root_bytes, "# bytes lost to arena map root", SOMA_FIELD_BYTES)                    \
    X(arena_map_mid_bytes, "# bytes lost to arena map mid", SOMA_FIELD_BYTES)                      \
    X(arena_map_bot_bytes, "# bytes lost to arena map bot", SOMA_FIELD_BYTES)                      \
    X(arena_map_total, "arena map Total", SOMA_FIELD_BYTES)                                        \
    X(address_space_reserved, "# bytes of address space reserved", SOMA_FIELD_BYTES)

/* soma_stats.medium: labels say "medium" where the dump's section does. */
#define SOMA_MEDIUM_FIELDS(X)                                                                      \
    X(max_size, "medium max size", SOMA_FIELD_GEOMETRY)                                            \
    X(num_classes, "medium size classes", SOMA_FIELD_GEOMETRY)                                     \
    X(arenas_allocated_total, "# medium arenas allocated total", SOMA_FIELD_COUNT)                 \
    X(arenas_reclaimed, "# medium arenas reclaimed", SOMA_FIELD_COUNT)                             \
    X(arenas_highwater, "# medium arenas highwater mark", SOMA_FIELD_COUNT)                        \
    X(arenas_current, "# medium arenas allocated current", SOMA_FIELD_COUNT)                       \
    X(arenas_empty, "# medium arenas empty (kept for reuse)", SOMA_FIELD_COUNT)                    \
    X(arena_bytes, "# bytes in medium arenas", SOMA_FIELD_BYTES)                                   \
    X(bytes_in_allocated_blocks, "# medium bytes in allocated blocks", SOMA_FIELD_BYTES)           \
    X(bytes_in_available_blocks, "# medium bytes in available blocks", SOMA_FIELD_BYTES)           \
    X(unused_pools, "# medium unused pools", SOMA_FIELD_COUNT)                                     \
    X(unused_pool_bytes, "# medium bytes in unused pools", SOMA_FIELD_BYTES)                       \
    X(bytes_lost_to_pool_headers, "# medium bytes lost to pool headers", SOMA_FIELD_BYTES)         \
    X(bytes_lost_to_quantization, "# medium bytes lost to quantization", SOMA_FIELD_BYTES)         \
    X(total, "medium Total", SOMA_FIELD_BYTES)

#define SOMA_LARGE_FIELDS(X)                                                                       \
    X(blocks_allocated_total, "# large blocks allocated total", SOMA_FIELD_COUNT)                  \
    X(blocks_in_use, "# large blocks in use", SOMA_FIELD_COUNT)                                    \
    X(bytes_in_use, "# bytes in large blocks", SOMA_FIELD_BYTES)

/* soma_stats.large_map (appended in version 2): in the "large" section of
 * the dump and of the JSON, after SOMA_LARGE_FIELDS; keys distinct from
 * theirs. */
#define SOMA_LARGE_MAP_FIELDS(X)                                                                   \
    X(bytes_mapped, "# bytes mapped for large blocks", SOMA_FIELD_BYTES)                           \
    X(cached_blocks, "# large mappings cached", SOMA_FIELD_COUNT)                                  \
    X(cached_bytes, "# bytes in cached large mappings", SOMA_FIELD_BYTES)                          \
    X(cache_max_bytes, "# bytes the large cache may hold", SOMA_FIELD_BYTES)                       \
    X(maps_made_total, "# large mappings made total", SOMA_FIELD_COUNT)                            \
    X(maps_reused_total, "# large mappings reused total", SOMA_FIELD_COUNT)                        \
    X(maps_released_total, "# large mappings released total", SOMA_FIELD_COUNT)

/* soma_stats.returned (appended in version 3): the empty pools whose pages
 * went back to the OS, a part of the unused pools (and of their bytes)
 * counted above; the JSON's "returned" object, the dump's own section.
 * Labels within the dump's 35 columns. */
#define SOMA_RETURNED_FIELDS(X)                                                                    \
    X(pools, "# unused pools with pages returned", SOMA_FIELD_COUNT)                               \
    X(pool_bytes, "# bytes of pages returned", SOMA_FIELD_BYTES)                                   \
    X(medium_pools, "# medium pools with pages returned", SOMA_FIELD_COUNT)                        \
    X(medium_pool_bytes, "# medium bytes of pages returned", SOMA_FIELD_BYTES)                     \
    X(pools_total, "# pools returned total", SOMA_FIELD_COUNT)

/* soma_stats.guarded (appended in version 5): blocks on pages of their own
 * (SOMA_GUARD_SAMPLE, SOMA_DEBUG=guard), in no arena or large mapping; the
 * JSON's "guarded" object, the dump's own section. */
#define SOMA_GUARDED_FIELDS(X)                                                                     \
    X(blocks_allocated_total, "# guarded blocks allocated total", SOMA_FIELD_COUNT)                \
    X(blocks_in_use, "# guarded blocks in use", SOMA_FIELD_COUNT)                                  \
    X(bytes_in_use, "# guarded bytes in use", SOMA_FIELD_BYTES)                                    \
    X(bytes_mapped, "# guarded blocks' pages", SOMA_FIELD_BYTES)                                   \
    X(blocks_unguarded_total, "# blocks left unguarded total", SOMA_FIELD_COUNT)

/* One row of a class table. */
#define SOMA_CLASS_FIELDS(X)                                                                       \
    X(size, "size", SOMA_FIELD_GEOMETRY)                                                           \
    X(num_pools, "num pools", SOMA_FIELD_COUNT)                                                    \
    X(blocks_in_use, "blocks in use", SOMA_FIELD_COUNT)                                            \
    X(avail_blocks, "avail blocks", SOMA_FIELD_COUNT)

#endif
