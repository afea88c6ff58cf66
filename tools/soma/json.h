/*
 * json.h: a small strict JSON (RFC 8259) parser for the soma tool's input
 * files.  The whole value is built as a tree of malloc'd nodes; the input is
 * never modified and never read past text + len (it need not end in a NUL).
 */
#ifndef SOMA_JSON_H
#define SOMA_JSON_H

#include <stddef.h>

typedef enum { SJ_NULL, SJ_BOOL, SJ_NUMBER, SJ_STRING, SJ_ARRAY, SJ_OBJECT } sj_type;

typedef struct sj_value sj_value;
struct sj_value {
    sj_type type;
    int boolean;                 /* SJ_BOOL */
    double number;               /* SJ_NUMBER: always set */
    int is_uint;                 /* SJ_NUMBER: 1 if the token is a non-negative integer that fits in
                                  * 64 bits (no '.', no exponent, no '-') */
    unsigned long long uint;     /* SJ_NUMBER with is_uint: its exact value */
    long long sint;              /* SJ_NUMBER with is_int: exact value of an integer token that
                                  * fits in long long (negative too) */
    int is_int;
    char *string;                /* SJ_STRING: decoded UTF-8, NUL-terminated; may hold NULs (\u0000) */
    size_t len;                  /* SJ_STRING: bytes in string, not counting the final NUL */
    size_t n;                    /* SJ_ARRAY / SJ_OBJECT: number of items / members */
    sj_value **items;            /* SJ_ARRAY items; SJ_OBJECT member values */
    char **keys;                 /* SJ_OBJECT member names (decoded), same order as in the text */
};

/*
 * Parse one JSON value starting at text (leading whitespace skipped).  On
 * success returns the value and sets *end (if end is not NULL) to the first
 * character after it, so a caller can parse several concatenated values (JSON
 * Lines, pretty-printed objects one after another).  On error returns NULL,
 * leaves *end alone and writes "line L, column C: what was expected" into err
 * (errlen bytes; err may be NULL).  Arrays and objects nest at most 64 deep.
 * On allocation failure returns NULL with the message "out of memory".
 */
sj_value *sj_parse(const char *text, size_t len, const char **end, char *err, size_t errlen);

/* First non-whitespace character at or after text, or limit if none. */
const char *sj_skip_space(const char *text, const char *limit);

/* Free a value from sj_parse and everything under it; NULL is fine. */
void sj_free(sj_value *v);

/* Object member by name (first match), or NULL if obj is not an object or has no such member. */
const sj_value *sj_get(const sj_value *obj, const char *key);

/* Member key of obj as an unsigned integer: 1 and *out set if present and is_uint; 0 otherwise. */
int sj_get_uint(const sj_value *obj, const char *key, unsigned long long *out);

/* Member key of obj as a string, or NULL if absent or not a string. */
const char *sj_get_string(const sj_value *obj, const char *key);

#endif
