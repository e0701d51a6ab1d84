// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "hist.h"
#include "output.h"

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

unsigned int hist__bucket(__u64 ns)
{
	unsigned int log2, bucket;

	if (ns < HIST_SUB_BUCKETS)
		return ns;
	log2 = 63 - __builtin_clzll(ns);
	if (log2 >= HIST_MAX_LOG2)
		return HIST_BUCKETS - 1;
	bucket = (log2 - HIST_SUB_BITS + 1) * HIST_SUB_BUCKETS +
		 ((ns >> (log2 - HIST_SUB_BITS)) & (HIST_SUB_BUCKETS - 1));
	return bucket;
}

double hist__quantile(const __u64 hist[HIST_BUCKETS], __u64 max_ns, double q)
{
	__u64 total = 0, seen = 0;
	double rank, value, fraction;
	unsigned int i;

	for (i = 0; i < HIST_BUCKETS; i++)
		total += hist[i];
	if (!total)
		return 0;
	rank = q * (double)total;
	for (i = 0; i < HIST_BUCKETS; i++) {
		if (!hist[i] || (double)(seen + hist[i]) < rank) {
			seen += hist[i];
			continue;
		}
		fraction = (rank - (double)seen) / (double)hist[i];
		value = (double)hist__bucket_low(i) +
			fraction * (double)(hist__bucket_high(i) - hist__bucket_low(i));
		return value < (double)max_ns ? value : (double)max_ns;
	}
	return (double)max_ns;
}

double hist__quantile_ns(const struct process_stats *stats, double q)
{
	return hist__quantile(stats->busy_hist, stats->max_busy_ns, q);
}

#define BAR_WIDTH 40
/* 2^10 ns ~ 1 us: rows below it are merged into the first. */
#define FIRST_ROW_LOG2 10
#define ROWS (HIST_MAX_LOG2 - FIRST_ROW_LOG2 + 1)

void hist__print(FILE *file, __u32 pid, const char *comm, const struct process_stats *stats)
{
	__u64 rows[ROWS] = {}, max = 0;
	unsigned int i, log2, row, first = ROWS, last = 0, stars;

	for (i = 0; i < HIST_BUCKETS; i++) {
		log2 = i < HIST_SUB_BUCKETS ? 0 : i / HIST_SUB_BUCKETS + 1;
		row = log2 < FIRST_ROW_LOG2 ? 0 : log2 - FIRST_ROW_LOG2;
		rows[row < ROWS ? row : ROWS - 1] += stats->busy_hist[i];
	}
	for (row = 0; row < ROWS; row++) {
		if (!rows[row])
			continue;
		first = first < row ? first : row;
		last = row;
		max = rows[row] > max ? rows[row] : max;
	}
	fprintf(file, "\npid %u (%s): loop iteration busy time\n", pid, TEXT_SAFE(comm));
	fprintf(file, "%22s : count    distribution\n", "usecs");
	for (row = first; row <= last && first < ROWS; row++) {
		/* Rows are powers of two of 1024 ns: "microseconds" to within 2.4%. */
		__u64 low = row ? 1ULL << row : 0, high = (1ULL << (row + 1)) - 1;

		stars = (unsigned int)(rows[row] * BAR_WIDTH / max);
		fprintf(file, "%10llu -> %-10llu : %-8llu |%-*.*s|\n", (unsigned long long)low,
			(unsigned long long)high, (unsigned long long)rows[row], BAR_WIDTH, stars,
			"****************************************");
	}
}
