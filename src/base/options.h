/*
 * options.h: the options in force and the gate (options.c).
 *
 * The options are read once, by soma__start (options.c's start hook),
 * before the first heap, from the table in common/options.h; nothing
 * writes them afterwards, so any thread reads them without a lock.
 */
#ifndef SOMA_OPTIONS_H
#define SOMA_OPTIONS_H

#include "base/base.h"

/* soma__options.debug; GUARD: ABORT's, every block guarded (malloc/guard.c) */
enum { SOMA_DEBUG_OFF, SOMA_DEBUG_ABORT, SOMA_DEBUG_REPORT, SOMA_DEBUG_GUARD };

typedef struct {
    long show_stats;       /* SOMA_SHOW_STATS */
    char stats_file[1024]; /* SOMA_STATS_FILE; "" = stderr */
    long stats_signal;     /* SOMA_STATS_SIGNAL; 0 = none */
    long json;             /* SOMA_STATS_FORMAT=json */
    long interval_ms;      /* SOMA_STATS_INTERVAL_MS; 0 = no sampling */
    long decay_ms;         /* SOMA_ARENA_DECAY_MS */
    long purge_thread;     /* SOMA_BACKGROUND_PURGE */
    long debug;            /* SOMA_DEBUG: SOMA_DEBUG_* */
    long quarantine;       /* SOMA_DEBUG_QUARANTINE, bytes */
    long check_copies;     /* SOMA_CHECK_COPIES (the override's runtime/copy.c): copies of
                              this many bytes or more are checked; 0 none; 1 (every copy)
                              in debug mode */
    long guard_sample;     /* SOMA_GUARD_SAMPLE: 1 allocation in N guarded; 0 = off */
    long debug_leaks;      /* SOMA_DEBUG_LEAKS */
    /* Not an option's own: check_copies - 1, so that "checked?" is one
     * unsigned compare (n > copies_above; SIZE_MAX when none is). */
    size_t copies_above;
} options_t;
extern SOMA_INTERNAL options_t soma__options;


/*
 * The gate: the limits the fast paths compare against, read from memory
 * rather than built in, so that debug mode can close those paths without
 * a test of its own there.  Normally small_limit is the small threshold,
 * medium_limit the medium one and min_offset the pool header's size, which
 * are the tests the paths make anyway; in debug mode all are set so that
 * the tests always fail (every size is "not small", every address "inside
 * a header"), and the slow paths, which check soma__options.debug, take
 * over.  Set once, when the options are read, before any block exists that the
 * change could strand (the one allocation that may run soma__start first
 * is made a debug block: malloc/malloc.c).  Plain fields, not atomics: an
 * atomic load costs an instruction of its own on these paths, where a
 * plain one folds into the compare; they are written at most once, at
 * start-up (in practice before any other thread exists), and only in
 * debug mode.
 */
typedef struct {
    size_t small_limit;  /* malloc: size - 1 < small_limit is the fast path */
    size_t medium_limit; /* and size - 1 < medium_limit the medium path */
    size_t min_offset;   /* free: where a pool's first block starts (48), the origin of
                            the fast path's block test (pool/pool.h:
                            soma__pool_fast_starts; unhardened, offset >= this);
                            debug mode's pool size fails it at every offset */
    int sample;          /* SOMA_GUARD_SAMPLE out of debug mode: malloc_sized counts down */
} gate_t;
extern SOMA_INTERNAL gate_t soma__options_gate;

#endif /* SOMA_OPTIONS_H */
