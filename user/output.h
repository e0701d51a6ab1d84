/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef OUTPUT_H
#define OUTPUT_H

#include <stdbool.h>
#include <stdio.h>
#include "counters.h"
#include "sites.h"
#include "stall.h"

struct output {
	FILE *file;
	bool json;
	FILE *folded; /* --folded: stall stacks for flame graphs, NULL when off */
	__s64 monotonic_to_realtime_ns; /* add to a CLOCK_MONOTONIC time to get wall time */
};

int output__init(struct output *output, const char *path, bool json, const char *folded_path);
void output__close(struct output *output);
void output__stall(const struct output *output, const struct stall_report *report);
/* The summary of a process, with its blocking sites (sites__sorted()). */
void output__summary(const struct output *output, __u32 pid, const char *comm,
		     const struct process_stats *stats, const struct site *const *sites,
		     int nr_sites);
/* The sites table (text): site, count, total, p50, max, reason, hint. */
void output__sites(FILE *file, __u32 pid, const char *comm, const struct site *const *sites,
		   int nr_sites);
/* End of run: the non-zero counters on stderr, and with --json a run_summary record. */
void output__counters(const struct output *output, const struct counter *counters, int nr);

#endif
