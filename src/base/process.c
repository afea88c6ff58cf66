/* process.c: clocks and the command line of the process soma runs in. */
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include "base/process.h"

static struct timespec start_time; /* for the snapshots' elapsed_ms */

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
