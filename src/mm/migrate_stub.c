/* SPDX-License-Identifier: MIT */
/* TEMPORARY: until the migration branch (src/mm/migrate.c) is merged. */
#include "mm.h"

int hm_migrate_folios(struct hm_system *sys, const uint32_t *heads, unsigned n,
		      const struct hm_migrate_ctl *ctl, unsigned *moved)
{
	(void)sys, (void)heads, (void)n, (void)ctl;
	*moved = 0;
	return -ENOSYS;
}
