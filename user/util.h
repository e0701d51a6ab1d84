/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef UTIL_H
#define UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>

#define ARRAY_SIZE(array) (sizeof(array) / sizeof((array)[0]))

/* items, an array of *cap elements of elem_size bytes (NULL while *cap is 0), with room for
 * need elements: items itself when it has it, else items reallocated to a capacity doubled from
 * first_cap until need fits (appending n elements copies O(n)), *cap updated. NULL when the size
 * would overflow or realloc fails: items stays valid and *cap as it was. */
static inline void *array__grow(void *items, size_t *cap, size_t need, size_t elem_size,
				size_t first_cap)
{
	size_t grown_cap = *cap ? *cap : (first_cap ? first_cap : 1);
	void *grown;

	if (need <= *cap)
		return items;
	while (grown_cap < need) {
		if (grown_cap > SIZE_MAX / 2)
			return NULL;
		grown_cap *= 2;
	}
	if (grown_cap > SIZE_MAX / elem_size)
		return NULL;
	grown = realloc(items, grown_cap * elem_size);
	if (grown)
		*cap = grown_cap;
	return grown;
}

/* A handful of pids in a fixed array, 0 marking a free slot (the targets whose reads were left
 * behind, in remote.c and targetfs.c): whether pid is in it; *free_slot a free slot or -1. */
static inline bool pid_set__has(const pid_t *set, size_t len, pid_t pid, int *free_slot)
{
	size_t i;

	*free_slot = -1;
	for (i = 0; i < len; i++) {
		if (set[i] == pid)
			return true;
		if (!set[i] && *free_slot < 0)
			*free_slot = (int)i;
	}
	return false;
}

/* pid into a free slot unless it is there; a full set leaves it out. */
static inline void pid_set__add(pid_t *set, size_t len, pid_t pid)
{
	int slot;

	if (!pid_set__has(set, len, pid, &slot) && slot >= 0)
		set[slot] = pid;
}

static inline void pid_set__remove(pid_t *set, size_t len, pid_t pid)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (set[i] == pid) {
			set[i] = 0;
			return;
		}
}

#endif
