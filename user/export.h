/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef EXPORT_H
#define EXPORT_H

#include <stdbool.h>
#include <linux/types.h>
#include "counters.h"

struct fleet;
struct exporter;

/* What the exporter reads on each scrape; it keeps a copy of this struct, not of what it points to. */
struct export_source {
	struct fleet *fleet;                 /* fleet__visit() gives every traced process's labels and stats */
	const volatile __u64 *lost_events;   /* global count of ring-buffer drops (BPF .bss, mmapped), or NULL */
	const struct counter *counters;     /* host-wide BPF counters, each its own family */
	int nr_counters;
	bool per_thread;                     /* also tid-labelled series (fleet__visit yields tid != 0 entries) */
	const char *version;                 /* for loopstall_build_info */
	/* Called from the exporter's thread after a GET /metrics response was sent in full, so
	 * exited processes can be forgotten once Prometheus has seen their final values (the lead
	 * passes fleet__reap). NULL: nothing to do. */
	void (*after_scrape)(void *ctx);
	void *after_scrape_ctx;
};

/*
 * Listen, without serving yet: while privileges allow a port below 1024, and before attaching,
 * so a bad address is reported before anything else happens.
 * listen: "[ADDR:]PORT"; ADDR defaults to 127.0.0.1 (all interfaces only when asked:
 * "0.0.0.0:9464" or "[::]:9464"). Prints one line "loopstall: --prometheus X: <why>" and returns
 * NULL on a bad address or bind failure.
 */
struct exporter *export__open(const char *listen, const struct export_source *source);
/*
 * Serve GET /metrics (Prometheus text 0.0.4, or OpenMetrics 1.0 when the Accept header asks for
 * application/openmetrics-text) from libmicrohttpd's own thread until export__stop(). Started
 * after the privilege drop: capabilities are per thread. Prints one line and returns < 0 when
 * the server cannot start.
 */
int export__start(struct exporter *exporter);
/* Stop serving (waits for a scrape in progress), close and free; NULL is fine. */
void export__stop(struct exporter *exporter);

#endif
