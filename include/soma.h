/*
 * soma.h: the public interface of soma, a small-object memory allocator.
 *
 * soma is CPython's small-object allocator ("pymalloc") rebuilt as a C library:
 * every request of 1..512 bytes is served from one of 32 size classes (16, 32,
 * 48 ... 512 bytes); each class is served from pools (16 KiB, one class each)
 * and pools are cut from arenas (1 MiB each, mapped with mmap into a slot of
 * one range of addresses soma reserves up front).  Requests of 513..8144
 * bytes (513..2000 with the py38 geometry), which pymalloc leaves to the
 * system, are served the same way from soma's own "medium" classes, in
 * arenas of their own.  An arena whose pools are all empty gives its memory
 * back to the OS; its addresses stay reserved for a later arena.  Larger
 * requests, and alignments above 16, are passed to the system allocator.
 *
 * Every figure of CPython's sys._debugmallocstats() dump is available as a
 * struct (soma_stats_get) and as the same text (soma_stats_print).  The figures
 * are computed by walking the allocator's structures when asked, never by
 * counters on the malloc/free path.
 *
 * Thread safety: every call here may be made from any thread.  Each thread
 * allocates from a heap of its own, without a lock; a block may be freed by
 * any thread (it goes back to the heap it came from).  See docs/DESIGN.md.
 *
 * Link with -lsoma (pkg-config --cflags --libs soma) or, from CMake,
 * find_package(soma) and target_link_libraries(app soma::soma).
 */
#ifndef SOMA_H
#define SOMA_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define SOMA_API __attribute__((visibility("default")))
#define SOMA_MALLOC_ATTR __attribute__((malloc, warn_unused_result))
#else
#define SOMA_API
#define SOMA_MALLOC_ATTR
#endif

#define SOMA_VERSION_MAJOR 0
#define SOMA_VERSION_MINOR 2
#define SOMA_VERSION_PATCH 0
#define SOMA_VERSION "0.2.0"

/* The geometry every build shares.  Blocks are SOMA_ALIGNMENT-aligned; requests
 * of 1..SOMA_SMALL_THRESHOLD bytes are small; class i serves blocks of
 * (i + 1) * SOMA_ALIGNMENT bytes.  Pool and arena sizes are chosen at build
 * time (16 KiB / 1 MiB by default, 4 KiB / 256 KiB with -DSOMA_GEOMETRY=py38)
 * and reported in soma_stats.pool_size and soma_stats.arena_size. */
#define SOMA_ALIGNMENT 16
#define SOMA_SMALL_THRESHOLD 512
#define SOMA_NUM_CLASSES (SOMA_SMALL_THRESHOLD / SOMA_ALIGNMENT)

/* ------------------------------------------------------------------------
 * The malloc family.  Same contracts as the C library's functions.
 * ------------------------------------------------------------------------ */

/* Allocate `size` bytes, 16-byte aligned, contents undefined.  A size of 0
 * returns a unique pointer (a 16-byte block) that must be freed.  Requests
 * of up to soma_stats.medium.max_size bytes (8144 by default, 2000 with the
 * py38 geometry) are soma's; larger ones go to the system malloc.  Returns
 * NULL with errno = ENOMEM when memory cannot be had. */
SOMA_API SOMA_MALLOC_ATTR void *soma_malloc(size_t size);

/* Allocate nmemb * size bytes, all zero.  If the product overflows size_t,
 * returns NULL with errno = ENOMEM and allocates nothing.  A product above
 * the medium maximum goes to the system calloc. */
SOMA_API SOMA_MALLOC_ATTR void *soma_calloc(size_t nmemb, size_t size);

/* Resize the block at p to `size` bytes, keeping min(old, new) bytes of its
 * contents.  p == NULL is soma_malloc(size).  A new size that fits the block
 * returns p itself when it is still in the block's class or does not shrink
 * the block by a quarter or more; otherwise the block moves to the right
 * class, small or medium, or to the system allocator above the medium
 * maximum (soma_stats.medium.max_size).  On failure returns NULL with
 * errno = ENOMEM and p is untouched.
 * size == 0 with p != NULL frees p and returns NULL (glibc's behaviour).
 * A pointer that soma did not allocate is handed to the system realloc. */
SOMA_API void *soma_realloc(void *p, size_t size);

/* Release the block at p.  NULL is ignored.  A pointer that soma did not
 * allocate is handed to the system free (so memory from malloc may be freed
 * here too).  Never changes errno.  A block freed twice is caught (in the
 * default, hardened build) and soma aborts with a message naming it. */
SOMA_API void soma_free(void *p);

/* The number of bytes usable at p: what the block's class holds for soma's
 * small and medium blocks (the class's size, less a medium block's tail:
 * soma_medium_stats; less 8 for a small block asked for a size that left
 * it 8 bytes free, 8c+1 .. 8c+8 for c even, in the default, hardened build:
 * those are a check word, which its free checks), a large block's mapping
 * less its tail, malloc_usable_size() for the system's, 0 for NULL. */
SOMA_API size_t soma_usable_size(const void *p);

/* C11 aligned_alloc: `size` bytes aligned to `alignment`, which must be a power
 * of two (any size is accepted, as glibc does).  Otherwise returns NULL with
 * errno = EINVAL.  Alignments up to 16 are served as soma_malloc; larger ones
 * by the system allocator. */
SOMA_API SOMA_MALLOC_ATTR void *soma_aligned_alloc(size_t alignment, size_t size);

/* ------------------------------------------------------------------------
 * Giving memory back.
 *
 * soma keeps what a program frees for reuse: empty pools (their pages),
 * wholly empty arenas, and large mappings (the cache).  Each goes back to
 * the OS once it has stayed unused for SOMA_ARENA_DECAY_MS (the override's
 * default: 1000 ms): an empty pool's pages with madvise(MADV_DONTNEED)
 * (the pool stays in its arena, and its pages come back, zeroed, when it
 * is put to work again), an arena or a mapping by giving it back whole.
 * The program's own allocations and frees check for what has expired, and
 * with SOMA_BACKGROUND_PURGE (the override's default) a thread of soma's
 * gives back pages and cached mappings at the earliest expiry, so a
 * program that stops allocating still shrinks.  With no decay (the library's default) an arena goes
 * back as soon as it is empty but for the last one (CPython's rule), and
 * an empty pool's pages stay until the arena goes or soma_purge asks.
 * ------------------------------------------------------------------------ */

/* Give back now what has expired (all = 0: what the program's own next
 * sweeps would), or everything soma keeps for reuse (all != 0: every
 * empty arena, every empty pool's pages, every cached large mapping, and
 * the calling thread's parked pools first).  Any thread may call it; the
 * other threads' next uses of what went back pay the page faults.  The
 * override's malloc_trim calls it with all = 1.  Returns the bytes given
 * back.  In debug mode it does nothing and returns 0. */
SOMA_API size_t soma_purge(int all);

/* ------------------------------------------------------------------------
 * Explicit heaps.
 *
 * Besides each thread's own heap, a program may make heaps of its own: a
 * heap holds its own arenas, so everything allocated from it can be released
 * at once (soma_heap_destroy), and its statistics can be read apart from the
 * rest.  A heap is used by one thread at a time: calls of soma_heap_malloc,
 * _calloc, _realloc and _destroy on one heap must not overlap.  Its blocks
 * may be freed (soma_free) by any thread, before the heap is destroyed.
 * Small and medium requests (up to soma_stats.medium.max_size bytes, 8144 by
 * default) are served from the heap's own arenas.  Larger ones are soma's
 * own mappings, as for soma_malloc, recorded as the heap's: its statistics
 * count them and soma_heap_destroy unmaps them with the rest (in debug mode
 * they are debug mode's own, no heap's, and destroy leaves them).
 * ------------------------------------------------------------------------ */

typedef struct soma_heap soma_heap;

/* A new, empty heap (no memory is mapped until its first allocation).
 * Returns NULL with errno = ENOMEM. */
SOMA_API soma_heap *soma_heap_new(void);

/* Release every block of the heap at once, without visiting the small and
 * medium ones: the memory of each of its arenas goes back to the OS (the
 * arenas' addresses stay reserved by soma, for later arenas), every large
 * block asked of it (soma_heap_malloc, _calloc, or _realloc past the
 * medium maximum) is unmapped, not cached, and the heap record is kept for
 * reuse.  Its blocks must no longer be used or freed.  In debug mode
 * (SOMA_DEBUG) its large blocks are debug mode's own and are not released.
 * NULL is ignored. */
SOMA_API void soma_heap_destroy(soma_heap *heap);

/* As soma_malloc, soma_calloc and soma_realloc, serving small and medium
 * blocks from `heap`'s pools; a large block asked of `heap` is a mapping
 * like any other, recorded as the heap's (its statistics count it, its
 * destroy releases it).  soma_heap_realloc moves a block into `heap` when
 * it has to move it; a block that stays in place, or a large block that
 * grows or shrinks, stays whose it was. */
SOMA_API SOMA_MALLOC_ATTR void *soma_heap_malloc(soma_heap *heap, size_t size);
SOMA_API SOMA_MALLOC_ATTR void *soma_heap_calloc(soma_heap *heap, size_t nmemb, size_t size);
SOMA_API void *soma_heap_realloc(soma_heap *heap, void *p, size_t size);

/* ------------------------------------------------------------------------
 * Statistics.  Every figure of CPython 3.12's sys._debugmallocstats() dump.
 * ------------------------------------------------------------------------ */

/* One row of the class table.  A pool counts here while it holds at least one
 * allocated block ("used" or "full"); empty pools count as unused pools. */
typedef struct soma_class_stats {
    size_t size;          /* block size of this class in bytes */
    size_t num_pools;     /* pools of this class with >= 1 block in use */
    size_t blocks_in_use; /* allocated blocks in those pools */
    size_t avail_blocks;  /* free blocks in those pools, never-carved included */
} soma_class_stats;

#define SOMA_MAX_TYPES 64
#define SOMA_TYPE_NAME_MAX 64
#define SOMA_MAX_MEDIUM_CLASSES 32

/* Medium blocks: requests above the threshold, up to max_size bytes (8144 in
 * the default build, 2000 with py38), which pymalloc leaves to the system
 * allocator and soma serves from pools of its own classes (k blocks of
 * (pool size - header) / k bytes, rounded down to 16) in arenas of their own.
 * In the default, hardened build the last soma_stats.medium_tail (16) bytes
 * of each medium block are soma's (the size asked and a check word, which a free checks:
 * an overflow past the size asked, or an underflow of the block after, is
 * caught there), so a class of s bytes serves requests of up to s - 16,
 * and soma_usable_size of a medium block is s - 16 (asking for it lets the
 * program use all of it: the check word moves there); medium_tail is 0 in
 * an unhardened build (SOMA_HARDEN=OFF) and under ASan or valgrind.
 * max_size is the largest class's size less the tail.
 * The figures mean what their namesakes in soma_stats mean, for those arenas;
 * the five byte lines (there is no alignment line: arenas are always
 * aligned) add up to total, and total == arena_bytes here too.  classes[i]
 * is class SOMA_NUM_CLASSES + i.  Requests above max_size go to the system
 * allocator and are counted in soma_stats.large. */
typedef struct soma_medium_stats {
    size_t max_size;
    size_t num_classes;
    soma_class_stats classes[SOMA_MAX_MEDIUM_CLASSES]; /* the first num_classes */
    size_t arenas_allocated_total;
    size_t arenas_reclaimed;
    size_t arenas_highwater;
    size_t arenas_current;
    size_t arenas_empty;
    size_t arena_bytes;
    size_t bytes_in_allocated_blocks;
    size_t bytes_in_available_blocks;
    size_t unused_pools;
    size_t unused_pool_bytes;
    size_t bytes_lost_to_pool_headers;
    size_t bytes_lost_to_quantization;
    size_t total;
} soma_medium_stats;

/* Large blocks: requests above the medium classes (max_size) and alignments
 * above 16.  soma maps each one itself, page-granular, and keeps freed
 * mappings in a cache for later requests of about their size (see
 * soma_large_map_stats); the few that are no larger than max_size (an
 * alignment above 16 for a small block, or, if soma's address range is ever
 * full, the small requests it could not place) come from the system
 * allocator.  Each is recorded (large.c), so these figures count exactly
 * the blocks soma handed out and not yet freed; memory the program got from
 * malloc before soma was loaded, or that a library bound to glibc
 * allocated, is not in them.  In soma_heap_stats_get: blocks_in_use and
 * bytes_in_use of the large blocks asked of that heap; blocks_allocated_total
 * zero there. */
typedef struct soma_large_stats {
    size_t blocks_allocated_total; /* ever handed out */
    size_t blocks_in_use;          /* handed out and not freed */
    size_t bytes_in_use;           /* bytes requested for those */
} soma_large_stats;

/* The large blocks' mappings (SOMA_STATS_VERSION 2; at the end of
 * soma_stats, where fields are appended).  A freed mapping stays mapped, its
 * pages resident, in the cache: at most cache_max_bytes, released (munmap)
 * oldest first beyond that, after SOMA_ARENA_DECAY_MS unused, or at once
 * but for the most recent one when that is 0.  (In a hardened build the
 * first freed mapping of each new largest size from 128 KiB to 4 MiB is
 * sealed instead: its pages given back at once, its addresses kept
 * inaccessible, counted in none of the bytes here; when a ninth is sealed
 * the oldest is unmapped, and counts in maps_released_total.)
 * Process-wide: zero in soma_heap_stats_get. */
typedef struct soma_large_map_stats {
    size_t bytes_mapped;        /* large blocks' mappings: in use and cached */
    size_t cached_blocks;       /* mappings in the cache */
    size_t cached_bytes;        /* their bytes (part of bytes_mapped) */
    size_t cache_max_bytes;     /* the cache's bound now: the recent peak of
                                   bytes_mapped - cached_bytes, 4..128 MiB */
    size_t maps_made_total;     /* mappings made (mmap) */
    size_t maps_reused_total;   /* requests served from the cache */
    size_t maps_released_total; /* mappings given back (munmap) */
} soma_large_map_stats;

/* One registered object cache (see soma_stats_register_type). */
typedef struct soma_type_stats {
    char name[SOMA_TYPE_NAME_MAX];
    size_t elem_size; /* bytes per cached object */
    size_t count;     /* objects in the cache when the snapshot was taken */
} soma_type_stats;

/* Empty pools whose pages went back to the OS, inside arenas still mapped
 * (SOMA_STATS_VERSION 3; at the end of soma_stats).  Those pools are still
 * counted in unused_pools (and the medium one), as empty pools are: the
 * accounting of an arena's bytes does not change, and these say how much
 * of unused_pool_bytes is not resident.  (Never-carved pools are not
 * resident either, and not counted here: their pages were never touched.) */
typedef struct soma_returned_stats {
    size_t pools;              /* small arenas' pools returned now */
    size_t pool_bytes;         /* pools * pool_size */
    size_t medium_pools;       /* the same in the medium arenas */
    size_t medium_pool_bytes;
    size_t pools_total;        /* pools whose pages went back, ever, both kinds
                                  (a pool put to work and emptied again counts again;
                                  an explicit heap's snapshot: that heap's) */
} soma_returned_stats;

/* Guarded blocks (SOMA_GUARD_SAMPLE, SOMA_DEBUG=guard: each on pages of
 * its own against an inaccessible guard page; SOMA_STATS_VERSION 5, at the
 * end of soma_stats).  They lie in soma's range of guarded slots, in no
 * arena and no large mapping: no other figure counts them.  All zero with
 * guarding off.  Process-wide: zero in soma_heap_stats_get (an explicit
 * heap's blocks are never guarded). */
typedef struct soma_guarded_stats {
    size_t blocks_allocated_total; /* guarded blocks handed out, ever */
    size_t blocks_in_use;          /* guarded blocks handed out and not freed */
    size_t bytes_in_use;           /* bytes requested for those */
    size_t bytes_mapped;           /* their pages, readable and resident when
                                      touched (a freed one's go back at its free);
                                      the guard areas hold none */
    size_t blocks_unguarded_total; /* picked to be guarded, but made as usual:
                                      16,384 guarded blocks live already (each
                                      costs the kernel two mappings), no slot of
                                      its size left, or the kernel refused */
} soma_guarded_stats;

/* The layout of soma_stats: raised whenever a field is added (only ever at
 * the end of the struct, or of a nested one's place-holders). */
#define SOMA_STATS_VERSION 5 /* 2: large_map; 3: returned; 4: medium_tail; 5: guarded */

typedef struct soma_stats {
    /* Which layout the library filled in (SOMA_STATS_VERSION) and how many
     * bytes of the struct: so that the struct can grow.  A program built
     * against an older soma.h than the library it runs with passes its own
     * sizeof (the soma_stats_get macro does) and gets no more than that;
     * one built against a newer soma.h reads `size` to know which fields the
     * library filled (the rest are zero).  The functions that read a
     * soma_stats (soma_stats_fprint, _fprint_json, soma_stats_diff) read
     * no more than `size` bytes of it; 0, in a struct filled by hand, means
     * the whole of this header's struct. */
    uint32_t version;
    uint32_t size;

    /* Geometry of this build. */
    size_t threshold;     /* SOMA_SMALL_THRESHOLD */
    size_t num_classes;   /* SOMA_NUM_CLASSES */
    size_t pool_size;     /* bytes per pool */
    size_t arena_size;    /* bytes per arena */
    size_t pool_overhead; /* bytes of header at the start of every pool */

    soma_class_stats classes[SOMA_NUM_CLASSES];

    /* Arenas of the small classes (medium ones are counted in `medium`). */
    size_t arenas_allocated_total; /* arenas ever mapped */
    size_t arenas_reclaimed;       /* arenas given back to the OS (their memory
                                      returned, their addresses kept reserved):
                                      total - current */
    size_t arenas_highwater;       /* most arenas mapped at one time */
    size_t arenas_current;         /* arenas mapped now */
    size_t arenas_empty;           /* of those, arenas with no block in use:
                                      kept for reuse until the decay sends
                                      them back (SOMA_ARENA_DECAY_MS; CPython
                                      keeps one).  Not in CPython's dump:
                                      JSON, soma_stats_diff and the timeline
                                      show it */
    size_t arena_bytes;            /* arenas_current * arena_size */

    /* Where the arena bytes are; these six add up to `total`. */
    size_t bytes_in_allocated_blocks;  /* sum of blocks_in_use * size */
    size_t bytes_in_available_blocks;  /* sum of avail_blocks * size */
    size_t unused_pools;               /* empty or never-carved pools */
    size_t unused_pool_bytes;          /* unused_pools * pool_size */
    size_t bytes_lost_to_pool_headers; /* pools in use * pool_overhead */
    size_t bytes_lost_to_quantization; /* unusable tail of each pool in use */
    size_t bytes_lost_to_arena_alignment; /* partial pools at misaligned arenas */
    size_t total;                         /* == arena_bytes, always */

    /* The address map that answers "is this pointer soma's".  CPython's is a
     * radix tree (root, mid and bot nodes); soma carves every arena from one
     * reserved range of addresses and keeps a flat table with an entry per
     * arena slot: its pages touched so far are the "root" bytes, and there
     * are no mid or bot nodes (always 0). */
    size_t arena_map_mid_nodes;
    size_t arena_map_bot_nodes;
    size_t arena_map_root_bytes;
    size_t arena_map_mid_bytes;
    size_t arena_map_bot_bytes;
    size_t arena_map_total;
    size_t address_space_reserved; /* the range arenas come from (addresses, not memory) */

    /* soma's own classes above the threshold: not in CPython's layout. */
    soma_medium_stats medium;
    /* Blocks above the medium classes: not in CPython's layout either. */
    soma_large_stats large;

    /* Registered object caches, in registration order. */
    size_t num_types;
    soma_type_stats types[SOMA_MAX_TYPES];

    /* Version 2: the large blocks' mappings and their cache. */
    soma_large_map_stats large_map;
    /* Version 3: empty pools whose pages went back. */
    soma_returned_stats returned;
    /* Version 4: the bytes at the end of every medium block that soma keeps
     * (its tail: 16 in a hardened build, 0 in an unhardened one and under
     * ASan or valgrind; soma_medium_stats says what it holds). */
    size_t medium_tail;
    /* Version 5: guarded blocks, which no figure above counts. */
    soma_guarded_stats guarded;
} soma_stats;

/* Fill *out with a snapshot of every figure, over all heaps (every
 * thread's and every explicit one).
 * Computed by walking every arena and pool, each heap under its lock: the
 * arena figures are consistent and Total == arena_bytes always; block counts
 * read while other threads allocate are a close picture, exact when they are
 * quiet.  Blocks freed by one thread into another live thread's heap count as
 * in use until that thread next needs a pool (the caller's own and exited
 * threads' are collected by this call). */
SOMA_API void soma_stats_get(soma_stats *out);
/* The same, filling at most `size` bytes of *out (the caller's sizeof
 * soma_stats): the form the macro below calls, so that a program keeps
 * working with a later library whose soma_stats is larger. */
SOMA_API void soma_stats_get_sized(soma_stats *out, size_t size);
#define soma_stats_get(out) soma_stats_get_sized((out), sizeof(soma_stats))

/* Print a snapshot in the exact layout of CPython 3.12's
 * sys._debugmallocstats(): threshold line, class table, arena counters, byte
 * breakdown with its Total, the arena-map section and one line per registered
 * type.  After that, sections of soma's own in the same style: "Medium
 * blocks (soma's own, not in CPython's dump): ..." if a medium arena was
 * ever mapped (soma_stats.medium), "Large blocks ..." if a large block was
 * ever handed out (.large, .large_map), "Returned pools ..." if an
 * empty pool's pages ever went back to the OS (.returned), and "Guarded
 * blocks ..." if a block was ever guarded (.guarded).  Returns 0, or -1 if
 * writing to `out` failed. */
SOMA_API int soma_stats_print(FILE *out);

/* The same figures for one explicit heap: its classes, its arenas (mapped
 * total, current, high-water, reclaimed), its byte breakdown, small and
 * medium (the medium section is printed if the heap ever mapped a medium
 * arena), and the large blocks asked of it (large.blocks_in_use and
 * bytes_in_use).  The arena-map figures are the process's (the map is shared); no
 * types are listed.  Exact when no thread is using the heap; blocks freed
 * into it by other threads and not yet collected count as in use. */
SOMA_API void soma_heap_stats_get(soma_heap *heap, soma_stats *out);
SOMA_API void soma_heap_stats_get_sized(soma_heap *heap, soma_stats *out, size_t size);
#define soma_heap_stats_get(heap, out) soma_heap_stats_get_sized((heap), (out), sizeof(soma_stats))
SOMA_API int soma_heap_stats_print(soma_heap *heap, FILE *out);

/* Print the snapshot *st (from soma_stats_get) in the same layout. */
SOMA_API int soma_stats_fprint(FILE *out, const soma_stats *st);

/* ------------------------------------------------------------------------
 * Snapshots as JSON, and what changed between two.
 * ------------------------------------------------------------------------ */

/* Print a snapshot as one JSON object (the schema is docs/stats.schema.json,
 * schema_version 1): the process (pid, command line), when (UTC timestamp,
 * ms since soma started), the build and the options in force, every figure
 * of soma_stats under its member's name, and the detail behind them: every
 * arena (address, heap, small or medium) with its pools in address order,
 * each as [class, blocks in use] ([class, 0, 1]: empty, its pages returned
 * to the OS), and the arena slots reclaimed.  The
 * detail is gathered in memory soma maps for it, so a snapshot of a
 * thousand arenas costs no malloc.  Returns 0, or -1 if writing failed. */
SOMA_API int soma_stats_print_json(FILE *out);
/* The same for one explicit heap (its arenas only; scope "heap"). */
SOMA_API int soma_heap_stats_print_json(soma_heap *heap, FILE *out);
/* The figures of *st as JSON, without the arena detail (scope "snapshot"). */
SOMA_API int soma_stats_fprint_json(FILE *out, const soma_stats *st);

/* Print what changed from *before to *after, as `soma diff` does: a
 * heading, then per class the change in pools, blocks in use and available
 * blocks (biggest change in bytes first), then the arena counters, then
 * every byte figure (biggest change first); rows that did not change are
 * left out.  Returns the number of rows printed (0: nothing changed), or
 * -1 with errno = EINVAL if the two come from different geometries, or -1
 * if writing failed. */
SOMA_API int soma_stats_diff(FILE *out, const soma_stats *before, const soma_stats *after);

/* Counts the objects in a program's own cache; called with the registered ctx
 * each time statistics are taken, with no soma lock held (it may allocate and
 * take the cache's own lock).  It must not take statistics itself.  A call
 * may still be running when soma_stats_unregister_type returns.  It runs in
 * the thread that takes the statistics, which for a SOMA_STATS_SIGNAL dump
 * or the exit dump may be soma's own thread or the exiting one; periodic
 * samples (SOMA_STATS_INTERVAL_MS) never call it. */
typedef size_t (*soma_count_fn)(void *ctx);

/* Report a program's own object cache (a free list of elem_size-byte objects)
 * in the dump, as CPython reports its free lists:
 *     "N free NAME * S bytes each = N*S"
 * The name is copied (at most SOMA_TYPE_NAME_MAX - 1 bytes are kept).
 * Registering a name again replaces the earlier entry.  Returns 0, or -1 with
 * errno = EINVAL for a NULL name or function, ENOMEM when SOMA_MAX_TYPES
 * entries are taken. */
SOMA_API int soma_stats_register_type(const char *name, size_t elem_size, soma_count_fn count_fn,
                                      void *ctx);

/* Remove a registration by name.  Returns 0, or -1 with errno = ENOENT. */
SOMA_API int soma_stats_unregister_type(const char *name);

/* ------------------------------------------------------------------------
 * Every block in use, one callback each.
 * ------------------------------------------------------------------------ */

/* One block in use, as soma_blocks_visit reports it. */
typedef struct soma_block_info {
    void *block;      /* the block's address, as malloc returned it */
    size_t size;      /* small and medium: the class's block size (what
                         soma_usable_size returns, less a medium block's
                         16 bytes or a tailed small block's last 8);
                         large: the bytes
                         requested */
    int size_class;   /* 0 .. SOMA_NUM_CLASSES - 1: a small class, of
                         (size_class + 1) * 16 bytes; SOMA_NUM_CLASSES and up:
                         medium class size_class - SOMA_NUM_CLASSES, whose size
                         is soma_stats.medium.classes[size_class -
                         SOMA_NUM_CLASSES].size (soma_stats.medium.num_classes
                         of them: 29, or 6 with the py38 geometry), and `size`
                         here; -1: a large block */
    const void *heap; /* the heap that owns it: the soma_heap * of an explicit
                         heap; for a thread's heap an opaque non-NULL value, the
                         same for all its blocks while the thread lives and after
                         it exits (its heap then waits, with its blocks, for a
                         new thread); for a large block, the explicit heap it
                         was asked of, or NULL (a thread's: large blocks are
                         process-wide) */
} soma_block_info;

/* Called once per block; return 0 to go on, anything else to stop the walk
 * (soma_blocks_visit returns that value). */
typedef int (*soma_visit_fn)(const soma_block_info *b, void *arg);

/* Call fn(&info, arg) for every block in use: with heap NULL, every small
 * and medium block of every heap (every live thread's, every exited
 * thread's, every explicit heap) and every large block; otherwise the blocks
 * of that explicit heap alone, the large ones asked of it included.  Never a free block: a pool's free list and its never-used
 * blocks are read to tell which are in use.  Returns 0 once every block
 * has been visited, fn's nonzero value if it stopped the walk, or -1 with
 * errno = EINVAL for a NULL fn or a heap that is not a live explicit one
 * (one destroyed is caught in debug mode only).  Allocates nothing.
 *
 * The callback runs with no lock of soma's held: it may allocate and free
 * (blocks of the heap being walked too), take statistics, even visit
 * again.  The walk reads one pool at a time under its heap's lock, copies
 * the addresses of that pool's blocks in use (or of up to 256 large
 * blocks), lets go of the lock and calls back for each, then goes on from
 * its place, which survives whatever changed meanwhile (arenas and heaps
 * made or given back).  A block allocated during the walk (by the callback
 * or another thread) may or may not be reported; one freed during it may
 * have been reported before it was freed.  A block that stays allocated
 * through the walk is reported exactly once if it is a large block or lies
 * in a heap no other thread changes meanwhile (the caller's own, an exited
 * thread's, an explicit heap nobody else uses), whatever the callback
 * does.  With heap given, the call counts as a use of that heap: no other
 * thread may use it meanwhile (as for soma_heap_malloc), and the callback
 * must not destroy it.
 *
 * Exact: like soma_stats_get, the walk first collects the caller's own
 * pending cross-thread frees and those of exited threads' heaps (with
 * heap given, that heap's, as soma_heap_stats_get does); blocks that other
 * threads freed into a live thread's heap, or into an explicit heap, and
 * that were not collected yet, are reported as in use, as the statistics
 * count them.  So when no other thread allocates or frees during the walk
 * and the callback neither allocates nor frees, the blocks reported are
 * exactly those soma_stats_get counts: per class, classes[c].blocks_in_use
 * and medium.classes[c - SOMA_NUM_CLASSES].blocks_in_use; and
 * large.blocks_in_use blocks with size_class -1, whose sizes add up to
 * large.bytes_in_use.
 *
 * While other threads allocate and free, their pools are read as they
 * change (a thread takes no lock to allocate).  The reading is checked: a
 * pool's count, free list and carved extent must not move while its free
 * list is read, and must agree; the pool is read again if they moved, and
 * left out if they keep moving, so a busy thread's blocks may be missed.
 * Every address reported was, when its pool was read, the start of a
 * block of the class reported in a pool of the heap reported (or a large
 * block registered when its batch was copied), never a pool's header or
 * tail nor a block the pool had not carved yet; that it was in use at
 * that moment is then likely, not certain.  By the time fn runs, another
 * thread may have freed the block, and soma given its memory back to the
 * OS (its arena released, a large block unmapped): fn may read or write a
 * block only if no other thread can free it meanwhile (the caller's own
 * blocks, or while the other threads are quiet).
 *
 * Debug mode (SOMA_DEBUG): the program's blocks are reported, each as the
 * pointer it was given, `size` the size it asked for (what
 * soma_usable_size returns there), size_class the class of the block of
 * soma's that holds it with its header and guards (-1 if that is a large
 * block).  Blocks freed but waiting in the quarantine (or, released from
 * it, on their heap's list of pending frees) are no longer the program's
 * and are not reported, though soma_stats_get counts them, so the counts
 * are below the statistics' by those.  Each pool is read under debug
 * mode's lock, which every call takes there, so it is never read half
 * changed, even while other threads run. */
SOMA_API int soma_blocks_visit(soma_heap *heap, soma_visit_fn fn, void *arg);

/*
 * Debug mode.
 *
 * With SOMA_DEBUG=1 in the environment (or `soma run --debug`), every block
 * carries a header (the size asked, a serial number, the call that made
 * it) and guard bytes on both sides; fresh bytes are filled with 0xCD,
 * freed ones with 0xDD, guards are 0xFD; freed blocks wait in a quarantine
 * (SOMA_DEBUG_QUARANTINE bytes, 1 MiB by default) before reuse.  soma then
 * detects, with a message naming the block (address, size, serial, call,
 * heap) and the bytes expected and found: overflows and underflows, double
 * frees, pointers it never returned, blocks of a destroyed explicit heap
 * freed or reallocated, and writes after free (when the block leaves the
 * quarantine or is reused).  It aborts after the message, or, with
 * SOMA_DEBUG=report, carries on.  Every call takes one lock in debug mode,
 * and soma_usable_size returns the size asked.  Without SOMA_DEBUG the
 * fast paths pay nothing for any of this.
 */

/* Check the whole allocator now: every heap's structure (free lists,
 * pools, arenas: the invariants the fast paths rely on) and, in debug mode,
 * every block's guards and every freed block's fill.  Each problem is
 * reported on stderr as above (and aborts, with SOMA_DEBUG=1); returns the
 * number found.  Without debug mode, call it while no other thread
 * allocates; in debug mode, at any time. */
SOMA_API size_t soma_debug_check(void);

/* 0: debug mode is off; 1: on, a problem aborts; 2: on, problems are
 * reported and the program goes on (SOMA_DEBUG=report); 3: as 1, every
 * block guarded by an inaccessible page (SOMA_DEBUG=guard). */
SOMA_API int soma_debug_mode(void);

/* The runtime options (SOMA_SHOW_STATS, SOMA_STATS_FILE, SOMA_DEBUG, ...)
 * are environment variables read once when soma starts; they are listed,
 * with their types, defaults and ranges, by `soma help options` and in
 * docs/OPTIONS.md, both made from the one table the library parses. */

#ifdef __cplusplus
}
#endif

#endif /* SOMA_H */
