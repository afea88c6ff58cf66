/*
 * copies: the checked copies' worst case (docs/DESIGN.md, "Checked
 * copies"): every allocation is followed by copies into it.  200,000
 * rounds over 4,096 blocks of random sizes 9 to 508 bytes: free one,
 * allocate it again, memcpy a string into it, memset half of it, strcpy
 * its tail to the stack and memcpy its head there.  Built with
 * -fno-builtin, so that every copy is a call the override sees.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    enum { N = 4096 };
    char **v = calloc(N, sizeof *v);
    char stack[256], src[600];
    memset(src, 'a', sizeof src - 1);
    src[sizeof src - 1] = 0;
    unsigned long sum = 0, x = 1;
    for (int it = 0; it < 200000; it++) {
        x = x * 6364136223846793005ul + 1442695040888963407ul;
        size_t n = 8 + (x >> 33) % 500;
        int i = (int)((x >> 20) % N);
        free(v[i]);
        v[i] = malloc(n + 1);
        memcpy(v[i], src, n);
        v[i][n] = 0;
        memset(v[i], 'b', n / 2);
        strcpy(stack, v[i] + n - (n < 200 ? n : 200));
        memcpy(stack, v[i], 64);
        sum += (unsigned char)stack[3];
    }
    for (int i = 0; i < N; i++)
        free(v[i]);
    free(v);
    printf("%lu\n", sum);
    return sum == 19600000 ? 0 : 1;
}
