// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Prometheus exporter: libmicrohttpd serves GET /metrics from its own thread; every scrape takes
 * one snapshot of the fleet (fleet__visit, under the fleet lock) and renders it as Prometheus text
 * 0.0.4 or OpenMetrics 1.0.
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
 *   loopstall_<counter>_total          counter     host-wide BPF drops and skips, no labels:
 *       stack_errors, thread_table_full, process_table_full, py_walks_skipped,
 *       py_thread_mismatch, js_walks_skipped (user/main.c counters__init says what each
 *       counts)
 *   loopstall_build_info{version}      gauge       always 1
 *   loopstall_tracked_processes        gauge       traced processes still running
 */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <microhttpd.h>
#include <zlib.h>
#include "export.h"
#include "fleet.h"
#include "hist.h"

#define METRICS_PATH "/metrics"
#define CONTENT_TYPE_TEXT "text/plain; version=0.0.4; charset=utf-8"
#define CONTENT_TYPE_OPENMETRICS "application/openmetrics-text; version=1.0.0; charset=utf-8"
/* Scrapers are few (Prometheus, an agent, a person with curl); anything more is a mistake. */
#define MAX_CONNECTIONS 16
#define CONNECTION_TIMEOUT_S 30
#define LISTEN_BACKLOG 16
#define NS_PER_SEC 1000000000ULL

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
#define NR_LE (sizeof(le_bounds) / sizeof(le_bounds[0]))

enum stall_part { PART_ON_CPU, PART_OFF_CPU, PART_RUNQUEUE, NR_PARTS };
static const char *const part_names[NR_PARTS] = { "on", "off", "runqueue" };

struct exporter {
	struct MHD_Daemon *daemon;
	struct export_source source;
	/* Index into le_bounds of the smallest le kernel bucket i counts toward, NR_LE: only +Inf. */
	unsigned char le_of_bucket[HIST_BUCKETS];
};

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

struct snapshot {
	const struct exporter *exporter;
	struct series *series;
	size_t nr, cap;
	bool failed;
};

/* The response body: grows as needed, never truncates; failed after an allocation failure. */
struct buf {
	char *data;
	size_t len, cap;
	bool failed;
};

/* Markers in MHD's per-request pointer. */
static char request_started, request_scrape;

static bool buf__reserve(struct buf *buf, size_t more)
{
	size_t cap;
	char *grown;

	if (buf->failed)
		return false;
	if (buf->len + more < buf->cap)
		return true;
	cap = buf->cap ? buf->cap : 16384;
	while (cap <= buf->len + more)
		cap *= 2;
	grown = realloc(buf->data, cap);
	if (!grown) {
		buf->failed = true;
		return false;
	}
	buf->data = grown;
	buf->cap = cap;
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

/* Length of the valid UTF-8 sequence at text (at most len bytes), 0 if it is not one. */
static size_t utf8__sequence(const unsigned char *text, size_t len)
{
	unsigned char c = text[0], lo = 0x80, hi = 0xBF;
	size_t need, i;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		need = 1;
	else if (c >= 0xE0 && c <= 0xEF)
		need = 2;
	else if (c >= 0xF0 && c <= 0xF4)
		need = 3;
	else
		return 0;
	/* Overlong forms, UTF-16 surrogates and code points above U+10FFFF are invalid. */
	if (c == 0xE0)
		lo = 0xA0;
	else if (c == 0xED)
		hi = 0x9F;
	else if (c == 0xF0)
		lo = 0x90;
	else if (c == 0xF4)
		hi = 0x8F;
	if (len < need + 1 || text[1] < lo || text[1] > hi)
		return 0;
	for (i = 2; i <= need; i++)
		if ((text[i] & 0xC0) != 0x80)
			return 0;
	return need + 1;
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
			buf__put(buf, "\xEF\xBF\xBD", 3);
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

static void snapshot__visit(void *ctx, const struct process_info *info, __u32 tid,
			    const struct process_stats *stats)
{
	struct snapshot *snap = ctx;
	const struct exporter *exporter = snap->exporter;
	__u64 per_le[NR_LE + 1] = {}, sum = 0;
	struct series *s, *grown;
	unsigned int i;
	size_t cap;

	if ((tid && !exporter->source.per_thread) || snap->failed)
		return;
	if (snap->nr == snap->cap) {
		cap = snap->cap ? 2 * snap->cap : 64;
		grown = realloc(snap->series, cap * sizeof(*grown));
		if (!grown) {
			snap->failed = true;
			return;
		}
		snap->series = grown;
		snap->cap = cap;
	}
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
		per_le[exporter->le_of_bucket[i]] += stats->busy_hist[i];
	for (i = 0; i < NR_LE; i++) {
		sum += per_le[i];
		s->le_counts[i] = sum;
	}
	sum += per_le[NR_LE];
	/* The BPF side bumps iterations and the bucket with separate atomic adds, and the map is
	 * read while it runs: keep +Inf (and _count) at least the sum of the buckets. */
	s->iterations = stats->iterations > sum ? stats->iterations : sum;
}

static int series__cmp(const void *a, const void *b)
{
	const struct series *x = a, *y = b;

	if (x->info.pid != y->info.pid)
		return x->info.pid < y->info.pid ? -1 : 1;
	return x->tid < y->tid ? -1 : x->tid > y->tid;
}

static int fleet__running(struct fleet *fleet)
{
	int i, nr = 0;

	pthread_mutex_lock(&fleet->lock);
	for (i = 0; i < fleet->nr; i++)
		nr += !fleet->procs[i].exited;
	pthread_mutex_unlock(&fleet->lock);
	return nr;
}

/* Render every family into buf; false when out of memory. */
static bool metrics__render(const struct exporter *exporter, bool openmetrics, struct buf *buf)
{
	const struct export_source *source = &exporter->source;
	struct snapshot snap = { .exporter = exporter };
	const struct series *s;
	unsigned int i, part;
	char name[64];
	int tracked;

	fleet__visit(source->fleet, snapshot__visit, &snap);
	tracked = fleet__running(source->fleet);
	if (snap.failed) {
		free(snap.series);
		return false;
	}
	if (snap.nr)
		qsort(snap.series, snap.nr, sizeof(*snap.series), series__cmp);

	family(buf, openmetrics, "loopstall_build_info", "gauge", NULL,
	       "loopstall version, always 1.");
	buf__str(buf, "loopstall_build_info{version=");
	buf__label_value(buf, source->version ? source->version : "",
			 source->version ? strlen(source->version) + 1 : 1);
	buf__str(buf, "} 1\n");

	family(buf, openmetrics, "loopstall_tracked_processes", "gauge", NULL,
	       "Traced processes still running.");
	buf__printf(buf, "loopstall_tracked_processes %d\n", tracked);

	family(buf, openmetrics, "loopstall_lost_events", "counter", NULL,
	       "Records dropped because the ring buffer was full: without labels all of them, "
	       "with process labels that process's stall events.");
	if (source->lost_events)
		buf__printf(buf, "loopstall_lost_events_total %llu\n",
			    (unsigned long long)*source->lost_events);
	for (s = snap.series; s < snap.series + snap.nr; s++) {
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

	family(buf, openmetrics, "loopstall_stalls", "counter", NULL,
	       "Loop iterations busy for at least the stall threshold.");
	for (s = snap.series; s < snap.series + snap.nr; s++) {
		buf__str(buf, "loopstall_stalls_total");
		buf__labels(buf, s, NULL, NULL);
		buf__printf(buf, "%llu\n", (unsigned long long)s->stalls);
	}

	family(buf, openmetrics, "loopstall_stall_seconds", "counter", "seconds",
	       "Busy time of the stalled iterations: on CPU, off CPU (blocked) or runnable "
	       "waiting for a CPU (runqueue).");
	for (s = snap.series; s < snap.series + snap.nr; s++) {
		for (part = 0; part < NR_PARTS; part++) {
			buf__str(buf, "loopstall_stall_seconds_total");
			buf__labels(buf, s, "cpu", part_names[part]);
			buf__seconds(buf, s->stall_ns[part]);
		}
	}

	family(buf, openmetrics, "loopstall_waiting_connections", "counter", NULL,
	       "Connections waiting in the accept queues of the loop's listening sockets when its "
	       "stalls ended, summed over the stalls.");
	for (s = snap.series; s < snap.series + snap.nr; s++) {
		buf__str(buf, "loopstall_waiting_connections_total");
		buf__labels(buf, s, NULL, NULL);
		buf__printf(buf, "%llu\n", (unsigned long long)s->waiting_connections);
	}

	family(buf, openmetrics, "loopstall_waiting_ready_fds", "counter", NULL,
	       "File descriptors of the loop ready and waiting when its stalls ended, summed over "
	       "the stalls.");
	for (s = snap.series; s < snap.series + snap.nr; s++) {
		buf__str(buf, "loopstall_waiting_ready_fds_total");
		buf__labels(buf, s, NULL, NULL);
		buf__printf(buf, "%llu\n", (unsigned long long)s->waiting_ready_fds);
	}

	family(buf, openmetrics, "loopstall_iteration_busy_seconds", "histogram", "seconds",
	       "Busy time of each event-loop iteration, from leaving the loop's poll call to "
	       "entering it again.");
	for (s = snap.series; s < snap.series + snap.nr; s++) {
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
	free(snap.series);
	return !buf->failed;
}

/*
 * The best q-value the header (an Accept or Accept-Encoding list, RFC 9110 12.5) gives any of
 * names (matched case-insensitively, parameters other than q ignored); -1 if none is listed.
 */
static double header__q(const char *header, const char *const names[], size_t nr_names)
{
	char element[256], *param, *save, *name;
	const char *next;
	double best = -1, q;
	size_t len, i;

	for (; header && *header; header = next ? next + 1 : NULL) {
		next = strchr(header, ',');
		len = next ? (size_t)(next - header) : strlen(header);
		if (len >= sizeof(element))
			continue; /* no media range we serve is that long */
		memcpy(element, header, len);
		element[len] = '\0';
		name = strtok_r(element, ";", &save);
		if (!name)
			continue;
		name += strspn(name, " \t");
		name[strcspn(name, " \t")] = '\0';
		for (i = 0; i < nr_names && strcasecmp(name, names[i]); i++)
			;
		if (i == nr_names)
			continue;
		q = 1;
		while ((param = strtok_r(NULL, ";", &save))) {
			param += strspn(param, " \t");
			if ((param[0] == 'q' || param[0] == 'Q') && param[1] == '=')
				q = strtod(param + 2, NULL);
		}
		if (q > best)
			best = q;
	}
	return best;
}

/* OpenMetrics only when asked for, and preferred at least as much as the text format. */
static bool wants_openmetrics(struct MHD_Connection *connection)
{
	static const char *const openmetrics[] = { "application/openmetrics-text" };
	static const char *const text[] = { "text/plain", "text/*", "*/*" };
	const char *accept = MHD_lookup_connection_value(connection, MHD_HEADER_KIND,
							 MHD_HTTP_HEADER_ACCEPT);
	double om_q = header__q(accept, openmetrics, 1);

	return om_q > 0 && om_q >= header__q(accept, text, 3);
}

static bool wants_gzip(struct MHD_Connection *connection)
{
	static const char *const gzip[] = { "gzip", "x-gzip" };
	const char *accept = MHD_lookup_connection_value(connection, MHD_HEADER_KIND,
							 MHD_HTTP_HEADER_ACCEPT_ENCODING);

	return header__q(accept, gzip, 2) > 0;
}

/* buf gzip-compressed into a new malloc'ed buffer, NULL on failure (then send it plain). */
static char *gzip__compress(const struct buf *buf, size_t *out_len)
{
	z_stream zs = {};
	uLong bound;
	char *out;

	/* A few MB for a thousand processes shrink ~20x; the fastest level gets nearly all of it. */
	if (buf->len > UINT32_MAX ||
	    deflateInit2(&zs, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return NULL;
	bound = deflateBound(&zs, buf->len);
	out = malloc(bound);
	if (!out) {
		deflateEnd(&zs);
		return NULL;
	}
	zs.next_in = (Bytef *)buf->data;
	zs.avail_in = (uInt)buf->len;
	zs.next_out = (Bytef *)out;
	zs.avail_out = (uInt)bound;
	if (deflate(&zs, Z_FINISH) != Z_STREAM_END) {
		deflateEnd(&zs);
		free(out);
		return NULL;
	}
	*out_len = zs.total_out;
	deflateEnd(&zs);
	return out;
}

static enum MHD_Result respond_text(struct MHD_Connection *connection, unsigned int status,
				    const char *body, const char *allow)
{
	struct MHD_Response *response;
	enum MHD_Result ret;

	response = MHD_create_response_from_buffer(strlen(body), (void *)body,
						   MHD_RESPMEM_PERSISTENT);
	if (!response)
		return MHD_NO;
	MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
				"text/plain; charset=utf-8");
	if (allow)
		MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, allow);
	ret = MHD_queue_response(connection, status, response);
	MHD_destroy_response(response);
	return ret;
}

static enum MHD_Result serve_metrics(const struct exporter *exporter,
				     struct MHD_Connection *connection)
{
	bool openmetrics = wants_openmetrics(connection), gzipped = false;
	struct MHD_Response *response;
	struct buf buf = {};
	enum MHD_Result ret;
	size_t len;
	char *body;

	if (!metrics__render(exporter, openmetrics, &buf)) {
		free(buf.data);
		return respond_text(connection, MHD_HTTP_INTERNAL_SERVER_ERROR,
				    "loopstall: out of memory rendering metrics\n", NULL);
	}
	body = buf.data;
	len = buf.len;
	if (wants_gzip(connection)) {
		body = gzip__compress(&buf, &len);
		gzipped = body != NULL;
		if (gzipped)
			free(buf.data);
		else
			body = buf.data, len = buf.len;
	}
	/* 0.9.75 has no ..._with_free_deallocator; MUST_FREE hands the malloc'ed body to MHD,
	 * which free()s it once sent. */
	response = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!response) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
				openmetrics ? CONTENT_TYPE_OPENMETRICS : CONTENT_TYPE_TEXT);
	MHD_add_response_header(response, MHD_HTTP_HEADER_VARY, "Accept, Accept-Encoding");
	if (gzipped)
		MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip");
	ret = MHD_queue_response(connection, MHD_HTTP_OK, response);
	MHD_destroy_response(response);
	return ret;
}

static enum MHD_Result export__handle(void *cls, struct MHD_Connection *connection, const char *url,
				      const char *method, const char *version,
				      const char *upload_data, size_t *upload_data_size,
				      void **request)
{
	const struct exporter *exporter = cls;
	bool get = !strcmp(method, MHD_HTTP_METHOD_GET);

	/* First call: headers only. Refusals go out now, without reading a request body. */
	if (!*request) {
		*request = &request_started;
		if (!get && strcmp(method, MHD_HTTP_METHOD_HEAD))
			return respond_text(connection, MHD_HTTP_METHOD_NOT_ALLOWED,
					    "loopstall: only GET " METRICS_PATH "\n", "GET, HEAD");
		if (strcmp(url, METRICS_PATH))
			return respond_text(connection, MHD_HTTP_NOT_FOUND,
					    "loopstall: metrics are at " METRICS_PATH "\n", NULL);
		return MHD_YES;
	}
	if (*upload_data_size) { /* a GET with a body: ignore it */
		*upload_data_size = 0;
		return MHD_YES;
	}
	/* HEAD shows no values: only a GET is a scrape that lets exited processes go. */
	if (get)
		*request = &request_scrape;
	return serve_metrics(exporter, connection);
}

static void export__completed(void *cls, struct MHD_Connection *connection, void **request,
			      enum MHD_RequestTerminationCode code)
{
	const struct exporter *exporter = cls;

	if (*request == &request_scrape && code == MHD_REQUEST_TERMINATED_COMPLETED_OK &&
	    exporter->source.after_scrape)
		exporter->source.after_scrape(exporter->source.after_scrape_ctx);
	*request = NULL;
}

/*
 * "[ADDR:]PORT" to a listening socket. ADDR: IPv4, [IPv6] or a host name; none means 127.0.0.1,
 * so metrics about every process on the host never reach the network unless asked for.
 */
static int listen__open(const char *listen_arg, char *why, size_t why_size)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	const char *colon, *port, *close_bracket;
	struct addrinfo *addrs = NULL;
	char host[256];
	int fd = -1, one = 1, err;
	unsigned long number;
	char *end;

	if (listen_arg[0] == '[') {
		close_bracket = strchr(listen_arg, ']');
		if (!close_bracket || close_bracket[1] != ':') {
			snprintf(why, why_size, "expected [IPV6]:PORT, e.g. [::1]:9464");
			return -EINVAL;
		}
		snprintf(host, sizeof(host), "%.*s", (int)(close_bracket - listen_arg - 1),
			 listen_arg + 1);
		port = close_bracket + 2;
		hints.ai_family = AF_INET6;
		hints.ai_flags |= AI_NUMERICHOST;
	} else if ((colon = strrchr(listen_arg, ':'))) {
		if (strchr(listen_arg, ':') != colon) {
			snprintf(why, why_size, "an IPv6 address needs brackets: [ADDR]:PORT");
			return -EINVAL;
		}
		if (colon == listen_arg) {
			snprintf(why, why_size, "no address before ':': give PORT for 127.0.0.1, "
						"or 0.0.0.0:PORT for every interface");
			return -EINVAL;
		}
		if ((size_t)(colon - listen_arg) >= sizeof(host)) {
			snprintf(why, why_size, "address too long");
			return -EINVAL;
		}
		snprintf(host, sizeof(host), "%.*s", (int)(colon - listen_arg), listen_arg);
		port = colon + 1;
	} else {
		snprintf(host, sizeof(host), "127.0.0.1");
		port = listen_arg;
	}
	errno = 0;
	number = strtoul(port, &end, 10);
	if (!*port || *end || port[0] < '0' || port[0] > '9' || errno || number < 1 ||
	    number > 65535) {
		snprintf(why, why_size, "bad port '%s': expected 1-65535", port);
		return -EINVAL;
	}
	err = getaddrinfo(host, port, &hints, &addrs);
	if (err) {
		snprintf(why, why_size, "bad address '%s': %s", host,
			 err == EAI_SYSTEM ? strerror(errno) : gai_strerror(err));
		return -EINVAL;
	}
	fd = socket(addrs->ai_family, addrs->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
		    addrs->ai_protocol);
	if (fd < 0) {
		err = -errno;
		snprintf(why, why_size, "socket: %s", strerror(errno));
		goto cleanup;
	}
	/* A restarted loopstall must not wait out TIME_WAIT connections of the last one. */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, addrs->ai_addr, addrs->ai_addrlen) || listen(fd, LISTEN_BACKLOG)) {
		err = -errno;
		if (errno == EADDRINUSE)
			snprintf(why, why_size, "port %s is in use: pick another one", port);
		else if (errno == EADDRNOTAVAIL)
			snprintf(why, why_size, "%s is not an address of this host", host);
		else if (errno == EACCES)
			snprintf(why, why_size, "port %s needs CAP_NET_BIND_SERVICE: use one above "
						"1023, e.g. 9464", port);
		else
			snprintf(why, why_size, "cannot listen: %s", strerror(errno));
		close(fd);
		fd = -1;
		goto cleanup;
	}
	err = 0;
cleanup:
	freeaddrinfo(addrs);
	return fd >= 0 ? fd : err;
}

struct exporter *export__start(const char *listen_arg, const struct export_source *source)
{
	struct exporter *exporter;
	sigset_t all, old;
	char why[512];
	unsigned int i, le;
	int fd;

	exporter = calloc(1, sizeof(*exporter));
	if (!exporter) {
		fprintf(stderr, "loopstall: --prometheus %s: out of memory\n", listen_arg);
		return NULL;
	}
	exporter->source = *source;
	for (i = 0; i < HIST_BUCKETS; i++) {
		for (le = 0; le < NR_LE && hist__bucket_high(i) > le_bounds[le].ns; le++)
			;
		exporter->le_of_bucket[i] = le;
	}
	fd = listen__open(listen_arg, why, sizeof(why));
	if (fd < 0) {
		fprintf(stderr, "loopstall: --prometheus %s: %s\n", listen_arg, why);
		free(exporter);
		return NULL;
	}
	/* MHD's thread inherits the signal mask: keep SIGINT/SIGTERM for the main thread, whose
	 * blocking poll they must interrupt. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	exporter->daemon = MHD_start_daemon(
		MHD_USE_AUTO_INTERNAL_THREAD, 0, NULL, NULL, export__handle, exporter,
		MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned int)MAX_CONNECTIONS,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)CONNECTION_TIMEOUT_S,
		MHD_OPTION_NOTIFY_COMPLETED, export__completed, exporter,
		MHD_OPTION_END);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!exporter->daemon) {
		fprintf(stderr, "loopstall: --prometheus %s: cannot start the HTTP server "
				"(libmicrohttpd)\n", listen_arg);
		/* fd not closed: whether MHD already closed it on this path differs between its
		 * versions, and a double close could hit another thread's new fd. */
		free(exporter);
		return NULL;
	}
	return exporter;
}

void export__stop(struct exporter *exporter)
{
	if (!exporter)
		return;
	/* Joins MHD's thread (a scrape in progress finishes first) and closes the socket. */
	MHD_stop_daemon(exporter->daemon);
	free(exporter);
}
