/* slab.h: records of one size from mmap'd slabs (slab.c): soma cannot ask
 * malloc for its own bookkeeping.  The caller serialises (its own lock). */
#ifndef SOMA_SLAB_H
#define SOMA_SLAB_H

#include "base/base.h"

typedef struct {
    size_t size; /* of a record: at least a pointer, a multiple of its alignment */
    void *free;  /* given-back records, linked through their first word */
    /* The untouched rest of the newest slab, cut a record at a time: a
     * slab's pages are faulted only as records are taken (a program with
     * one arena touches one page of the arena records, not 64 KiB). */
    char *next, *end;
} slab_t;

/* A zeroed record, or NULL with errno = ENOMEM. */
SOMA_INTERNAL void *soma__slab_take(slab_t *s);
/* r back to the slab (its memory stays soma's, for the next record). */
SOMA_INTERNAL void soma__slab_give(slab_t *s, void *r);

#endif
