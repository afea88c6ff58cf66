/*
 * bench_small.c: small-object workloads, written against plain malloc/free
 * so the same binary runs under every allocator (bench/run.py preloads
 * each in turn).  Usage: bench_small WORKLOAD [SCALE]
 *
 *   lifo1, lifo2   random sizes 8..512, a live working set, freed newest
 *                  first; 1 and 2 threads
 *   fifo1, fifo2   the same, freed oldest first (a ring)
 *   mixed1, mixed2 like lifo, but a quarter of the requests are 513..4096
 *                  bytes: above soma's small threshold (1 and 2 threads)
 *   xthread        producer/consumer: one thread allocates, another frees
 *   tree           build and tear down binary search trees of 48-byte nodes
 *   strings        split text into words, count them in a hash table of
 *                  strdup'ed keys, join lines back
 *   pyobj          an object churn shaped like a Python program: small
 *                  objects of a few sizes, lists grown by realloc, tuples
 *                  made and dropped
 *   random1, random2  random sizes 8..512 over a working set of ~14,000
 *                  live blocks, freed in random order; 1 and 2 threads
 *   random1k8      the same with sizes 8..8192
 *   prodcons       2 producers hand 16..512-byte blocks to 2 consumers
 *                  through lock-free rings; every consumer frees blocks of
 *                  every producer
 *   larsonish      threads replace random blocks of a shared array, end,
 *                  and new threads take over the array another left
 *   churn          generations of short-lived threads: each frees the
 *                  blocks an ended thread left and leaves its own
 *   big            random sizes 8 KiB..256 KiB, 200 live, random order,
 *                  every page written
 *   huge           a malloc/free loop of 5..25 MiB blocks (4 live), every
 *                  page written
 *
 * SCALE multiplies the work (a fraction is allowed: cachegrind runs use
 * one).  Every workload prints its peak RSS and, where it counts them, its
 * malloc+free operations ("ops N") on stderr.
 *
 * Every workload checks what it computed and exits non-zero if it is wrong,
 * so a fast allocator cannot be a broken one.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double scale = 1; /* may be below 1: cachegrind runs a reduced scale */

/* n times the scale, at least 1 */
static long scaled(long n)
{
    long v = (long)((double)n * scale);
    return v > 0 ? v : 1;
}

/* The count of malloc+free operations a workload made, on stderr beside the
 * peak RSS: bench/counts.py divides cachegrind's totals by it. */
static void report_ops(long ops)
{
    fprintf(stderr, "ops %ld\n", ops);
}

static inline uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "bench_small: wrong result in %s\n", what);
        exit(1);
    }
}

/* ---- lifo / fifo ---- */

typedef struct {
    int fifo;
    uint64_t seed;
    uint64_t sum;
    int mixed; /* a quarter of the sizes above 512 */
    long ops;  /* mallocs and frees made */
} set_arg;

static void *working_set(void *argp)
{
    set_arg *arg = argp;
    enum { LIVE = 4096 };
    unsigned char *live[LIVE] = {0};
    size_t head = 0, n = 0;
    uint64_t s = arg->seed, sum = 0;
    long ops = scaled(20000000L);
    for (long i = 0; i < ops; i++) {
        if (n == LIVE || (n > 0 && rnd(&s) % 2 == 0)) {
            size_t k = arg->fifo ? head : (head + n - 1) % LIVE;
            sum += live[k][0];
            free(live[k]);
            if (arg->fifo)
                head = (head + 1) % LIVE;
            n--;
        } else {
            uint64_t r = rnd(&s);
            size_t size = arg->mixed && r % 4 == 0 ? 513 + (r >> 2) % 3584 : 8 + (r >> 2) % 505;
            unsigned char *p = malloc(size);
            p[0] = (unsigned char)size;
            live[(head + n) % LIVE] = p;
            n++;
        }
    }
    arg->ops = ops + (long)n; /* the loop's operations, and the drain's frees */
    while (n > 0) {
        size_t k = (head + n - 1) % LIVE;
        sum += live[k][0];
        free(live[k]);
        n--;
    }
    arg->sum = sum;
    return NULL;
}

static void run_sets(int fifo, int threads, int mixed)
{
    pthread_t t[2];
    set_arg a[2] = {{fifo, 0x1234567, 0, mixed, 0}, {fifo, 0x7654321, 0, mixed, 0}};
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, working_set, &a[i]);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    check(a[0].sum > 0, "working set");
    report_ops(threads == 2 ? a[0].ops + a[1].ops : a[0].ops);
}

/* ---- producer / consumer ---- */

enum { RING = 1024 };
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned char *slot[RING];
    size_t head, n;
    int done;
} ring = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void *consumer(void *arg)
{
    uint64_t *sum = arg;
    unsigned char *batch[64];
    for (;;) {
        pthread_mutex_lock(&ring.mu);
        while (ring.n == 0 && !ring.done)
            pthread_cond_wait(&ring.cv, &ring.mu);
        size_t k = 0;
        while (ring.n > 0 && k < 64) {
            batch[k++] = ring.slot[ring.head];
            ring.head = (ring.head + 1) % RING;
            ring.n--;
        }
        int done = ring.done && ring.n == 0 && k == 0;
        pthread_cond_broadcast(&ring.cv);
        pthread_mutex_unlock(&ring.mu);
        for (size_t i = 0; i < k; i++) {
            *sum += batch[i][0];
            free(batch[i]);
        }
        if (done)
            return NULL;
    }
}

static void run_xthread(void)
{
    uint64_t sum = 0, want = 0, s = 99;
    pthread_t c;
    pthread_create(&c, NULL, consumer, &sum);
    long msgs = scaled(2000000L);
    unsigned char *batch[64];
    for (long i = 0; i < msgs; i += 64) {
        for (int k = 0; k < 64; k++) {
            size_t size = 16 + rnd(&s) % 240;
            batch[k] = malloc(size);
            batch[k][0] = (unsigned char)size;
            want += (unsigned char)size;
        }
        pthread_mutex_lock(&ring.mu);
        for (int k = 0; k < 64; k++) {
            while (ring.n == RING)
                pthread_cond_wait(&ring.cv, &ring.mu);
            ring.slot[(ring.head + ring.n) % RING] = batch[k];
            ring.n++;
        }
        pthread_cond_broadcast(&ring.cv);
        pthread_mutex_unlock(&ring.mu);
    }
    pthread_mutex_lock(&ring.mu);
    ring.done = 1;
    pthread_cond_broadcast(&ring.cv);
    pthread_mutex_unlock(&ring.mu);
    pthread_join(c, NULL);
    check(sum == want, "xthread");
}

/* ---- tree ---- */

typedef struct node {
    struct node *l, *r;
    uint64_t key;
    char pad[24];
} node;

static node *insert(node *root, node *n)
{
    node **at = &root;
    while (*at)
        at = n->key < (*at)->key ? &(*at)->l : &(*at)->r;
    *at = n;
    return root;
}

static size_t destroy(node *n)
{
    size_t c = 0;
    while (n) {
        c += destroy(n->l);
        node *r = n->r;
        free(n);
        n = r;
        c++;
    }
    return c;
}

static void run_tree(void)
{
    uint64_t s = 7;
    for (long round = 0; round < scaled(6); round++) {
        node *root = NULL;
        size_t want = 200000;
        for (size_t i = 0; i < want; i++) {
            node *n = malloc(sizeof *n);
            n->l = n->r = NULL;
            n->key = rnd(&s);
            root = insert(root, n);
        }
        check(destroy(root) == want, "tree");
    }
    report_ops(scaled(6) * 400000L);
}

/* ---- strings ---- */

typedef struct entry {
    struct entry *next;
    char *word;
    long count;
} entry;

static void run_strings(void)
{
    static const char *vocab[] = {"the", "allocator", "pool", "arena", "block", "size",
                                  "class", "free", "list", "thread", "heap", "page",
                                  "memory", "returns", "to", "os", "a", "of", "in", "is"};
    uint64_t s = 3;
    for (long round = 0; round < scaled(40); round++) {
        enum { BUCKETS = 4096 };
        entry *table[BUCKETS] = {0};
        long words = 0;
        for (int line = 0; line < 20000; line++) {
            /* a line of text, then its words */
            char buf[512];
            size_t len = 0;
            int nw = 3 + (int)(rnd(&s) % 12);
            for (int w = 0; w < nw; w++) {
                const char *v = vocab[rnd(&s) % 20];
                len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%lu ", v,
                                        (unsigned long)(rnd(&s) % 50));
            }
            char *text = strdup(buf);
            char *save = NULL;
            for (char *tok = strtok_r(text, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
                uint64_t h = 1469598103934665603ULL;
                for (const char *c = tok; *c; c++)
                    h = (h ^ (unsigned char)*c) * 1099511628211ULL;
                entry **at = &table[h % BUCKETS];
                while (*at && strcmp((*at)->word, tok) != 0)
                    at = &(*at)->next;
                if (*at == NULL) {
                    entry *e = malloc(sizeof *e);
                    e->next = NULL;
                    e->word = strdup(tok);
                    e->count = 0;
                    *at = e;
                }
                (*at)->count++;
                words++;
            }
            free(text);
        }
        long counted = 0;
        for (int b = 0; b < BUCKETS; b++) {
            for (entry *e = table[b]; e;) {
                entry *next = e->next;
                counted += e->count;
                free(e->word);
                free(e);
                e = next;
            }
        }
        check(counted == words, "strings");
    }
}

/* ---- pyobj ---- */

static void run_pyobj(void)
{
    uint64_t s = 11;
    for (long round = 0; round < scaled(40); round++) {
        enum { N = 50000 };
        void **objs = malloc(N * sizeof *objs);
        size_t nlists = 0;
        void ***lists = malloc(1000 * sizeof *lists);
        for (size_t i = 0; i < N; i++) {
            static const size_t sizes[] = {32, 48, 56, 64, 72, 80, 96, 112};
            objs[i] = malloc(sizes[rnd(&s) % 8]); /* ints, floats, short strs, tuples */
            ((char *)objs[i])[0] = 1;
            if (i % 50 == 0 && nlists < 1000) { /* a list grown by append */
                size_t cap = 0, n = 0, want = 1 + rnd(&s) % 40;
                void **l = NULL;
                while (n < want) {
                    if (n == cap) {
                        cap = cap ? cap + cap / 8 + 4 : 4;
                        l = realloc(l, cap * sizeof *l);
                    }
                    l[n++] = objs[i];
                }
                lists[nlists++] = l;
            }
            if (i > 100 && rnd(&s) % 3 == 0) { /* temporaries die young */
                size_t k = i - 1 - rnd(&s) % 100;
                free(objs[k]);
                objs[k] = malloc(40);
                ((char *)objs[k])[0] = 1;
            }
        }
        long live = 0;
        for (size_t i = 0; i < N; i++) {
            live += ((char *)objs[i])[0];
            free(objs[i]);
        }
        for (size_t i = 0; i < nlists; i++)
            free(lists[i]);
        free(lists);
        free(objs);
        check(live == N, "pyobj");
    }
}

/* ---- shared by the workloads below: blocks that carry their own check ----
 *
 * A block of SIZE bytes starts with a header (its size and a tag) and ends
 * with the tag's low byte; fill() writes them, verify() checks them before
 * the block is freed, so an allocator that hands out overlapping or
 * clobbered blocks makes the workload fail. */

typedef struct {
    uint64_t size;
    uint64_t tag;
} blk_hdr_t;

#define MIN_BLOCK (sizeof(blk_hdr_t) + 1)

static void *fill(size_t size, uint64_t tag)
{
    if (size < MIN_BLOCK)
        size = MIN_BLOCK;
    unsigned char *p = malloc(size);
    check(p != NULL, "malloc returned NULL");
    blk_hdr_t *h = (blk_hdr_t *)p;
    h->size = size;
    h->tag = tag;
    p[size - 1] = (unsigned char)tag;
    return p;
}

/* Frees P after checking it; returns its tag. */
static uint64_t verify(void *vp, const char *what)
{
    unsigned char *p = vp;
    blk_hdr_t *h = (blk_hdr_t *)p;
    check(h->size >= MIN_BLOCK && p[h->size - 1] == (unsigned char)h->tag, what);
    uint64_t tag = h->tag;
    free(p);
    return tag;
}

/* ---- random: random-order frees over a large working set ---- */

typedef struct {
    uint64_t seed;
    size_t max; /* sizes 8..max */
    long steps;
    long ops;
    uint64_t sum;
} random_arg;

/* A working set of 24,576 slots, about 4/7 live: each step picks
 * a random slot and frees its block, or fills it when empty (with a random
 * size), so frees come in no order and every size class is in use. */
static void *random_set(void *argp)
{
    random_arg *arg = argp;
    enum { SLOTS = 24576 }; /* about 14,000 live */
    void **slot = calloc(SLOTS, sizeof *slot);
    check(slot != NULL, "random: slots");
    uint64_t s = arg->seed, made = 0, freed = 0;
    long steps = arg->steps;
    for (long i = 0; i < steps; i++) {
        uint64_t r = rnd(&s);
        size_t k = (size_t)(r % SLOTS);
        /* an empty slot is filled; a live one is freed three times in four */
        if (slot[k] == NULL) {
            slot[k] = fill(8 + (size_t)((r >> 20) % (arg->max - 7)), made);
            made += 1;
        } else if ((r >> 16) % 4 != 0) {
            freed += verify(slot[k], "random") + 1;
            slot[k] = NULL;
        } else {
            freed += verify(slot[k], "random") + 1; /* replace it in place */
            slot[k] = fill(8 + (size_t)((r >> 20) % (arg->max - 7)), made);
            made += 1;
        }
    }
    long ops = steps;
    for (size_t k = 0; k < SLOTS; k++)
        if (slot[k]) {
            freed += verify(slot[k], "random") + 1;
            ops++;
        }
    free(slot);
    /* every tag 0..made-1 was freed once: their sum plus one each */
    check(freed == made * (made + 1) / 2, "random: blocks lost");
    arg->ops = ops;
    arg->sum = made;
    return NULL;
}

static void run_random(int threads, size_t max, long steps)
{
    pthread_t t[2];
    random_arg a[2] = {{0xabcdef, max, steps, 0, 0}, {0xfedcba, max, steps, 0, 0}};
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, random_set, &a[i]);
    long ops = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        ops += a[i].ops;
    }
    report_ops(ops);
}

/* ---- prodcons: N producers hand blocks to N consumers ----
 *
 * One single-producer single-consumer ring for every (producer, consumer)
 * pair, lock-free; producer p sends its blocks to the consumers in turn, so
 * every consumer frees blocks of every producer. */

enum { PC_THREADS = 2, PC_RING = 256 };

typedef struct {
    _Alignas(64) atomic_size_t head; /* the consumer's */
    _Alignas(64) atomic_size_t tail; /* the producer's */
    void *slot[PC_RING];
} pc_ring_t;

static pc_ring_t pc_rings[PC_THREADS][PC_THREADS];
static long pc_msgs;

typedef struct {
    int id;
    uint64_t sum;
} pc_arg;

static void *pc_producer(void *argp)
{
    pc_arg *arg = argp;
    uint64_t s = 0x9e3779b9u * (uint64_t)(arg->id + 1), sum = 0;
    for (long i = 0; i < pc_msgs; i++) {
        pc_ring_t *q = &pc_rings[arg->id][i % PC_THREADS];
        uint64_t tag = rnd(&s) >> 8;
        void *b = fill(16 + (size_t)(tag % 497), tag);
        sum += tag;
        size_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
        while (t - atomic_load_explicit(&q->head, memory_order_acquire) == PC_RING)
            sched_yield();
        q->slot[t % PC_RING] = b;
        atomic_store_explicit(&q->tail, t + 1, memory_order_release);
    }
    arg->sum = sum;
    return NULL;
}

static void *pc_consumer(void *argp)
{
    pc_arg *arg = argp;
    uint64_t sum = 0;
    /* every producer sends this consumer its share of pc_msgs */
    long got = 0, want = (pc_msgs / PC_THREADS + (arg->id < pc_msgs % PC_THREADS)) * PC_THREADS;
    while (got < want) {
        int idle = 1;
        for (int p = 0; p < PC_THREADS; p++) {
            pc_ring_t *q = &pc_rings[p][arg->id];
            size_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
            size_t t = atomic_load_explicit(&q->tail, memory_order_acquire);
            for (; h != t; h++, got++)
                sum += verify(q->slot[h % PC_RING], "prodcons");
            if (atomic_load_explicit(&q->head, memory_order_relaxed) != h) {
                atomic_store_explicit(&q->head, h, memory_order_release);
                idle = 0;
            }
        }
        if (idle)
            sched_yield();
    }
    arg->sum = sum;
    return NULL;
}

static void run_prodcons(void)
{
    pc_msgs = scaled(8000000L);
    pthread_t t[2 * PC_THREADS];
    pc_arg a[2 * PC_THREADS];
    for (int i = 0; i < PC_THREADS; i++) {
        a[i] = (pc_arg){i, 0};
        a[PC_THREADS + i] = (pc_arg){i, 0};
        pthread_create(&t[i], NULL, pc_producer, &a[i]);
        pthread_create(&t[PC_THREADS + i], NULL, pc_consumer, &a[PC_THREADS + i]);
    }
    uint64_t sent = 0, got = 0;
    for (int i = 0; i < PC_THREADS; i++) {
        pthread_join(t[i], NULL);
        pthread_join(t[PC_THREADS + i], NULL);
        sent += a[i].sum;
        got += a[PC_THREADS + i].sum;
    }
    check(sent == got, "prodcons: blocks lost");
    report_ops(2 * PC_THREADS * pc_msgs);
}

/* ---- larsonish: threads free each other's blocks, and die ----
 *
 * T slot arrays of blocks; T threads each own one for a while, replacing
 * random blocks (free the old, fill a new one of a random size), then end;
 * a new thread takes over the array of the next one along, so most frees
 * are of blocks another (often finished) thread allocated. */

enum { LA_THREADS = 2, LA_SLOTS = 4000, LA_STEPS = 20000 };

typedef struct {
    void **slot;
    uint64_t seed;
    uint64_t made, freed; /* tags handed out / sum of tags + 1 freed */
    uint64_t next_tag;
} la_set;

static void *la_worker(void *argp)
{
    la_set *set = argp;
    uint64_t s = set->seed;
    for (long i = 0; i < LA_STEPS; i++) {
        uint64_t r = rnd(&s);
        size_t k = (size_t)(r % LA_SLOTS);
        set->freed += verify(set->slot[k], "larsonish") + 1;
        set->slot[k] = fill(16 + (size_t)((r >> 20) % 113) * 8, set->next_tag);
        set->made += set->next_tag + 1;
        set->next_tag++;
    }
    set->seed = s;
    return NULL;
}

static void run_larsonish(void)
{
    la_set sets[LA_THREADS];
    for (int i = 0; i < LA_THREADS; i++) {
        sets[i] = (la_set){calloc(LA_SLOTS, sizeof(void *)), 77 + (uint64_t)i, 0, 0,
                           (uint64_t)i << 40};
        check(sets[i].slot != NULL, "larsonish: slots");
        for (size_t k = 0; k < LA_SLOTS; k++) {
            sets[i].slot[k] = fill(16 + k % 113 * 8, sets[i].next_tag);
            sets[i].made += sets[i].next_tag + 1;
            sets[i].next_tag++;
        }
    }
    long rounds = scaled(800);
    for (long round = 0; round < rounds; round++) {
        /* rotate: the new thread i works on what thread i+1 of the last round left */
        la_set first = sets[0];
        for (int i = 0; i + 1 < LA_THREADS; i++)
            sets[i] = sets[i + 1];
        sets[LA_THREADS - 1] = first;
        pthread_t t[LA_THREADS];
        for (int i = 0; i < LA_THREADS; i++)
            pthread_create(&t[i], NULL, la_worker, &sets[i]);
        for (int i = 0; i < LA_THREADS; i++)
            pthread_join(t[i], NULL);
    }
    for (int i = 0; i < LA_THREADS; i++) {
        for (size_t k = 0; k < LA_SLOTS; k++)
            sets[i].freed += verify(sets[i].slot[k], "larsonish") + 1;
        free(sets[i].slot);
        check(sets[i].freed == sets[i].made, "larsonish: blocks lost");
    }
    report_ops(2L * LA_THREADS * (rounds * LA_STEPS + LA_SLOTS));
}

/* ---- churn: short-lived threads whose blocks outlive them ----
 *
 * Generations of two threads each; a thread frees the blocks a thread of
 * the generation before left behind (that thread has ended), then
 * allocates its own share for the next generation and ends. */

enum { CH_THREADS = 2, CH_BLOCKS = 2000 };

typedef struct {
    void **mine;   /* the blocks it leaves behind */
    void **theirs; /* the blocks it frees: left by an ended thread */
    uint64_t gen, freed, made;
} ch_arg;

static void *ch_worker(void *argp)
{
    ch_arg *a = argp;
    uint64_t s = a->gen * 2654435761u + 1;
    for (size_t k = 0; k < CH_BLOCKS; k++) {
        if (a->theirs[k]) {
            a->freed += verify(a->theirs[k], "churn") + 1;
            a->theirs[k] = NULL;
        }
    }
    for (size_t k = 0; k < CH_BLOCKS; k++) {
        uint64_t tag = a->gen * CH_BLOCKS + k;
        a->mine[k] = fill(16 + (size_t)(rnd(&s) % 497), tag);
        a->made += tag + 1;
    }
    return NULL;
}

static void run_churn(void)
{
    void **blocks[2][CH_THREADS]; /* [generation parity][thread] */
    for (int g = 0; g < 2; g++)
        for (int i = 0; i < CH_THREADS; i++) {
            blocks[g][i] = calloc(CH_BLOCKS, sizeof(void *));
            check(blocks[g][i] != NULL, "churn: slots");
        }
    uint64_t made = 0, freed = 0;
    long gens = scaled(3000);
    for (long g = 0; g < gens; g++) {
        pthread_t t[CH_THREADS];
        ch_arg a[CH_THREADS];
        for (int i = 0; i < CH_THREADS; i++) {
            /* thread i frees what thread i+1 of the last generation left */
            a[i] = (ch_arg){blocks[g % 2][i], blocks[(g + 1) % 2][(i + 1) % CH_THREADS],
                            (uint64_t)g * CH_THREADS + (uint64_t)i, 0, 0};
            pthread_create(&t[i], NULL, ch_worker, &a[i]);
        }
        for (int i = 0; i < CH_THREADS; i++) {
            pthread_join(t[i], NULL);
            made += a[i].made;
            freed += a[i].freed;
        }
    }
    for (int g = 0; g < 2; g++)
        for (int i = 0; i < CH_THREADS; i++) {
            for (size_t k = 0; k < CH_BLOCKS; k++)
                if (blocks[g][i][k])
                    freed += verify(blocks[g][i][k], "churn") + 1;
            free(blocks[g][i]);
        }
    check(freed == made, "churn: blocks lost");
    report_ops(2L * gens * CH_THREADS * CH_BLOCKS);
}

/* ---- big: blocks of 8 KiB..256 KiB; huge: 5..25 MiB ----
 *
 * A working set of random sizes, replaced in random order; every page of a
 * new block is written (a program uses what it allocates) and checked
 * before the free, so an allocator that maps and faults its pages anew each
 * time pays for it. */

static void touch(unsigned char *p, size_t size, unsigned char v)
{
    for (size_t o = 0; o < size; o += 4096)
        p[o] = v;
    p[size - 1] = v;
}

static void untouch(unsigned char *p, size_t size, unsigned char v, const char *what)
{
    for (size_t o = 0; o < size; o += 4096)
        check(p[o] == v, what);
    check(p[size - 1] == v, what);
    free(p);
}

static void run_sized(size_t lo, size_t hi, size_t live, long steps, const char *what)
{
    unsigned char **slot = calloc(live, sizeof *slot);
    size_t *size = calloc(live, sizeof *size);
    check(slot && size, what);
    uint64_t s = 4242;
    long ops = 0;
    for (long i = 0; i < steps; i++) {
        uint64_t r = rnd(&s);
        size_t k = (size_t)(r % live);
        if (slot[k]) {
            untouch(slot[k], size[k], (unsigned char)(k + size[k]), what);
            ops++;
        }
        size[k] = lo + (size_t)((r >> 16) % (hi - lo + 1));
        slot[k] = malloc(size[k]);
        check(slot[k] != NULL, what);
        touch(slot[k], size[k], (unsigned char)(k + size[k]));
        ops++;
    }
    for (size_t k = 0; k < live; k++)
        if (slot[k]) {
            untouch(slot[k], size[k], (unsigned char)(k + size[k]), what);
            ops++;
        }
    free(slot);
    free(size);
    report_ops(ops);
}

/* Peak RSS of this process image, from the kernel's high-water mark of
 * its own address space (VmHWM): rusage's maxrss would include the runner's
 * memory from before exec. */
static void report_peak_rss(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0)
            fprintf(stderr, "peak_rss_kib %ld\n", atol(line + 6));
    if (f)
        fclose(f);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_small lifo1|lifo2|fifo1|fifo2|mixed1|mixed2|xthread|tree|strings|pyobj|"
                        "random1|random2|random1k8|prodcons|larsonish|churn|big|huge [SCALE]\n");
        return 2;
    }
    if (argc > 2)
        scale = atof(argv[2]) > 0 ? atof(argv[2]) : 1;
    const char *w = argv[1];
    if (!strcmp(w, "lifo1"))
        run_sets(0, 1, 0);
    else if (!strcmp(w, "lifo2"))
        run_sets(0, 2, 0);
    else if (!strcmp(w, "fifo1"))
        run_sets(1, 1, 0);
    else if (!strcmp(w, "fifo2"))
        run_sets(1, 2, 0);
    else if (!strcmp(w, "mixed1"))
        run_sets(0, 1, 1);
    else if (!strcmp(w, "mixed2"))
        run_sets(0, 2, 1);
    else if (!strcmp(w, "xthread"))
        run_xthread();
    else if (!strcmp(w, "tree"))
        run_tree();
    else if (!strcmp(w, "strings"))
        run_strings();
    else if (!strcmp(w, "pyobj"))
        run_pyobj();
    else if (!strcmp(w, "random1"))
        run_random(1, 512, scaled(40000000L));
    else if (!strcmp(w, "random2"))
        run_random(2, 512, scaled(20000000L));
    else if (!strcmp(w, "random1k8"))
        run_random(1, 8192, scaled(10000000L));
    else if (!strcmp(w, "prodcons"))
        run_prodcons();
    else if (!strcmp(w, "larsonish"))
        run_larsonish();
    else if (!strcmp(w, "churn"))
        run_churn();
    else if (!strcmp(w, "big"))
        run_sized(8192, 262144, 200, scaled(1200000L), "big");
    else if (!strcmp(w, "huge"))
        run_sized(5 << 20, 25 << 20, 4, scaled(1200L), "huge");
    else {
        fprintf(stderr, "bench_small: unknown workload %s\n", w);
        return 2;
    }
    report_peak_rss();
    return 0;
}
