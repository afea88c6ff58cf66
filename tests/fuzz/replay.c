/*
 * replay.c: runs fuzz_soma.c's LLVMFuzzerTestOneInput over the corpus
 * without libFuzzer, so that every build (gcc too, and the sanitizer
 * builds) replays it as the CTest test test_fuzz_corpus.
 *
 *   test_fuzz_corpus [DIR or FILE ...]    default: the corpus in the tree
 *
 * Files are run in name order.  A directory with no file fails the test
 * (a wrong path must not pass silently).  A check that fails aborts, with
 * the harness's message.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#ifndef SOMA_FUZZ_CORPUS
#define SOMA_FUZZ_CORPUS "tests/fuzz/corpus"
#endif

static unsigned long inputs, bytes;

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (buf == NULL) {
            fclose(f);
            fprintf(stderr, "%s: out of memory\n", path);
            return -1;
        }
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        cap *= 2;
        buf = realloc(buf, cap);
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        fprintf(stderr, "%s: read error\n", path);
        free(buf);
        return -1;
    }
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    inputs++;
    bytes += n;
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        perror(dir);
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **grown = realloc(names, cap * sizeof *names);
            if (grown == NULL) {
                closedir(d);
                return -1;
            }
            names = grown;
        }
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        names[n] = malloc(len);
        if (names[n] == NULL) {
            closedir(d);
            return -1;
        }
        snprintf(names[n], len, "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, by_name);
    int rc = n == 0 ? -1 : 0;
    if (n == 0)
        fprintf(stderr, "%s: no inputs\n", dir);
    for (size_t i = 0; i < n; i++) {
        struct stat sb;
        if (rc == 0 && stat(names[i], &sb) == 0 && S_ISREG(sb.st_mode))
            rc = run_file(names[i]);
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    const char *fallback[] = {SOMA_FUZZ_CORPUS};
    const char **paths = argc > 1 ? (const char **)argv + 1 : fallback;
    int npaths = argc > 1 ? argc - 1 : 1;
    for (int k = 0; k < npaths; k++) {
        struct stat sb;
        if (stat(paths[k], &sb) != 0) {
            perror(paths[k]);
            return 1;
        }
        if ((S_ISDIR(sb.st_mode) ? run_dir(paths[k]) : run_file(paths[k])) != 0)
            return 1;
    }
    printf("test_fuzz_corpus: %lu inputs (%lu bytes) replayed, every check held\n", inputs,
           bytes);
    return 0;
}
