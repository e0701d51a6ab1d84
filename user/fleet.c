// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <ctype.h>
#include <errno.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>
#include "compare.h"
#include "fleet.h"
#include "output.h"
#include "targets.h"
#include "util.h"

#define CONTAINER_ID_HEX 64

/* Where cgroup v2 is mounted: /sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid hosts. */
static int cgroup2__mount(char *mount, size_t size)
{
	char line[512], dir[256], type[64];
	FILE *mounts = fopen("/proc/self/mounts", "r");
	int err = -ENOENT;

	while (mounts && fgets(line, sizeof(line), mounts)) {
		if (sscanf(line, "%*s %255s %63s", dir, type) == 2 && !strcmp(type, "cgroup2")) {
			snprintf(mount, size, "%s", dir);
			err = 0;
			break;
		}
	}
	if (mounts)
		fclose(mounts);
	return err;
}

/* --cgroup as a cgroup path ("/system.slice/x") or its directory under the cgroup2 mount,
 * turned into the path /proc/PID/cgroup shows; it must exist. */
static int cgroup__resolve(const char *arg, char *path, size_t size)
{
	char mount[256], dir[512];
	size_t len;
	struct stat st;

	if (cgroup2__mount(mount, sizeof(mount))) {
		fprintf(stderr, "loopstall: --cgroup %s: no cgroup v2 hierarchy is mounted\n", arg);
		return -ENOENT;
	}
	len = strlen(mount);
	if (!strncmp(arg, mount, len) && (arg[len] == '/' || !arg[len]))
		arg += len;
	snprintf(path, size, "%s", arg[0] ? arg : "/");
	len = strlen(path);
	while (len > 1 && path[len - 1] == '/')
		path[--len] = '\0';
	snprintf(dir, sizeof(dir), "%s%s", mount, path);
	if (path[0] != '/' || stat(dir, &st) || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "loopstall: --cgroup %s: no such cgroup (%s does not exist)\n", arg,
			dir);
		return -ENOENT;
	}
	return 0;
}

int fleet__init(struct fleet *fleet, const struct config *config, int traced_pids_fd,
		__u64 *pid_known_bits, int stats_fd, struct loop_thread_table loop_threads)
{
	int err;

	memset(fleet, 0, sizeof(*fleet));
	pthread_mutex_init(&fleet->lock, NULL);
	fleet->traced_pids_fd = traced_pids_fd;
	fleet->pid_known_bits = pid_known_bits;
	fleet->stats_fd = stats_fd;
	fleet->loop_threads = loop_threads;
	fleet->per_thread = config->per_thread;
	fleet->max_processes = config->max_processes;
	fleet->keep_exited = config->prometheus != NULL;
	fleet->trace_children = !config->all;
	fleet->say_decisions = config->verbose > 0;
	if (config->cgroup) {
		err = cgroup__resolve(config->cgroup, fleet->cgroup_filter,
				      sizeof(fleet->cgroup_filter));
		if (err)
			return err;
		fleet->has_cgroup_filter = true;
	}
	fleet->comm_regex = config->comm_regex;
	fleet->exclude_regex = config->exclude_comm_regex;
	return 0;
}

void fleet__free(struct fleet *fleet)
{
	free(fleet->procs);
	fleet->procs = NULL;
	free(fleet->shown);
	fleet->shown = NULL;
	pthread_mutex_destroy(&fleet->lock);
}

/* The process's cgroup v2 path ("0::/path" in /proc/PID/cgroup), "/" when unknown. */
static void proc__cgroup(pid_t pid, char *cgroup, size_t size)
{
	char path[64], line[CGROUP_PATH_LEN + 16];
	FILE *file;

	snprintf(cgroup, size, "/");
	snprintf(path, sizeof(path), "/proc/%d/cgroup", pid);
	file = fopen(path, "r");
	if (!file)
		return;
	while (fgets(line, sizeof(line), file)) {
		if (strncmp(line, "0::", 3))
			continue;
		line[strcspn(line, "\n")] = '\0';
		snprintf(cgroup, size, "%.*s", (int)(size - 1), line + 3);
		break;
	}
	fclose(file);
}

static bool hex_run(const char *text, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (!isxdigit((unsigned char)text[i]))
			return false;
	return true;
}

/*
 * Runtimes name a container's cgroup after its 64-hex id: "docker-<id>.scope" (docker with
 * systemd), "/docker/<id>" (cgroupfs), "cri-containerd-<id>.scope" (containerd, Kubernetes),
 * "crio-<id>.scope" (CRI-O), "libpod-<id>.scope" (podman). The innermost such id wins.
 */
void cgroup__container_id(const char *cgroup, char *id, size_t size)
{
	const char *component = cgroup, *next, *start;
	size_t len;

	if (size)
		id[0] = '\0';
	while (component && *component) {
		while (*component == '/')
			component++;
		next = strchr(component, '/');
		len = next ? (size_t)(next - component) : strlen(component);
		start = component;
		if (len > 6 && !strncmp(component + len - 6, ".scope", 6))
			len -= 6;
		if (len >= CONTAINER_ID_HEX) {
			start = component + len - CONTAINER_ID_HEX;
			if (hex_run(start, CONTAINER_ID_HEX) &&
			    (start == component || start[-1] == '-' || start[-1] == ':'))
				snprintf(id, size, "%.*s", CONTAINER_ID_HEX, start);
		}
		component = next;
	}
}

static bool cgroup__matches(const char *filter, const char *cgroup)
{
	size_t len = strlen(filter);

	if (len <= 1)
		return true;
	return !strncmp(cgroup, filter, len) && (cgroup[len] == '\0' || cgroup[len] == '/');
}

static struct process_info *fleet__find(struct fleet *fleet, pid_t pid)
{
	int i;

	for (i = 0; i < fleet->nr; i++)
		if (fleet->procs[i].pid == pid)
			return &fleet->procs[i];
	return NULL;
}

static int fleet__decision(struct fleet *fleet, pid_t pid, __u8 decision)
{
	__u32 key = pid;

	/* Before the entry: the BPF side looks a pid up only when its bit is set. Atomic, as the
	 * BPF side sets bits of the same words. */
	__atomic_fetch_or(&fleet->pid_known_bits[ID_WORD(key)], ID_BIT(key), __ATOMIC_SEQ_CST);
	return bpf_map_update_elem(fleet->traced_pids_fd, &key, &decision, BPF_ANY) ? -errno : 0;
}

/* Record pid under the lock; the caller decided to trace it. */
static int fleet__insert(struct fleet *fleet, pid_t pid, const char *comm)
{
	struct process_info *info, *grown;

	if (fleet__find(fleet, pid))
		return 0;
	grown = array__grow(fleet->procs, &fleet->cap, (size_t)fleet->nr + 1, sizeof(*grown), 64);
	if (!grown)
		return -ENOMEM;
	fleet->procs = grown;
	info = &fleet->procs[fleet->nr++];
	memset(info, 0, sizeof(*info));
	info->pid = pid;
	snprintf(info->comm, sizeof(info->comm), "%s", comm);
	proc__cgroup(pid, info->cgroup, sizeof(info->cgroup));
	cgroup__container_id(info->cgroup, info->container_id, sizeof(info->container_id));
	return 0;
}

int fleet__add(struct fleet *fleet, pid_t pid)
{
	char comm[TASK_COMM_LEN];
	int err;

	task__comm(pid, pid, comm);
	pthread_mutex_lock(&fleet->lock);
	err = fleet__insert(fleet, pid, comm);
	if (!err)
		fleet__find(fleet, pid)->explicit_target = true;
	pthread_mutex_unlock(&fleet->lock);
	if (!err)
		err = fleet__decision(fleet, pid, TRACE_YES);
	if (err)
		fprintf(stderr, "loopstall: pid %d: cannot add to the traced set: %s\n", pid,
			strerror(-err));
	return err;
}

/* Which filter leaves the process out, NULL when none does. */
static const char *fleet__filtered_by(const struct fleet *fleet, const char *comm,
				      const char *cgroup)
{
	if (fleet->comm_regex && regexec(fleet->comm_regex, comm, 0, NULL, 0))
		return "--comm";
	if (fleet->exclude_regex && !regexec(fleet->exclude_regex, comm, 0, NULL, 0))
		return "--exclude-comm";
	if (fleet->has_cgroup_filter && !cgroup__matches(fleet->cgroup_filter, cgroup))
		return "--cgroup";
	return NULL;
}

bool fleet__decide(struct fleet *fleet, pid_t pid, pid_t parent_pid, const char *comm)
{
	char cgroup[CGROUP_PATH_LEN], current_comm[TASK_COMM_LEN];
	const char *left_out_by;
	bool trace;

	/* A forked child has its parent's comm until it execs: filters see the current one. */
	task__comm(pid, pid, current_comm);
	if (strcmp(current_comm, "?"))
		comm = current_comm;
	proc__cgroup(pid, cgroup, sizeof(cgroup));
	/* Children of explicitly traced processes are part of what the user asked for. */
	left_out_by = parent_pid && fleet->trace_children ? NULL :
		      fleet__filtered_by(fleet, comm, cgroup);
	pthread_mutex_lock(&fleet->lock);
	if (left_out_by) {
		fleet->filtered++;
	} else if (fleet->nr >= fleet->max_processes) {
		if (!fleet->cap_logged)
			fprintf(stderr, "loopstall: tracking %d processes, the --max-processes limit: "
					"pid %d (%s) and later ones are not traced\n",
				fleet->max_processes, pid, TEXT_SAFE(comm));
		fleet->cap_logged = true;
		fleet->over_limit++;
		left_out_by = "--max-processes";
	} else if (fleet__insert(fleet, pid, comm)) {
		left_out_by = "lack of memory";
	}
	pthread_mutex_unlock(&fleet->lock);
	trace = !left_out_by;
	fleet__decision(fleet, pid, trace ? TRACE_YES : TRACE_NO);
	if (fleet->say_decisions)
		fprintf(stderr, "loopstall: pid %d (%s) in cgroup %s: %s%s\n", pid, TEXT_SAFE(comm),
			TEXT_SAFE(cgroup), trace ? "traced" : "not traced, left out by ",
			trace ? "" : left_out_by);
	return trace;
}

void fleet__rename(struct fleet *fleet, pid_t pid, const char *comm)
{
	struct process_info *info;

	pthread_mutex_lock(&fleet->lock);
	info = fleet__find(fleet, pid);
	if (info)
		snprintf(info->comm, sizeof(info->comm), "%s", comm);
	pthread_mutex_unlock(&fleet->lock);
}

void fleet__exited(struct fleet *fleet, pid_t pid)
{
	struct stats_key key = { .pid = pid };
	struct process_stats stats;
	struct process_info *info;

	pthread_mutex_lock(&fleet->lock);
	info = fleet__find(fleet, pid);
	if (info) {
		info->exited = true;
		/* No series to show one last time: nothing for a scrape to wait for. */
		info->scraped_exited = bpf_map_lookup_elem(fleet->stats_fd, &key, &stats) != 0;
	}
	pthread_mutex_unlock(&fleet->lock);
}

/*
 * Delete the entries of the nr sorted pids from the BPF maps: their totals and per-thread stats.
 * One walk of the stats map for all of them, however many exited at once; deleting during the
 * walk would make get_next_key start over, so the keys are collected first.
 */
static void fleet__drop_maps(struct fleet *fleet, const pid_t *pids, int nr)
{
	struct stats_key key, next, *doomed = NULL, *grown;
	size_t nr_doomed = 0, cap = 0, i;
	__u32 traced_key;
	bool first = true;

	for (i = 0; i < (size_t)nr; i++) {
		traced_key = pids[i];
		bpf_map_delete_elem(fleet->traced_pids_fd, &traced_key);
	}
	while (!bpf_map_get_next_key(fleet->stats_fd, first ? NULL : &key, &next)) {
		first = false;
		key = next;
		if (!bsearch(&(pid_t){ (pid_t)next.pid }, pids, nr, sizeof(*pids), pid__cmp))
			continue;
		grown = array__grow(doomed, &cap, nr_doomed + 1, sizeof(*doomed), 64);
		if (!grown)
			break; /* the rest stays, unseen: visits skip pids the fleet forgot */
		doomed = grown;
		doomed[nr_doomed++] = next;
	}
	for (i = 0; i < nr_doomed; i++)
		bpf_map_delete_elem(fleet->stats_fd, &doomed[i]);
	free(doomed);
	for (i = 0, nr_doomed = 0; i < fleet->nr_shown; i++)
		if (!bsearch(&(pid_t){ (pid_t)fleet->shown[i].key.pid }, pids, nr, sizeof(*pids),
			     pid__cmp))
			fleet->shown[nr_doomed++] = fleet->shown[i];
	fleet->nr_shown = nr_doomed;
}

void fleet__reap(struct fleet *fleet)
{
	int i, kept = 0, nr_reaped = 0;
	pid_t *reaped;

	pthread_mutex_lock(&fleet->lock);
	/* Kept entries are compacted to the front; the reaped pids go to a list of their own. */
	reaped = malloc((fleet->nr ? fleet->nr : 1) * sizeof(*reaped));
	for (i = 0; reaped && i < fleet->nr; i++) {
		/* With an exporter, only after a scrape has read the final values. */
		if (fleet->procs[i].exited && (!fleet->keep_exited || fleet->procs[i].scraped_exited))
			reaped[nr_reaped++] = fleet->procs[i].pid;
		else
			fleet->procs[kept++] = fleet->procs[i];
	}
	if (nr_reaped) {
		qsort(reaped, nr_reaped, sizeof(*reaped), pid__cmp);
		fleet__drop_maps(fleet, reaped, nr_reaped);
		/* Room for new processes again: say so when the limit is hit again. */
		fleet->cap_logged = false;
		fleet->nr = kept;
	}
	free(reaped);
	pthread_mutex_unlock(&fleet->lock);
}

bool fleet__info(struct fleet *fleet, pid_t pid, struct process_info *out)
{
	struct process_info *info;

	pthread_mutex_lock(&fleet->lock);
	info = fleet__find(fleet, pid);
	if (info)
		*out = *info;
	pthread_mutex_unlock(&fleet->lock);
	return info != NULL;
}

/* Stats of the series being read, gathered before any is shown. */
struct stats_set {
	struct stats_shown *v;
	size_t nr, cap;
};

static struct stats_shown *stats_set__get(struct stats_set *set, struct stats_key key)
{
	struct stats_shown *grown;
	size_t i;

	for (i = 0; i < set->nr; i++)
		if (set->v[i].key.pid == key.pid && set->v[i].key.tid == key.tid)
			return &set->v[i];
	grown = array__grow(set->v, &set->cap, set->nr + 1, sizeof(*grown), 16);
	if (!grown)
		return NULL;
	set->v = grown;
	memset(&set->v[set->nr], 0, sizeof(set->v[set->nr]));
	set->v[set->nr].key = key;
	return &set->v[set->nr++];
}

static void stats__add_thread(struct process_stats *stats, const struct loop_thread *thread)
{
	size_t i;

	stats->iterations += thread->iterations;
	stats->busy_ns += thread->busy_ns;
	if (thread->max_busy_ns > stats->max_busy_ns)
		stats->max_busy_ns = thread->max_busy_ns;
	for (i = 0; i < HIST_BUCKETS; i++)
		stats->busy_hist[i] += thread->busy_hist[i];
}

/*
 * The stats of pid (every traced pid if 0) under the lock: process_stats first, then the live
 * loop threads' own counts added (the order a thread's exit moves them in, see stats__fold()
 * in BPF), per process (tid 0) and per thread with --per-thread.
 */
static void fleet__collect(struct fleet *fleet, pid_t pid, struct stats_set *set)
{
	struct stats_key key, next;
	struct stats_shown *entry;
	struct loop_thread thread;
	__u32 tid, index = 0;
	bool first = true;

	while (!bpf_map_get_next_key(fleet->stats_fd, first ? NULL : &key, &next)) {
		first = false;
		key = next;
		if ((pid ? (pid_t)next.pid != pid : !fleet__find(fleet, (pid_t)next.pid)))
			continue;
		entry = stats_set__get(set, next);
		if (entry && bpf_map_lookup_elem(fleet->stats_fd, &next, &entry->stats))
			set->nr--; /* gone since: the process was reaped */
	}
	while (loop_thread_table__next(&fleet->loop_threads, &index, &tid, &thread)) {
		if (!thread.iterations ||
		    (pid ? (pid_t)thread.pid != pid : !fleet__find(fleet, (pid_t)thread.pid)))
			continue;
		entry = stats_set__get(set, (struct stats_key){ .pid = thread.pid });
		if (entry)
			stats__add_thread(&entry->stats, &thread);
		entry = fleet->per_thread ?
			stats_set__get(set, (struct stats_key){ .pid = thread.pid, .tid = tid }) : NULL;
		if (entry)
			stats__add_thread(&entry->stats, &thread);
	}
}

static int stats_key__cmp(const void *a, const void *b)
{
	const struct stats_key *x = a, *y = b;

	if (x->pid != y->pid)
		return x->pid < y->pid ? -1 : 1;
	return x->tid < y->tid ? -1 : x->tid > y->tid;
}

/* Never below what the series showed before (every field only grows); remembered. */
static void fleet__clamp(struct fleet *fleet, struct stats_shown *entry)
{
	struct stats_shown *shown, *grown;
	__u64 *now = (__u64 *)&entry->stats, *before;
	size_t i, at;

	shown = fleet->nr_shown ? bsearch(&entry->key, fleet->shown, fleet->nr_shown,
					  sizeof(*shown), stats_key__cmp) : NULL;
	if (!shown) {
		grown = array__grow(fleet->shown, &fleet->cap_shown, fleet->nr_shown + 1,
				    sizeof(*grown), 16);
		if (!grown)
			return;
		fleet->shown = grown;
		for (at = 0; at < fleet->nr_shown &&
			     stats_key__cmp(&fleet->shown[at].key, &entry->key) < 0; at++)
			;
		memmove(&fleet->shown[at + 1], &fleet->shown[at],
			(fleet->nr_shown - at) * sizeof(*shown));
		fleet->nr_shown++;
		fleet->shown[at] = *entry;
		return;
	}
	before = (__u64 *)&shown->stats;
	for (i = 0; i < sizeof(entry->stats) / sizeof(__u64); i++)
		now[i] = before[i] = now[i] > before[i] ? now[i] : before[i];
}

bool fleet__stats(struct fleet *fleet, pid_t pid, struct process_stats *out)
{
	struct stats_set set = {};
	bool found = false;
	size_t i;

	pthread_mutex_lock(&fleet->lock);
	fleet__collect(fleet, pid, &set);
	for (i = 0; i < set.nr; i++) {
		if (set.v[i].key.tid)
			continue;
		fleet__clamp(fleet, &set.v[i]);
		*out = set.v[i].stats;
		found = true;
	}
	pthread_mutex_unlock(&fleet->lock);
	free(set.v);
	return found;
}

static void fleet__walk(struct fleet *fleet, fleet_visit_fn visit, void *ctx, bool scrape)
{
	struct stats_set set = {};
	struct process_info *info;
	size_t i;

	pthread_mutex_lock(&fleet->lock);
	fleet__collect(fleet, 0, &set);
	for (i = 0; i < set.nr; i++) {
		info = fleet__find(fleet, (pid_t)set.v[i].key.pid);
		fleet__clamp(fleet, &set.v[i]);
		visit(ctx, info, set.v[i].key.tid, &set.v[i].stats);
		if (scrape)
			info->scraped_exited = info->exited;
	}
	pthread_mutex_unlock(&fleet->lock);
	free(set.v);
}

void fleet__visit(struct fleet *fleet, fleet_visit_fn visit, void *ctx)
{
	fleet__walk(fleet, visit, ctx, false);
}

void fleet__scrape(struct fleet *fleet, fleet_visit_fn visit, void *ctx)
{
	fleet__walk(fleet, visit, ctx, true);
}
