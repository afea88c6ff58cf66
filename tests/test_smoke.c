#include <stdio.h>
#include <string.h>
#include "soma.h"
int main(void) {
    void *p[1000];
    for (int i = 0; i < 1000; i++) { p[i] = soma_malloc(1 + i % 600); memset(p[i], i, 1 + i % 600); }
    soma_stats_print(stdout);
    for (int i = 0; i < 1000; i++) soma_free(p[i]);
    soma_stats_print(stdout);
    return 0;
}
