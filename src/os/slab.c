/* slab.c: records from mmap'd slabs of 64 KiB (slab.h). */
#include "os/os.h"
#include "os/slab.h"

#define SLAB_BYTES ((size_t)64 * 1024)

void *soma__slab_take(slab_t *s)
{
    void *r = s->free;
    if (r != NULL) {
        memcpy(&s->free, r, sizeof(void *));
        memset(r, 0, s->size);
        return r;
    }
    if ((size_t)(s->end - s->next) < s->size) {
        /* the rest of the old slab, shorter than a record, is lost */
        char *slab = soma__os_map(SLAB_BYTES);
        if (slab == NULL)
            return NULL;
        s->next = slab;
        s->end = slab + SLAB_BYTES;
    }
    r = s->next; /* fresh from the OS: zero already */
    s->next += s->size;
    return r;
}

void soma__slab_give(slab_t *s, void *r)
{
    memcpy(r, &s->free, sizeof(void *));
    s->free = r;
}
