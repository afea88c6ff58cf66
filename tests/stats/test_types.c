/*
 * test_types: soma_stats_register_type, the program's own caches in the dump.
 *
 *   - two registered caches show in every snapshot, in registration order,
 *     with their element size and the count their callback returns now
 *     (called with the registered ctx, once per snapshot);
 *   - in the dump each is the line "N free NAME * S bytes each = T" laid out
 *     as CPython's free-list lines: the label right-aligned in 48 columns, a
 *     space, '=', T with thousands separators in 21 columns: 71 characters;
 *   - registering a name again replaces the entry (same place, new size and
 *     callback); unregistering removes it (then ENOENT);
 *   - NULL name or callback: -1 with EINVAL; the 65th name: -1 with ENOMEM,
 *     though replacing an existing name still works when the table is full;
 *   - a name longer than 63 bytes is cut to 63.
 */
#define _GNU_SOURCE
#include <errno.h>

#include "dump_parse.h"
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "soma.h"
#include "test.h"

typedef struct {
    size_t count;
    unsigned calls;
} cache;

static size_t count_fn(void *ctx)
{
    cache *c = ctx;
    c->calls++;
    return c->count;
}

static size_t other_fn(void *ctx)
{
    cache *c = ctx;
    c->calls++;
    return c->count * 2;
}

static size_t zero_fn(void *ctx)
{
    (void)ctx;
    return 0;
}

static soma_stats st;

static char *dump_text(size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!CHECK(f != NULL))
        return NULL;
    CHECK_EQ(soma_stats_print(f), 0);
    fclose(f);
    *len = n;
    return buf;
}

/* The expected line, built from the specification. */
static void expected_line(char *out, size_t len, size_t count, const char *name, size_t elem)
{
    char label[200], num[32];
    snprintf(label, sizeof label, "%zu free %s * %zu bytes each", count, name, elem);
    dp_commas(num, sizeof num, count * elem);
    snprintf(out, len, "%48s =%21s\n", label, num);
}

/* Does the dump hold exactly this type line (as a whole line)? */
static int dump_has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = strstr(text, line); p; p = strstr(p + 1, line))
        if (p == text || p[-1] == '\n')
            return n == 72; /* 71 characters and the newline */
    return 0;
}

static long find_type(const soma_stats *s, const char *name)
{
    for (size_t i = 0; i < s->num_types; i++)
        if (strcmp(s->types[i].name, name) == 0)
            return (long)i;
    return -1;
}

/* ---- printing never waits for a count function ----
 * A count function may take its cache's lock, and the program may print a
 * snapshot it took while it holds that lock, or print from inside a count
 * function: no lock of soma's may be held across a count function that a
 * printer of a given snapshot also needs (each print call maps its own
 * scratch: src/stats/emit.c). */
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static soma_stats given;
static FILE *devnull;
static atomic_int in_count;

static size_t locked_count(void *ctx)
{
    (void)ctx;
    atomic_store(&in_count, 1);
    pthread_mutex_lock(&cache_lock);
    pthread_mutex_unlock(&cache_lock);
    return 3;
}

static size_t printing_count(void *ctx)
{
    (void)ctx;
    return soma_stats_fprint(devnull, &given) == 0 ? 5 : 0;
}

static void *print_all(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)soma_stats_print(devnull);
}

static void check_no_wait(void)
{
    devnull = fopen("/dev/null", "w");
    CHECK(devnull != NULL);
    soma_stats_get(&given);
    /* From inside a count function. */
    CHECK_EQ(soma_stats_register_type("printer", 8, printing_count, NULL), 0);
    CHECK_EQ(soma_stats_print(devnull), 0);
    CHECK_EQ(soma_stats_unregister_type("printer"), 0);
    /* While another thread's snapshot waits in a count function for a lock
     * this thread holds. */
    CHECK_EQ(soma_stats_register_type("locked", 8, locked_count, NULL), 0);
    pthread_mutex_lock(&cache_lock);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, print_all, NULL), 0);
    while (!atomic_load(&in_count))
        usleep(1000);
    CHECK_EQ(soma_stats_fprint(devnull, &given), 0);
    CHECK_EQ(soma_stats_fprint_json(devnull, &given), 0);
    CHECK(soma_stats_diff(devnull, &given, &given) >= 0);
    pthread_mutex_unlock(&cache_lock);
    void *rc;
    pthread_join(t, &rc);
    CHECK_EQ((intptr_t)rc, 0);
    CHECK_EQ(soma_stats_unregister_type("locked"), 0);
    fclose(devnull);
}

int main(void)
{
    test_begin("test_types");
    soma_stats_get(&st);
    size_t base_types = st.num_types;
    CHECK_EQ(base_types, 0);

    static cache a = {.count = 14}, b = {.count = 1000000};
    CHECK_EQ(soma_stats_register_type("PyDictObjects", 48, count_fn, &a), 0);
    CHECK_EQ(soma_stats_register_type("free-list entries", 24, count_fn, &b), 0);

    soma_stats_get(&st);
    CHECK_EQ(st.num_types, base_types + 2);
    long ia = find_type(&st, "PyDictObjects"), ib = find_type(&st, "free-list entries");
    CHECK(ia >= 0 && ib == ia + 1); /* registration order */
    if (ia >= 0 && ib >= 0) {
        CHECK_EQ(st.types[ia].elem_size, 48);
        CHECK_EQ(st.types[ia].count, 14);
        CHECK_EQ(st.types[ib].elem_size, 24);
        CHECK_EQ(st.types[ib].count, 1000000);
    }
    CHECK_EQ(a.calls, 1);
    CHECK_EQ(b.calls, 1);

    /* The counts are taken when the snapshot is. */
    a.count = 3;
    b.count = 0;
    soma_stats_get(&st);
    CHECK_EQ(st.types[ia].count, 3);
    CHECK_EQ(st.types[ib].count, 0);
    CHECK_EQ(a.calls, 2);

    /* The dump lines. */
    a.count = 14;
    b.count = 1000000;
    size_t len = 0;
    char *text = dump_text(&len);
    char line[320];
    if (text) {
        expected_line(line, sizeof line, 14, "PyDictObjects", 48);
        /* CPython 3.12 prints exactly this for its 14 free dicts. */
        CHECK_STR_EQ(line, "           14 free PyDictObjects * 48 bytes each ="
                           "                  672\n");
        CHECK(dump_has_line(text, line));
        expected_line(line, sizeof line, 1000000, "free-list entries", 24);
        CHECK(dump_has_line(text, line));
        CHECK(strstr(text, "=           24,000,000\n") != NULL);
        dp_dump d;
        char err[1024];
        if (CHECK_EQ(dp_parse(text, len, &d, err, sizeof err, NULL), 0)) {
            CHECK_EQ(d.ntypes, base_types + 2);
            CHECK_STR_EQ(d.types[ia].name, "PyDictObjects");
            CHECK_EQ(d.types[ib].value, 24000000);
        } else {
            test_note("%s", err);
        }
        free(text);
    }

    /* Re-registration replaces, in place. */
    CHECK_EQ(soma_stats_register_type("PyDictObjects", 100, other_fn, &b), 0);
    unsigned a_calls = a.calls;
    soma_stats_get(&st);
    CHECK_EQ(st.num_types, base_types + 2);
    CHECK_EQ(find_type(&st, "PyDictObjects"), ia);
    CHECK_EQ(st.types[ia].elem_size, 100);
    CHECK_EQ(st.types[ia].count, 2000000);
    CHECK_EQ(a.calls, a_calls); /* the old callback is gone */
    text = dump_text(&len);
    if (text) {
        expected_line(line, sizeof line, 2000000, "PyDictObjects", 100);
        CHECK(dump_has_line(text, line));
        expected_line(line, sizeof line, 14, "PyDictObjects", 48);
        CHECK(strstr(text, line) == NULL);
        free(text);
    }

    /* Unregistering removes. */
    CHECK_EQ(soma_stats_unregister_type("free-list entries"), 0);
    soma_stats_get(&st);
    CHECK_EQ(st.num_types, base_types + 1);
    CHECK_EQ(find_type(&st, "free-list entries"), -1);
    text = dump_text(&len);
    if (text) {
        CHECK(strstr(text, "free-list entries") == NULL);
        free(text);
    }
    errno = 0;
    CHECK_EQ(soma_stats_unregister_type("free-list entries"), -1);
    CHECK_EQ(errno, ENOENT);
    errno = 0;
    CHECK_EQ(soma_stats_unregister_type("never registered"), -1);
    CHECK_EQ(errno, ENOENT);

    /* Bad arguments. */
    errno = 0;
    CHECK_EQ(soma_stats_register_type(NULL, 8, count_fn, &a), -1);
    CHECK_EQ(errno, EINVAL);
    errno = 0;
    CHECK_EQ(soma_stats_register_type("NoCallback", 8, NULL, &a), -1);
    CHECK_EQ(errno, EINVAL);
    errno = 0;
    CHECK_EQ(soma_stats_register_type(NULL, 8, NULL, NULL), -1);
    CHECK_EQ(errno, EINVAL);
    soma_stats_get(&st);
    CHECK_EQ(st.num_types, base_types + 1);
    CHECK_EQ(find_type(&st, "NoCallback"), -1);

    /* A long name is cut to SOMA_TYPE_NAME_MAX - 1 bytes. */
    char longname[100];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    CHECK_EQ(soma_stats_register_type(longname, 1, zero_fn, NULL), 0);
    soma_stats_get(&st);
    CHECK_EQ(st.num_types, base_types + 2);
    if (st.num_types >= 1)
        CHECK_EQ(strlen(st.types[st.num_types - 1].name), SOMA_TYPE_NAME_MAX - 1);
    CHECK_EQ(soma_stats_unregister_type(longname), 0);

    /* Fill the table: 64 entries fit, the 65th does not. */
    soma_stats_get(&st);
    size_t have = st.num_types;
    char name[32];
    for (size_t i = have; i < SOMA_MAX_TYPES; i++) {
        snprintf(name, sizeof name, "Filler%02zu", i);
        CHECK_EQ(soma_stats_register_type(name, i + 1, zero_fn, NULL), 0);
    }
    soma_stats_get(&st);
    CHECK_EQ(st.num_types, SOMA_MAX_TYPES);
    errno = 0;
    CHECK_EQ(soma_stats_register_type("OneTooMany", 8, zero_fn, NULL), -1);
    CHECK_EQ(errno, ENOMEM);
    /* Replacing still works when full. */
    CHECK_EQ(soma_stats_register_type("PyDictObjects", 48, count_fn, &a), 0);
    soma_stats_get(&st);
    CHECK_EQ(st.num_types, SOMA_MAX_TYPES);
    CHECK_EQ(find_type(&st, "OneTooMany"), -1);
    text = dump_text(&len);
    if (text) {
        dp_dump d;
        char err[1024];
        if (CHECK_EQ(dp_parse(text, len, &d, err, sizeof err, NULL), 0))
            CHECK_EQ(d.ntypes, SOMA_MAX_TYPES);
        else
            test_note("%s", err);
        free(text);
    }
    /* Unregister one: room for one more. */
    CHECK_EQ(soma_stats_unregister_type("Filler10"), 0);
    CHECK_EQ(soma_stats_register_type("OneTooMany", 8, zero_fn, NULL), 0);
    CHECK_EQ(soma_stats_unregister_type("OneTooMany"), 0);

    for (size_t i = have; i < SOMA_MAX_TYPES; i++) {
        snprintf(name, sizeof name, "Filler%02zu", i);
        if (i != 10)
            CHECK_EQ(soma_stats_unregister_type(name), 0);
    }
    CHECK_EQ(soma_stats_unregister_type("PyDictObjects"), 0);
    soma_stats_get(&st);
    CHECK_EQ(st.num_types, base_types);
    check_no_wait();
    return test_summary();
}
