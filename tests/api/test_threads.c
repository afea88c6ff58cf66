/*
 * test_threads: the stress traffic (stress.h) from several threads at once.
 *
 *   - each thread runs its own table of slots (verified contents, usable
 *     sizes, the realloc rules), filling and draining in phases;
 *   - some blocks change hands: a thread gives a live block to a shared,
 *     mutex-protected queue, and another thread takes it, checks its
 *     contents, and frees it, reallocs it, or keeps it in its own table;
 *   - while that goes on, the threads take snapshots (soma_stats_get and
 *     soma_stats_print) whose arithmetic must hold at every instant;
 *   - after joining: all live blocks intact and non-overlapping, the
 *     per-class blocks in use equal the model's, and after freeing
 *     everything the counts are back at the baseline.
 *
 * SOMA_THREADS (default 4, at most 16), SOMA_THREAD_OPS (operations per
 * thread, default 300,000) and SOMA_STRESS_SEED change the run.
 */
#include <pthread.h>

#include "stress.h"

#define MAX_THREADS 16
#define QUEUE_LEN 1024

static soma_stats base;

/* The hand-over queue: a ring of blocks with their pattern keys. */
static struct {
    pthread_mutex_t lock;
    stress_slot items[QUEUE_LEN];
    size_t head, count;
    unsigned long long given, taken;
} queue = {.lock = PTHREAD_MUTEX_INITIALIZER};

typedef struct {
    stress_table table;
    unsigned long long nops;
    int id;
    unsigned long long snapshots;
} worker;

static worker workers[MAX_THREADS];

static int queue_put(const stress_slot *s)
{
    int ok = 0;
    pthread_mutex_lock(&queue.lock);
    if (queue.count < QUEUE_LEN) {
        queue.items[(queue.head + queue.count) % QUEUE_LEN] = *s;
        queue.count++;
        queue.given++;
        ok = 1;
    }
    pthread_mutex_unlock(&queue.lock);
    return ok;
}

static int queue_get(stress_slot *s)
{
    int ok = 0;
    pthread_mutex_lock(&queue.lock);
    if (queue.count > 0) {
        *s = queue.items[queue.head];
        queue.head = (queue.head + 1) % QUEUE_LEN;
        queue.count--;
        queue.taken++;
        ok = 1;
    }
    pthread_mutex_unlock(&queue.lock);
    return ok;
}

/* Give the block in slot i away. */
static void give(stress_table *t, size_t i)
{
    stress_slot *s = &t->slots[i];
    if (queue_put(s)) {
        stress_model_add(t, s, -1);
        memset(s, 0, sizeof *s);
    }
}

/* Take a block from another thread: check it, then free it, realloc it, or
 * keep it in (empty) slot i. */
static void take(stress_table *t, size_t i)
{
    stress_slot s;
    if (!queue_get(&s))
        return;
    if (!stress_intact(s.p, s.size, s.key)) {
        t->errors++;
        FAIL("a block handed over between threads (%p, %zu bytes) arrived corrupted",
             (void *)s.p, s.size);
    }
    t->slots[i] = s;
    stress_model_add(t, &s, +1);
    uint64_t what = test_rng_below(&t->rng, 3);
    if (what == 0)
        stress_free(t, i);
    else if (what == 1)
        stress_realloc(t, i, stress_size(&t->rng));
    /* else: keep it */
}

/* A snapshot taken while the others allocate: exact for its instant. */
static void snapshot(worker *w)
{
    static _Thread_local soma_stats st;
    soma_stats_get(&st);
    size_t alloc = 0, avail = 0;
    int ok = 1;
    for (unsigned c = 0; c < SOMA_NUM_CLASSES; c++) {
        const soma_class_stats *cs = &st.classes[c];
        size_t cap = (st.pool_size - st.pool_overhead) / cs->size;
        ok &= cs->avail_blocks == cs->num_pools * cap - cs->blocks_in_use;
        alloc += cs->blocks_in_use * cs->size;
        avail += cs->avail_blocks * cs->size;
    }
    ok &= st.bytes_in_allocated_blocks == alloc && st.bytes_in_available_blocks == avail;
    ok &= st.total == st.arenas_current * st.arena_size;
    ok &= st.arenas_reclaimed == st.arenas_allocated_total - st.arenas_current;
    ok &= st.arenas_highwater >= st.arenas_current;
    if (!CHECK(ok))
        test_note("  thread %d: an inconsistent snapshot", w->id);
    w->snapshots++;

    /* The printed form too, to a throw-away stream. */
    FILE *f = fopen("/dev/null", "w");
    if (f) {
        CHECK_EQ(soma_stats_print(f), 0);
        fclose(f);
    }
}

static void *run(void *arg)
{
    worker *w = arg;
    stress_table *t = &w->table;
    for (unsigned long long k = 1; k <= w->nops; k++) {
        if (k % 65536 == 1)
            stress_phase(t, (int)((k / 65536 + (unsigned long long)w->id) & 1));
        uint64_t r = test_rng_below(&t->rng, 1000);
        size_t i = (size_t)test_rng_below(&t->rng, t->nslots);
        if (r < 15 && t->slots[i].p != NULL)
            give(t, i);
        else if (r < 30 && t->slots[i].p == NULL)
            take(t, i);
        else
            stress_step(t);
        if (k % 50000 == 0)
            snapshot(w);
        if (t->errors > 20) {
            FAIL("thread %d: too many errors, stopping", w->id);
            break;
        }
    }
    return NULL;
}

int main(void)
{
    test_begin("test_threads");
    stress_setup();
    unsigned long long nthreads = test_env_ull("SOMA_THREADS", 4);
    unsigned long long ops = test_env_ull("SOMA_THREAD_OPS", 300000);
    unsigned long long seed = test_env_ull("SOMA_STRESS_SEED", 777);
    if (nthreads < 2)
        nthreads = 2;
    if (nthreads > MAX_THREADS)
        nthreads = MAX_THREADS;
    test_note("%llu threads x %llu operations, seed %llu", nthreads, ops, seed);

    soma_stats_get(&base);
    pthread_t tid[MAX_THREADS];
    for (unsigned i = 0; i < nthreads; i++) {
        workers[i].id = (int)i;
        workers[i].nops = ops;
        if (!CHECK(stress_init(&workers[i].table, 2048, i + 1, seed * 1000003ULL + i)))
            return test_summary();
    }
    for (unsigned i = 0; i < nthreads; i++)
        CHECK_EQ(pthread_create(&tid[i], NULL, run, &workers[i]), 0);
    for (unsigned i = 0; i < nthreads; i++)
        pthread_join(tid[i], NULL);

    /* What is left in the queue goes into one more table. */
    static stress_table rest;
    CHECK(stress_init(&rest, QUEUE_LEN, 99, 1));
    stress_slot s;
    size_t n = 0;
    while (queue_get(&s)) {
        rest.slots[n] = s;
        stress_model_add(&rest, &s, +1);
        n++;
    }
    test_note("%llu blocks handed between threads, %zu left in the queue", queue.given, n);
    CHECK_GT(queue.taken, 0);

    stress_table *tables[MAX_THREADS + 1];
    unsigned long long total_ops = 0, snaps = 0;
    for (unsigned i = 0; i < nthreads; i++) {
        tables[i] = &workers[i].table;
        total_ops += workers[i].table.ops;
        snaps += workers[i].snapshots;
    }
    tables[nthreads] = &rest;
    size_t live = stress_sweep(tables, nthreads + 1);
    soma_stats st;
    soma_stats_get(&st);
    stress_compare_stats(tables, nthreads + 1, &base, &st);
    test_note("%llu operations, %llu concurrent snapshots; %zu blocks live at the end, %zu arenas",
              total_ops, snaps, live, st.arenas_current);

    for (unsigned i = 0; i <= nthreads; i++)
        stress_drain(tables[i]);
    soma_stats_get(&st);
    for (unsigned c = 0; c < SOMA_NUM_CLASSES; c++)
        CHECK_EQ(st.classes[c].blocks_in_use, base.classes[c].blocks_in_use);
    CHECK_LE(st.arenas_current, base.arenas_current + 1);
    for (unsigned i = 0; i <= nthreads; i++)
        free(tables[i]->slots);
    return test_summary();
}
