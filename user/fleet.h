/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef FLEET_H
#define FLEET_H

#include <pthread.h>
#include <regex.h>
#include <stdbool.h>
#include <sys/types.h>
#include "cli.h"
#include "loop_threads.h"
#include "loopstall.h"

#define CGROUP_PATH_LEN 256
#define CONTAINER_ID_LEN 65

/* A traced process and the labels its metrics carry. */
struct process_info {
	pid_t pid;
	char comm[TASK_COMM_LEN];
	char cgroup[CGROUP_PATH_LEN];         /* cgroup v2 path, "/" when unknown */
	char container_id[CONTAINER_ID_LEN];  /* "" when not in a container */
	bool exited;
	bool explicit_target; /* given with -p or launched: always summarized */
	bool scraped_exited;  /* a scrape has shown its final values */
};

/*
 * The set of traced processes: given with -p, launched, forked by a traced process, or found
 * polling in --all mode. Userspace decides which announced processes are traced (filters, cap)
 * and forgets the ones that exit, so the label set stays bounded on a busy host. The exporter
 * reads it from its own thread, hence the lock.
 */
struct fleet {
	pthread_mutex_t lock;
	struct process_info *procs;
	int nr;
	size_t cap;
	int max_processes;
	bool cap_logged;
	bool keep_exited; /* until the next scrape: the exporter shows their final counts */
	bool trace_children; /* not in --all mode, where children pass the filters like any process */
	bool say_decisions;  /* -v: a stderr line for each process decided on, and why */
	/* Processes found polling and not traced: by the filters, by --max-processes. Counters
	 * (counters.h) of the run summary and the exporter, which reads them without the lock. */
	__u64 filtered, over_limit;
	const regex_t *comm_regex, *exclude_regex; /* the configuration's; NULL: no filter */
	bool has_cgroup_filter;
	char cgroup_filter[CGROUP_PATH_LEN]; /* as /proc/PID/cgroup shows it */
	int traced_pids_fd;
	__u64 *pid_known_bits; /* the BPF side's (mmap): set before a pid's traced_pids entry */
	int stats_fd;
	struct loop_thread_table loop_threads; /* live threads keep their own iteration counts */
	bool per_thread;
	/* What each series showed last, sorted by key: a count a thread's exit moves from its
	 * loop_threads entry to process_stats may be missed by a read for a moment, and a counter
	 * must never go back. */
	struct stats_shown *shown;
	size_t nr_shown, cap_shown;
};

struct stats_shown {
	struct stats_key key;
	struct process_stats stats;
};

/* Set up the filters; prints one line and returns < 0 on a bad cgroup. */
int fleet__init(struct fleet *fleet, const struct config *config, int traced_pids_fd,
		__u64 *pid_known_bits, int stats_fd, struct loop_thread_table loop_threads);
void fleet__free(struct fleet *fleet);
/* Trace pid unconditionally (-p, launch). */
int fleet__add(struct fleet *fleet, pid_t pid);
/* Decide on a process the BPF side announced; true when it is now traced. */
bool fleet__decide(struct fleet *fleet, pid_t pid, pid_t parent_pid, const char *comm);
/* A launched command's name once it has exec'd. */
void fleet__rename(struct fleet *fleet, pid_t pid, const char *comm);
/* Mark pid exited; its stats stay readable until fleet__reap(). */
void fleet__exited(struct fleet *fleet, pid_t pid);
/* Forget exited processes: their map entries and labels. */
void fleet__reap(struct fleet *fleet);
/* pid's totals as of now (process_stats plus its live loop threads); false if it has none. */
bool fleet__stats(struct fleet *fleet, pid_t pid, struct process_stats *out);
/* Copy of pid's info under the lock; false if unknown. */
bool fleet__info(struct fleet *fleet, pid_t pid, struct process_info *out);
/* Process and (per-thread) stats of every traced process, under the lock. tid 0 is the process
 * total. */
typedef void (*fleet_visit_fn)(void *ctx, const struct process_info *info, __u32 tid,
			       const struct process_stats *stats);
void fleet__visit(struct fleet *fleet, fleet_visit_fn visit, void *ctx);
/* fleet__visit for a scrape that shows what it visits: the exited processes among them have had
 * their final values shown (scraped_exited), and fleet__reap() may let them go. */
void fleet__scrape(struct fleet *fleet, fleet_visit_fn visit, void *ctx);

/* Container id from a cgroup path (docker, containerd/Kubernetes, CRI-O, podman), "" if none. */
void cgroup__container_id(const char *cgroup, char *id, size_t size);

#endif
