/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef PROGRESS_H
#define PROGRESS_H

#include <linux/types.h>
#include "loop_threads.h"
#include "output.h"
#include "stall.h"

/*
 * A loop stuck in one iteration fires no BPF program that could report it (it never reaches its
 * poll; if it is blocked it does not even run), and tracing programs cannot arm BPF timers. So
 * userspace watches the per-thread map and reports iterations that are still going past the
 * threshold, at most once per interval per thread.
 */
#define PROGRESS_MAX_THREADS 1024

struct progress_entry {
	__u32 tid;
	__u64 busy_start_ns;
	__u64 reported_ns; /* when this iteration was last reported */
};

struct progress {
	__u64 interval_ns; /* between two reports of one iteration; also the first one's delay */
	int nr;
	struct progress_entry entries[PROGRESS_MAX_THREADS];
};

/* Scan the loop thread table; report each iteration in progress that is due a report. */
void progress__scan(struct progress *progress, const struct loop_thread_table *loop_threads,
		    const struct stall_resolver *resolver, struct fleet *fleet,
		    const struct output *output, struct stall_report *scratch);

#endif
