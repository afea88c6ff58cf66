/*
 * test_heaps.c: per-thread heaps and what crosses between them.
 *
 *  - producer/consumer: one thread allocates, another verifies and frees,
 *    a million blocks through a bounded queue.  The producer must reuse what
 *    the consumer gave back (cross-thread frees are collected), so the
 *    arenas in use stay bounded by the queue, not by the message count.
 *  - thread churn: hundreds of short-lived threads each allocate and free;
 *    exited threads' heaps are adopted, so arenas stay bounded.
 *  - a block outliving its thread: allocated by a thread that exits, freed
 *    later by another; the snapshot comes back to the baseline.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "soma.h"
#include "test.h"

static size_t in_use(void)
{
    soma_stats st;
    soma_stats_get(&st);
    return test_blocks_in_use(&st);
}

static size_t arenas_now(void)
{
    soma_stats st;
    soma_stats_get(&st);
    return st.arenas_current;
}

static size_t arena_size(void)
{
    soma_stats st;
    soma_stats_get(&st);
    return st.arena_size;
}

/* ---- producer / consumer ---- */

enum { QCAP = 1024, MESSAGES = 1000000 };
static struct {
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
    unsigned char *slot[QCAP];
    size_t head, tail, n;
    int done;
} q = {.mu = PTHREAD_MUTEX_INITIALIZER,
       .not_empty = PTHREAD_COND_INITIALIZER,
       .not_full = PTHREAD_COND_INITIALIZER};
static size_t max_arenas_seen;
static _Atomic size_t corrupted;

static void *producer(void *arg)
{
    (void)arg;
    for (size_t i = 0; i < MESSAGES; i++) {
        size_t size = 16 + (i * 7) % 200;
        unsigned char *p = soma_malloc(size);
        if (p == NULL)
            break;
        p[0] = (unsigned char)size;
        memset(p + 1, (int)(i & 0xff), size - 1);
        pthread_mutex_lock(&q.mu);
        while (q.n == QCAP)
            pthread_cond_wait(&q.not_full, &q.mu);
        q.slot[q.tail] = p;
        q.tail = (q.tail + 1) % QCAP;
        q.n++;
        pthread_cond_signal(&q.not_empty);
        pthread_mutex_unlock(&q.mu);
    }
    pthread_mutex_lock(&q.mu);
    q.done = 1;
    pthread_cond_signal(&q.not_empty);
    pthread_mutex_unlock(&q.mu);
    return NULL;
}

static void *consumer(void *arg)
{
    (void)arg;
    for (size_t i = 0;; i++) {
        pthread_mutex_lock(&q.mu);
        while (q.n == 0 && !q.done)
            pthread_cond_wait(&q.not_empty, &q.mu);
        if (q.n == 0) {
            pthread_mutex_unlock(&q.mu);
            return NULL;
        }
        unsigned char *p = q.slot[q.head];
        q.head = (q.head + 1) % QCAP;
        q.n--;
        pthread_cond_signal(&q.not_full);
        pthread_mutex_unlock(&q.mu);
        size_t size = p[0] < 16 ? 16 : p[0];
        for (size_t k = 1; k < size; k++)
            if (p[k] != (unsigned char)(i & 0xff)) {
                corrupted++;
                break;
            }
        soma_free(p); /* a cross-thread free */
    }
}

static void test_producer_consumer(void)
{
    size_t base = in_use();
    pthread_t prod, cons;
    pthread_create(&cons, NULL, consumer, NULL);
    pthread_create(&prod, NULL, producer, NULL);
    /* Sample from this thread: a snapshot collects only the caller's own
     * pending frees, so it does not do the producer's collecting for it. */
    for (;;) {
        size_t a = arenas_now();
        if (a > max_arenas_seen)
            max_arenas_seen = a;
        pthread_mutex_lock(&q.mu);
        int done = q.done;
        pthread_mutex_unlock(&q.mu);
        if (done)
            break;
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    pthread_join(prod, NULL);
    pthread_join(cons, NULL);
    CHECK_EQ((size_t)corrupted, 0);
    /* 1,000,000 blocks of ~116 bytes would need ~110 arenas if freed
     * memory were never reused; the queue holds at most 1024 of them. */
    test_note("producer/consumer: at most %zu arenas during 1M messages", max_arenas_seen);
    CHECK_LE(max_arenas_seen * arena_size(), (size_t)8 << 20);
    CHECK_EQ(in_use(), base);
}

/* ---- thread churn ---- */

static _Atomic size_t churn_peak;

static void *short_life(void *arg)
{
    size_t n = (size_t)(uintptr_t)arg;
    void *blocks[2000];
    for (size_t i = 0; i < 2000; i++)
        blocks[i] = soma_malloc(1 + (i * 13 + n) % 512);
    size_t a = arenas_now(); /* while up to 4 threads hold their blocks */
    size_t seen = churn_peak;
    while (a > seen && !atomic_compare_exchange_weak(&churn_peak, &seen, a))
        ;
    for (size_t i = 0; i < 2000; i++)
        soma_free(blocks[i]);
    return NULL;
}

static void test_churn(void)
{
    size_t base = in_use(), after = 0;
    for (size_t round = 0; round < 250; round++) {
        pthread_t t[4];
        for (int k = 0; k < 4; k++)
            pthread_create(&t[k], NULL, short_life, (void *)(uintptr_t)(round * 4 + k));
        for (int k = 0; k < 4; k++)
            pthread_join(t[k], NULL);
        size_t a = arenas_now();
        if (a > after)
            after = a;
    }
    size_t peak = churn_peak;
    test_note("thread churn: 1000 threads, at most %zu arenas while they ran, %zu between rounds",
              peak, after);
    /* Each live thread holds ~0.5 MiB: an arena or three each (1 MiB or
     * 256 KiB arenas), and exited threads' heaps are adopted and trimmed,
     * so neither figure grows with the number of threads. */
    CHECK_GE(peak, 1);
    CHECK_LE(peak * arena_size(), (size_t)8 << 20);
    CHECK_LE(after, 2);
    CHECK_EQ(in_use(), base);
}

/* ---- a block outliving its thread ---- */

static void *make_blocks(void *arg)
{
    void **out = arg;
    for (int i = 0; i < 100; i++) {
        out[i] = soma_malloc(48);
        memset(out[i], 0x5a, 48);
    }
    return NULL;
}

static void test_outlive(void)
{
    size_t base = in_use();
    void *blocks[100];
    pthread_t t;
    pthread_create(&t, NULL, make_blocks, blocks);
    pthread_join(t, NULL);
    CHECK_EQ(in_use(), base + 100);
    for (int i = 0; i < 100; i++) {
        unsigned char *b = blocks[i];
        for (int k = 0; k < 48; k++)
            if (!CHECK_EQ(b[k], 0x5a))
                break;
        soma_free(b); /* into an orphaned heap */
    }
    CHECK_EQ(in_use(), base);
}

int main(void)
{
    test_begin("test_heaps");
    test_producer_consumer();
    test_churn();
    test_outlive();
    return test_summary();
}
