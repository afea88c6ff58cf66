/*
 * fmt.c: number formatting shared by the text outputs (the dump and the CLI).
 * No allocation: callers pass the buffer.
 */
#include <stdio.h>

#include "fmt.h"

char *soma__fmt_commas(char *buf, size_t len, size_t value)
{
    char digits[24];
    int n = snprintf(digits, sizeof digits, "%zu", value);
    size_t j = 0;
    for (int i = 0; i < n && j + 2 < len; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            buf[j++] = ',';
        buf[j++] = digits[i];
    }
    if (len > 0)
        buf[j] = '\0';
    return buf;
}

size_t soma__utf8_len(const unsigned char *p, size_t left)
{
    if (left == 0)
        return 0;
    unsigned c = p[0];
    size_t n;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, min = 0x10000;
    else
        return 0;
    if (left < n)
        return 0;
    unsigned cp = c & (0x7fu >> n);
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}
