/*
 * common/text.h: number formatting and UTF-8 checking, shared deliberately
 * by the library (src/: the dump, soma_stats_diff, the JSON snapshot) and
 * the CLI (tools/soma: the demo's summaries, the pages).  They are static
 * inline, so each side compiles its own copy: the CLI calls none of the
 * library's hidden (soma__) symbols, and neither side exports these.  No
 * allocation: callers pass the buffer.
 */
#ifndef SOMA_COMMON_TEXT_H
#define SOMA_COMMON_TEXT_H

#include <stddef.h>
#include <stdio.h>

/* A buffer of SOMA_TEXT_COMMAS_LEN bytes holds any size_t with its commas. */
#define SOMA_TEXT_COMMAS_LEN 32

/* value in decimal with ',' every three digits ("1,048,576"), CPython's
 * dump style; truncated to fit len - 1 characters.  Returns buf. */
static inline char *soma_text_commas(char *buf, size_t len, size_t value)
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

/* The length (1..4) of the well-formed UTF-8 character at p, of which at
 * most `left` bytes are there; 0 if it is not one (a stray byte, an
 * overlong form, a surrogate, a character cut short).  The JSON and the
 * pages replace such bytes with U+FFFD: a command line may hold any bytes,
 * and a truncated one may end mid-character. */
static inline size_t soma_text_utf8_len(const unsigned char *p, size_t left)
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

#endif
