/*
 * soma._soma: the C half of the Python package.
 *
 * The package talks to the soma that is already this process's malloc (the
 * LD_PRELOAD override, with PYTHONMALLOC=malloc so that the interpreter's
 * objects go through it too).  It does not link libsoma: a second copy of
 * the allocator loaded beside the process's malloc would show its own empty
 * heaps.  Every soma function is looked up at run time in the process's
 * global scope (dlsym(RTLD_DEFAULT)), and only counts as found when the
 * object that defines it is the process's malloc (is_malloc).  Outside soma the functions
 * that need it raise RuntimeError; the package's Python half words the
 * message.
 *
 * What needs no allocator at all is compiled in from the CLI's sources:
 * reading a JSON snapshot back into soma_stats (snapshot.c, json.c) and
 * drawing its arena map (page.c), so that a snapshot saved in one process
 * can be drawn in another.
 *
 * The type table (_types) walks soma's blocks in use with the block
 * visitor and recognises an object's header in each: the word after the
 * reference count, at one of the offsets where CPython puts the object in
 * its block (0; after the GC header; after the managed dict's pre-header
 * too), must equal one of the interpreter's own type objects, passed in by
 * the caller.  Only a pointer found in that set is followed.  The GIL is
 * held throughout, so the interpreter's threads are still; the caller must
 * not run threads of its own that free memory meanwhile (soma.h: the
 * visitor).
 */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE 1
#include <Python.h>

#include <dlfcn.h>
#include <link.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/stats_fields.h"
#include "page.h"
#include "snapshot.h"
#include "soma.h"

#ifdef Py_GIL_DISABLED
#error "soma's type table reads CPython's object header; the free-threaded build's differs"
#endif

/* ---- the process's soma ---- */

typedef struct {
    int looked;  /* the lookup below was made */
    int enabled; /* soma is this process's malloc */
    char path[4096];
    int (*stats_print)(FILE *);
    int (*stats_print_json)(FILE *);
    int (*stats_diff)(FILE *, const soma_stats *, const soma_stats *);
    int (*blocks_visit)(soma_heap *, soma_visit_fn, void *);
} soma_fns;

static soma_fns fns;

/* Found only if defined by the object `in` (soma's). */
static void *find(const char *name, const Dl_info *in)
{
    void *f = dlsym(RTLD_DEFAULT, name);
    Dl_info at;
    if (f == NULL || dladdr(f, &at) == 0 || at.dli_fbase != in->dli_fbase)
        return NULL;
    return f;
}

/* Is the object `in` this process's malloc?  The first definition of the
 * malloc family in the dynamic linker's search order must be its own: the
 * override defines them (libsoma, which a C program links, does not), and
 * another allocator preloaded before it would win.  dlsym(RTLD_DEFAULT)
 * gives that first definition, except where the executable takes the
 * function's address: a non-PIE executable (Debian's python3) then owns
 * the function's canonical address, a stub of its own, which says nothing;
 * the next name is tried then. */
typedef struct {
    uintptr_t addr;
    int inside;
} where_t;

/* The first object dl_iterate_phdr reports is the executable. */
static int exe_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    where_t *w = arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && w->addr >= lo && w->addr - lo < ph->p_memsz)
            w->inside = 1;
    }
    return 1; /* the executable only */
}

static int in_executable(const void *p)
{
    where_t w = {(uintptr_t)p, 0};
    dl_iterate_phdr(exe_cb, &w);
    return w.inside;
}

static int is_malloc(const Dl_info *in)
{
    static const char *names[] = {"malloc_usable_size", "malloc", "calloc", "free"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        Dl_info at;
        void *f = dlsym(RTLD_DEFAULT, names[k]);
        if (f == NULL || dladdr(f, &at) == 0)
            continue;
        if (at.dli_fbase == in->dli_fbase)
            return 1;
        if (in_executable(f))
            continue; /* the executable's stub: inconclusive */
        return 0;
    }
    return 0;
}

static void look(void)
{
    if (fns.looked)
        return;
    fns.looked = 1;
    Dl_info in;
    void *probe = dlsym(RTLD_DEFAULT, "soma_stats_get_sized");
    if (probe == NULL || dladdr(probe, &in) == 0 || in.dli_fname == NULL || !is_malloc(&in))
        return;
    fns.stats_print = (int (*)(FILE *))find("soma_stats_print", &in);
    fns.stats_print_json = (int (*)(FILE *))find("soma_stats_print_json", &in);
    fns.stats_diff = (int (*)(FILE *, const soma_stats *, const soma_stats *))find("soma_stats_diff", &in);
    fns.blocks_visit = (int (*)(soma_heap *, soma_visit_fn, void *))find("soma_blocks_visit", &in);
    fns.enabled = fns.stats_print != NULL && fns.stats_print_json != NULL && fns.stats_diff != NULL;
    if (fns.enabled)
        snprintf(fns.path, sizeof fns.path, "%s", in.dli_fname);
}

static int need(void *f)
{
    look();
    if (fns.enabled && f != NULL)
        return 1;
    PyErr_SetString(PyExc_RuntimeError,
                    fns.enabled ? "this soma has no block visitor (soma_blocks_visit): it is older "
                                  "than the package"
                                : "soma is not this process's malloc");
    return 0;
}

static PyObject *enabled(PyObject *self, PyObject *unused)
{
    (void)self, (void)unused;
    look();
    return PyBool_FromLong(fns.enabled);
}

static PyObject *library(PyObject *self, PyObject *unused)
{
    (void)self, (void)unused;
    look();
    if (!fns.enabled)
        Py_RETURN_NONE;
    return PyUnicode_DecodeFSDefault(fns.path);
}

/* ---- text written by soma to a FILE, returned as str ---- */

typedef struct {
    char *buf;
    size_t len;
    FILE *f;
} memtext;

static int mem_open(memtext *m)
{
    m->buf = NULL;
    m->len = 0;
    m->f = open_memstream(&m->buf, &m->len);
    if (m->f == NULL) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

/* Close m and return its text (rc: the writer's result; < 0 is an error). */
static PyObject *mem_close(memtext *m, int rc, const char *what)
{
    int closed = fclose(m->f);
    PyObject *out = NULL;
    if (rc < 0 || closed != 0)
        PyErr_Format(PyExc_OSError, "soma could not write %s", what);
    else
        out = PyUnicode_DecodeUTF8(m->buf, (Py_ssize_t)m->len, "replace");
    free(m->buf);
    return out;
}

/* What one of soma's printers writes, as str. */
static PyObject *printed(int (*print)(FILE *), const char *what)
{
    memtext m;
    if (!need((void *)print) || mem_open(&m) != 0)
        return NULL;
    return mem_close(&m, print(m.f), what);
}

static PyObject *stats_text(PyObject *self, PyObject *unused)
{
    (void)self, (void)unused;
    return printed(fns.stats_print, "its statistics");
}

static PyObject *stats_json(PyObject *self, PyObject *unused)
{
    (void)self, (void)unused;
    return printed(fns.stats_print_json, "its snapshot");
}

/* ---- snapshots read back (the CLI's reader) ---- */

/* One snapshot from JSON text (one object); 0, or -1 with ValueError. */
static int parse(const char *text, Py_ssize_t len, tool_snapshot *out)
{
    char err[600];
    const char *end;
    memset(out, 0, sizeof *out);
    sj_value *v = sj_parse(text, (size_t)len, &end, err, sizeof err);
    if (v == NULL) {
        PyErr_Format(PyExc_ValueError, "not a soma snapshot: %s", err);
        return -1;
    }
    int rc = tool_snapshot_from_json(v, out, err, sizeof err);
    sj_free(v);
    if (rc != 0) {
        PyErr_Format(PyExc_ValueError, "not a soma snapshot: %s", err);
        return -1;
    }
    return 0;
}

static PyObject *diff(PyObject *self, PyObject *args)
{
    (void)self;
    const char *a, *b, *na, *nb;
    Py_ssize_t la, lb;
    if (!PyArg_ParseTuple(args, "s#s#ss", &a, &la, &b, &lb, &na, &nb))
        return NULL;
    if (!need((void *)fns.stats_diff))
        return NULL;
    tool_snapshot sa, sb;
    if (parse(a, la, &sa) != 0)
        return NULL;
    if (parse(b, lb, &sb) != 0) {
        tool_snapshot_free(&sa);
        return NULL;
    }
    PyObject *out = NULL;
    memtext m;
    if (mem_open(&m) == 0) {
        /* The lines `soma diff` prints above the figures (tools/soma/diff.c). */
        const tool_snapshot *s[2] = {&sa, &sb};
        const char *which[2] = {"before", "after "}, *name[2] = {na, nb};
        for (int i = 0; i < 2; i++)
            fprintf(m.f, "%s %s: pid %ld (%.100s), %s at %s (%.1f ms after start)\n", which[i],
                    name[i], s[i]->pid, s[i]->program, s[i]->reason, s[i]->timestamp,
                    s[i]->elapsed_ms);
        fputc('\n', m.f);
        errno = 0;
        int n = fns.stats_diff(m.f, &sa.st, &sb.st);
        int geometry = n < 0 && errno == EINVAL;
        out = mem_close(&m, geometry ? 0 : n, "the diff");
        if (geometry) {
            Py_CLEAR(out);
            PyErr_SetString(PyExc_ValueError,
                            "the two snapshots come from different geometries (pool, arena or "
                            "class sizes): their figures cannot be compared");
        }
    }
    tool_snapshot_free(&sa);
    tool_snapshot_free(&sb);
    return out;
}

static PyObject *map_svg(PyObject *self, PyObject *args)
{
    (void)self;
    const char *text, *title;
    Py_ssize_t len;
    int standalone;
    if (!PyArg_ParseTuple(args, "s#sp", &text, &len, &title, &standalone))
        return NULL;
    tool_snapshot s;
    if (parse(text, len, &s) != 0)
        return NULL;
    PyObject *out = NULL;
    if (!s.has_detail) {
        PyErr_SetString(PyExc_ValueError, "this snapshot has no arena detail (a sample): no map");
    } else {
        memtext m;
        if (mem_open(&m) == 0)
            out = mem_close(&m, page_map_svg(m.f, &s, title, 0, 1000, standalone), "the map");
    }
    tool_snapshot_free(&s);
    return out;
}

/* ---- which types fill the size classes ---- */

#define NONE_CLASS INT32_MIN

typedef struct {
    const PyTypeObject *type; /* NULL: a block that holds no object */
    int size_class;           /* NONE_CLASS: an empty row */
    size_t block_size;        /* the class's; large blocks: 0 */
    size_t count, bytes;
} row;

typedef struct {
    const PyTypeObject **types; /* the interpreter's, open addressing */
    size_t ntypes_cap;
    row *rows; /* by (type, class), open addressing */
    size_t rows_cap, rows_used;
    size_t dropped; /* blocks not counted: the table was full */
} census;

static size_t hash_ptr(const void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 31;
    x *= 0x9e3779b97f4a7c15ULL;
    x ^= x >> 29;
    return (size_t)x;
}

static int known(const census *c, const void *t)
{
    if (t == NULL)
        return 0;
    for (size_t i = hash_ptr(t) & (c->ntypes_cap - 1);; i = (i + 1) & (c->ntypes_cap - 1)) {
        if (c->types[i] == t)
            return 1;
        if (c->types[i] == NULL)
            return 0;
    }
}

/* Bytes CPython puts in front of an object of type t in its block: the GC
 * header (two words on every version this builds for), and from 3.11 the
 * managed dict's (3.12: and weakref's) two words before that. */
static size_t preheader(const PyTypeObject *t)
{
    size_t pre = PyType_HasFeature((PyTypeObject *)t, Py_TPFLAGS_HAVE_GC) ? 2 * sizeof(void *) : 0;
#if PY_VERSION_HEX >= 0x030C0000
    if (PyType_HasFeature((PyTypeObject *)t, Py_TPFLAGS_MANAGED_DICT | Py_TPFLAGS_MANAGED_WEAKREF))
        pre += 2 * sizeof(void *);
#elif PY_VERSION_HEX >= 0x030B0000
    if (PyType_HasFeature((PyTypeObject *)t, Py_TPFLAGS_MANAGED_DICT))
        pre += 2 * sizeof(void *);
#endif
    return pre;
}

/* The type of the object that starts the block, or NULL.  The block is
 * read only as far as its size allows, and a word is followed only once
 * it is known to be one of the interpreter's types. */
static const PyTypeObject *recognise(const census *c, const unsigned char *b, size_t size)
{
    static const size_t offsets[] = {0, 2 * sizeof(void *), 4 * sizeof(void *)};
    for (size_t k = 0; k < sizeof offsets / sizeof offsets[0]; k++) {
        size_t off = offsets[k];
        if (off + sizeof(PyObject) > size)
            break;
        const PyObject *o = (const PyObject *)(b + off);
        const PyTypeObject *t = o->ob_type;
        if (!known(c, t) || preheader(t) != off || Py_REFCNT(o) <= 0)
            continue;
        /* The block holds at least the type's basic size; a str, whose
         * compact forms stop short of it, at least their common header. */
        size_t least = PyType_FastSubclass((PyTypeObject *)t, Py_TPFLAGS_UNICODE_SUBCLASS)
                           ? sizeof(PyASCIIObject)
                           : (size_t)t->tp_basicsize;
        if (off + least > size)
            continue;
        return t;
    }
    return NULL;
}

static int count_block(const soma_block_info *b, void *arg)
{
    census *c = arg;
    const PyTypeObject *t = recognise(c, (const unsigned char *)b->block, b->size);
    size_t i = (hash_ptr(t) ^ (size_t)(unsigned)b->size_class * 0x2545f491u) & (c->rows_cap - 1);
    for (;; i = (i + 1) & (c->rows_cap - 1)) {
        row *r = &c->rows[i];
        if (r->size_class == NONE_CLASS) {
            if (4 * (c->rows_used + 1) > 3 * c->rows_cap) {
                c->dropped++;
                return 0;
            }
            *r = (row){t, b->size_class, b->size_class < 0 ? 0 : b->size, 0, 0};
            c->rows_used++;
        } else if (r->type != t || r->size_class != b->size_class) {
            continue;
        }
        r->count++;
        r->bytes += b->size;
        return 0;
    }
}

/* _types(list of the interpreter's type objects) -> (rows, dropped), each
 * row (type or None, size class, block size, count, bytes). */
static PyObject *types(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *list;
    if (!PyArg_ParseTuple(args, "O!", &PyList_Type, &list))
        return NULL;
    if (!need((void *)fns.blocks_visit))
        return NULL;
    census c = {0};
    Py_ssize_t n = PyList_GET_SIZE(list);
    for (c.ntypes_cap = 64; c.ntypes_cap < 2 * (size_t)n + 2;)
        c.ntypes_cap *= 2;
    c.rows_cap = 1u << 16;
    /* Everything the walk needs is allocated before it: the callback
     * allocates nothing, so the blocks it counts are the ones of the call. */
    c.types = PyMem_RawCalloc(c.ntypes_cap, sizeof *c.types);
    c.rows = PyMem_RawMalloc(c.rows_cap * sizeof *c.rows);
    PyObject *out = NULL;
    if (c.types == NULL || c.rows == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (size_t i = 0; i < c.rows_cap; i++)
        c.rows[i].size_class = NONE_CLASS;
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *t = PyList_GET_ITEM(list, k);
        if (!PyType_Check(t)) {
            PyErr_SetString(PyExc_TypeError, "_types: a list of types");
            goto done;
        }
        size_t i = hash_ptr(t) & (c.ntypes_cap - 1);
        while (c.types[i] != NULL && c.types[i] != (PyTypeObject *)t)
            i = (i + 1) & (c.ntypes_cap - 1);
        c.types[i] = (PyTypeObject *)t;
    }
    int rc = fns.blocks_visit(NULL, count_block, &c);
    if (rc != 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        goto done;
    }
    PyObject *rows = PyList_New(0);
    if (rows == NULL)
        goto done;
    for (size_t i = 0; i < c.rows_cap; i++) {
        const row *r = &c.rows[i];
        if (r->size_class == NONE_CLASS)
            continue;
        PyObject *item = Py_BuildValue("(Oinnn)", r->type ? (PyObject *)r->type : Py_None,
                                       r->size_class, (Py_ssize_t)r->block_size,
                                       (Py_ssize_t)r->count, (Py_ssize_t)r->bytes);
        if (item == NULL || PyList_Append(rows, item) != 0) {
            Py_XDECREF(item);
            Py_DECREF(rows);
            goto done;
        }
        Py_DECREF(item);
    }
    out = Py_BuildValue("(Nn)", rows, (Py_ssize_t)c.dropped);
done:
    PyMem_RawFree(c.types);
    PyMem_RawFree(c.rows);
    return out;
}

static PyMethodDef methods[] = {
    {"enabled", enabled, METH_NOARGS, "True if soma is this process's malloc."},
    {"library", library, METH_NOARGS, "The path of the object that is this process's soma, or None."},
    {"stats_text", stats_text, METH_NOARGS, "soma_stats_print's text."},
    {"stats_json", stats_json, METH_NOARGS, "soma_stats_print_json's text."},
    {"diff", diff, METH_VARARGS, "diff(before_json, after_json, before_name, after_name) -> text"},
    {"map_svg", map_svg, METH_VARARGS, "map_svg(json, title, standalone) -> SVG text"},
    {"types", types, METH_VARARGS, "types(list of types) -> (rows, dropped)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "soma._soma", "soma's C half: the process's soma, looked up at run time.",
    -1, methods, NULL, NULL, NULL, NULL,
};

/* keys (a new reference, or NULL) added to m as `name`: 0, or -1. */
static int add_keys(PyObject *m, const char *name, PyObject *keys)
{
    if (keys == NULL || PyModule_AddObject(m, name, keys) != 0) {
        Py_XDECREF(keys);
        return -1;
    }
    return 0;
}

PyMODINIT_FUNC PyInit__soma(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    /* The "returned" and "guarded" objects' keys, from the lists the writer
     * and the reader use: the Python half fills them in for an older
     * snapshot.  (A list's keys as a tuple of strings: KEYS(list).) */
#define KEY_FORMAT(f, label, group) "s"
#define KEY_NAME(f, label, group) , #f
#define KEYS(list) Py_BuildValue("(" list(KEY_FORMAT) ")" list(KEY_NAME))
    if (add_keys(m, "RETURNED_FIELDS", KEYS(SOMA_RETURNED_FIELDS)) != 0 ||
        add_keys(m, "GUARDED_FIELDS", KEYS(SOMA_GUARDED_FIELDS)) != 0) {
        Py_DECREF(m);
        return NULL;
    }
#undef KEYS
#undef KEY_NAME
#undef KEY_FORMAT
    return m;
}
