/* SPDX-License-Identifier: MIT */
/*
 * Swap files the command makes for itself: a name of this process's own, so
 * that two runs at once never share (and truncate) one file, removed when
 * the process exits, whichever way it leaves through exit().
 */
#ifndef HM_TOOLS_SWAPFILE_H
#define HM_TOOLS_SWAPFILE_H

/* "$TMPDIR/hugemm-WHAT-PID-N.swap" ($TMPDIR or /tmp); valid until exit,
 * or NULL when more than a few are asked for. */
const char *tool_swap_path(const char *what);

#endif
