/*
 * test_harden: the hardened free lists (src/pool/link.h) against the misuse they
 * exist for, each committed in a child process that must stop with the
 * right message:
 *
 *   - a double free of a block whose pool still has live blocks (the case
 *     pymalloc's layout cannot see: the pool is neither empty nor full),
 *     from the owning thread, and from another thread;
 *   - free-list poisoning: a write after free puts the address of a live
 *     block of the same pool in a free block's link; the allocation that
 *     would have handed it out twice stops instead;
 *   - a free of unknown origin (an explicit heap's block) that is not the
 *     start of a block, or whose pool header was overwritten, or whose
 *     arena soma has given back (its heap was destroyed);
 *   - a medium block written after its free, found when its pool empties
 *     (the whole free list is checked then), though no block of its class
 *     is made again;
 *   - and no false alarm: blocks that are allocated and freed without ever
 *     being written, and blocks whose first word the program fills with
 *     pointers into the same pool (a list of nodes), free normally.
 *
 * In the unhardened build (-DSOMA_HARDEN=OFF) the poisoning succeeds (a
 * link within the pool passes the only check left, which stops links out
 * of the pool): the test checks that too, so it is known to fail when the
 * encoding is off.
 */
#include <pthread.h>

#include "malloc/malloc.h"
#include "test.h"

#if SOMA_HARDEN
static void double_free_local(void)
{
    void *keep[3];
    for (int i = 0; i < 3; i++)
        keep[i] = soma_malloc(64); /* the pool keeps live blocks */
    void *p = soma_malloc(64);
    fprintf(stderr, "pointer %p\n", p);
    soma_free(p);
    soma_free(p); /* must not return */
    for (int i = 0; i < 3; i++)
        soma_free(keep[i]);
}

/* A double free of a small block after its pool emptied and went to a
 * class twice as large (48 and 96 bytes: both plain twins, no tail), the
 * block in the pool's second page, which the new class has not carved:
 * its first word still holds its old link, so it looks free, and it is on
 * no list (the new class never linked it).  Unless the free sees that it
 * lies past the carved blocks, it is pushed, and carve hands it out again
 * later beside the copy on the list. */
static void double_free_after_class_change(void)
{
    enum { N = 101 };
    static void *v[N];
    for (int i = 0; i < N; i++)
        v[i] = soma_malloc(48);
    uintptr_t base = (uintptr_t)v[0] & ~(uintptr_t)(SOMA_POOL_SIZE - 1);
    if ((uintptr_t)v[0] - base != SOMA_POOL_OVERHEAD ||
        (uintptr_t)v[N - 1] - (uintptr_t)v[0] != (N - 1) * 48 ||
        (uintptr_t)v[N - 1] - base < SOMA_OS_PAGE_SIZE)
        exit(2); /* not the layout the test needs: it fails */
    fprintf(stderr, "pointer %p\n", v[N - 1]);
    for (int i = 0; i < N; i++)
        soma_free(v[i]); /* the pool empties, back to its arena */
    void *a = soma_malloc(96); /* the same pool, for the class twice as large */
    if (((uintptr_t)a & ~(uintptr_t)(SOMA_POOL_SIZE - 1)) != base)
        exit(2);
    soma_free(v[N - 1]); /* must not return */
}

static void *free_it(void *p)
{
    soma_free(p);
    return NULL;
}

static void double_free_remote(void)
{
    void *keep[3];
    for (int i = 0; i < 3; i++)
        keep[i] = soma_malloc(96);
    void *p = soma_malloc(96);
    fprintf(stderr, "pointer %p\n", p);
    for (int i = 0; i < 2; i++) { /* another thread frees it, twice */
        pthread_t t;
        pthread_create(&t, NULL, free_it, p);
        pthread_join(t, NULL);
    }
    /* The owner collects the two frees: the second is caught there. */
    for (int i = 0; i < 1000; i++)
        soma_free(soma_malloc(96));
    soma_stats st;
    soma_stats_get(&st);
    for (int i = 0; i < 3; i++)
        soma_free(keep[i]);
}

#endif

/* Two free blocks of one pool, a -> b; a write after free replaces a's
 * link with the address of `keep`, a live block of the same pool: the
 * malloc after next would hand out a block that is in use (the attacker's
 * way to overlap two objects).  Returns what that malloc gave, and *live
 * the block it targeted (the message names a, whose link was changed). */
static void *poison(void **live)
{
    void *keep = soma_malloc(128);
    void *b = soma_malloc(128), *a = soma_malloc(128);
    fprintf(stderr, "pointer %p\n", a);
    soma_free(b);
    soma_free(a);         /* the list: a -> b -> ... */
#ifdef SOMA_TRACK_ASAN
    ASAN_UNPOISON_MEMORY_REGION(a, sizeof(void *)); /* the mistake is on purpose */
#endif
    *(void **)a = keep;   /* a use after free */
    void *again = soma_malloc(128); /* a itself */
    *live = keep;
    void *second = soma_malloc(128); /* `keep` again, unless the link is checked */
    (void)again;
    return second;
}

#if SOMA_HARDEN
static void poisoned_list(void)
{
    void *live;
    void *second = poison(&live);
    fprintf(stderr, "second malloc returned %p\n", second);
}
#endif

/* Frees of unknown origin (another thread's block, or an explicit heap's:
 * soma__pool_free_other) are checked before anything is written: the pointer
 * must start a block, and its pool's header must agree with the arena
 * map.  In every build. */
static void interior_pointer(void)
{
    soma_heap *h = soma_heap_new();
    char *p = soma_heap_malloc(h, 48);
    fprintf(stderr, "pointer %p\n", (void *)(p + 16));
    soma_free(p + 16);
}

static void freed_after_destroy(void)
{
    soma_heap *h = soma_heap_new();
    void *p = soma_heap_malloc(h, 48);
    fprintf(stderr, "pointer %p\n", p);
    soma_heap_destroy(h); /* its arena goes back to the OS */
    soma_free(p);
}

static void forged_pool_header(void)
{
    soma_heap *h = soma_heap_new();
    void *keep = soma_heap_malloc(h, 64);
    void *p = soma_heap_malloc(h, 64);
    fprintf(stderr, "pointer %p\n", p);
    pool_t *pool = soma__pool_of(p);
    pool->arena = (arena_t *)keep; /* an overflow into the pool header */
    soma_free(p);
}

/* A medium block written after its free, its pool never used again for
 * that class: the link it damaged is found when the pool's last block is
 * freed and the whole list is checked.  1,500 bytes is medium in both
 * geometries (a fresh child: the blocks are carved in order, and the
 * free of the last one in b[0]'s pool finds it). */
static void medium_written_after_free(void)
{
    enum { N = 4 };
    unsigned char *b[N];
    soma_stats st;
    soma_stats_get(&st);
    for (int i = 0; i < N; i++)
        b[i] = soma_malloc(1500);
    int last = 0;
    for (int i = 1; i < N; i++)
        if (((uintptr_t)b[i] ^ (uintptr_t)b[0]) < st.pool_size)
            last = i;
    fprintf(stderr, "pointer %p\n", (void *)b[last]); /* the free that finds it */
    soma_free(b[0]);
#ifdef SOMA_TRACK_ASAN
    ASAN_UNPOISON_MEMORY_REGION(b[0], 8); /* the mistake is on purpose */
#endif
    memset(b[0], 'W', 8); /* the mistake */
    for (int i = 1; i < N; i++)
        soma_free(b[i]); /* b[last]'s must not return */
}

int main(void)
{
    test_program_name = "test_harden";
    test_expect_fatal("medium block written after free", medium_written_after_free,
                      "is corrupted near");
    test_expect_fatal("interior pointer", interior_pointer, "not the start of a block");
    test_expect_fatal("forged pool header", forged_pool_header, "is corrupted");
    test_expect_fatal("freed after its heap was destroyed", freed_after_destroy,
                      "it lies in an arena soma has given back");
#if SOMA_HARDEN
    test_expect_fatal("double free (local)", double_free_local, "double free");
    test_expect_fatal("double free (remote)", double_free_remote, "double free");
    if (SOMA_POOL_SIZE > SOMA_OS_PAGE_SIZE)
        test_expect_fatal("double free after its pool changed class",
                          double_free_after_class_change,
                          "not an allocated block (a double free, or a block of pool");
    /* The message names the corrupted link: the attacker's address. */
    test_expect_fatal("poisoned free list", poisoned_list, "is corrupted");

    /* No false alarms: blocks freed untouched, and blocks whose first word
     * is a pointer into their own pool (a linked list of nodes). */
    for (int round = 0; round < 3; round++) {
        enum { N = 5000 };
        static void *blocks[N];
        for (int i = 0; i < N; i++)
            blocks[i] = soma_malloc(16 + (size_t)(i % 8) * 16);
        for (int i = 0; i < N; i++)
            if (i % 3 == 0)
                *(void **)blocks[i] = blocks[(i + 1) % N]; /* same pool, often */
        for (int i = N - 1; i >= 0; i--)
            soma_free(blocks[i]);
        for (int i = 0; i < N; i++)
            soma_free(soma_malloc(48)); /* allocated and freed, never written */
    }
    char why[256];
    /* Reached: no false double free above; and the lists are whole. */
    CHECK_EQ(soma__check_heap(soma__heap_current(), why, sizeof why), 0);
    /* The check sees a link into the middle of a block, and one that
     * closes a cycle, then the list mended. */
    {
        void *keep = soma_malloc(64), *b = soma_malloc(64), *a = soma_malloc(64);
        soma_free(b);
        soma_free(a); /* the list: a -> b -> ... */
        void *next = soma__link_get(a);
        void *bad[2] = {(char *)b + 16, a};
        for (int k = 0; k < 2; k++) {
            soma__link_set(a, bad[k]);
            CHECK(soma__check_heap(soma__heap_current(), why, sizeof why) != 0 &&
                  strstr(why, "not carved, or one twice") != NULL);
            CHECK(soma_debug_check() == 1);
        }
        soma__link_set(a, next);
        CHECK_EQ(soma__check_heap(soma__heap_current(), why, sizeof why), 0);
        soma_free(keep);
    }
#else
    /* Unhardened, the write after free steers the allocation onto a live
     * block: the attack the encoding stops. */
    void *live;
    CHECK_PTR_EQ(poison(&live), live);
#endif
    return test_summary();
}
