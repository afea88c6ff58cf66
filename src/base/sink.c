/* sink.c: a buffered writer over a FILE or a descriptor (sink.h says why),
 * and the one loop that writes a buffer whole with write(2). */
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "base/sink.h"

int soma__sink_write_all(int fd, const char *buf, size_t len)
{
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, buf + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        off += (size_t)w;
    }
    return 0;
}

static void drain(sink_t *s)
{
    if (s->file != NULL) {
        if (s->n > 0 && fwrite(s->buf, 1, s->n, s->file) != s->n)
            s->failed = 1;
    } else if (soma__sink_write_all(s->fd, s->buf, s->n) != 0) {
        s->failed = 1;
    }
    s->n = 0;
}

static void put_len(sink_t *s, const char *text, size_t len)
{
    while (len > 0) {
        if (s->n == sizeof s->buf)
            drain(s);
        size_t room = sizeof s->buf - s->n, k = len < room ? len : room;
        memcpy(s->buf + s->n, text, k);
        s->n += k;
        text += k;
        len -= k;
    }
}

void soma__sink_put(sink_t *s, const char *text)
{
    put_len(s, text, strlen(text));
}

void soma__sink_printf(sink_t *s, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n > 0)
        put_len(s, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

int soma__sink_flush(sink_t *s)
{
    drain(s);
    if (s->file != NULL && fflush(s->file) == EOF)
        s->failed = 1;
    return s->failed ? -1 : 0;
}
