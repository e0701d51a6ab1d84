/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef OUTPUT_H
#define OUTPUT_H

#include <stdbool.h>
#include <stdio.h>
#include "counters.h"
#include "fleet.h"
#include "stall.h"

struct output {
	FILE *file;
	bool json;
	FILE *folded; /* --folded: stall stacks for flame graphs, NULL when off */
	__s64 monotonic_to_realtime_ns; /* add to a CLOCK_MONOTONIC time to get wall time */
};

int output__init(struct output *output, const char *path, bool json, const char *folded_path);
void output__close(struct output *output);
/* process: the stalled process's labels (JSON cgroup, container_id), NULL when unknown. */
void output__stall(const struct output *output, const struct stall_report *report,
		   const struct process_info *process);
void output__summary(const struct output *output, const struct process_info *process,
		     const struct process_stats *stats);
/* End of run: the non-zero counters on stderr, and with --json a run_summary record. */
void output__counters(const struct output *output, const struct counter *counters, int nr);

#endif
