/* process.h: what soma knows of the process it runs in: clocks and its
 * command line (process.c). */
#ifndef SOMA_PROCESS_H
#define SOMA_PROCESS_H

#include "base/base.h"

/* A coarse monotonic clock in ms (CLOCK_MONOTONIC_COARSE: a few ns, 4 ms
 * steps), for the decay. */
SOMA_INTERNAL uint64_t soma__process_now_ms(void);
/* The precise clock in ms, for schedules finer than the coarse clock. */
SOMA_INTERNAL uint64_t soma__process_precise_ms(void);
/* ms since soma started in this process (the snapshots' elapsed_ms). */
SOMA_INTERNAL double soma__process_elapsed_ms(void);
SOMA_INTERNAL void soma__process_mark_start(void); /* soma__start, once */
/* This process's command line (/proc/self/cmdline), arguments separated by
 * spaces, on one line; "" if it cannot be read. */
SOMA_INTERNAL void soma__process_command_line(char *out, size_t len);

#endif
