// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Prometheus exporter, the HTTP side: libmicrohttpd serves GET /metrics from its own thread;
 * every scrape takes one snapshot of the fleet (under the fleet lock) that user/metrics.c renders
 * (the series are listed there), negotiates the format and the gzip encoding, and lets exited
 * processes go once a GET has shown their final values.
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
#include "metrics.h"

#define METRICS_PATH "/metrics"
#define CONTENT_TYPE_TEXT "text/plain; version=0.0.4; charset=utf-8"
#define CONTENT_TYPE_OPENMETRICS "application/openmetrics-text; version=1.0.0; charset=utf-8"
/* Scrapers are few (Prometheus, an agent, a person with curl); anything more is a mistake. */
#define MAX_CONNECTIONS 16
#define CONNECTION_TIMEOUT_S 30
#define LISTEN_BACKLOG 16

struct exporter {
	struct MHD_Daemon *daemon;
	struct export_source source;
	char *listen_arg;
	int listen_fd; /* until MHD owns it */
};

/* Markers in MHD's per-request pointer. */
static char request_started, request_scrape;

static int fleet__running(struct fleet *fleet)
{
	int i, nr = 0;

	pthread_mutex_lock(&fleet->lock);
	for (i = 0; i < fleet->nr; i++)
		nr += !fleet->procs[i].exited;
	pthread_mutex_unlock(&fleet->lock);
	return nr;
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
static char *gzip__compress(const char *data, size_t len, size_t *out_len)
{
	z_stream zs = {};
	uLong bound;
	char *out;

	/* A few MB for a thousand processes shrink ~20x; the fastest level gets nearly all of it. */
	if (len > UINT32_MAX ||
	    deflateInit2(&zs, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return NULL;
	bound = deflateBound(&zs, len);
	out = malloc(bound);
	if (!out) {
		deflateEnd(&zs);
		return NULL;
	}
	zs.next_in = (Bytef *)data;
	zs.avail_in = (uInt)len;
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

static void snapshot__visit(void *snap, const struct process_info *info, __u32 tid,
			    const struct process_stats *stats)
{
	metrics_snapshot__add(snap, info, tid, stats);
}

/* The metrics as of now; a scrape (a GET) also lets the exited processes it shows go. */
static char *metrics__snapshot(const struct exporter *exporter, bool scrape, bool openmetrics,
			       size_t *len)
{
	const struct export_source *source = &exporter->source;
	struct metrics_snapshot snap = { .per_thread = source->per_thread };
	char *text;

	if (scrape)
		fleet__scrape(source->fleet, snapshot__visit, &snap);
	else
		fleet__visit(source->fleet, snapshot__visit, &snap);
	snap.tracked = fleet__running(source->fleet);
	text = metrics__text(&snap, &(struct metrics_source){
		.lost_events = source->lost_events,
		.counters = source->counters,
		.nr_counters = source->nr_counters,
		.version = source->version,
	}, openmetrics, len);
	metrics_snapshot__free(&snap);
	return text;
}

static enum MHD_Result serve_metrics(const struct exporter *exporter,
				     struct MHD_Connection *connection, bool scrape)
{
	bool openmetrics = wants_openmetrics(connection), gzipped = false;
	struct MHD_Response *response;
	enum MHD_Result ret;
	size_t len, text_len;
	char *body, *text;

	text = metrics__snapshot(exporter, scrape, openmetrics, &text_len);
	if (!text)
		return respond_text(connection, MHD_HTTP_INTERNAL_SERVER_ERROR,
				    "loopstall: out of memory rendering metrics\n", NULL);
	body = text;
	len = text_len;
	if (wants_gzip(connection)) {
		body = gzip__compress(text, text_len, &len);
		gzipped = body != NULL;
		if (gzipped)
			free(text);
		else
			body = text, len = text_len;
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
	return serve_metrics(exporter, connection, get);
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

struct exporter *export__open(const char *listen_arg, const struct export_source *source)
{
	struct exporter *exporter;
	char why[512];

	exporter = calloc(1, sizeof(*exporter));
	if (exporter)
		exporter->listen_arg = strdup(listen_arg);
	if (!exporter || !exporter->listen_arg) {
		fprintf(stderr, "loopstall: --prometheus %s: out of memory\n", listen_arg);
		free(exporter);
		return NULL;
	}
	exporter->source = *source;
	exporter->listen_fd = listen__open(listen_arg, why, sizeof(why));
	if (exporter->listen_fd < 0) {
		fprintf(stderr, "loopstall: --prometheus %s: %s\n", listen_arg, why);
		free(exporter->listen_arg);
		free(exporter);
		return NULL;
	}
	return exporter;
}

int export__start(struct exporter *exporter)
{
	sigset_t all, old;

	/* MHD's thread inherits the signal mask: keep SIGINT/SIGTERM for the main thread, whose
	 * blocking poll they must interrupt. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	exporter->daemon = MHD_start_daemon(
		MHD_USE_AUTO_INTERNAL_THREAD, 0, NULL, NULL, export__handle, exporter,
		MHD_OPTION_LISTEN_SOCKET, (MHD_socket)exporter->listen_fd,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned int)MAX_CONNECTIONS,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)CONNECTION_TIMEOUT_S,
		MHD_OPTION_NOTIFY_COMPLETED, export__completed, exporter,
		MHD_OPTION_END);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	/* Whether MHD closed the socket on failure differs between its versions, and a double
	 * close could hit another thread's new fd: from here on the fd is MHD's either way. */
	exporter->listen_fd = -1;
	if (!exporter->daemon) {
		fprintf(stderr, "loopstall: --prometheus %s: cannot start the HTTP server "
				"(libmicrohttpd)\n", exporter->listen_arg);
		return -EIO;
	}
	return 0;
}

void export__stop(struct exporter *exporter)
{
	if (!exporter)
		return;
	/* Joins MHD's thread (a scrape in progress finishes first) and closes the socket. */
	if (exporter->daemon)
		MHD_stop_daemon(exporter->daemon);
	else if (exporter->listen_fd >= 0)
		close(exporter->listen_fd);
	free(exporter->listen_arg);
	free(exporter);
}
