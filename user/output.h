/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef OUTPUT_H
#define OUTPUT_H

#include <stdbool.h>
#include <stdio.h>
#include "counters.h"
#include "fleet.h"
#include "sites.h"
#include "stall.h"

struct output {
	FILE *file;
	const char *path; /* -o FILE, NULL for standard output */
	bool json;
	FILE *folded; /* --folded: stall stacks for flame graphs, NULL when off */
	const char *folded_path;
	bool all_frames; /* --all-frames: no run of library frames summed up in the text output */
	__s64 monotonic_to_realtime_ns; /* add to a CLOCK_MONOTONIC time to get wall time */
};

/*
 * The text output of a string the target controls (comm, names, files, source lines, symbols,
 * modules): what it cannot do is act on the reader's terminal. Control characters (C0, DEL, C1,
 * bidirectional overrides) and bytes that are not UTF-8 become visible escapes (\x1b, \u202e,
 * \xff), a backslash "\\"; valid UTF-8 stays. Cut with "..." to fit size (> 3). Returns buf.
 * Every string of the text outputs from a target goes through it, most easily as TEXT_SAFE(s).
 */
const char *output__text_safe(const char *text, char *buf, size_t size);
#define TEXT_SAFE_MAX 512
/* A buffer that lives until the end of the enclosing block: one fprintf's argument. */
#define TEXT_SAFE(text) output__text_safe((text), (char[TEXT_SAFE_MAX]){ 0 }, TEXT_SAFE_MAX)

/* A run of frames [first, last] of stack that are not the application's, as one indented line
 * naming their packages; a run of one frame is not worth it: false, nothing printed. */
bool output__frame_run(FILE *file, const struct lang_stack *stack, int first, int last);
/* The end of the run of frames not of the application that starts at i, going by step (+1:
 * outward, -1: inward) and staying within [0, limit); i itself when frame i is the app's. */
int output__run_end(const struct lang_stack *stack, int i, int step, int limit);

/* Open the outputs; prints one line and returns -errno if a file cannot be written. */
int output__init(struct output *output, const char *path, bool json, const char *folded_path);
/* The name of an output a write has failed on (a full disk, an I/O error), NULL if none has:
 * what loopstall reports must not be lost silently, so it stops. */
const char *output__failed(const struct output *output);
void output__close(struct output *output);
/* process: the stalled process's labels (JSON cgroup, container_id), NULL when unknown. */
void output__stall(const struct output *output, const struct stall_report *report,
		   const struct process_info *process);
/* The summary of a process, with its blocking sites (sites__sorted()). */
void output__summary(const struct output *output, const struct process_info *process,
		     const struct process_stats *stats, const struct site *const *sites,
		     int nr_sites);
/* The sites table (text): site, count, total, p50, max, reason, hint. */
void output__sites(FILE *file, __u32 pid, const char *comm, const struct site *const *sites,
		   int nr_sites);
/* End of run: the non-zero counters on stderr, and with --json a run_summary record. */
void output__counters(const struct output *output, const struct counter *counters, int nr);

#endif
