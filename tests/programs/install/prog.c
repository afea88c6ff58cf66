/*
 * prog.c: a program built outside soma's tree against an installed soma
 * (test_install.sh builds it with pkg-config and with find_package).  It
 * allocates known numbers of blocks, prints its dump and reads it back:
 * the class rows must show exactly those blocks, the Total line must be
 * arenas * bytes/arena, and the snapshot must agree.  Exit 0 when all hold.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <soma.h>

static int failures;

#define EXPECT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "prog: FAILED: %s (line %d)\n", #cond, __LINE__);                      \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

/* "1,048,576" -> 1048576 */
static size_t uncomma(const char *s)
{
    size_t v = 0;
    for (; *s; s++)
        if (*s >= '0' && *s <= '9')
            v = v * 10 + (size_t)(*s - '0');
    return v;
}

int main(void)
{
    enum { N6 = 1234, N31 = 45 };
    static void *a[N6], *b[N31];
    for (int i = 0; i < N6; i++)
        a[i] = soma_malloc(100); /* class 6: 112 bytes */
    for (int i = 0; i < N31; i++)
        b[i] = soma_malloc(512); /* class 31 */

    soma_stats st;
    soma_stats_get(&st);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    EXPECT(f != NULL);
    if (f == NULL)
        return 1;
    EXPECT(soma_stats_print(f) == 0);
    fclose(f);

    const char *first = "Small block threshold = 512, in 32 size classes.\n\n";
    EXPECT(strncmp(text, first, strlen(first)) == 0);
    size_t rows_in_use[32] = {0}, arenas = 0, arena_size = 0, total = 0, arena_line = 0;
    int totals = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        size_t cls, size, pools, in_use, avail, n, s;
        char rest[64];
        if (sscanf(line, "%zu %zu %zu %zu %zu", &cls, &size, &pools, &in_use, &avail) == 5 &&
            cls < 32) {
            rows_in_use[cls] = in_use;
        } else if (sscanf(line, "%zu arenas * %zu bytes/arena = %63s", &n, &s, rest) == 3) {
            arenas = n;
            arena_size = s;
            arena_line = uncomma(rest);
        } else if (strncmp(line, "Total ", 6) == 0 && totals++ == 0) {
            total = uncomma(strchr(line, '='));
        }
    }
    EXPECT(rows_in_use[6] == N6);
    EXPECT(rows_in_use[31] == N31);
    EXPECT(st.classes[6].blocks_in_use == N6);
    EXPECT(arenas >= 1 && arenas == st.arenas_current);
    EXPECT(arena_size == st.arena_size);
    EXPECT(total == arenas * arena_size);
    EXPECT(arena_line == total);
    printf("soma %s: %zu blocks of class 6, %zu of class 31, %zu arenas, Total %zu\n",
           SOMA_VERSION, rows_in_use[6], rows_in_use[31], arenas, total);
    free(text);

    for (int i = 0; i < N6; i++)
        soma_free(a[i]);
    for (int i = 0; i < N31; i++)
        soma_free(b[i]);
    soma_stats_get(&st);
    EXPECT(st.classes[6].blocks_in_use == 0);
    return failures ? 1 : 0;
}
