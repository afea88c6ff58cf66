/*
 * fatal.c: the end of the road for a detected misuse (a double free, a
 * pointer soma never handed out).  Carrying on would corrupt the heap
 * silently, so we say what happened on stderr and abort.  The message is
 * formatted on the stack and written with write(2): no stdio, no malloc,
 * since the heap may be the thing that is broken.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/sink.h"

void soma__fatal(const char *fmt, ...)
{
    char msg[512];
    int n = snprintf(msg, sizeof msg, "soma: fatal: ");
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof msg - 2)
        n = (int)sizeof msg - 2;
    msg[n++] = '\n';
    soma__sink_write_all(STDERR_FILENO, msg, (size_t)n);
    abort();
}
