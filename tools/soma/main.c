/*
 * soma: the command-line tool: the demo, and running a program on soma
 * (run.c).  Later subcommands (diff, map) share this dispatcher.
 */
#include <stdio.h>
#include <string.h>

#include "soma.h"
#include "tool.h"

static void usage(FILE *out)
{
    fputs("usage: soma <command> [options]\n"
          "\n"
          "commands:\n"
          "  demo [--scale N]   build many small objects, free them, and show the\n"
          "                     allocator's statistics before, during and after\n"
          "  run [--output FILE] [--no-children] [--] PROG [ARGS...]\n"
          "                     run PROG with soma as its malloc; print the statistics\n"
          "                     of PROG and of the programs it starts when it ends\n"
          "  stats              print the statistics of this (idle) process\n"
          "  version            print soma's version\n"
          "  help               this text\n",
          out);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "demo") == 0)
        return soma_tool_demo(argc - 1, argv + 1);
    if (strcmp(cmd, "run") == 0)
        return soma_tool_run(argc - 1, argv + 1);
    if (strcmp(cmd, "stats") == 0)
        return soma_stats_print(stdout) == 0 ? 0 : 1;
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("soma %s\n", SOMA_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "soma: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
