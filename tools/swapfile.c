/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "swapfile.h"

#define MAX_FILES 16

static char names[MAX_FILES][256];
static unsigned nr;

static void remove_all(void)
{
	for (unsigned i = 0; i < nr; i++)
		unlink(names[i]);
}

const char *tool_swap_path(const char *what)
{
	const char *dir = getenv("TMPDIR");

	if (nr == MAX_FILES)
		return NULL;
	if (nr == 0)
		atexit(remove_all);
	snprintf(names[nr], sizeof(names[nr]), "%s/hugemm-%s-%d-%u.swap", dir && *dir ? dir : "/tmp", what,
		 (int)getpid(), nr);
	return names[nr++];
}
