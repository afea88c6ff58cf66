/*
 * dl_ctor_lib.c: a library that allocates in its constructor and frees in
 * its destructor, for preload_semantics (dlopen, dlclose, RTLD_DEEPBIND).
 * Its malloc and free are whatever the dynamic linker binds for it: the
 * process's (soma's, when preloaded) normally, the C library's own when it is
 * opened with RTLD_DEEPBIND.
 */
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))
enum { NBLOCKS = 50 };
static unsigned char *blocks[NBLOCKS];

__attribute__((constructor)) static void start(void)
{
    for (int i = 0; i < NBLOCKS; i++) {
        blocks[i] = malloc(8 + (size_t)i * 8);
        if (blocks[i] != NULL)
            memset(blocks[i], i, 8 + (size_t)i * 8);
    }
}

__attribute__((destructor)) static void stop(void)
{
    for (int i = 0; i < NBLOCKS; i++)
        free(blocks[i]);
}

/* How many of the constructor's blocks are intact. */
EXPORT int dl_blocks_intact(void)
{
    int n = 0;
    for (int i = 0; i < NBLOCKS; i++) {
        int ok = blocks[i] != NULL;
        for (size_t k = 0; ok && k < 8 + (size_t)i * 8; k++)
            ok = blocks[i][k] == (unsigned char)i;
        n += ok;
    }
    return n;
}

EXPORT void *dl_malloc(size_t n)
{
    return malloc(n);
}

EXPORT void dl_free(void *p)
{
    free(p);
}
