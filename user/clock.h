/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef CLOCK_H
#define CLOCK_H

#include <time.h>
#include <linux/types.h>

/* Signed, so that differences of wall and monotonic times may be negative. */
#define NS_PER_MS 1000000LL
#define NS_PER_SEC 1000000000LL

/* CLOCK_MONOTONIC is what bpf_ktime_get_ns() reads, so these compare with BPF timestamps. */
static inline __u64 clock__ns(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (__u64)now.tv_sec * NS_PER_SEC + (__u64)now.tv_nsec;
}

#endif /* CLOCK_H */
