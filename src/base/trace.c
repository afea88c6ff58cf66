/* trace.c: call stacks for diagnoses (trace.h). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <execinfo.h>
#include <stdio.h>
#include <unistd.h>

#include "base/sink.h"
#include "base/trace.h"

/* Set while this thread is inside backtrace(): its first call allocates,
 * and an allocation that takes a trace must not start another. */
static __thread int tracing __attribute__((tls_model("initial-exec")));

int soma__trace_take(void **frames, int max, int skip)
{
    void *all[SOMA_TRACE_MAX + 8];
    if (tracing || max <= 0)
        return 0;
    tracing = 1;
    int want = max + skip + 1; /* + 1: this function's own frame */
    if (want > (int)(sizeof all / sizeof all[0]))
        want = (int)(sizeof all / sizeof all[0]);
    int n = backtrace(all, want);
    tracing = 0;
    int k = 0;
    for (int i = skip + 1; i < n && k < max; i++)
        frames[k++] = all[i];
    return k;
}

void soma__trace_warm(void)
{
    void *f[2];
    (void)soma__trace_take(f, 2, 0);
}

void soma__trace_print(int fd, const char *indent, void *const *frames, int n)
{
    for (int i = 0; i < n; i++) {
        char line[512];
        Dl_info info;
        int len;
        /* A return address points after the call: look up the byte before
         * it, which is still in the calling function. */
        if (dladdr((char *)frames[i] - 1, &info) != 0 && info.dli_fname != NULL) {
            if (info.dli_sname != NULL)
                len = snprintf(line, sizeof line, "%s#%d %p %s+0x%zx (%s)\n", indent, i, frames[i],
                               info.dli_sname,
                               (size_t)((char *)frames[i] - (char *)info.dli_saddr), info.dli_fname);
            else
                len = snprintf(line, sizeof line, "%s#%d %p (%s+0x%zx)\n", indent, i, frames[i],
                               info.dli_fname,
                               (size_t)((char *)frames[i] - (char *)info.dli_fbase));
        } else {
            len = snprintf(line, sizeof line, "%s#%d %p\n", indent, i, frames[i]);
        }
        if (len > (int)sizeof line - 1)
            len = (int)sizeof line - 1;
        soma__sink_write_all(fd, line, (size_t)len);
    }
}
