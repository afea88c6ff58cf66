/*
 * trace.h: short call stacks, taken where a block is made or freed (debug
 * mode's leak report, guarded blocks' diagnoses) and printed in a
 * diagnosis (trace.c).
 *
 * Taking one uses glibc's backtrace(), which unwinds with libgcc's tables
 * (soma's users build without frame pointers, and so do python3 and libc).
 * Its first call loads libgcc_s, which allocates: soma__trace_take is
 * therefore safe to call from inside an allocation (a take that starts
 * while the same thread is already in one returns no frames), and
 * soma__trace_warm does that first call up front where it is convenient.
 * Printing never allocates (dladdr and write(2) only): it runs in fatal
 * diagnoses and in a SIGSEGV handler.
 */
#ifndef SOMA_TRACE_H
#define SOMA_TRACE_H

#include "base/base.h"

#define SOMA_TRACE_MAX 16 /* frames kept at most */

/* Up to `max` return addresses of the caller's callers into `frames`,
 * skipping the innermost `skip` (soma's own frames); how many. */
SOMA_INTERNAL int soma__trace_take(void **frames, int max, int skip);
/* Make the first take's one-off work (loading the unwinder) happen now. */
SOMA_INTERNAL void soma__trace_warm(void);
/* One line per frame to fd, each starting with `indent`:
 *   #0 0x55d0c1e2a1b9 main+0x29 (/usr/bin/prog)
 * (the symbol as the dynamic symbol table knows it, or only the object).
 * async-signal-safe. */
SOMA_INTERNAL void soma__trace_print(int fd, const char *indent, void *const *frames, int n);

#endif
