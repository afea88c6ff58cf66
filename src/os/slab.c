/* slab.c: records from mmap'd slabs of 64 KiB (slab.h). */
#include "os/os.h"
#include "os/slab.h"

#define SLAB_BYTES ((size_t)64 * 1024)
#define PAGE ((size_t)4096)

/* In a slab's last bytes.  A slab is on its slab_t's partial list while it
 * has a record to give (live < per), on the empty list once live is 0. */
struct slab_head {
    void *free;        /* its given-back records, linked through their first word */
    unsigned live;     /* records in use */
    unsigned cut;      /* records cut so far; the rest never touched */
    slab_head_t *next; /* partial or empty list */
    slab_head_t *prev; /* partial list only */
};

static slab_head_t *head_of(const void *r)
{
    return (slab_head_t *)(((uintptr_t)r & ~(uintptr_t)(SLAB_BYTES - 1)) + SLAB_BYTES -
                           sizeof(slab_head_t));
}

static char *base_of(slab_head_t *h)
{
    return (char *)((uintptr_t)h & ~(uintptr_t)(SLAB_BYTES - 1));
}

static unsigned per_slab(const slab_t *s)
{
    return (unsigned)((SLAB_BYTES - sizeof(slab_head_t)) / s->size);
}

static void partial_push(slab_t *s, slab_head_t *h)
{
    h->prev = NULL;
    h->next = s->partial;
    if (h->next != NULL)
        h->next->prev = h;
    s->partial = h;
}

static void partial_unlink(slab_t *s, slab_head_t *h)
{
    if (h->prev != NULL)
        h->prev->next = h->next;
    else
        s->partial = h->next;
    if (h->next != NULL)
        h->next->prev = h->prev;
}

/* A fresh slab, aligned to its size (mapped twice as large, the rest
 * unmapped), or NULL with errno = ENOMEM. */
static slab_head_t *slab_new(void)
{
    char *m = soma__os_map(2 * SLAB_BYTES);
    if (m == NULL)
        return NULL;
    char *b = (char *)(((uintptr_t)m + SLAB_BYTES - 1) & ~(uintptr_t)(SLAB_BYTES - 1));
    if (b > m)
        soma__os_unmap(m, (size_t)(b - m));
    if (b + SLAB_BYTES < m + 2 * SLAB_BYTES)
        soma__os_unmap(b + SLAB_BYTES, (size_t)(m + 2 * SLAB_BYTES - (b + SLAB_BYTES)));
    return head_of(b); /* all zero: free NULL, nothing live or cut */
}

void *soma__slab_take(slab_t *s)
{
    slab_head_t *h = s->partial;
    if (h == NULL) {
        if ((h = s->spare) != NULL)
            s->spare = NULL;
        else if ((h = s->empty) != NULL)
            s->empty = h->next;
        else if ((h = slab_new()) == NULL)
            return NULL;
        partial_push(s, h);
    }
    char *r = h->free;
    if (r != NULL) {
        memcpy(&h->free, r, sizeof(void *));
        memset(r, 0, s->size);
    } else {
        /* Cut: its pages are fresh or were given back, so zero, and left
         * untouched till used; but the slab's last page stays, and a record
         * that reaches into it may find an old record's bytes there. */
        r = base_of(h) + (size_t)h->cut++ * s->size;
        if (r + s->size > base_of(h) + SLAB_BYTES - PAGE)
            memset(r, 0, s->size);
    }
    if (++h->live == per_slab(s))
        partial_unlink(s, h);
    return r;
}

void soma__slab_give(slab_t *s, void *r)
{
    slab_head_t *h = head_of(r);
    if (h->live-- == per_slab(s))
        partial_push(s, h); /* it was full, on no list */
    if (h->live == 0 && s->spare == NULL) {
        /* Every record of it is back, and no other slab is: it stays as it
         * is, the spare, so that a record taken and given back over and
         * over (an arena made and released) does not give back and fault
         * in a slab's pages each time. */
        partial_unlink(s, h);
        s->spare = h;
    } else if (h->live == 0) {
        /* Another is spare already: this one's pages go to the OS but the
         * last, which holds the header; its next record is cut afresh. */
        partial_unlink(s, h);
        if (soma__os_purge(base_of(h), SLAB_BYTES - PAGE) != 0)
            memset(base_of(h), 0, SLAB_BYTES - PAGE); /* locked pages (mlockall) stay: zero them */
        h->free = NULL;
        h->cut = 0;
        h->next = s->empty;
        s->empty = h;
        return;
    }
    memcpy(r, &h->free, sizeof(void *));
    h->free = r;
}
