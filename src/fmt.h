/* fmt.h: number formatting shared by the dump (stats_print.c) and the CLI. */
#ifndef SOMA_FMT_H
#define SOMA_FMT_H

#include <stddef.h>

/* value in decimal with ',' every three digits ("1,048,576"), CPython's
 * dump style; truncated to fit len - 1 characters.  Returns buf.  A buffer
 * of SOMA_FMT_COMMAS_LEN bytes holds any size_t. */
#define SOMA_FMT_COMMAS_LEN 32
__attribute__((visibility("hidden"))) char *soma__fmt_commas(char *buf, size_t len, size_t value);

/* The length (1..4) of the well-formed UTF-8 character at p, of which at
 * most `left` bytes are there; 0 if it is not one (a stray byte, an
 * overlong form, a surrogate, a character cut short).  The JSON and the
 * pages replace such bytes with U+FFFD: a command line may hold any bytes,
 * and a truncated one may end mid-character. */
__attribute__((visibility("hidden"))) size_t soma__utf8_len(const unsigned char *p, size_t left);

#endif
