/*
 * purge.h: what the tests of memory return (issue 15: empty pools' pages
 * given back inside live arenas, the purge thread, soma_purge) share.
 *
 *   purge_threads()            how many of the process's threads are named
 *                              "soma-purge" (/proc/self/task/<tid>/comm)
 *   purge_pool_resident(a, n)  pages of the n-byte pool at a that hold memory
 *   purge_thread_start(decay)  bring the purge thread up, the way a program
 *                              does, and wait for it (1: it runs)
 *   purge_plan(...)            which of a run of blocks to keep so that
 *                              pools empty but no arena does, and the pools
 *                              that the other blocks' frees will empty
 *
 * The tests take the kernel's word for what is resident (mincore, through
 * test.h's test_resident_pages), never soma's counters alone: a counter
 * that says a pool went back while its pages are still there is exactly
 * the bug they are for.  None of these helpers calls soma, so a test may
 * use them while it wants the allocator left alone (the purge thread must
 * then do the work by itself), but for purge_thread_start, which must.
 *
 * Each test program is one .c file that includes this header once (it
 * includes test.h, whose clock, sleep and mincore helpers it uses).
 */
#ifndef SOMA_TEST_PURGE_H
#define SOMA_TEST_PURGE_H

#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "soma.h"
#include "test.h"

/* Threads named soma-purge in this process.  opendir allocates with the C
 * library's malloc, which in a program linked with libsoma.a (not the
 * override) is not soma's: the count disturbs no heap of soma's. */
static inline int purge_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], comm[32] = {0};
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue; /* the thread ended meanwhile */
        ssize_t got = read(fd, comm, sizeof comm - 1);
        close(fd);
        if (got > 0 && strncmp(comm, "soma-purge\n", 11) == 0)
            n++;
    }
    closedir(d);
    return n;
}

static inline size_t purge_pool_resident(uintptr_t pool, size_t pool_size)
{
    return test_resident_pages(pool, pool_size);
}

/* The purge thread starts lazily (src/base/wake.h): at a slow path that
 * holds no lock, once the process has run for a decay period.  So wait
 * that long, then free large blocks (a mapping put in the cache is such a
 * point, and leaves the pools the tests count alone; the cache gives it
 * back after the decay) until the thread is there.  1 if it is, within
 * 15 s (it takes a few decays on an idle machine; 5 s ran out once under
 * a sanitizer's build on a loaded one; every caller's CTest limit is 30 s
 * or more, and test_purge_fork's children give it 20 s). */
static inline int purge_thread_start(long decay_ms)
{
    test_sleep_ms(decay_ms + 10);
    uint64_t until = test_now_ms() + 15000;
    while (test_now_ms() < until) {
        if (purge_threads() > 0)
            return 1;
        /* 9 MiB: the thread starts only once soma's memory has passed
         * 8 MiB (runtime/purge.c's PURGE_WORTH).  Held for longer than
         * the decay, as a program's buffer is: its free then begins a new
         * window of the large cache, which forgot the block's peak once
         * (the thread never started; the free of a block made just
         * before, as this did, hid it but under load). */
        void *big = soma_malloc((size_t)9 << 20);
        test_sleep_ms(decay_ms + 1);
        soma_free(big);
        test_sleep_ms(5);
    }
    return purge_threads() > 0;
}

/* blocks[0..n), taken in order from fresh pools: kept[i] = 1 for the first
 * block of each arena (so that freeing the others empties pools but no
 * arena), and the bases of the pools the others' frees will empty into
 * emptied[] (room for n); returns how many. */
static inline size_t purge_plan(unsigned char *const *blocks, size_t n, size_t pool_size,
                                size_t arena_size, unsigned char *kept, uintptr_t *emptied)
{
    uintptr_t arena = 0, pool = 0;
    int pool_kept = 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uintptr_t a = (uintptr_t)blocks[i] & ~(uintptr_t)(arena_size - 1);
        uintptr_t p = (uintptr_t)blocks[i] & ~(uintptr_t)(pool_size - 1);
        if (p != pool) {
            if (pool != 0 && !pool_kept)
                emptied[k++] = pool;
            pool = p;
            pool_kept = 0;
        }
        kept[i] = i == 0 || a != arena;
        if (kept[i]) {
            arena = a;
            pool_kept = 1;
        }
    }
    if (n > 0 && !pool_kept)
        emptied[k++] = pool;
    return k;
}

#endif /* SOMA_TEST_PURGE_H */
