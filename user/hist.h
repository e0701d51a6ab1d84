/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef HIST_H
#define HIST_H

#include <stdio.h>
#include <linux/types.h>
#include "loopstall.h"

/* Lower and upper bound (ns) of busy-time bucket i, the inverse of the BPF side's hist_bucket(). */
__u64 hist__bucket_low(unsigned int bucket);
__u64 hist__bucket_high(unsigned int bucket);
/* The bucket of a duration: the BPF side's hist_bucket() in userspace. */
unsigned int hist__bucket(__u64 ns);
/* The q-quantile (0..1) of a histogram of such buckets, interpolated inside its bucket and never
 * above max_ns; 0 when it is empty. */
double hist__quantile(const __u64 hist[HIST_BUCKETS], __u64 max_ns, double q);
/* The q-quantile (0..1) of the iterations' busy time in ns, interpolated inside its bucket and
 * never above the exact maximum; 0 when there are no iterations. */
double hist__quantile_ns(const struct process_stats *stats, double q);

/* The busy-time histogram as bars, one row per power of two of microseconds (bcc runqlat's
 * look). */
void hist__print(FILE *file, __u32 pid, const char *comm, const struct process_stats *stats);

#endif
