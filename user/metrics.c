// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The Prometheus exposition of loopstall's aggregates, as Prometheus text 0.0.4 or OpenMetrics
 * 1.0: a snapshot of the per-process statistics in, a text out. No socket, no fleet, no BPF:
 * user/export.c takes the snapshot and serves it over HTTP.
 *
 * Series (process labels: pid, comm, cgroup, container_id; --per-thread adds tid-labelled series
 * next to the process totals, so aggregate process totals with {tid=""}):
 *   loopstall_iteration_busy_seconds   histogram   busy time between two polls of the loop
 *   loopstall_stalls_total             counter     iterations at or above the stall threshold
 *   loopstall_stall_seconds_total      counter     their busy time, cpu="on|off|runqueue"
 *   loopstall_waiting_connections_total counter    connections waiting in accept queues when
 *       the process's stalls ended (summed over its stalls)
 *   loopstall_waiting_ready_fds_total  counter     its loop's ready fds at those moments
 *   loopstall_lost_events_total        counter     ring-buffer drops: the series WITHOUT labels
 *       is the host-wide count (every record kind), the per-process series (no tid) count that
 *       process's dropped stall events and are included in it. Select them with {pid=""} and
 *       {pid!=""}; never sum the family as a whole.
 *   loopstall_<counter>_total          counter     host-wide drops and skips, no labels:
 *       stack_errors, stacks_evicted, thread_table_full, process_table_full, wakeups_missed,
 *       processes_filtered, processes_over_limit, py_walks_skipped, py_thread_mismatch,
 *       js_walks_skipped (main.c counters__init and the runtimes' counters say what each
 *       counts)
 *   loopstall_build_info{version}      gauge       always 1
 *   loopstall_tracked_processes        gauge       traced processes still running
 *   loopstall_cache_entries{cache}     gauge       entries of each userspace cache (caches.h)
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "clock.h"
#include "hist.h"
#include "metrics.h"
#include "utf8.h"
#include "util.h"
#include "caches.h"

/*
 * Histogram bounds (le, seconds) as exposed. The text is fixed so both formats give the same le
 * label values: Prometheus 2.x keys series by the exposed string, and "1.0" is what OpenMetrics
 * and Prometheus 3's normalization write.
 *
 * Resolution: the kernel histogram (bpf/loopstall.h) has HIST_SUB_BUCKETS = 4 linear buckets per
 * power of two of nanoseconds, each 1/7 to 1/4 of its lower bound wide. A kernel bucket counts
 * toward an le only when all of it lies at or below le (hist__bucket_high(i) <= le), so counts
 * are never optimistic, but the kernel bucket that straddles an le goes to the next one: busy
 * times from its lower bound up to le land one le higher. For these bounds that band is 1.7%
 * (0.0001), 8.2% (0.00025-0.001), 16.1% (0.0025-0.1), 6.0% (0.25-1) and 14.1% (2.5-10) below
 * le: e.g. 0.918-1 ms counts toward le="0.0025", 234.9-250 ms toward le="0.5". +Inf (and
 * _count) is every iteration.
 */
static const struct {
	const char *text;
	__u64 ns;
} le_bounds[] = {
	{ "0.0001", 100000ULL },       { "0.00025", 250000ULL },     { "0.0005", 500000ULL },
	{ "0.001", 1000000ULL },       { "0.0025", 2500000ULL },     { "0.005", 5000000ULL },
	{ "0.01", 10000000ULL },       { "0.025", 25000000ULL },     { "0.05", 50000000ULL },
	{ "0.1", 100000000ULL },       { "0.25", 250000000ULL },     { "0.5", 500000000ULL },
	{ "1.0", 1000000000ULL },      { "2.5", 2500000000ULL },     { "5.0", 5000000000ULL },
	{ "10.0", 10000000000ULL },
};
#define NR_LE (ARRAY_SIZE(le_bounds))

enum stall_part { PART_ON_CPU, PART_OFF_CPU, PART_RUNQUEUE, NR_PARTS };
static const char *const part_names[NR_PARTS] = { "on", "off", "runqueue" };

/* One series set: a process's totals (tid 0) or one of its loop threads. */
struct series {
	struct process_info info;
	__u32 tid;
	__u64 iterations; /* == the +Inf bucket and _count */
	__u64 busy_ns;
	__u64 stalls;
	__u64 lost_events;
	__u64 stall_ns[NR_PARTS];
	__u64 waiting_connections;
	__u64 waiting_ready_fds;
	__u64 le_counts[NR_LE]; /* cumulative */
};

/* The response body: grows as needed, never truncates; failed after an allocation failure. */
struct buf {
	char *data;
	size_t len, cap;
	bool failed;
};

static bool buf__reserve(struct buf *buf, size_t more)
{
	char *grown;

	if (buf->failed)
		return false;
	grown = array__grow(buf->data, &buf->cap, buf->len + more + 1, 1, 16384);
	if (!grown) {
		buf->failed = true;
		return false;
	}
	buf->data = grown;
	return true;
}

static void buf__put(struct buf *buf, const char *text, size_t len)
{
	if (!buf__reserve(buf, len))
		return;
	memcpy(buf->data + buf->len, text, len);
	buf->len += len;
	buf->data[buf->len] = '\0';
}

static void buf__str(struct buf *buf, const char *text)
{
	buf__put(buf, text, strlen(text));
}

__attribute__((format(printf, 2, 3))) static void buf__printf(struct buf *buf, const char *fmt, ...)
{
	va_list args;
	int len;

	if (!buf__reserve(buf, 128))
		return;
	va_start(args, fmt);
	len = vsnprintf(buf->data + buf->len, buf->cap - buf->len, fmt, args);
	va_end(args);
	if (len < 0) {
		buf->failed = true;
		return;
	}
	if ((size_t)len >= buf->cap - buf->len) {
		if (!buf__reserve(buf, (size_t)len + 1))
			return;
		va_start(args, fmt);
		vsnprintf(buf->data + buf->len, buf->cap - buf->len, fmt, args);
		va_end(args);
	}
	buf->len += (size_t)len;
}

/*
 * A label value, quoted and escaped as both formats want (backslash, double quote, line feed).
 * comm and cgroup come from the traced processes: anything that is not UTF-8 (a name the kernel
 * cut at 15 bytes inside a multi-byte character, or plain binary) becomes U+FFFD, because
 * Prometheus rejects the whole scrape over one invalid label value.
 */
static void buf__label_value(struct buf *buf, const char *value, size_t max)
{
	const unsigned char *text = (const unsigned char *)value;
	size_t len = strnlen(value, max), i = 0, n;

	buf__put(buf, "\"", 1);
	while (i < len) {
		if (text[i] == '\\') {
			buf__put(buf, "\\\\", 2);
			i++;
		} else if (text[i] == '"') {
			buf__put(buf, "\\\"", 2);
			i++;
		} else if (text[i] == '\n') {
			buf__put(buf, "\\n", 2);
			i++;
		} else if ((n = utf8__sequence(text + i, len - i))) {
			buf__put(buf, value + i, n);
			i += n;
		} else {
			buf__put(buf, UTF8_REPLACEMENT, strlen(UTF8_REPLACEMENT));
			i++;
		}
	}
	buf__put(buf, "\"", 1);
}

/* {pid="..",[tid="..",]comm="..",cgroup="..",container_id=".."[,extra="extra_value"]} */
static void buf__labels(struct buf *buf, const struct series *s, const char *extra,
			const char *extra_value)
{
	buf__printf(buf, "{pid=\"%d\"", (int)s->info.pid);
	if (s->tid)
		buf__printf(buf, ",tid=\"%u\"", s->tid);
	buf__str(buf, ",comm=");
	buf__label_value(buf, s->info.comm, sizeof(s->info.comm));
	buf__str(buf, ",cgroup=");
	buf__label_value(buf, s->info.cgroup, sizeof(s->info.cgroup));
	buf__str(buf, ",container_id=");
	buf__label_value(buf, s->info.container_id, sizeof(s->info.container_id));
	if (extra) {
		buf__printf(buf, ",%s=", extra);
		buf__label_value(buf, extra_value, strlen(extra_value) + 1);
	}
	buf__str(buf, "} ");
}

/* Nanoseconds as exact decimal seconds: no binary floating-point noise in the output. */
static void buf__seconds(struct buf *buf, __u64 ns)
{
	char frac[16];
	int len;

	if (!(ns % NS_PER_SEC)) {
		buf__printf(buf, "%llu\n", (unsigned long long)(ns / NS_PER_SEC));
		return;
	}
	len = snprintf(frac, sizeof(frac), "%09llu", (unsigned long long)(ns % NS_PER_SEC));
	while (len > 1 && frac[len - 1] == '0')
		frac[--len] = '\0';
	buf__printf(buf, "%llu.%s\n", (unsigned long long)(ns / NS_PER_SEC), frac);
}

/*
 * HELP/TYPE(/UNIT) of a family. name is the family name; Prometheus text names a counter family
 * after its samples (name_total), OpenMetrics without the suffix.
 */
static void family(struct buf *buf, bool openmetrics, const char *name, const char *type,
		   const char *unit, const char *help)
{
	const char *suffix = !openmetrics && !strcmp(type, "counter") ? "_total" : "";

	buf__printf(buf, "# HELP %s%s %s\n", name, suffix, help);
	buf__printf(buf, "# TYPE %s%s %s\n", name, suffix, type);
	if (openmetrics && unit)
		buf__printf(buf, "# UNIT %s %s\n", name, unit);
}

void metrics_snapshot__add(struct metrics_snapshot *snap, const struct process_info *info,
			   __u32 tid, const struct process_stats *stats)
{
	__u64 per_le[NR_LE + 1] = {}, sum = 0;
	struct series *s, *grown;
	unsigned int i, le;

	if ((tid && !snap->per_thread) || snap->failed)
		return;
	if (!snap->le_ready) {
		/* Index into le_bounds of the smallest le kernel bucket i counts toward, NR_LE:
		 * only +Inf. */
		for (i = 0; i < HIST_BUCKETS; i++) {
			for (le = 0; le < NR_LE && hist__bucket_high(i) > le_bounds[le].ns; le++)
				;
			snap->le_of_bucket[i] = le;
		}
		snap->le_ready = true;
	}
	grown = array__grow(snap->series, &snap->cap, snap->nr + 1, sizeof(*grown), 64);
	if (!grown) {
		snap->failed = true;
		return;
	}
	snap->series = grown;
	s = &snap->series[snap->nr++];
	s->info = *info;
	s->tid = tid;
	s->busy_ns = stats->busy_ns;
	s->stalls = stats->stalls;
	s->lost_events = stats->lost_events;
	s->stall_ns[PART_ON_CPU] = stats->stall_on_cpu_ns;
	s->stall_ns[PART_OFF_CPU] = stats->stall_off_cpu_ns;
	s->stall_ns[PART_RUNQUEUE] = stats->stall_runqueue_ns;
	s->waiting_connections = stats->waiting_connections;
	s->waiting_ready_fds = stats->waiting_ready_fds;
	for (i = 0; i < HIST_BUCKETS; i++)
		per_le[snap->le_of_bucket[i]] += stats->busy_hist[i];
	for (i = 0; i < NR_LE; i++) {
		sum += per_le[i];
		s->le_counts[i] = sum;
	}
	sum += per_le[NR_LE];
	/* The BPF side bumps iterations and the bucket with separate atomic adds, and the map is
	 * read while it runs: keep +Inf (and _count) at least the sum of the buckets. */
	s->iterations = stats->iterations > sum ? stats->iterations : sum;
}

void metrics_snapshot__free(struct metrics_snapshot *snap)
{
	free(snap->series);
	snap->series = NULL;
	snap->nr = snap->cap = 0;
}

static int series__cmp(const void *a, const void *b)
{
	const struct series *x = a, *y = b;

	if (x->info.pid != y->info.pid)
		return x->info.pid < y->info.pid ? -1 : 1;
	return x->tid < y->tid ? -1 : x->tid > y->tid;
}

/* A counter family with one sample per series: the __u64 at offset in struct series. */
static void family__per_series(struct buf *buf, const struct metrics_snapshot *snap,
			       bool openmetrics, const char *name, const char *help, size_t offset)
{
	const struct series *s;

	family(buf, openmetrics, name, "counter", NULL, help);
	for (s = snap->series; s < snap->series + snap->nr; s++) {
		buf__printf(buf, "%s_total", name);
		buf__labels(buf, s, NULL, NULL);
		buf__printf(buf, "%llu\n",
			    (unsigned long long)*(const __u64 *)((const char *)s + offset));
	}
}

/* Every family into buf. */
static void metrics__render(struct buf *buf, const struct metrics_snapshot *snap,
			    const struct metrics_source *source, bool openmetrics)
{
	const struct cache_count *cache;
	const struct series *s;
	unsigned int i, part;
	char name[64];

	family(buf, openmetrics, "loopstall_build_info", "gauge", NULL,
	       "loopstall version, always 1.");
	buf__str(buf, "loopstall_build_info{version=");
	buf__label_value(buf, source->version ? source->version : "",
			 source->version ? strlen(source->version) + 1 : 1);
	buf__str(buf, "} 1\n");

	family(buf, openmetrics, "loopstall_tracked_processes", "gauge", NULL,
	       "Traced processes still running.");
	buf__printf(buf, "loopstall_tracked_processes %d\n", snap->tracked);

	family(buf, openmetrics, "loopstall_cache_entries", "gauge", NULL,
	       "Entries in one of loopstall's userspace caches (per process, per code object, ...).");
	for (cache = caches__first(); cache; cache = cache->next)
		buf__printf(buf, "loopstall_cache_entries{cache=\"%s\"} %ld\n", cache->name,
			    cache_count__get(cache));

	family(buf, openmetrics, "loopstall_lost_events", "counter", NULL,
	       "Records dropped because the ring buffer was full: without labels all of them, "
	       "with process labels that process's stall events.");
	if (source->lost_events)
		buf__printf(buf, "loopstall_lost_events_total %llu\n",
			    (unsigned long long)*source->lost_events);
	for (s = snap->series; s < snap->series + snap->nr; s++) {
		/* The BPF side counts drops per process only (a drop has no thread to blame). */
		if (s->tid)
			continue;
		buf__str(buf, "loopstall_lost_events_total");
		buf__labels(buf, s, NULL, NULL);
		buf__printf(buf, "%llu\n", (unsigned long long)s->lost_events);
	}

	for (i = 0; i < (unsigned int)source->nr_counters; i++) {
		snprintf(name, sizeof(name), "loopstall_%s", source->counters[i].name);
		family(buf, openmetrics, name, "counter", NULL, source->counters[i].text);
		buf__printf(buf, "%s_total %llu\n", name,
			    (unsigned long long)*source->counters[i].value);
	}

	family__per_series(buf, snap, openmetrics, "loopstall_stalls",
			   "Loop iterations busy for at least the stall threshold.",
			   offsetof(struct series, stalls));

	family(buf, openmetrics, "loopstall_stall_seconds", "counter", "seconds",
	       "Busy time of the stalled iterations: on CPU, off CPU (blocked) or runnable "
	       "waiting for a CPU (runqueue).");
	for (s = snap->series; s < snap->series + snap->nr; s++) {
		for (part = 0; part < NR_PARTS; part++) {
			buf__str(buf, "loopstall_stall_seconds_total");
			buf__labels(buf, s, "cpu", part_names[part]);
			buf__seconds(buf, s->stall_ns[part]);
		}
	}

	family__per_series(buf, snap, openmetrics, "loopstall_waiting_connections",
			   "Connections waiting in the accept queues of the loop's listening sockets "
			   "when its stalls ended, summed over the stalls.",
			   offsetof(struct series, waiting_connections));
	family__per_series(buf, snap, openmetrics, "loopstall_waiting_ready_fds",
			   "File descriptors of the loop ready and waiting when its stalls ended, "
			   "summed over the stalls.",
			   offsetof(struct series, waiting_ready_fds));

	family(buf, openmetrics, "loopstall_iteration_busy_seconds", "histogram", "seconds",
	       "Busy time of each event-loop iteration, from leaving the loop's poll call to "
	       "entering it again.");
	for (s = snap->series; s < snap->series + snap->nr; s++) {
		for (i = 0; i < NR_LE; i++) {
			buf__str(buf, "loopstall_iteration_busy_seconds_bucket");
			buf__labels(buf, s, "le", le_bounds[i].text);
			buf__printf(buf, "%llu\n", (unsigned long long)s->le_counts[i]);
		}
		buf__str(buf, "loopstall_iteration_busy_seconds_bucket");
		buf__labels(buf, s, "le", "+Inf");
		buf__printf(buf, "%llu\n", (unsigned long long)s->iterations);
		buf__str(buf, "loopstall_iteration_busy_seconds_sum");
		buf__labels(buf, s, NULL, NULL);
		buf__seconds(buf, s->busy_ns);
		buf__str(buf, "loopstall_iteration_busy_seconds_count");
		buf__labels(buf, s, NULL, NULL);
		buf__printf(buf, "%llu\n", (unsigned long long)s->iterations);
	}

	if (openmetrics)
		buf__str(buf, "# EOF\n");
}

char *metrics__text(struct metrics_snapshot *snap, const struct metrics_source *source,
		    bool openmetrics, size_t *len)
{
	struct buf buf = {};

	if (snap->failed)
		return NULL;
	if (snap->nr)
		qsort(snap->series, snap->nr, sizeof(*snap->series), series__cmp);
	metrics__render(&buf, snap, source, openmetrics);
	if (buf.failed) {
		free(buf.data);
		return NULL;
	}
	*len = buf.len;
	return buf.data;
}
