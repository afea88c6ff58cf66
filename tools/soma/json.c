/*
 * json.c: strict RFC 8259 JSON parser (see json.h).
 *
 * Recursive descent over [p, lim).  Every read is guarded by p < lim, so the
 * text needs no terminating NUL.  Each parse_* function either returns a
 * complete node or frees whatever it built and returns NULL with the error
 * recorded; callers only have to free what they own themselves.
 */
#include "json.h"

#include <limits.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SJ_MAX_DEPTH 64

struct parser {
    const char *start;  /* the whole text: line and column are counted from here */
    const char *p;      /* next unread byte; start <= p <= lim always */
    const char *lim;    /* text + len: nothing at or past it is ever read */
    char *err;
    size_t errlen;
    int failed;         /* the first error wins: it is the one nearest the cause */
};

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* Characters that may not directly follow a number or literal: without this
 * check "0x1", "1.5.2" or "truex" would parse as a value followed by junk,
 * which a caller reading concatenated values would misreport. */
static int is_word(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           c == '_' || c == '.' || c == '+' || c == '-';
}

static void fail_at(struct parser *ps, const char *at, const char *what)
{
    if (ps->failed)
        return;
    ps->failed = 1;
    if (!ps->err || ps->errlen == 0)
        return;
    /* Line and column (both 1-based, columns in bytes) are computed only now,
     * so the successful path pays nothing for them. */
    size_t line = 1, col = 1;
    for (const char *q = ps->start; q < at; q++) {
        if (*q == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    snprintf(ps->err, ps->errlen, "line %zu, column %zu: %s", line, col, what);
}

static void out_of_memory(struct parser *ps)
{
    if (!ps->failed && ps->err && ps->errlen)
        snprintf(ps->err, ps->errlen, "out of memory");
    ps->failed = 1;
}

const char *sj_skip_space(const char *text, const char *limit)
{
    while (text < limit && (*text == ' ' || *text == '\t' || *text == '\n' || *text == '\r'))
        text++;
    return text;
}

static sj_value *new_value(struct parser *ps, sj_type type)
{
    sj_value *v = calloc(1, sizeof *v);
    if (!v)
        out_of_memory(ps);
    else
        v->type = type;
    return v;
}

static int hex4(const char *s, const char *lim, unsigned *out)
{
    if (lim - s < 4)
        return 0;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int c = s[i], lc = c | 0x20;    /* lc folds 'A'-'F' onto 'a'-'f' */
        int d = is_digit(s[i]) ? c - '0' : lc >= 'a' && lc <= 'f' ? lc - 'a' + 10 : -1;
        if (d < 0)
            return 0;
        v = v << 4 | (unsigned)d;
    }
    *out = v;
    return 1;
}

static char *put_utf8(char *o, unsigned cp)
{
    /* The lead byte marks how many continuation bytes (6 bits each) follow. */
    static const unsigned char lead[] = { 0x00, 0xC0, 0xE0, 0xF0 };
    int extra = cp < 0x80 ? 0 : cp < 0x800 ? 1 : cp < 0x10000 ? 2 : 3;
    *o++ = (char)(lead[extra] | cp >> (6 * extra));
    for (int i = extra - 1; i >= 0; i--)
        *o++ = (char)(0x80 | (cp >> (6 * i) & 0x3F));
    return o;
}

/* The one-character escapes and what they stand for, index for index. */
static const char esc_names[] = "\"\\/bfnrt", esc_values[] = "\"\\/\b\f\n\r\t";

/* ps->p is at the opening quote.  Returns the decoded, NUL-terminated string. */
static char *parse_string(struct parser *ps, size_t *lenp)
{
    const char *s = ps->p + 1, *q = s;
    /* Find the closing quote first: no escape decodes to more bytes than it
     * occupies (\uXXXX: 6 -> at most 3, a surrogate pair: 12 -> 4, a lone
     * surrogate: 6 -> 3 for U+FFFD), so the span bounds the output and one
     * malloc suffices.  Skipping two bytes at a backslash keeps \" inside. */
    while (q < ps->lim && *q != '"')
        q += (*q == '\\' && ps->lim - q >= 2) ? 2 : 1;
    if (q >= ps->lim) {
        fail_at(ps, ps->p, "unterminated string (expected '\"' before end of input)");
        return NULL;
    }
    char *out = malloc((size_t)(q - s) + 1), *o = out;
    if (!out) {
        out_of_memory(ps);
        return NULL;
    }
    for (const char *r = s; r < q;) {
        unsigned char c = (unsigned char)*r;
        if (c < 0x20) {
            fail_at(ps, r, "control character in string (expected it escaped)");
            goto bad;
        }
        if (c != '\\') {
            *o++ = (char)c;
            r++;
            continue;
        }
        /* The scan above guarantees the escaped byte is before q. */
        char e = r[1];
        r += 2;
        const char *simple = e ? strchr(esc_names, e) : NULL;
        unsigned cp, lo;
        if (simple) {
            *o++ = esc_values[simple - esc_names];
            continue;
        }
        if (e != 'u') {
            fail_at(ps, r - 2, "invalid escape (expected one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u)");
            goto bad;
        }
        if (!hex4(r, q, &cp)) {
            fail_at(ps, r, "expected 4 hex digits after \\u");
            goto bad;
        }
        r += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            /* A high surrogate counts only with a low one right after;
             * otherwise it becomes U+FFFD and what follows is decoded on
             * its own. */
            if (q - r >= 6 && r[0] == '\\' && r[1] == 'u' && hex4(r + 2, q, &lo) &&
                lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                r += 6;
            } else {
                cp = 0xFFFD;
            }
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            cp = 0xFFFD;
        }
        o = put_utf8(o, cp);
    }
    *o = '\0';
    *lenp = (size_t)(o - out);
    ps->p = q + 1;
    return out;
bad:
    free(out);
    return NULL;
}

/* Converts the token [s, e) with strtod, which needs a NUL-terminated copy
 * (the text may not have one) and the locale's decimal point. */
static int to_double(struct parser *ps, const char *s, const char *e, double *out)
{
    char small[64], *buf = small;
    size_t n = (size_t)(e - s);
    if (n >= sizeof small && !(buf = malloc(n + 1))) {
        out_of_memory(ps);
        return 0;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    const char *dp = localeconv()->decimal_point;
    char *dot = strchr(buf, '.');
    if (dot && dp[0] && !dp[1])
        *dot = dp[0];
    /* Out-of-range magnitudes become +-HUGE_VAL or 0, as RFC 8259 section 6
     * lets an implementation limit range and precision. */
    *out = strtod(buf, NULL);
    if (buf != small)
        free(buf);
    return 1;
}

/* Skips the non-empty run of digits at *q, or fails with `what` if there is none. */
static int digits(struct parser *ps, const char **q, const char *what)
{
    if (*q >= ps->lim || !is_digit(**q)) {
        fail_at(ps, *q, what);
        return 0;
    }
    while (*q < ps->lim && is_digit(**q))
        (*q)++;
    return 1;
}

static sj_value *parse_number(struct parser *ps)
{
    const char *s = ps->p, *lim = ps->lim;
    int neg = *s == '-', integral = 1, overflow = 0;
    const char *ds = s + neg, *q = ds;
    unsigned long long mag = 0;
    if (!digits(ps, &q, "expected a digit"))
        return NULL;
    if (*ds == '0' && q - ds > 1) {
        fail_at(ps, ds, "leading zero (expected '.', 'e' or the end of the number)");
        return NULL;
    }
    for (const char *d = ds; d < q; d++) {
        unsigned dv = (unsigned)(*d - '0');
        if (mag > (ULLONG_MAX - dv) / 10)
            overflow = 1;   /* still a valid number: strtod gives its double */
        else
            mag = mag * 10 + dv;
    }
    if (q < lim && *q == '.') {
        integral = 0;
        q++;
        if (!digits(ps, &q, "expected a digit after '.'"))
            return NULL;
    }
    if (q < lim && (*q == 'e' || *q == 'E')) {
        integral = 0;
        if (++q < lim && (*q == '+' || *q == '-'))
            q++;
        if (!digits(ps, &q, "expected a digit in the exponent"))
            return NULL;
    }
    if (q < lim && is_word(*q)) {
        fail_at(ps, q, "unexpected character after number (expected a delimiter)");
        return NULL;
    }
    sj_value *v = new_value(ps, SJ_NUMBER);
    if (!v)
        return NULL;
    if (integral && !overflow && !neg) {
        v->is_uint = 1;
        v->uint = mag;
        v->number = (double)mag;    /* correctly rounded, like strtod */
        if (mag <= (unsigned long long)LLONG_MAX) {
            v->is_int = 1;
            v->sint = (long long)mag;
        }
    } else if (integral && !overflow && mag <= (unsigned long long)LLONG_MAX + 1) {
        v->is_int = 1;
        /* -(mag - 1) - 1 reaches LLONG_MIN without overflowing a long long. */
        v->sint = mag ? -(long long)(mag - 1) - 1 : 0;
        v->number = -(double)mag;
    } else if (!to_double(ps, s, q, &v->number)) {
        free(v);
        return NULL;
    }
    ps->p = q;
    return v;
}

static sj_value *parse_literal(struct parser *ps, const char *word, sj_type type, int boolean)
{
    size_t n = strlen(word);
    if ((size_t)(ps->lim - ps->p) < n || memcmp(ps->p, word, n) != 0 ||
        (ps->lim - ps->p > (ptrdiff_t)n && is_word(ps->p[n]))) {
        char what[32];
        snprintf(what, sizeof what, "expected '%s'", word);
        fail_at(ps, ps->p, what);
        return NULL;
    }
    sj_value *v = new_value(ps, type);
    if (v) {
        v->boolean = boolean;
        ps->p += n;
    }
    return v;
}

/* Room for one more member before it is parsed, so a parsed member can always
 * be stored.  Doubling keeps an n-item container O(n) to build. */
static int grow(struct parser *ps, sj_value *v, size_t *cap, int with_keys)
{
    if (v->n < *cap)
        return 1;
    size_t ncap = *cap ? *cap * 2 : 4;
    sj_value **items = realloc(v->items, ncap * sizeof *items);
    if (items)
        v->items = items;
    char **keys = items && with_keys ? realloc(v->keys, ncap * sizeof *keys) : NULL;
    if (keys)
        v->keys = keys;
    if (!items || (with_keys && !keys)) {
        out_of_memory(ps);  /* v stays consistent: its first n slots are intact */
        return 0;
    }
    *cap = ncap;
    return 1;
}

static sj_value *parse_value(struct parser *ps, int depth);

/* Arrays and objects share one loop: ps->p is at '[' or '{'. */
static sj_value *parse_container(struct parser *ps, int depth)
{
    int obj = *ps->p == '{';
    char close = obj ? '}' : ']';
    const char *sep_err = obj ? "expected ',' or '}'" : "expected ',' or ']'";
    sj_value *v = new_value(ps, obj ? SJ_OBJECT : SJ_ARRAY);
    size_t cap = 0;
    if (!v)
        return NULL;
    ps->p = sj_skip_space(ps->p + 1, ps->lim);
    if (ps->p < ps->lim && *ps->p == close) {
        ps->p++;
        return v;
    }
    for (;;) {
        char *key = NULL;
        size_t klen;
        if (!grow(ps, v, &cap, obj))
            goto bad;
        if (obj) {
            /* After a ',' this also rejects a trailing comma before '}'. */
            ps->p = sj_skip_space(ps->p, ps->lim);
            if (ps->p >= ps->lim || *ps->p != '"') {
                fail_at(ps, ps->p, "expected a string (member name)");
                goto bad;
            }
            if (!(key = parse_string(ps, &klen)))
                goto bad;
            ps->p = sj_skip_space(ps->p, ps->lim);
            if (ps->p >= ps->lim || *ps->p != ':') {
                fail_at(ps, ps->p, "expected ':'");
                free(key);
                goto bad;
            }
            ps->p++;
        }
        sj_value *item = parse_value(ps, depth);
        if (!item) {
            free(key);
            goto bad;
        }
        if (obj)
            v->keys[v->n] = key;
        v->items[v->n++] = item;
        ps->p = sj_skip_space(ps->p, ps->lim);
        if (ps->p < ps->lim && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->lim && *ps->p == close) {
            ps->p++;
            return v;
        }
        fail_at(ps, ps->p, sep_err);
        goto bad;
    }
bad:
    sj_free(v);
    return NULL;
}

/* depth: how many arrays/objects enclose this value. */
static sj_value *parse_value(struct parser *ps, int depth)
{
    ps->p = sj_skip_space(ps->p, ps->lim);
    if (ps->p >= ps->lim) {
        fail_at(ps, ps->p, "expected a value, found the end of the input");
        return NULL;
    }
    sj_value *v;
    switch (*ps->p) {
    case '[':
    case '{':
        if (depth >= SJ_MAX_DEPTH) {
            fail_at(ps, ps->p, "nesting deeper than 64 arrays/objects");
            return NULL;
        }
        return parse_container(ps, depth + 1);
    case '"':
        if (!(v = new_value(ps, SJ_STRING)))
            return NULL;
        if (!(v->string = parse_string(ps, &v->len))) {
            free(v);
            return NULL;
        }
        return v;
    case 't': return parse_literal(ps, "true", SJ_BOOL, 1);
    case 'f': return parse_literal(ps, "false", SJ_BOOL, 0);
    case 'n': return parse_literal(ps, "null", SJ_NULL, 0);
    default:
        if (*ps->p == '-' || is_digit(*ps->p))
            return parse_number(ps);
        fail_at(ps, ps->p, "expected a value");
        return NULL;
    }
}

sj_value *sj_parse(const char *text, size_t len, const char **end, char *err, size_t errlen)
{
    if (!text) {    /* NULL + 0 is undefined; treat it as the empty text */
        text = "";
        len = 0;
    }
    struct parser ps = { text, text, text + len, err, errlen, 0 };
    if (err && errlen)
        err[0] = '\0';
    sj_value *v = parse_value(&ps, 0);
    if (v && end)
        *end = ps.p;
    return v;
}

void sj_free(sj_value *v)
{
    if (!v)
        return;
    free(v->string);
    /* Recursion is bounded: the parser builds at most 64 levels. */
    for (size_t i = 0; i < v->n; i++) {
        sj_free(v->items[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v);
}

const sj_value *sj_get(const sj_value *obj, const char *key)
{
    if (!obj || obj->type != SJ_OBJECT || !key)
        return NULL;
    for (size_t i = 0; i < obj->n; i++)
        if (strcmp(obj->keys[i], key) == 0)
            return obj->items[i];
    return NULL;
}

int sj_get_uint(const sj_value *obj, const char *key, unsigned long long *out)
{
    const sj_value *v = sj_get(obj, key);
    if (!v || v->type != SJ_NUMBER || !v->is_uint)
        return 0;
    *out = v->uint;
    return 1;
}

const char *sj_get_string(const sj_value *obj, const char *key)
{
    const sj_value *v = sj_get(obj, key);
    return v && v->type == SJ_STRING ? v->string : NULL;
}
