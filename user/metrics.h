/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef METRICS_H
#define METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>
#include "counters.h"
#include "fleet.h"
#include "loopstall.h"

struct series;

/* The per-process (and per-thread) statistics of one scrape. Zero-initialize, set per_thread
 * and tracked, add, render, free. */
struct metrics_snapshot {
	bool per_thread; /* also tid-labelled series; else entries with tid != 0 are left out */
	int tracked;     /* traced processes still running */
	struct series *series;
	size_t nr, cap;
	bool failed; /* an allocation failed: the snapshot is incomplete */
	bool le_ready;
	unsigned char le_of_bucket[HIST_BUCKETS];
};

/* What a scrape shows besides the processes. */
struct metrics_source {
	const volatile __u64 *lost_events; /* host-wide ring-buffer drops, or NULL */
	const struct counter *counters;    /* host-wide BPF counters, each its own family */
	int nr_counters;
	const char *version; /* for loopstall_build_info */
};

/* A process's totals (tid 0) or one of its loop threads (fleet_visit_fn's arguments). */
void metrics_snapshot__add(struct metrics_snapshot *snap, const struct process_info *info,
			   __u32 tid, const struct process_stats *stats);
void metrics_snapshot__free(struct metrics_snapshot *snap);

/* The exposition: Prometheus text 0.0.4, or OpenMetrics 1.0; a malloc'd text of *len bytes
 * (NUL-terminated), NULL when out of memory. Sorts the snapshot's series by pid and tid. */
char *metrics__text(struct metrics_snapshot *snap, const struct metrics_source *source,
		    bool openmetrics, size_t *len);

#endif
