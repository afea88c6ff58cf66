/*
 * sink.h: where a snapshot's text goes: a FILE, or a file descriptor.
 *
 * The descriptor form exists for soma's own sampling thread (runtime/report.c): it
 * writes with write(2) from a buffer inside the sink, so taking and writing
 * a sample never allocates (stdio would allocate its buffer through malloc,
 * that is through soma, giving the sampler a heap and arenas of its own and
 * changing the figures it reports).  Formatting uses vsnprintf into a stack
 * buffer, which does not allocate for the integer and string conversions
 * used here.
 */
#ifndef SOMA_SINK_H
#define SOMA_SINK_H

#include <stdio.h>

#include "base/base.h"

typedef struct {
    FILE *file; /* or NULL: write(fd) */
    int fd;
    int failed; /* a write failed: the whole output is reported as failed */
    size_t n;   /* bytes waiting in buf */
    char buf[8192];
} sink_t;

SOMA_INTERNAL void soma__sink_put(sink_t *s, const char *text);
SOMA_INTERNAL void soma__sink_printf(sink_t *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* All of buf to fd with write(2), again after a short write or EINTR: no
 * stdio, no malloc (a fatal message's heap may be what is broken).  0, or
 * -1 when a write fails. */
SOMA_INTERNAL int soma__sink_write_all(int fd, const char *buf, size_t len);
/* Writes what is buffered (and fflush for a FILE); 0, or -1 if any write failed. */
SOMA_INTERNAL int soma__sink_flush(sink_t *s);

#endif
