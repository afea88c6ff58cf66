/*
 * demo.c: `soma demo`, the lecture's Python app in C.
 *
 * The app starts with a little state of its own (a few "interpreter"
 * strings), builds a lot of small objects of mixed sizes the way a Python
 * program does (numbers turned into strings, lists of repeated words, tree
 * nodes), then drops all of them.  The allocator's dump is printed after each
 * phase, behind a separator that is easy to find, with a one-line summary of
 * what changed, so that the dumps tell the story: arenas are mapped as the
 * objects pile up, and reclaimed once they are gone.
 *
 * With --html PAGE, the three snapshots are also drawn side by side, each
 * arena a row of its pools (page.c), from the JSON form of each snapshot
 * (soma_stats_print_json, read back as soma diff and soma map read it).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "figures.h"
#include "page.h"
#include "snapshot.h"
#include "soma.h"
#include "common/text.h"
#include "tool.h"

typedef struct node {
    long key;
    struct node *left, *right;
    char tag[24]; /* 48 bytes in all: class 2 */
} node;

typedef struct {
    char **strs; /* number-like strings */
    size_t nstrs;
    char ***lists; /* lists of repeated words; each list ends with NULL */
    size_t nlists;
    node *root;
    size_t nnodes;
} world;

/* A cache of free nodes, as an interpreter keeps free lists: reported in the
 * dump through soma_stats_register_type. */
typedef struct {
    node *head;
    size_t count;
} node_cache;

static size_t cache_count(void *ctx)
{
    return ((node_cache *)ctx)->count;
}

static void die_oom(void)
{
    fprintf(stderr, "soma demo: out of memory\n");
    exit(1);
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = soma_malloc(n);
    if (p == NULL)
        die_oom();
    memcpy(p, s, n);
    return p;
}

/* A deterministic generator, so every run prints the same figures. */
static unsigned long rng_state = 88172645463325252UL;
static unsigned long rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static node *tree_insert(node *root, node *n)
{
    node **at = &root;
    while (*at != NULL)
        at = n->key < (*at)->key ? &(*at)->left : &(*at)->right;
    *at = n;
    return root;
}

static void tree_free(node *n, node_cache *cache)
{
    while (n != NULL) {
        tree_free(n->left, cache);
        node *right = n->right;
        if (cache->count < 100) { /* keep a few for reuse, like a free list */
            n->left = cache->head;
            cache->head = n;
            cache->count++;
        } else {
            soma_free(n);
        }
        n = right;
    }
}

static void build(world *w, long scale, node_cache *cache)
{
    static const char *words[] = {"spam", "eggs", "ham", "bacon", "sausage", "lobster thermidor",
                                  "a crunchy frog", "the spanish inquisition"};
    const size_t nwords = sizeof words / sizeof words[0];

    /* Numbers turned into strings: str(i) for a range of i. */
    w->nstrs = (size_t)scale * 200000;
    w->strs = malloc(w->nstrs * sizeof *w->strs); /* the program's own array */
    if (w->strs == NULL)
        die_oom();
    for (size_t i = 0; i < w->nstrs; i++) {
        char buf[64];
        snprintf(buf, sizeof buf, "%lu", (unsigned long)(i * 7919 + rnd() % 1000000007UL));
        w->strs[i] = dup_str(buf);
    }

    /* Lists of repeated strings: each list grows by realloc, element by
     * element, so its array climbs through the classes (and past 512 bytes
     * for the long ones, into soma's medium classes). */
    w->nlists = (size_t)scale * 6000;
    w->lists = malloc(w->nlists * sizeof *w->lists);
    if (w->lists == NULL)
        die_oom();
    for (size_t l = 0; l < w->nlists; l++) {
        size_t len = 1 + rnd() % 80, cap = 0;
        char **list = NULL;
        for (size_t i = 0; i <= len; i++) {
            if (i + 1 > cap) {
                cap = cap ? cap * 2 : 4;
                char **grown = soma_realloc(list, cap * sizeof *list);
                if (grown == NULL)
                    die_oom();
                list = grown;
            }
            list[i] = i < len ? dup_str(words[rnd() % nwords]) : NULL;
        }
        w->lists[l] = list;
    }

    /* Nodes of a search tree; a few come from the cache first. */
    w->nnodes = (size_t)scale * 100000;
    for (size_t i = 0; i < w->nnodes; i++) {
        node *n = cache->head;
        if (n != NULL) {
            cache->head = n->left;
            cache->count--;
        } else if ((n = soma_malloc(sizeof *n)) == NULL) {
            die_oom();
        }
        n->key = (long)(rnd() % 1000000007UL);
        n->left = n->right = NULL;
        snprintf(n->tag, sizeof n->tag, "node-%u", (unsigned)(i % 1000000000u));
        w->root = tree_insert(w->root, n);
    }
}

static void destroy(world *w, node_cache *cache)
{
    /* Free the strings in a shuffled order: the arenas still empty out,
     * whatever order their blocks come back in. */
    for (size_t i = w->nstrs; i > 1; i--) {
        size_t j = rnd() % i;
        char *t = w->strs[i - 1];
        w->strs[i - 1] = w->strs[j];
        w->strs[j] = t;
    }
    for (size_t i = 0; i < w->nstrs; i++)
        soma_free(w->strs[i]);
    free(w->strs);
    for (size_t l = 0; l < w->nlists; l++) {
        for (char **e = w->lists[l]; *e != NULL; e++)
            soma_free(*e);
        soma_free(w->lists[l]);
    }
    free(w->lists);
    tree_free(w->root, cache);
    memset(w, 0, sizeof *w);
}

static void section(int step, const char *title)
{
    printf("\n"
           "=====================================================================\n"
           "==== [%d/3] %s\n"
           "=====================================================================\n\n",
           step, title);
}

static void summary(const char *what, const soma_stats *a, const soma_stats *b)
{
    char b0[SOMA_TEXT_COMMAS_LEN], b1[SOMA_TEXT_COMMAS_LEN];
    char u0[SOMA_TEXT_COMMAS_LEN], u1[SOMA_TEXT_COMMAS_LEN];
    soma_text_commas(b0, sizeof b0, tool_small_blocks_in_use(a));
    soma_text_commas(b1, sizeof b1, tool_small_blocks_in_use(b));
    soma_text_commas(u0, sizeof u0, a->bytes_in_allocated_blocks);
    soma_text_commas(u1, sizeof u1, b->bytes_in_allocated_blocks);
    printf("\n>>> %s: arenas current %zu -> %zu (%zu mapped, %zu reclaimed so far); "
           "blocks in use %s -> %s; bytes in allocated blocks %s -> %s\n",
           what, a->arenas_current, b->arenas_current,
           b->arenas_allocated_total - a->arenas_allocated_total,
           b->arenas_reclaimed, b0, b1, u0, u1);
}

/* This process's snapshot with its arena detail, through its JSON form.
 * The stream's buffer comes from the C library's malloc, not from soma's
 * pools, so taking it changes none of the figures. */
static int capture(tool_snapshot *out)
{
    char *buf = NULL, err[256] = "soma_stats_print_json failed";
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL)
        return -1;
    int rc = soma_stats_print_json(f);
    fclose(f);
    sj_value *v = rc == 0 ? sj_parse(buf, len, NULL, err, sizeof err) : NULL;
    rc = v != NULL ? tool_snapshot_from_json(v, out, err, sizeof err) : -1;
    if (rc != 0)
        fprintf(stderr, "soma demo: cannot read back a snapshot: %s\n", err);
    sj_free(v);
    free(buf);
    return rc;
}

static const char *const phase_titles[3] = {"1. at start", "2. after building", "3. after freeing"};

static int write_html(const char *path, tool_snapshot snaps[3], const char *built)
{
    FILE *out = fopen(path, "w");
    if (out == NULL) {
        fprintf(stderr, "soma demo: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    page_html_begin(out, "soma demo: arenas and pools in three phases");
    fputs("<h1>soma demo: the allocator in three phases</h1>\n<p class=\"note\">", out);
    page_escape(out, built);
    char arena[SOMA_TEXT_COMMAS_LEN], pool[SOMA_TEXT_COMMAS_LEN];
    soma_text_commas(arena, sizeof arena, snaps[0].st.arena_size);
    soma_text_commas(pool, sizeof pool, snaps[0].st.pool_size);
    fprintf(out, " Each row is an arena of %s bytes (its address on the left, S for the small "
                 "classes, M for soma's medium ones, r for an arena slot whose memory went back "
                 "to the OS), cut into pools of %s bytes. A pool's colour is the size of the "
                 "blocks it serves (blue: 16 bytes, red: 512, violet: above 512), its shade how "
                 "many of them are in use. White pools are empty; grey ones were never touched."
                 "</p>\n<div class=\"row\">\n",
            arena, pool);
    for (int i = 0; i < 3; i++) {
        fputs("<div>\n", out);
        page_map_svg_compact(out, &snaps[i], phase_titles[i], 1000);
        fputs("</div>\n", out);
    }
    fputs("</div>\n", out);
    page_html_end(out);
    int bad = ferror(out);
    if (fclose(out) != 0 || bad) {
        fprintf(stderr, "soma demo: cannot write %s\n", path);
        return -1;
    }
    return 0;
}

int soma_tool_demo(int argc, char **argv)
{
    long scale = 1;
    const char *html = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--scale") == 0 && i + 1 < argc) {
            char *end;
            errno = 0;
            scale = strtol(argv[++i], &end, 10);
            if (errno || *end || scale < 1 || scale > 1000) {
                fprintf(stderr, "soma demo: --scale wants a whole number from 1 to 1000\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--html") == 0 && i + 1 < argc) {
            html = argv[++i];
        } else {
            fprintf(stderr, "usage: soma demo [--scale N] [--html PAGE.html]\n");
            return 2;
        }
    }
    static soma_stats s0, s1, s2;
    static node_cache cache;
    soma_stats_register_type("DemoNodes", sizeof(node), cache_count, &cache);

    /* The app's own long-lived state, as an interpreter has at start. */
    char *startup[300];
    for (size_t i = 0; i < sizeof startup / sizeof startup[0]; i++) {
        char buf[96];
        snprintf(buf, sizeof buf, "builtin name #%zu%.*s", i, (int)(i % 60), "................"
                 "............................................");
        startup[i] = dup_str(buf);
    }

    section(1, "at start: the app's own state, nothing else yet");
    soma_stats_print(stdout);
    soma_stats_get(&s0);
    static tool_snapshot pic[3];
    int pictures = html != NULL && capture(&pic[0]) == 0;

    world w = {0};
    build(&w, scale, &cache);
    char title[160];
    snprintf(title, sizeof title,
             "after building %zu number strings, %zu lists of words, %zu tree nodes",
             w.nstrs, w.nlists, w.nnodes);
    char story[400];
    snprintf(story, sizeof story,
             "The demo app starts with 300 strings of its own, builds %zu number strings, %zu "
             "lists of words and %zu tree nodes, then frees them all but up to 100 nodes it "
             "keeps in a cache.",
             w.nstrs, w.nlists, w.nnodes);
    section(2, title);
    soma_stats_print(stdout);
    soma_stats_get(&s1);
    pictures = pictures && capture(&pic[1]) == 0;
    summary("building", &s0, &s1);

    destroy(&w, &cache);
    section(3, "after freeing them all (the node cache keeps up to 100 nodes)");
    soma_stats_print(stdout);
    soma_stats_get(&s2);
    pictures = pictures && capture(&pic[2]) == 0;
    summary("freeing", &s1, &s2);
    char live[SOMA_TEXT_COMMAS_LEN];
    printf(">>> why %zu arenas stay mapped: %s blocks are still in use (the app's startup strings "
           "and its node cache), scattered over them. An arena goes back to the OS only when "
           "every block in it is free; soma also keeps one empty arena for reuse.\n",
           s2.arenas_current, soma_text_commas(live, sizeof live, tool_small_blocks_in_use(&s2)));

    while (cache.head != NULL) {
        node *n = cache.head;
        cache.head = n->left;
        soma_free(n);
    }
    cache.count = 0;
    for (size_t i = 0; i < sizeof startup / sizeof startup[0]; i++)
        soma_free(startup[i]);
    soma_stats_unregister_type("DemoNodes");
    int rc = 0;
    if (html != NULL) {
        rc = pictures && write_html(html, pic, story) == 0 ? 0 : 1;
        if (rc == 0)
            printf("\n>>> the three phases, drawn: %s\n", html);
        for (int i = 0; i < 3; i++)
            tool_snapshot_free(&pic[i]);
    }
    return rc;
}
