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
