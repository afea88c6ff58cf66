/* tool.h: the subcommands of the soma CLI. */
#ifndef SOMA_TOOL_H
#define SOMA_TOOL_H

#include <stdio.h>

int soma_tool_demo(int argc, char **argv);
int soma_tool_run(int argc, char **argv);
int soma_tool_diff(int argc, char **argv);
int soma_tool_map(int argc, char **argv);
/* help [options [--markdown]]; usage prints the commands. */
int soma_tool_help(int argc, char **argv, void (*usage)(FILE *));

#endif
