/*
 * test_pool: how blocks are carved from pools and reused.  For every class
 * (and, hardened, for both its twins: the requests that fill a block and
 * those that leave it 8 bytes, served from pools of their own):
 *
 *   - a fresh pool hands out its blocks in address order, the first at
 *     pool + 48 and the next at pool + 48 + size, ... (pool = address masked
 *     down to the pool size, which is read from soma_stats_get);
 *   - a pool holds exactly (pool_size - 48) / size blocks: the allocation
 *     after that many lands in another pool and "num pools" goes 1 -> 2;
 *   - freeing a block and allocating again gives the same address (LIFO),
 *     also for several frees in a row (last freed, first reused);
 *   - a full pool that gets a block back is used again first: the next
 *     allocation returns that block, not the next virgin block of the other,
 *     half-empty pool;
 *   - once all blocks are freed the class has no pool in use.
 */
#include "soma.h"
#include "test.h"

static soma_stats st0, st;

static uintptr_t pool_of(const void *p, size_t pool_size)
{
    return (uintptr_t)p & ~(uintptr_t)(pool_size - 1);
}

/* top: the largest request of the twin tested (soma.h: a hardened build
 * serves the requests that leave a block 8 bytes free from pools of their
 * own, with a tail): size, or size - 8. */
static void test_class(unsigned c, size_t top, size_t pool_size, size_t overhead)
{
    const size_t size = (size_t)(c + 1) * 16;
    const size_t cap = (pool_size - overhead) / size;
    /* cap blocks fill the first pool, then two more go to the second. */
    const size_t n = cap + 2;
    void **b = calloc(n, sizeof *b); /* the test's own bookkeeping: libc */
    if (!CHECK(b != NULL))
        return;

    soma_stats_get(&st0);
    int fresh = st0.classes[c].num_pools == 0;
    if (!CHECK(fresh))
        test_note("class %u already has pools in use; address checks skipped", c);

    for (size_t i = 0; i < n; i++) {
        /* Each request size that maps to this class and twin, in turn. */
        b[i] = soma_malloc(top - (i % 8));
        if (!CHECK(b[i] != NULL)) {
            free(b);
            return;
        }
        if (i == cap - 1) {
            /* The first pool is exactly full now. */
            soma_stats_get(&st);
            CHECK_EQ(st.classes[c].num_pools, 1);
            CHECK_EQ(st.classes[c].blocks_in_use, cap);
            CHECK_EQ(st.classes[c].avail_blocks, 0);
        }
    }
    uintptr_t pool1 = pool_of(b[0], pool_size);
    uintptr_t pool2 = pool_of(b[cap], pool_size);

    if (fresh) {
        for (size_t i = 0; i < cap; i++) {
            if (!CHECK_EQ((uintptr_t)b[i], pool1 + overhead + i * size)) {
                test_note("  class %u, block %zu of the first pool", c, i);
                break;
            }
        }
        /* The (cap+1)th block is the first of another, fresh pool. */
        CHECK_NE(pool2, pool1);
        CHECK_EQ((uintptr_t)b[cap], pool2 + overhead);
        CHECK_EQ((uintptr_t)b[cap + 1], pool2 + overhead + size);
    }
    soma_stats_get(&st);
    CHECK_EQ(st.classes[c].num_pools, 2);
    CHECK_EQ(st.classes[c].blocks_in_use, cap + 2);
    CHECK_EQ(st.classes[c].avail_blocks, 2 * cap - (cap + 2));

    /* A full pool that gets a block back waits behind the pool in service,
     * which keeps serving until it is full; then the waiting pool serves the
     * block it got back. */
    size_t k = cap / 2;
    void *freed = b[k];
    soma_free(freed);
    soma_stats_get(&st);
    CHECK_EQ(st.classes[c].num_pools, 2);
    CHECK_EQ(st.classes[c].blocks_in_use, cap + 1);
    size_t rest = cap - 2; /* free blocks left in the second pool */
    void **more = malloc(rest * sizeof *more);
    for (size_t i = 0; i < rest; i++) {
        more[i] = soma_malloc(top);
        CHECK_EQ((uintptr_t)more[i], pool2 + overhead + (i + 2) * size);
    }
    b[k] = soma_malloc(top);
    CHECK_PTR_EQ(b[k], freed);
    for (size_t i = 0; i < rest; i++)
        soma_free(more[i]);
    free(more);

    /* LIFO reuse in the used pool. */
    freed = b[cap + 1];
    soma_free(freed);
    b[cap + 1] = soma_malloc(top);
    CHECK_PTR_EQ(b[cap + 1], freed);

    /* Emptying the second pool leaves one pool in use. */
    soma_free(b[cap]);
    soma_free(b[cap + 1]);
    soma_stats_get(&st);
    CHECK_EQ(st.classes[c].num_pools, 1);
    CHECK_EQ(st.classes[c].blocks_in_use, cap);

    /* Freed blocks come back newest first. */
    if (cap >= 4) {
        void *x = b[1], *y = b[3], *z = b[2];
        soma_free(x);
        soma_free(y);
        soma_free(z);
        void *r1 = soma_malloc(top), *r2 = soma_malloc(top), *r3 = soma_malloc(top);
        CHECK_PTR_EQ(r1, z);
        CHECK_PTR_EQ(r2, y);
        CHECK_PTR_EQ(r3, x);
        b[1] = r3;
        b[2] = r1;
        b[3] = r2;
    }

    for (size_t i = 0; i < cap; i++)
        soma_free(b[i]);
    soma_stats_get(&st);
    CHECK_EQ(st.classes[c].num_pools, st0.classes[c].num_pools);
    CHECK_EQ(st.classes[c].blocks_in_use, st0.classes[c].blocks_in_use);
    free(b);
}

int main(void)
{
    test_begin("test_pool");
    soma_stats_get(&st0);
    size_t pool_size = st0.pool_size, overhead = st0.pool_overhead;
    test_note("pool size %zu, arena size %zu, pool header %zu", pool_size, st0.arena_size,
              overhead);
    CHECK_EQ(overhead, 48);
    CHECK(pool_size >= 4096 && (pool_size & (pool_size - 1)) == 0);
    CHECK_EQ(st0.arena_size % pool_size, 0);
    for (unsigned c = 0; c < SOMA_NUM_CLASSES; c++) {
        test_class(c, (c + 1) * 16, pool_size, overhead);
        if (st0.medium_tail != 0 && SOMA_TEST_SMALL_TAILS) /* the tailed twin (classes.h) */
            test_class(c, (c + 1) * 16 - 8, pool_size, overhead);
    }
    return test_summary();
}
