/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* qsort/tsearch comparators for keys at the start of a struct. */
#ifndef COMPARE_H
#define COMPARE_H

#include <string.h>
#include <sys/types.h>
#include <linux/types.h>

static inline int pid__cmp(const void *a, const void *b)
{
	pid_t left = *(const pid_t *)a, right = *(const pid_t *)b;

	return left < right ? -1 : left > right;
}

static inline int u32__cmp(const void *a, const void *b)
{
	__u32 left = *(const __u32 *)a, right = *(const __u32 *)b;

	return left < right ? -1 : left > right;
}

static inline int u64__cmp(const void *a, const void *b)
{
	__u64 left = *(const __u64 *)a, right = *(const __u64 *)b;

	return left < right ? -1 : left > right;
}

static inline int str__cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

#endif /* COMPARE_H */
