/* slab.h: records of one size from mmap'd slabs (slab.c): soma cannot ask
 * malloc for its own bookkeeping.  The caller serialises (its own lock).
 *
 * A slab is 64 KiB, aligned to its size, its header in its last bytes
 * (slab.c), so a record finds its slab from its address.  Records are cut
 * from a slab as they are wanted, so its pages are touched only as records
 * are; a slab whose records are all given back gives its pages back to the
 * OS but for the last one, which holds its header, and is cut afresh when
 * records are wanted again (one such slab is kept as it is, the spare).  Given-back memory still reads (as zeros):
 * a reader that raced a record's release (a free of a stale pointer that
 * looked up an arena just released) reads zeros, never an unmapped page. */
#ifndef SOMA_SLAB_H
#define SOMA_SLAB_H

#include "base/base.h"

typedef struct slab_head slab_head_t;

typedef struct {
    size_t size;          /* of a record: at least a pointer, a multiple of its alignment */
    slab_head_t *partial; /* slabs with a record to give: free, or not yet cut */
    slab_head_t *spare;   /* a slab with no record in use, kept as it is (one) */
    slab_head_t *empty;   /* more such slabs, their pages given back */
} slab_t;

/* A zeroed record, or NULL with errno = ENOMEM. */
SOMA_INTERNAL void *soma__slab_take(slab_t *s);
/* r back to its slab; the slab's pages go back to the OS once no record of
 * it is in use (its address range stays soma's, for later records). */
SOMA_INTERNAL void soma__slab_give(slab_t *s, void *r);

#endif
