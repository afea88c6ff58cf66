/*
 * test_show_stats: SOMA_SHOW_STATS, the dump at exit (CPython's
 * PYTHONMALLOCSTATS).  This program runs itself as a child ("child" as the
 * argument: allocate, keep 100 blocks of 96 bytes and 7 of 512, exit 0) with
 * the variable set in various ways, and reads the child's stderr:
 *
 *   - 1 / yes / ON / true: the whole of stderr is one dump (parsed, checked
 *     arithmetic), showing exactly the blocks the child kept;
 *   - unset / 0 / no / off / false / empty: stderr is empty;
 *   - a value that is no boolean: exactly one warning line that names the
 *     variable, no dump;
 *   - the child exits with status 0 every time, and its stdout is untouched;
 *   - a setuid copy of the program (owned by nobody, run by root, so the
 *     kernel sets AT_SECURE) ignores SOMA_SHOW_STATS=1: no dump.  Skipped
 *     when not root, or when the kernel does not honour the setuid bit (a
 *     nosuid mount, no_new_privs): the child reports AT_SECURE itself.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dump_parse.h"
#include "soma.h"
#include "test.h"

static int child_main(void)
{
    static void *volatile keep[107]; /* kept till exit: the dump shows them */
    (void)keep;
    void *tmp[300];
    for (int i = 0; i < 300; i++)
        tmp[i] = soma_malloc((size_t)(1 + i));
    for (int i = 0; i < 100; i++)
        keep[i] = soma_malloc(90); /* class 5: 96 bytes */
    for (int i = 0; i < 7; i++)
        keep[100 + i] = soma_malloc(512); /* class 31 */
    for (int i = 0; i < 300; i++)
        soma_free(tmp[i]);
    printf("child done\n");
    return 0;
}

/* Read the whole file at fd (from its start) into a malloc'ed string. */
static char *slurp(int fd, size_t *len)
{
    struct stat sb;
    if (fstat(fd, &sb) != 0)
        return NULL;
    char *buf = malloc((size_t)sb.st_size + 1);
    if (!buf)
        return NULL;
    size_t n = 0;
    while (n < (size_t)sb.st_size) {
        ssize_t r = pread(fd, buf + n, (size_t)sb.st_size - n, (off_t)n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static int temp_fd(void)
{
    char path[] = "/tmp/soma_test_show_stats_XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0)
        unlink(path);
    return fd;
}

typedef struct {
    int status; /* exit status, or -1 */
    char *out, *err;
    size_t out_len, err_len;
} run_result;

/* Run `prog` (this program: as "child") with SOMA_SHOW_STATS = value (NULL:
 * unset). */
static run_result run_child(const char *prog, const char *value, const char *mode)
{
    run_result r = {-1, NULL, NULL, 0, 0};
    int out = temp_fd(), err = temp_fd();
    if (!CHECK(out >= 0 && err >= 0))
        return r;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out, 1);
        dup2(err, 2);
        if (value)
            setenv("SOMA_SHOW_STATS", value, 1);
        else
            unsetenv("SOMA_SHOW_STATS");
        execl(prog, prog, mode, (char *)NULL);
        _exit(127);
    }
    if (!CHECK(pid > 0))
        return r;
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    r.out = slurp(out, &r.out_len);
    r.err = slurp(err, &r.err_len);
    close(out);
    close(err);
    return r;
}

static size_t count_char(const char *s, char ch)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == ch;
    return n;
}

static void test_on(const char *self, const char *value)
{
    run_result r = run_child(self, value, "child");
    if (!CHECK(r.err && r.out))
        return;
    if (!CHECK_EQ(r.status, 0))
        test_note("  SOMA_SHOW_STATS=%s: child status %d, stderr:\n%s", value, r.status, r.err);
    CHECK_STR_EQ(r.out, "child done\n");
    CHECK(strstr(r.err, "Small block threshold = 512") != NULL);
    CHECK(strstr(r.err, "Total") != NULL);
    dp_dump d;
    char msg[1024];
    size_t consumed = 0;
    if (!CHECK_EQ(dp_parse(r.err, r.err_len, &d, msg, sizeof msg, &consumed), 0)) {
        test_note("  SOMA_SHOW_STATS=%s: %s", value, msg);
    } else {
        CHECK_EQ(consumed, r.err_len); /* nothing but the dump */
        if (!CHECK_EQ(dp_consistent(&d, 48, msg, sizeof msg), 0))
            test_note("  %s", msg);
        const dp_row *r5 = dp_find_row(&d, 5), *r31 = dp_find_row(&d, 31);
        if (CHECK(r5 != NULL))
            CHECK_EQ(r5->in_use, 100);
        if (CHECK(r31 != NULL))
            CHECK_EQ(r31->in_use, 7);
        size_t total = 0;
        for (size_t i = 0; i < d.nrows; i++)
            total += d.rows[i].in_use;
        CHECK_EQ(total, 107);
        CHECK_GE(d.arenas_current, 1);
    }
    free(r.out);
    free(r.err);
}

/* A setuid copy of this program must ignore the variable. */
static void test_setuid(const char *self)
{
    if (geteuid() != 0) {
        test_note("not root: the setuid check is skipped");
        return;
    }
    char dir[] = "/tmp/soma_setuid_XXXXXX";
    if (!CHECK(mkdtemp(dir) != NULL))
        return;
    char copy[sizeof dir + 16];
    snprintf(copy, sizeof copy, "%s/prog", dir);
    int in = open(self, O_RDONLY), out = open(copy, O_WRONLY | O_CREAT | O_TRUNC, 0755);
    char buf[65536];
    ssize_t n;
    while (in >= 0 && out >= 0 && (n = read(in, buf, sizeof buf)) > 0)
        CHECK_EQ(write(out, buf, (size_t)n), n);
    close(in);
    close(out);
    chmod(dir, 0755);
    CHECK_EQ(chown(copy, 65534, 65534), 0);
    CHECK_EQ(chmod(copy, 04755), 0);
    run_result r = run_child(copy, "1", "child-secure");
    if (CHECK(r.err && r.out)) {
        if (strncmp(r.out, "secure 1\n", 9) != 0) {
            /* Also under AddressSanitizer: its LeakSanitizer cannot work in
             * a setuid process and fails at exit (status 1, stdout lost). */
            test_note("setuid copy did not run with AT_SECURE (status %d, stdout '%s'): check "
                      "skipped",
                      r.status, r.out);
        } else {
            CHECK_EQ(r.status, 0);
            CHECK_STR_EQ(r.out, "secure 1\nchild done\n");
            if (!CHECK_EQ(r.err_len, 0))
                test_note("  a setuid program took SOMA_SHOW_STATS from its caller:\n%s", r.err);
        }
    }
    free(r.out);
    free(r.err);
    unlink(copy);
    rmdir(dir);
}

static void test_off(const char *self, const char *value)
{
    run_result r = run_child(self, value, "child");
    if (!CHECK(r.err && r.out))
        return;
    CHECK_EQ(r.status, 0);
    CHECK_STR_EQ(r.out, "child done\n");
    if (!CHECK_EQ(r.err_len, 0))
        test_note("  SOMA_SHOW_STATS=%s: stderr was:\n%s", value ? value : "(unset)", r.err);
    free(r.out);
    free(r.err);
}

static void test_bogus(const char *self, const char *value)
{
    run_result r = run_child(self, value, "child");
    if (!CHECK(r.err && r.out))
        return;
    CHECK_EQ(r.status, 0);
    CHECK_STR_EQ(r.out, "child done\n");
    /* Exactly one line, ending in a newline, naming the variable and value. */
    if (!CHECK_EQ(count_char(r.err, '\n'), 1) || !CHECK(r.err_len > 0 && r.err[r.err_len - 1] == '\n'))
        test_note("  SOMA_SHOW_STATS=%s: stderr was:\n%s", value, r.err);
    CHECK(strstr(r.err, "SOMA_SHOW_STATS") != NULL);
    CHECK(strstr(r.err, value) != NULL);
    CHECK(strstr(r.err, "Small block threshold") == NULL);
    free(r.out);
    free(r.err);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "child") == 0)
        return child_main();
    if (argc > 1 && strcmp(argv[1], "child-secure") == 0) {
        printf("secure %lu\n", getauxval(AT_SECURE));
        return child_main();
    }
    test_begin("test_show_stats");
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (!CHECK(n > 0))
        return test_summary();
    self[n] = '\0';

    static const char *on[] = {"1", "yes", "ON", "true"};
    static const char *off[] = {"0", "no", "off", "FALSE", ""};
    static const char *bogus[] = {"bogus", "2", "enable"};
    for (size_t i = 0; i < sizeof on / sizeof on[0]; i++)
        test_on(self, on[i]);
    test_off(self, NULL);
    for (size_t i = 0; i < sizeof off / sizeof off[0]; i++)
        test_off(self, off[i]);
    for (size_t i = 0; i < sizeof bogus / sizeof bogus[0]; i++)
        test_bogus(self, bogus[i]);
    test_setuid(self);
    return test_summary();
}
