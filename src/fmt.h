/* fmt.h: number formatting shared by the dump (stats_print.c) and the CLI. */
#ifndef SOMA_FMT_H
#define SOMA_FMT_H

#include <stddef.h>

/* value in decimal with ',' every three digits ("1,048,576"), CPython's
 * dump style; truncated to fit len - 1 characters.  Returns buf.  A buffer
 * of SOMA_FMT_COMMAS_LEN bytes holds any size_t. */
#define SOMA_FMT_COMMAS_LEN 32
__attribute__((visibility("hidden"))) char *soma__fmt_commas(char *buf, size_t len, size_t value);

#endif
