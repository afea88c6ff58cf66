/* process.c: clocks, the command line and the threads of the process soma
 * runs in. */
#define _GNU_SOURCE /* pthread_setname_np */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/process.h"

static struct timespec start_time; /* for the snapshots' elapsed_ms */
static uint64_t start_ms;          /* the same on soma__process_now_ms's clock */

static uint64_t ms_of(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t soma__process_now_ms(void)
{
    return ms_of(CLOCK_MONOTONIC_COARSE);
}

uint64_t soma__process_precise_ms(void)
{
    return ms_of(CLOCK_MONOTONIC);
}

void soma__process_mark_start(void)
{
    clock_gettime(CLOCK_MONOTONIC, &start_time);
    start_ms = soma__process_now_ms();
}

uint64_t soma__process_start_ms(void)
{
    return start_ms;
}

double soma__process_elapsed_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start_time.tv_sec) * 1e3 +
           (double)(now.tv_nsec - start_time.tv_nsec) / 1e6;
}

void soma__process_command_line(char *out, size_t len)
{
    out[0] = '\0';
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, out, len - 1);
    close(fd);
    if (n <= 0)
        return;
    for (ssize_t i = 0; i < n; i++) /* one line: arguments may hold newlines */
        if (out[i] == '\0' || (unsigned char)out[i] < ' ')
            out[i] = ' ';
    while (n > 0 && out[n - 1] == ' ')
        n--;
    out[n] = '\0';
}

int soma__process_threads(char *main_state)
{
    char buf[512];
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the command's name may hold anything */
    if (p == NULL || p[1] != ' ')
        return -1;
    *main_state = p[2]; /* the 3rd field */
    for (int field = 2; p != NULL && field < 20; field++)
        p = strchr(p + 1, ' ');
    return p != NULL ? atoi(p + 1) : -1; /* the 20th */
}

int soma__process_thread(void *(*fn)(void *), size_t stack, const char *name)
{
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (stack != 0)
        pthread_attr_setstacksize(&attr, stack);
    /* Not a thread for the program's signals: every one is blocked in it
     * (a thread inherits its creator's mask). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&t, &attr, fn, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc == 0)
        pthread_setname_np(t, name);
    return rc == 0 ? 0 : -1;
}
