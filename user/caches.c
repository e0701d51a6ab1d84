// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The registry of cache counts: see caches.h. Filled by constructors, before main. */
#include <string.h>
#include "caches.h"

static struct cache_count *first;

void caches__register(struct cache_count *count)
{
	struct cache_count **at = &first;

	while (*at && strcmp((*at)->name, count->name) < 0)
		at = &(*at)->next;
	count->next = *at;
	*at = count;
}

const struct cache_count *caches__first(void)
{
	return first;
}
