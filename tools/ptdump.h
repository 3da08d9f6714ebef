/* SPDX-License-Identifier: MIT */
/* hugemm ptdump (tools/ptdump.c), called by the command's main. */
#ifndef HUGEMM_TOOL_PTDUMP_H
#define HUGEMM_TOOL_PTDUMP_H

#define PTDUMP_USAGE \
	"hugemm ptdump [--levels 4|5] [--fork] [--range START END] [--walk VA] [--swap FILE|--no-swap]\n"

int ptdump_main(int argc, char **argv);

#endif
