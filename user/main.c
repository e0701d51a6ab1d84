// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* loopstall: find event-loop stalls in live processes. Lifecycle: check, load, attach, stream. */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/perf_event.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "cli.h"
#include "clock.h"
#include "counters.h"
#include "export.h"
#include "fleet.h"
#include "hist.h"
#include "loopstall.h"
#include "loopstall.skel.h"
#include "output.h"
#include "privileges.h"
#include "remote.h"
#include "targetfs.h"
#include "progress.h"
#include "runtime.h"
#include "sites.h"
#include "stall.h"
#include "symbolize.h"
#include "targets.h"
#include "util.h"

/* The stuck-loop scan runs at half the threshold, but not busier than every 10 ms nor lazier
 * than every 100 ms. */
#define PROGRESS_SCAN_MIN_MS 10
#define PROGRESS_SCAN_MAX_MS 100
#define TRIM_INTERVAL_MS 1000
/* Each process loopstall follows costs it blocks of 64-512 KiB (its /proc/PID/maps text among
 * them; about a thousand a minute in a soak). glibc serves such blocks from mmap, given back at
 * free, only until it frees the first: then it raises its threshold to that block's size, and
 * every later one comes from the heap and stays resident until the next trim. A soak read up to
 * 1.7 MiB of them in the second before a trim, 0.7 MiB with the threshold fixed (docs/soak.md). */
#define MMAP_THRESHOLD_BYTES (64 * 1024)
/* A stuck loop is reported once per threshold, but not more than once a second: a 250 ms stall
 * needs no running commentary, a hung loop needs a heartbeat. */
#define PROGRESS_MIN_INTERVAL_MS 1000
/* Records handled per ring_buffer__poll() before the stream loop's checks run again. */
#define RECORDS_PER_POLL 256
/* The on-CPU sampler records stacks once an iteration has run this fraction of the threshold. */
#define SAMPLE_AFTER_FRACTION 0.5

#define MAX_STACKS 16384
/* Per-process tables hold --max-processes entries, but never fewer than this... */
#define MIN_PROCESS_ENTRIES 4096
/* ... and traced_pids also the decisions about processes --all declined or not decided yet. */
#define UNTRACED_PROCESS_ENTRIES 4096

#define CAP_SYS_ADMIN 21
#define CAP_PERFMON 38
#define CAP_BPF 39

static const char *const tracefs_dirs[] = { "/sys/kernel/tracing", "/sys/kernel/debug/tracing" };

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
	/* A second Ctrl-C means "now": do not wait for the drain and summaries. */
	if (stopping)
		_exit(128 + sig);
	stopping = 1;
}

static int libbpf_print_quiet(enum libbpf_print_level level, const char *fmt, va_list args)
{
	return 0;
}

/* -v's count: libbpf's print callback has no context argument. */
static int verbosity;

static int libbpf_print_verbose(enum libbpf_print_level level, const char *fmt, va_list args)
{
	if (level == LIBBPF_DEBUG && verbosity < 2)
		return 0;
	return vfprintf(stderr, fmt, args);
}

static bool has_capability(unsigned long long caps, int cap)
{
	return caps & (1ULL << cap);
}

static int check_privileges(void)
{
	unsigned long long caps = 0;
	char line[256];
	FILE *status = fopen("/proc/self/status", "r");

	while (status && fgets(line, sizeof(line), status))
		if (sscanf(line, "CapEff: %llx", &caps) == 1)
			break;
	if (status)
		fclose(status);
	if (has_capability(caps, CAP_SYS_ADMIN) ||
	    (has_capability(caps, CAP_BPF) && has_capability(caps, CAP_PERFMON)))
		return 0;
	fprintf(stderr, "loopstall: needs root, or CAP_BPF and CAP_PERFMON (plus CAP_SYS_PTRACE to "
			"read other users' processes)\n");
	return -EPERM;
}

static int check_btf(void)
{
	if (access("/sys/kernel/btf/vmlinux", R_OK) == 0)
		return 0;
	fprintf(stderr, "loopstall: this kernel has no BTF (/sys/kernel/btf/vmlinux); loopstall "
			"needs a kernel built with CONFIG_DEBUG_INFO_BTF=y\n");
	return -ENOTSUP;
}

static int check_loop_func(const struct config *config)
{
	if (!config->loop_func_binary || access(config->loop_func_binary, R_OK) == 0)
		return 0;
	fprintf(stderr, "loopstall: --loop-func %s:%s: %s: %s\n", config->loop_func_binary,
		config->loop_func_symbol, config->loop_func_binary, strerror(errno));
	return -errno;
}

/* Syscall tracepoints are found through tracefs; mount it where a minimal system has not. */
static const char *tracefs__find(void)
{
	char path[128];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(tracefs_dirs); i++) {
		snprintf(path, sizeof(path), "%s/events", tracefs_dirs[i]);
		if (access(path, F_OK) == 0)
			return tracefs_dirs[i];
	}
	if (mount("nodev", tracefs_dirs[0], "tracefs", 0, NULL) == 0)
		return tracefs_dirs[0];
	return NULL;
}

static bool tracepoint__exists(const char *tracefs, const char *name)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/events/syscalls/%s", tracefs, name);
	return access(path, F_OK) == 0;
}

/* Load only the boundary programs the configuration asks for and the kernel has. */
static int boundaries__select(struct loopstall_bpf *skel, const struct config *config)
{
	struct {
		struct bpf_program *prog;
		unsigned int kind;
		const char *tracepoint;
	} programs[] = {
		{ skel->progs.epoll_wait_enter, BOUNDARY_EPOLL, "sys_enter_epoll_wait" },
		{ skel->progs.epoll_wait_exit, BOUNDARY_EPOLL, "sys_exit_epoll_wait" },
		{ skel->progs.epoll_pwait_enter, BOUNDARY_EPOLL, "sys_enter_epoll_pwait" },
		{ skel->progs.epoll_pwait_exit, BOUNDARY_EPOLL, "sys_exit_epoll_pwait" },
		{ skel->progs.epoll_pwait2_enter, BOUNDARY_EPOLL, "sys_enter_epoll_pwait2" },
		{ skel->progs.epoll_pwait2_exit, BOUNDARY_EPOLL, "sys_exit_epoll_pwait2" },
		{ skel->progs.poll_enter, BOUNDARY_POLL, "sys_enter_poll" },
		{ skel->progs.poll_exit, BOUNDARY_POLL, "sys_exit_poll" },
		{ skel->progs.ppoll_enter, BOUNDARY_POLL, "sys_enter_ppoll" },
		{ skel->progs.ppoll_exit, BOUNDARY_POLL, "sys_exit_ppoll" },
		{ skel->progs.select_enter, BOUNDARY_SELECT, "sys_enter_select" },
		{ skel->progs.select_exit, BOUNDARY_SELECT, "sys_exit_select" },
		{ skel->progs.pselect6_enter, BOUNDARY_SELECT, "sys_enter_pselect6" },
		{ skel->progs.pselect6_exit, BOUNDARY_SELECT, "sys_exit_pselect6" },
	};
	bool use_syscalls = !config->loop_func_binary;
	/* epoll alone: its entry is the whole boundary (poll__enter()); poll and select loops
	 * (GLib) and --loop-func functions may run callbacks inside the call, so their exits end
	 * the wait. */
	bool entry_only = use_syscalls && config->boundary_kinds == BOUNDARY_EPOLL;
	const char *tracefs = NULL;
	int loaded = 0;
	size_t i;

	if (use_syscalls) {
		tracefs = tracefs__find();
		if (!tracefs) {
			fprintf(stderr, "loopstall: syscall tracepoints need tracefs, which is not "
					"mounted (mount -t tracefs nodev /sys/kernel/tracing)\n");
			return -ENOENT;
		}
	}
	for (i = 0; i < ARRAY_SIZE(programs); i++) {
		/* epoll_pwait2 arrived in Linux 5.11: older kernels lack its tracepoints. */
		bool load = use_syscalls && (config->boundary_kinds & programs[i].kind) &&
			    !(entry_only && strstr(programs[i].tracepoint, "_exit_")) &&
			    tracepoint__exists(tracefs, programs[i].tracepoint);

		bpf_program__set_autoload(programs[i].prog, load);
		loaded += load;
	}
	skel->rodata->entry_boundary = entry_only;
	bpf_program__set_autoload(skel->progs.loop_func_enter, !use_syscalls);
	bpf_program__set_autoload(skel->progs.loop_func_exit, !use_syscalls);
	if (use_syscalls && !loaded) {
		fprintf(stderr, "loopstall: this kernel has no syscall tracepoints for the chosen poll "
				"calls (CONFIG_FTRACE_SYSCALLS); use --loop-func instead\n");
		return -ENOENT;
	}
	return 0;
}

static __u32 process_entries(const struct config *config)
{
	return config->max_processes > MIN_PROCESS_ENTRIES ? (__u32)config->max_processes
							    : MIN_PROCESS_ENTRIES;
}

static void configure(struct loopstall_bpf *skel, const struct config *config)
{
	__u64 threshold_ns = (__u64)(config->threshold_ms * NS_PER_MS);
	__u32 processes = process_entries(config);

	skel->rodata->threshold_ns = threshold_ns;
	skel->rodata->sample_after_ns = (__u64)(threshold_ns * SAMPLE_AFTER_FRACTION);
	skel->rodata->sample_period_ns = NS_PER_SEC / config->sample_hz;
	skel->rodata->py_depth = config->py_depth;
	skel->rodata->trace_all = config->all;
	/* --all finds children when they poll, under the name they have by then: a decision at
	 * fork time would judge them by their parent's name. */
	skel->rodata->follow_forks = !config->no_follow_forks && !config->all;
	skel->rodata->per_thread_stats = config->per_thread;
	bpf_map__set_max_entries(skel->maps.traced_pids, processes + UNTRACED_PROCESS_ENTRIES);
	bpf_map__set_max_entries(skel->maps.process_stats,
				 processes + (config->per_thread ? LOOP_THREADS : 0));
	runtimes__configure(skel, &(struct runtime_limits){
		.processes = processes,
		.threads = LOOP_THREADS,
	});
	bpf_map__set_max_entries(skel->maps.native_stacks, MAX_STACKS);
	bpf_map__set_max_entries(skel->maps.events, config->ring_buffer_kb * 1024);
}

static int sampler__attach(struct bpf_program *prog, unsigned int hz, struct bpf_link **links,
			   int nr_cpus)
{
	struct perf_event_attr attr = {
		.type = PERF_TYPE_SOFTWARE,
		.config = PERF_COUNT_SW_CPU_CLOCK,
		.size = sizeof(attr),
		.freq = 1,
		.sample_freq = hz,
	};
	int cpu, fd, attached = 0;

	for (cpu = 0; cpu < nr_cpus; cpu++) {
		fd = (int)syscall(SYS_perf_event_open, &attr, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC);
		if (fd < 0)
			continue; /* an offline CPU */
		links[cpu] = bpf_program__attach_perf_event(prog, fd);
		if (!links[cpu]) {
			close(fd);
			continue;
		}
		attached++;
	}
	if (!attached) {
		fprintf(stderr, "loopstall: cannot start the on-CPU sampler (perf_event_open: %s)\n",
			strerror(errno));
		return -errno;
	}
	return 0;
}

static int loop_func__attach(struct loopstall_bpf *skel, const struct config *config, pid_t pid,
			     struct bpf_link **enter, struct bpf_link **exit)
{
	LIBBPF_OPTS(bpf_uprobe_opts, opts, .func_name = config->loop_func_symbol);

	opts.retprobe = false;
	*enter = bpf_program__attach_uprobe_opts(skel->progs.loop_func_enter, pid,
						 config->loop_func_binary, 0, &opts);
	if (*enter) {
		opts.retprobe = true;
		*exit = bpf_program__attach_uprobe_opts(skel->progs.loop_func_exit, pid,
							config->loop_func_binary, 0, &opts);
	}
	if (*enter && *exit)
		return 0;
	if (errno == ENOENT || errno == ESRCH)
		fprintf(stderr, "loopstall: --loop-func: symbol '%s' not found in %s\n",
			config->loop_func_symbol, config->loop_func_binary);
	else
		fprintf(stderr, "loopstall: --loop-func %s:%s: cannot attach a uprobe: %s\n",
			config->loop_func_binary, config->loop_func_symbol, strerror(errno));
	return -errno;
}

struct session {
	struct config config;
	struct targets targets;
	struct output output;
	struct stall_resolver resolver;
	struct progress progress;
	struct stall_report report; /* scratch: too big for the stack */
	struct sites *sites;
	struct fleet fleet;
	bool fleet_ready;
	struct exporter *exporter;
	struct counter counters[MAX_COUNTERS]; /* lost_events first: the exporter has its own family */
	int nr_counters;
	char process_table_text[96];
	long drain_budget; /* records still reported after a stop was asked */
	long records_this_poll;
	struct loopstall_bpf *skel;
	struct ring_buffer *ring;
	struct bpf_link **sampler_links;
	struct bpf_link *loop_func_links[2 * MAX_TARGET_PIDS];
	int nr_cpus;
	bool memory_freed; /* a process's caches were dropped since the last malloc_trim() */
	__u64 trimmed_ms;
};

/* A process's summary: at its exit, or at loopstall's for those still running. Processes only
 * met in passing (a forked helper that never polled) are not worth a line. */
static void summary__print(struct session *session, const struct process_info *info)
{
	const struct site *sites[SITES_TOP + 1];
	int nr_sites = sites__sorted(session->sites, info->pid, sites);
	struct process_stats stats;

	if (!fleet__stats(&session->fleet, info->pid, &stats))
		memset(&stats, 0, sizeof(stats));
	if (!info->explicit_target && !stats.iterations)
		return;
	output__summary(&session->output, info, &stats, sites, nr_sites);
	if (session->config.histogram_interval_s >= 0)
		hist__print(stderr, info->pid, info->comm, &stats);
	if (session->config.top_interval_s >= 0)
		output__sites(stderr, info->pid, info->comm, sites, nr_sites);
}

/* The process exited or exec'd: what was read of its program is gone. */
static void process__forget(struct session *session, pid_t pid)
{
	runtimes__forget(&session->resolver.runtimes, pid);
	syms__forget_pid(session->resolver.syms, pid);
	session->memory_freed = true;
}

/* What a gone process's caches held stays in malloc's free lists, so a long --all run would
 * keep the memory of its busiest moment (a soak's RSS rose 14% from 500 to 1000 processes,
 * then stayed): give it back, at most once a second. */
static void session__trim(struct session *session)
{
	__u64 now = clock__ns() / NS_PER_MS;

	if (!session->memory_freed || now - session->trimmed_ms < TRIM_INTERVAL_MS)
		return;
	malloc_trim(0);
	session->memory_freed = false;
	session->trimmed_ms = now;
}

static void process__on_exit(struct session *session, pid_t pid)
{
	struct process_info info;

	if (!fleet__info(&session->fleet, pid, &info) || info.exited)
		return;
	fleet__exited(&session->fleet, pid);
	summary__print(session, &info);
	sites__forget(session->sites, pid);
	process__forget(session, pid);
	/* With an exporter, the final counts stay until the next scrape has read them. */
	if (!session->fleet.keep_exited)
		fleet__reap(&session->fleet);
}

static void fleet__reap_cb(void *fleet)
{
	fleet__reap(fleet);
}

static void record__handle(struct session *session, const void *data, size_t size)
{
	const struct stall_record *stall = data;
	const struct process_record *process = data;
	struct process_info info;

	if (size < sizeof(stall->type))
		return;
	if (stall->type == RECORD_STALL && size >= sizeof(*stall)) {
		/* Processes rename themselves (setproctitle, prctl): keep the labels current. */
		if (stall->tid == stall->pid)
			fleet__rename(&session->fleet, stall->pid, stall->comm);
		stall__from_record(&session->resolver, stall, &session->report);
		output__stall(&session->output, &session->report,
			      fleet__info(&session->fleet, stall->pid, &info) ? &info : NULL);
		sites__add(session->sites, stall->pid, &session->report.site, stall->duration_ns);
	} else if (process->type == RECORD_PROCESS_NEW && size >= sizeof(*process)) {
		/* A process found polling already runs its interpreter: map its threads now, so
		 * that its first stall has language frames. */
		if (fleet__decide(&session->fleet, process->pid, process->parent_pid, process->comm) &&
		    !process->parent_pid)
			runtimes__attach(&session->resolver.runtimes, process->pid);
	} else if (process->type == RECORD_PROCESS_EXIT && size >= sizeof(*process)) {
		process__on_exit(session, process->pid);
	} else if (process->type == RECORD_PROCESS_EXEC && size >= sizeof(*process)) {
		/* A new program: new interpreter, new mappings, new name. */
		process__forget(session, process->pid);
		fleet__rename(&session->fleet, process->pid, process->comm);
	}
}

static int on_record(void *ctx, void *data, size_t size)
{
	struct session *session = ctx;

	/* Under a flood of events the ring never runs dry: once asked to stop, report what the
	 * buffer can hold at most (events from before the stop), then stop consuming. */
	if (stopping && session->drain_budget-- <= 0)
		return -EINTR;
	record__handle(session, data, size);
	/* Nor would ring_buffer__poll() return for the duration, stuck-loop and exit checks:
	 * hand control back every so many records (a record is consumed once its callback ran,
	 * whatever it returns). */
	return ++session->records_this_poll >= RECORDS_PER_POLL ? -EINTR : 0;
}

static int targets__trace(struct session *session)
{
	int i, err;

	for (i = 0; i < session->targets.nr; i++) {
		pid_t pid = session->targets.list[i].pid;

		err = fleet__add(&session->fleet, pid);
		if (err)
			return err;
		if (session->config.loop_func_binary) {
			err = loop_func__attach(session->skel, &session->config, pid,
						&session->loop_func_links[2 * i],
						&session->loop_func_links[2 * i + 1]);
			if (err)
				return err;
		}
	}
	return 0;
}

static void print_tracing(const struct session *session)
{
	const struct targets *targets = &session->targets;

	if (session->config.all)
		fprintf(stderr, "loopstall: tracing every event loop on this host, threshold %g ms; "
				"Ctrl-C to stop\n", session->config.threshold_ms);
	else if (targets->nr == 1)
		fprintf(stderr, "loopstall: tracing pid %d (%s), threshold %g ms; Ctrl-C to stop\n",
			targets->list[0].pid, TEXT_SAFE(targets->list[0].comm), session->config.threshold_ms);
	else
		fprintf(stderr, "loopstall: tracing %d processes, threshold %g ms; Ctrl-C to stop\n",
			targets->nr, session->config.threshold_ms);
}

#define STR(x) #x
#define XSTR(x) STR(x)

/* The BPF drop and skip counters, readable once the skeleton is loaded (.bss is mmapped). */
static void counters__init(struct session *session)
{
	struct loopstall_bpf__bss *bss = session->skel->bss;
	const struct counter counters[] = {
		{ "lost_events",
		  "events lost: the ring buffer was full (see --ring-buffer)",
		  &bss->lost_events },
		{ "stack_errors",
		  "kernel or user stacks not captured: the stack could not be read or stored",
		  &bss->stack_errors },
		{ "stacks_evicted",
		  "kernel or user stacks of reported stalls lost: evicted from the stack map "
		  "(" XSTR(MAX_STACKS) " most recently used) before the stall was read",
		  &bss->stacks_evicted },
		{ "thread_table_full",
		  "loop threads not tracked: none of the " XSTR(LOOP_THREAD_PROBES) " entries of the "
		  "thread table (" XSTR(LOOP_THREADS) ") a thread may take was free",
		  &bss->thread_table_full },
		{ "process_table_full", session->process_table_text, &bss->process_table_full },
		{ "wakeups_missed",
		  "loop iterations timed from the thread's CPU time: the wakeup out of the loop's "
		  "poll that began them was not seen",
		  &bss->wakeups_missed },
		{ "processes_filtered",
		  "processes found polling not traced: --comm, --exclude-comm or --cgroup left them "
		  "out (-v names them)",
		  &session->fleet.filtered },
		{ "processes_over_limit",
		  "processes found polling not traced: --max-processes were traced already",
		  &session->fleet.over_limit },
	};

	memcpy(session->counters, counters, sizeof(counters));
	snprintf(session->process_table_text, sizeof(session->process_table_text),
		 "processes not traced: the process table (%u) was full",
		 process_entries(&session->config) + UNTRACED_PROCESS_ENTRIES);
	session->nr_counters = runtimes__counters(session->skel, session->counters,
						  ARRAY_SIZE(counters));
}

static void print_summaries(struct session *session)
{
	struct process_info info;
	int i;

	for (i = 0; i < session->fleet.nr; i++) {
		info = session->fleet.procs[i];
		if (info.exited)
			continue;
		task__comm(info.pid, info.pid, info.comm);
		summary__print(session, &info);
	}
	output__counters(&session->output, session->counters, session->nr_counters);
}

static void histogram__visit(void *ctx, const struct process_info *info, __u32 tid,
			     const struct process_stats *stats)
{
	if (!tid && !info->exited)
		hist__print(stderr, info->pid, info->comm, stats);
}

static void print_histograms(struct session *session)
{
	fleet__visit(&session->fleet, histogram__visit, NULL);
}

static void print_tops(struct session *session)
{
	const struct site *sites[SITES_TOP + 1];
	struct process_info info;
	int i;

	for (i = 0; i < session->fleet.nr; i++) {
		info = session->fleet.procs[i];
		if (!info.exited)
			output__sites(stderr, info.pid, info.comm, sites,
				      sites__sorted(session->sites, info.pid, sites));
	}
}

static __u64 monotonic_ms(void)
{
	return clock__ns() / NS_PER_MS;
}

static int stream(struct session *session, struct ring_buffer *ring)
{
	struct loop_thread_table loop_threads = loop_thread_table__of(session->skel);
	double scan_ms = session->config.threshold_ms / 2;
	__u64 deadline_ms = 0, histogram_ms = 0, top_ms = 0;
	const char *failed;
	int err;

	if (scan_ms < PROGRESS_SCAN_MIN_MS)
		scan_ms = PROGRESS_SCAN_MIN_MS;
	if (scan_ms > PROGRESS_SCAN_MAX_MS)
		scan_ms = PROGRESS_SCAN_MAX_MS;
	if (session->config.duration_s)
		deadline_ms = monotonic_ms() + (__u64)(session->config.duration_s * 1000);
	if (session->config.histogram_interval_s > 0)
		histogram_ms = monotonic_ms() + (__u64)(session->config.histogram_interval_s * 1000);
	if (session->config.top_interval_s > 0)
		top_ms = monotonic_ms() + (__u64)(session->config.top_interval_s * 1000);
	while (!stopping) {
		session->records_this_poll = 0;
		err = ring_buffer__poll(ring, (int)scan_ms);
		if (err < 0 && err != -EINTR) {
			fprintf(stderr, "loopstall: reading events: %s\n", strerror(-err));
			return err;
		}
		runtimes__tick(&session->resolver.runtimes);
		session__trim(session);
		progress__scan(&session->progress, &loop_threads, &session->resolver,
			       &session->fleet, &session->output, &session->report);
		failed = output__failed(&session->output);
		if (failed) {
			fprintf(stderr, "loopstall: cannot write %s (disk full or an I/O error): "
					"stopping, since reports would be lost\n", failed);
			return -EIO;
		}
		if (!session->config.all && targets__all_exited(&session->targets))
			break;
		if (deadline_ms && monotonic_ms() >= deadline_ms)
			break;
		if (histogram_ms && monotonic_ms() >= histogram_ms) {
			print_histograms(session);
			histogram_ms += (__u64)(session->config.histogram_interval_s * 1000);
		}
		if (top_ms && monotonic_ms() >= top_ms) {
			print_tops(session);
			top_ms += (__u64)(session->config.top_interval_s * 1000);
		}
	}
	/* Whatever the kernel produced before we stopped is still reported. */
	ring_buffer__consume(ring);
	return 0;
}

static int launch_or_attach(struct session *session)
{
	const struct config *config = &session->config;
	int i, err;

	if (config->command)
		return targets__spawn(&session->targets, config->command);
	for (i = 0; i < config->nr_pids; i++) {
		err = targets__add_pid(&session->targets, config->pids[i]);
		if (err)
			return err;
	}
	return 0;
}

/* Open the BPF object, size and select its programs for the configuration, and load it. */
static int session__load(struct session *session)
{
	int err;

	session->skel = loopstall_bpf__open();
	if (!session->skel) {
		err = -errno;
		fprintf(stderr, "loopstall: cannot open the BPF object: %s\n", strerror(errno));
		return err;
	}
	configure(session->skel, &session->config);
	err = boundaries__select(session->skel, &session->config);
	if (err)
		return err;
	err = loopstall_bpf__load(session->skel);
	if (err) {
		fprintf(stderr, "loopstall: cannot load the BPF programs: %s (run with -v for the "
				"verifier's log)\n", strerror(-err));
		return err;
	}
	counters__init(session);
	return 0;
}

/* Put the targets in the traced set, then attach the programs and the on-CPU sampler. */
static int session__attach(struct session *session)
{
	const struct config *config = &session->config;
	int err;

	err = fleet__init(&session->fleet, config, bpf_map__fd(session->skel->maps.traced_pids),
			  session->skel->bss->pid_known_bits,
			  bpf_map__fd(session->skel->maps.process_stats), loop_thread_table__of(session->skel));
	session->fleet_ready = true;
	if (!err)
		err = targets__trace(session);
	if (!err && config->all && config->loop_func_binary)
		err = loop_func__attach(session->skel, config, -1, &session->loop_func_links[0],
					&session->loop_func_links[1]);
	if (err)
		return err;
	err = loopstall_bpf__attach(session->skel);
	if (err) {
		fprintf(stderr, "loopstall: cannot attach the BPF programs: %s\n", strerror(-err));
		return err;
	}
	session->nr_cpus = libbpf_num_possible_cpus();
	session->sampler_links = calloc(session->nr_cpus, sizeof(*session->sampler_links));
	if (!session->sampler_links) {
		fprintf(stderr, "loopstall: cannot start the on-CPU sampler: %s\n", strerror(errno));
		return -ENOMEM;
	}
	return sampler__attach(session->skel->progs.on_cpu_sample, config->sample_hz,
			       session->sampler_links, session->nr_cpus);
}

/* What turns records into reports: symbolization, the runtimes, the ring buffer's reader. */
static int session__resolve_setup(struct session *session)
{
	int err;

	session->sites = sites__new();
	if (!session->sites) {
		fprintf(stderr, "loopstall: cannot allocate the sites table: %s\n", strerror(ENOMEM));
		return -ENOMEM;
	}
	session->resolver.syms = syms__new();
	session->resolver.stacks_map_fd = bpf_map__fd(session->skel->maps.native_stacks);
	session->resolver.stacks_evicted = &session->skel->bss->stacks_evicted;
	if (!session->resolver.syms) {
		err = -errno;
		fprintf(stderr, "loopstall: cannot set up symbolization: %s\n", strerror(errno));
		return err;
	}
	err = runtimes__new(&session->resolver.runtimes, session->resolver.syms, session->skel);
	if (err)
		return err;
	session->progress.interval_ns = (__u64)(session->config.threshold_ms * NS_PER_MS);
	if (session->progress.interval_ns < PROGRESS_MIN_INTERVAL_MS * NS_PER_MS)
		session->progress.interval_ns = PROGRESS_MIN_INTERVAL_MS * NS_PER_MS;
	session->ring = ring_buffer__new(bpf_map__fd(session->skel->maps.events), on_record,
					 session, NULL);
	if (!session->ring) {
		err = -errno;
		fprintf(stderr, "loopstall: cannot read the ring buffer: %s\n", strerror(errno));
		return err;
	}
	return 0;
}

/* Let the targets run (a launched command) or find their runtimes (running processes). */
static int targets__start(struct session *session)
{
	int i, err;

	if (session->config.command) {
		err = targets__release(&session->targets);
		if (err)
			return err;
		fleet__rename(&session->fleet, session->targets.child,
			      targets__comm(&session->targets, session->targets.child));
		return 0;
	}
	/* A launched command is recognized once it has exec'd and polls; a running process now,
	 * so that its first stall already has language frames. */
	for (i = 0; i < session->targets.nr; i++)
		runtimes__attach(&session->resolver.runtimes, session->targets.list[i].pid);
	return 0;
}

static int exporter__open(struct session *session)
{
	if (!session->config.prometheus)
		return 0;
	session->exporter = export__open(session->config.prometheus, &(struct export_source){
		.fleet = &session->fleet,
		.lost_events = &session->skel->bss->lost_events,
		.counters = session->counters + 1,
		.nr_counters = session->nr_counters - 1,
		.per_thread = session->config.per_thread,
		.version = LOOPSTALL_VERSION,
		.after_scrape = fleet__reap_cb,
		.after_scrape_ctx = &session->fleet,
	});
	return session->exporter ? 0 : -EADDRNOTAVAIL;
}

/* Start, drop privileges, report until stopped, then the summaries. */
static int session__stream(struct session *session)
{
	int err;

	err = exporter__open(session);
	if (err)
		return err;
	err = targets__start(session);
	if (err)
		return err;
	/* /proc/kallsyms shows addresses only to CAP_SYSLOG: read it while we have it. */
	syms__kernel(session->resolver.syms, 0, &(__u64){ 0 });
	/* Only loopstall itself: a launched command was forked before and keeps its privileges. */
	err = privileges__drop();
	if (err)
		fprintf(stderr, "loopstall: cannot drop privileges after loading: %s\n", strerror(-err));
	/* Capabilities are per thread: threads started before the drop would keep them all. So
	 * targetfs' worker and remote's reader are started anew, the exporter's thread only now. */
	targetfs__reset();
	remote__reset();
	err = session->exporter ? export__start(session->exporter) : 0;
	if (err)
		return err;
	/* As many stall records as the ring holds: bounded work after Ctrl-C. */
	session->drain_budget =
		(long)session->config.ring_buffer_kb * 1024 / sizeof(struct stall_record);
	print_tracing(session);
	err = stream(session, session->ring);
	/* No scrape may reap the fleet while the summaries read it. */
	export__stop(session->exporter);
	session->exporter = NULL;
	print_summaries(session);
	return err;
}

/* Whatever the steps before got to: safe after any of them failed. */
static void session__teardown(struct session *session)
{
	int i;

	export__stop(session->exporter);
	targets__close(&session->targets);
	ring_buffer__free(session->ring);
	for (i = 0; session->sampler_links && i < session->nr_cpus; i++)
		bpf_link__destroy(session->sampler_links[i]);
	free(session->sampler_links);
	for (i = 0; i < 2 * MAX_TARGET_PIDS; i++)
		bpf_link__destroy(session->loop_func_links[i]);
	loopstall_bpf__destroy(session->skel);
	runtimes__free(&session->resolver.runtimes);
	sites__free(session->sites);
	if (session->fleet_ready)
		fleet__free(&session->fleet);
	if (session->resolver.syms)
		syms__free(session->resolver.syms);
	output__close(&session->output);
}

static int run(struct session *session)
{
	const struct config *config = &session->config;
	int err;

	err = check_btf();
	if (!err)
		err = check_privileges();
	if (!err)
		err = check_loop_func(config);
	if (err)
		return err;
	err = output__init(&session->output, config->output_path, config->json, config->folded_path);
	session->output.all_frames = config->all_frames;
	if (!err)
		err = launch_or_attach(session);
	if (!err)
		err = session__load(session);
	if (!err)
		err = session__attach(session);
	if (!err)
		err = session__resolve_setup(session);
	if (!err)
		err = session__stream(session);
	session__teardown(session);
	return err;
}

int main(int argc, char **argv)
{
	static struct session session;
	/* SA_RESTART: a write blocked on a full stdout pipe must finish, not lose its buffer. */
	struct sigaction action = { .sa_handler = on_signal, .sa_flags = SA_RESTART };
	int err;

	cli__parse(argc, argv, &session.config);
	mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
	/* libdw would fetch missing debuginfo over the network at the first stripped module: an
	 * observer must not stall on (or leak its targets to) a download. */
	unsetenv("DEBUGINFOD_URLS");
	verbosity = session.config.verbose;
	libbpf_set_print(verbosity ? libbpf_print_verbose : libbpf_print_quiet);
	sigaction(SIGINT, &action, NULL);
	sigaction(SIGTERM, &action, NULL);
	err = run(&session);
	cli__free(&session.config);
	return err ? EXIT_FAILURE : EXIT_SUCCESS;
}
