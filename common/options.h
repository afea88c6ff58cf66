/*
 * options.h: soma's runtime options, listed once.
 *
 * Shared deliberately by the library and the CLI: the library parses the
 * environment from this table (src/base/options.c: the parsing, the
 * warnings for bad values, the defaults), and `soma help options` prints
 * it, as text or as the Markdown table of docs/OPTIONS.md (a test fails
 * when the two disagree).  One row per option, an X-macro:
 *
 *   X(field, "NAME", type, "type in words", default, override_default, min,
 *     max, "default as words", "override default as words", "what a value
 *     is", "what it does")
 *
 * field: the member of the library's options in force that holds it;
 * type: SOMA_OPT_*, how it is parsed; default / override_default: the value when the option
 * is unset, in the library and in the LD_PRELOAD override
 * (libsoma-override.so); min and max bound a number, and a path's length
 * (the other types' parsers ignore them); "what a value is" is
 * the Range column, and a bad value's warning says the value "is not" it.
 * Every option is read with secure_getenv (a setuid or setgid program
 * ignores them all); a bad value gets one warning line and the default.
 */
#ifndef SOMA_COMMON_OPTIONS_H
#define SOMA_COMMON_OPTIONS_H

enum {
    SOMA_OPT_BOOL,   /* 1/yes/on/true or 0/no/off/false (any case); empty is 0 */
    SOMA_OPT_PATH,   /* a file name, 1 to 999 bytes */
    SOMA_OPT_SIGNAL, /* a signal's name or number; empty is none */
    SOMA_OPT_FORMAT, /* text (0) or json (1); empty is the default */
    SOMA_OPT_NUMBER, /* a decimal number from min to max */
    SOMA_OPT_DEBUG,  /* a boolean (off 0, on 1) or "report" (2) */
    SOMA_OPT_COPIES, /* a boolean (0, 1) or a number of bytes from 2 to max */
};

#define SOMA_OPTIONS(X)                                                                            \
    X(show_stats, "SOMA_SHOW_STATS", SOMA_OPT_BOOL, "bool", 0, 0, 0, 1, "0", "0",                  \
      "a boolean (1/0, yes/no, on/off, true/false)",                                               \
      "1: print the statistics dump at exit, to stderr or SOMA_STATS_FILE (CPython's "             \
      "PYTHONMALLOCSTATS)")                                                                        \
    X(stats_file, "SOMA_STATS_FILE", SOMA_OPT_PATH, "path", 0, 0, 1, 999, "stderr", "stderr",      \
      "a file name (1 to 999 bytes)",                                                              \
      "where dumps and samples go instead of stderr, appended; %p stands for the pid of the "      \
      "process writing")                                                                           \
    X(stats_signal, "SOMA_STATS_SIGNAL", SOMA_OPT_SIGNAL, "signal", 0, 0, 1, 64, "none", "none",   \
      "a signal (a name such as USR2 or SIGUSR2, or a number; not KILL, STOP or a fault "          \
      "signal such as SEGV)",                                                                      \
      "on this signal the running program writes a dump (a thread of soma's writes it)")           \
    X(json, "SOMA_STATS_FORMAT", SOMA_OPT_FORMAT, "text or json", 0, 0, 0, 1, "text", "text",      \
      "text or json",                                                                              \
      "the format of every dump: CPython's text layout, or the JSON snapshot with every arena "    \
      "(docs/stats.schema.json)")                                                                  \
    X(interval_ms, "SOMA_STATS_INTERVAL_MS", SOMA_OPT_NUMBER, "milliseconds", 0, 0, 0, 3600000,    \
      "0 (no sampling)", "0 (no sampling)", "a number of milliseconds from 0 to 3600000",          \
      "N > 0: a thread of soma's appends a JSON sample every N ms to SOMA_STATS_FILE (what "       \
      "`soma run --timeline` draws); the dumps are then JSON too")                                 \
    X(decay_ms, "SOMA_ARENA_DECAY_MS", SOMA_OPT_NUMBER, "milliseconds", 0, 1000, 0, 3600000, "0",  \
      "1000", "a number of milliseconds from 0 to 3600000",                                        \
      "how long what is freed stays for reuse before it goes back to the OS: a wholly empty "      \
      "arena, an empty pool's pages, a cached large mapping (and a pool left empty alone in its "  \
      "class stays parked); 0: arenas at once, as CPython does (one last empty arena kept)")       \
    X(purge_thread, "SOMA_BACKGROUND_PURGE", SOMA_OPT_BOOL, "bool", 0, 1, 0, 1, "0", "1",         \
      "a boolean (1/0, yes/no, on/off, true/false)",                                               \
      "1: a thread of soma's gives back what has stayed unused for SOMA_ARENA_DECAY_MS (empty "    \
      "pools' pages, an empty arena's too, and cached large mappings) when it expires, so an "     \
      "idle program shrinks too; 0: only the program's own allocations and frees give it back")    \
    X(debug, "SOMA_DEBUG", SOMA_OPT_DEBUG, "bool, report or guard", 0, 0, 0, 3, "0", "0",          \
      "1/0, yes/no, on/off, true/false, report or guard",                                          \
      "1: debug mode (guards, fills, a quarantine, checks; a misuse is diagnosed and aborts); "    \
      "report: the same, but print and go on; guard: as 1, and every block on pages of its own "   \
      "against an inaccessible guard page, inaccessible once freed, so that an overflow or a "     \
      "use after free faults at the instruction and is diagnosed (blocks of explicit heaps, "      \
      "above 256 MiB, and made while 16384 guarded ones are live excepted: the statistics count "  \
      "the last)")                                                                                 \
    X(quarantine, "SOMA_DEBUG_QUARANTINE", SOMA_OPT_NUMBER, "bytes", 1048576, 1048576, 0,          \
      1073741824, "1048576", "1048576", "a number of bytes from 0 to 1073741824",                  \
      "debug mode: bytes of freed blocks kept from reuse, so that a write after free is caught "   \
      "(0: none)")                                                                                 \
    X(check_copies, "SOMA_CHECK_COPIES", SOMA_OPT_COPIES, "bool or bytes", 0, 513, 0,             \
      1073741824, "0", "513",                                                                      \
      "a boolean (1/0, yes/no, on/off, true/false) or a number of bytes from 2 to 1073741824",     \
      "the override only: memcpy, memmove, memset, strcpy, strcat and their kin (the "             \
      "_FORTIFY_SOURCE forms too) stop the program before a copy into one of soma's blocks runs "  \
      "past its end, with a diagnosis; 1: every copy; N: copies of N bytes or more (the "          \
      "default: those longer than a small block, which cost little; strcpy, stpcpy and strcat "    \
      "are then left alone); 0: none (debug mode always checks every copy)")                       \
    X(guard_sample, "SOMA_GUARD_SAMPLE", SOMA_OPT_NUMBER, "1 in N", 0, 0, 0, 1000000000,           \
      "0 (off)", "0 (off)", "a number from 0 to 1000000000",                                       \
      "N > 0: about one allocation in N (at random intervals, per thread) is guarded: on pages "   \
      "of its own against an inaccessible guard page, and inaccessible once freed, so that an "    \
      "overflow or a use after free faults at the instruction and is diagnosed; cheap enough "     \
      "to leave on (docs/DESIGN.md, Guard pages); 0: off")                                          \
    X(debug_leaks, "SOMA_DEBUG_LEAKS", SOMA_OPT_BOOL, "bool", 1, 1, 0, 1, "1", "1",                \
      "a boolean (1/0, yes/no, on/off, true/false)",                                               \
      "debug mode: at exit, report the blocks still in use, by size, call and the call stack "     \
      "that made them (a stack is taken at every allocation); 0: no report, no stacks")

#endif
