/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef CLI_H
#define CLI_H

#include <regex.h>
#include <stdbool.h>
#include <sys/types.h>

#define MAX_TARGET_PIDS 1024

struct config {
	pid_t pids[MAX_TARGET_PIDS];
	int nr_pids;
	char **command; /* argv of the command to launch, NULL when attaching */
	double threshold_ms;
	double duration_s;   /* 0: until interrupted or all targets exit */
	unsigned int sample_hz;
	unsigned int py_depth; /* Python frames walked per stack */
	unsigned int boundary_kinds; /* enum boundary_kind bits */
	const char *loop_func_binary; /* --loop-func BINARY:SYMBOL, NULL when unused */
	const char *loop_func_symbol;
	bool json;
	const char *output_path; /* NULL: stdout */
	int verbose; /* -v: libbpf's warnings and --all's decisions; -vv: libbpf's debug messages too */
	/* fleet mode and export */
	bool all;
	/* --comm and --exclude-comm, compiled while parsing; NULL when not given */
	regex_t *comm_regex;
	regex_t *exclude_comm_regex;
	const char *cgroup;
	int max_processes;
	const char *prometheus; /* [ADDR:]PORT, NULL: no exporter */
	bool per_thread;
	double histogram_interval_s; /* --histogram: 0 = at exit only; < 0: off */
	double top_interval_s;       /* --top: 0 = at exit only; < 0: off */
	const char *folded_path;
	bool all_frames; /* --all-frames: no run of library frames summed up in the text output */
	bool no_follow_forks;
	unsigned int ring_buffer_kb;
};

/* Parse the command line into config; on a bad argument print one line and exit(2). */
void cli__parse(int argc, char **argv, struct config *config);
void cli__free(struct config *config);

#endif
