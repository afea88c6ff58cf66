/*
 * types.c: a program's own object caches, reported in the dump the way
 * CPython reports its free lists ("N free NAME * S bytes each = T").
 * The registry is a small fixed table under its own lock: registration is
 * rare and must not depend on malloc.
 */
#include <errno.h>

#include "base/start.h"
#include "stats/stats.h"

typedef struct {
    char name[SOMA_TYPE_NAME_MAX];
    size_t elem_size;
    soma_count_fn count_fn;
    void *ctx;
} type_entry_t;

static pthread_mutex_t types_lock = PTHREAD_MUTEX_INITIALIZER;
static type_entry_t types[SOMA_MAX_TYPES];
static size_t ntypes;

static void types_fork(int phase)
{
    soma__start_fork_lock(&types_lock, phase);
}
SOMA_HOOK(types, SOMA_ORDER_TYPES, NULL, types_fork);

static long find(const char *name)
{
    for (size_t i = 0; i < ntypes; i++)
        if (strncmp(types[i].name, name, SOMA_TYPE_NAME_MAX - 1) == 0)
            return (long)i;
    return -1;
}

int soma_stats_register_type(const char *name, size_t elem_size, soma_count_fn count_fn, void *ctx)
{
    if (name == NULL || count_fn == NULL) {
        errno = EINVAL;
        return -1;
    }
    pthread_mutex_lock(&types_lock);
    long i = find(name);
    if (i < 0) {
        if (ntypes == SOMA_MAX_TYPES) {
            pthread_mutex_unlock(&types_lock);
            errno = ENOMEM;
            return -1;
        }
        i = (long)ntypes++;
    }
    type_entry_t *t = &types[i];
    strncpy(t->name, name, SOMA_TYPE_NAME_MAX - 1);
    t->name[SOMA_TYPE_NAME_MAX - 1] = '\0';
    t->elem_size = elem_size;
    t->count_fn = count_fn;
    t->ctx = ctx;
    pthread_mutex_unlock(&types_lock);
    return 0;
}

int soma_stats_unregister_type(const char *name)
{
    pthread_mutex_lock(&types_lock);
    long i = name ? find(name) : -1;
    if (i >= 0) {
        memmove(&types[i], &types[i + 1], (ntypes - (size_t)i - 1) * sizeof types[0]);
        ntypes--;
    }
    pthread_mutex_unlock(&types_lock);
    if (i < 0) {
        errno = ENOENT;
        return -1;
    }
    return 0;
}

/* The count functions are called after types_lock is released: a program's
 * function may take its cache's own lock, and a thread holding that lock
 * may fork (whose handler takes types_lock) or register a type. */
void soma__types_snapshot(soma_stats *st)
{
    soma_count_fn fn[SOMA_MAX_TYPES];
    void *ctx[SOMA_MAX_TYPES];
    pthread_mutex_lock(&types_lock);
    st->num_types = ntypes;
    for (size_t i = 0; i < ntypes; i++) {
        memcpy(st->types[i].name, types[i].name, SOMA_TYPE_NAME_MAX);
        st->types[i].elem_size = types[i].elem_size;
        fn[i] = types[i].count_fn;
        ctx[i] = types[i].ctx;
    }
    pthread_mutex_unlock(&types_lock);
    for (size_t i = 0; i < st->num_types; i++)
        st->types[i].count = fn[i](ctx[i]);
}
