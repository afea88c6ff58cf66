/*
 * soma: the command-line tool: the demo (demo.c), running a program on soma
 * (run.c), comparing snapshots (diff.c) and drawing them (map.c), and the
 * runtime options (help.c).
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
          "  run [--output FILE] [--no-children] [--format text|json] [--interval MS]\n"
          "      [--timeline PAGE.html] [--] PROG [ARGS...]\n"
          "                     run PROG with soma as its malloc; print the statistics\n"
          "                     of PROG and of the programs it starts when it ends;\n"
          "                     sample them over time and draw them into a page\n"
          "  diff BEFORE.json [AFTER.json]\n"
          "                     what changed between two JSON snapshots (or the first\n"
          "                     and last of one file), biggest changes first\n"
          "  map SNAPSHOT.json -o OUT.svg|OUT.html\n"
          "                     draw every arena of a snapshot as a row of its pools\n"
          "  stats [--json]     print the statistics of this (idle) process\n"
          "  version            print soma's version\n"
          "  help [options [--markdown]]\n"
          "                     this text, or the runtime options (SOMA_*)\n",
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
    if (strcmp(cmd, "diff") == 0)
        return soma_tool_diff(argc - 1, argv + 1);
    if (strcmp(cmd, "map") == 0)
        return soma_tool_map(argc - 1, argv + 1);
    if (strcmp(cmd, "stats") == 0) {
        if (argc > 2 && strcmp(argv[2], "--json") == 0)
            return soma_stats_print_json(stdout) == 0 ? 0 : 1;
        return soma_stats_print(stdout) == 0 ? 0 : 1;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("soma %s\n", SOMA_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0)
        return soma_tool_help(argc - 1, argv + 1, usage);
    fprintf(stderr, "soma: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
