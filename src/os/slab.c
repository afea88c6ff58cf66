/* slab.c: records from mmap'd slabs of 64 KiB (slab.h). */
#include "os/os.h"
#include "os/slab.h"

#define SLAB_BYTES ((size_t)64 * 1024)

void *soma__slab_take(slab_t *s)
{
    if (s->free == NULL) {
        char *slab = soma__os_map(SLAB_BYTES);
        if (slab == NULL)
            return NULL;
        for (size_t i = SLAB_BYTES / s->size; i-- > 0;)
            soma__slab_give(s, slab + i * s->size);
    }
    void *r = s->free;
    memcpy(&s->free, r, sizeof(void *));
    memset(r, 0, s->size);
    return r;
}

void soma__slab_give(slab_t *s, void *r)
{
    memcpy(r, &s->free, sizeof(void *));
    s->free = r;
}
