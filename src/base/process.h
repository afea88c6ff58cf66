/* process.h: what soma knows of the process it runs in: clocks, its
 * command line, its threads (process.c). */
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
/* When soma__process_mark_start ran, on soma__process_now_ms's clock. */
SOMA_INTERNAL uint64_t soma__process_start_ms(void);
/* This process's command line (/proc/self/cmdline), arguments separated by
 * spaces, on one line; "" if it cannot be read. */
SOMA_INTERNAL void soma__process_command_line(char *out, size_t len);
/* The process's thread count, from /proc/self/stat (open and read only:
 * async-signal-safe), and in *main_state the main thread's state ('Z'
 * once it has exited: it is counted until the process ends); -1 if it
 * cannot be read. */
SOMA_INTERNAL int soma__process_threads(char *main_state);
/* Start one of soma's own threads: detached, every signal blocked in it
 * (the program's signals are not its business), `stack` bytes of stack
 * (0: the default), named `name` (top -H, /proc/PID/task/TID/comm).
 * 0, or -1 if it could not. */
SOMA_INTERNAL int soma__process_thread(void *(*fn)(void *), size_t stack, const char *name);

#endif
