// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Checks user/metrics.c, the Prometheus renderer, on its own: a snapshot of made-up processes in,
 * the exposition text out, compared line by line with what Prometheus text 0.0.4 and
 * OpenMetrics 1.0 require (names, _total suffixes, label escaping and UTF-8, exact decimal
 * seconds, cumulative buckets, sort order, per-thread series). No socket and no BPF: the HTTP
 * side and the live values are tests/test_export.py's.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "hist.h"
#include "metrics.h"

/* The kernel histogram bucket that holds a busy time of ns. */
static unsigned int bucket_of(__u64 ns)
{
	unsigned int i;

	for (i = 0; i < HIST_BUCKETS - 1; i++)
		if (ns >= hist__bucket_low(i) && ns < hist__bucket_high(i))
			return i;
	return HIST_BUCKETS - 1;
}

static struct process_info process(pid_t pid, const char *comm, const char *cgroup)
{
	struct process_info info = { .pid = pid };

	snprintf(info.comm, sizeof(info.comm), "%s", comm);
	snprintf(info.cgroup, sizeof(info.cgroup), "%s", cgroup);
	return info;
}

static bool has_line(const char *text, const char *line)
{
	size_t len = strlen(line);
	const char *at;

	for (at = strstr(text, line); at; at = strstr(at + 1, line))
		if ((at == text || at[-1] == '\n') && at[len] == '\n')
			return true;
	return false;
}

#define CHECK_LINE(text, line) CHECK(has_line(text, line), "no line '%s' in:\n%s", line, text)
#define CHECK_NO_LINE(text, line) CHECK(!has_line(text, line), "unexpected line '%s'", line)

static const char *position(const char *text, const char *line)
{
	const char *at = strstr(text, line);

	return at ? at : text + strlen(text);
}

static char *render(bool per_thread, bool openmetrics, const volatile __u64 *lost,
		    const struct counter *counters, int nr_counters)
{
	struct process_info web = process(4242, "web", "/system.slice/web.service");
	/* A comm the target chose: quote, backslash, newline and a byte that is not UTF-8. */
	struct process_info odd = process(17, "a\"b\\c\n\xff", "/");
	struct process_stats stats = {}, thread = {}, few = {};
	struct metrics_snapshot snap = { .per_thread = per_thread, .tracked = 2 };
	char *text;
	size_t len = 0;

	/* 8 iterations of 3 ms, 2 of 300 ms; the BPF side counted 10, a read in between 9. */
	stats.busy_hist[bucket_of(3000000)] = 8;
	stats.busy_hist[bucket_of(300000000)] = 2;
	stats.iterations = 10;
	stats.busy_ns = 624000000;
	stats.stalls = 2;
	stats.lost_events = 1;
	stats.stall_on_cpu_ns = 1500000000;
	stats.stall_off_cpu_ns = 2000000000;
	stats.stall_runqueue_ns = 1;
	stats.waiting_connections = 8;
	stats.waiting_ready_fds = 12;
	thread = stats;
	thread.stalls = 1;
	few.busy_hist[bucket_of(3000000)] = 3;
	few.iterations = 2; /* behind its buckets: +Inf must not be below them */
	metrics_snapshot__add(&snap, &web, 0, &stats);
	metrics_snapshot__add(&snap, &web, 4243, &thread);
	metrics_snapshot__add(&snap, &odd, 0, &few);
	text = metrics__text(&snap, &(struct metrics_source){
		.lost_events = lost, .counters = counters, .nr_counters = nr_counters,
		.version = "1.2.3",
	}, openmetrics, &len);
	CHECK(text && strlen(text) == len, "length %zu of a text of %zu bytes", len,
	      text ? strlen(text) : 0);
	metrics_snapshot__free(&snap);
	return text;
}

/* A sample of the "web" process's series: `metric{its labels[,extra]} value`. */
static void check_web(const char *text, const char *metric, const char *extra, const char *value)
{
	char line[512];

	snprintf(line, sizeof(line), "%s{pid=\"4242\",comm=\"web\","
		 "cgroup=\"/system.slice/web.service\",container_id=\"\"%s%s} %s", metric,
		 extra ? "," : "", extra ? extra : "", value);
	CHECK_LINE(text, line);
}

static void check_text(void)
{
	static const volatile __u64 lost = 7, stack_errors = 3;
	const struct counter counters[] = {
		{ "stack_errors", "stacks not captured", &stack_errors },
	};
	char *text = render(false, false, &lost, counters, 1);

	if (!text)
		return;
	CHECK_LINE(text, "# HELP loopstall_build_info loopstall version, always 1.");
	CHECK_LINE(text, "# TYPE loopstall_build_info gauge");
	CHECK_LINE(text, "loopstall_build_info{version=\"1.2.3\"} 1");
	CHECK_LINE(text, "loopstall_tracked_processes 2");
	/* Prometheus text names counter families after their samples. */
	CHECK_LINE(text, "# TYPE loopstall_lost_events_total counter");
	CHECK_LINE(text, "loopstall_lost_events_total 7");
	CHECK_LINE(text, "# HELP loopstall_stack_errors_total stacks not captured");
	CHECK_LINE(text, "loopstall_stack_errors_total 3");
	/* Escaped as both formats want, and U+FFFD for the byte that is not UTF-8. */
	CHECK_LINE(text, "loopstall_stalls_total{pid=\"17\",comm=\"a\\\"b\\\\c\\n\xEF\xBF\xBD\","
			 "cgroup=\"/\",container_id=\"\"} 0");
	check_web(text, "loopstall_stalls_total", NULL, "2");
	check_web(text, "loopstall_waiting_connections_total", NULL, "8");
	check_web(text, "loopstall_waiting_ready_fds_total", NULL, "12");
	/* Exact decimal seconds. */
	check_web(text, "loopstall_stall_seconds_total", "cpu=\"on\"", "1.5");
	check_web(text, "loopstall_stall_seconds_total", "cpu=\"off\"", "2");
	check_web(text, "loopstall_stall_seconds_total", "cpu=\"runqueue\"", "0.000000001");
	/* Cumulative buckets: a 3 ms bucket lies above 2.5 ms, a 300 ms one above 250 ms. */
	check_web(text, "loopstall_iteration_busy_seconds_bucket", "le=\"0.0025\"", "0");
	check_web(text, "loopstall_iteration_busy_seconds_bucket", "le=\"0.005\"", "8");
	check_web(text, "loopstall_iteration_busy_seconds_bucket", "le=\"0.25\"", "8");
	check_web(text, "loopstall_iteration_busy_seconds_bucket", "le=\"0.5\"", "10");
	check_web(text, "loopstall_iteration_busy_seconds_bucket", "le=\"+Inf\"", "10");
	check_web(text, "loopstall_iteration_busy_seconds_sum", NULL, "0.624");
	check_web(text, "loopstall_iteration_busy_seconds_count", NULL, "10");
	/* +Inf and _count never below the buckets' sum. */
	CHECK_LINE(text, "loopstall_iteration_busy_seconds_count{pid=\"17\",comm=\"a\\\"b\\\\c\\n"
			 "\xEF\xBF\xBD\",cgroup=\"/\",container_id=\"\"} 3");
	/* Sorted by pid; no thread series without per_thread; no OpenMetrics lines. */
	CHECK(position(text, "loopstall_stalls_total{pid=\"17\"") <
	      position(text, "loopstall_stalls_total{pid=\"4242\""), "series not sorted by pid");
	CHECK(!strstr(text, "tid=\""), "a thread series without per_thread");
	CHECK(!strstr(text, "# EOF") && !strstr(text, "# UNIT"), "OpenMetrics lines in text 0.0.4");
	free(text);
}

static void check_openmetrics(void)
{
	char *text = render(true, true, NULL, NULL, 0);

	if (!text)
		return;
	/* OpenMetrics names counter families without the suffix, their samples with it. */
	CHECK_LINE(text, "# TYPE loopstall_stalls counter");
	CHECK_LINE(text, "# TYPE loopstall_waiting_connections counter");
	CHECK_LINE(text, "# TYPE loopstall_stall_seconds counter");
	CHECK_LINE(text, "# UNIT loopstall_stall_seconds seconds");
	CHECK_LINE(text, "# UNIT loopstall_iteration_busy_seconds seconds");
	CHECK_LINE(text, "# TYPE loopstall_iteration_busy_seconds histogram");
	CHECK_NO_LINE(text, "loopstall_lost_events_total 7");
	/* The thread's series follows its process's and carries tid; lost events are the
	 * process's only. */
	CHECK_LINE(text, "loopstall_stalls_total{pid=\"4242\",tid=\"4243\",comm=\"web\","
			 "cgroup=\"/system.slice/web.service\",container_id=\"\"} 1");
	CHECK(position(text, "loopstall_stalls_total{pid=\"4242\",comm") <
	      position(text, "loopstall_stalls_total{pid=\"4242\",tid="),
	      "the thread series before its process's");
	CHECK(!strstr(text, "loopstall_lost_events_total{pid=\"4242\",tid="),
	      "lost events per thread");
	CHECK(strlen(text) >= 6 && !strcmp(text + strlen(text) - 6, "# EOF\n"),
	      "OpenMetrics text does not end with # EOF");
	free(text);
}

int main(void)
{
	check_text();
	check_openmetrics();
	return check__exit("metrics_test");
}
