// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "hist.h"

__u64 hist__bucket_low(unsigned int bucket)
{
	unsigned int log2 = bucket / HIST_SUB_BUCKETS + 1;
	unsigned int sub = bucket % HIST_SUB_BUCKETS;

	if (bucket < HIST_SUB_BUCKETS)
		return bucket;
	return (1ULL << log2) + sub * (1ULL << (log2 - HIST_SUB_BITS));
}

__u64 hist__bucket_high(unsigned int bucket)
{
	unsigned int log2 = bucket / HIST_SUB_BUCKETS + 1;

	if (bucket < HIST_SUB_BUCKETS)
		return bucket + 1;
	return hist__bucket_low(bucket) + (1ULL << (log2 - HIST_SUB_BITS));
}

double hist__quantile_ns(const struct process_stats *stats, double q)
{
	__u64 total = 0, seen = 0;
	double rank, value, fraction;
	unsigned int i;

	for (i = 0; i < HIST_BUCKETS; i++)
		total += stats->busy_hist[i];
	if (!total)
		return 0;
	rank = q * (double)total;
	for (i = 0; i < HIST_BUCKETS; i++) {
		if (!stats->busy_hist[i] || (double)(seen + stats->busy_hist[i]) < rank) {
			seen += stats->busy_hist[i];
			continue;
		}
		fraction = (rank - (double)seen) / (double)stats->busy_hist[i];
		value = (double)hist__bucket_low(i) +
			fraction * (double)(hist__bucket_high(i) - hist__bucket_low(i));
		return value < (double)stats->max_busy_ns ? value : (double)stats->max_busy_ns;
	}
	return (double)stats->max_busy_ns;
}
