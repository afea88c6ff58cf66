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
 *
 * Every workload checks what it computed and exits non-zero if it is wrong,
 * so a fast allocator cannot be a broken one.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long scale = 1;

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
} set_arg;

static void *working_set(void *argp)
{
    set_arg *arg = argp;
    enum { LIVE = 4096 };
    unsigned char *live[LIVE] = {0};
    size_t head = 0, n = 0;
    uint64_t s = arg->seed, sum = 0;
    long ops = 20000000L * scale;
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
    set_arg a[2] = {{fifo, 0x1234567, 0, mixed}, {fifo, 0x7654321, 0, mixed}};
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, working_set, &a[i]);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    check(a[0].sum > 0, "working set");
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
    long msgs = 2000000L * scale;
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
    for (long round = 0; round < 6 * scale; round++) {
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
    for (long round = 0; round < 40 * scale; round++) {
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
    for (long round = 0; round < 40 * scale; round++) {
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
        fprintf(stderr, "usage: bench_small lifo1|lifo2|fifo1|fifo2|mixed1|mixed2|xthread|tree|strings|pyobj "
                        "[SCALE]\n");
        return 2;
    }
    if (argc > 2)
        scale = atol(argv[2]) > 0 ? atol(argv[2]) : 1;
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
    else {
        fprintf(stderr, "bench_small: unknown workload %s\n", w);
        return 2;
    }
    report_peak_rss();
    return 0;
}
