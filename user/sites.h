/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef SITES_H
#define SITES_H

/*
 * Which code to fix first: each process's stalls grouped by their blocking site (the innermost
 * application frame, or the innermost frame with a file when there is none, plus the reason),
 * heaviest total first. Bounded for days of --all: SITES_TOP sites per process, the rest share
 * one "other" row, so the rows always add up to every stall reported.
 */
#include <stdbool.h>
#include <sys/types.h>
#include <linux/types.h>
#include "loopstall.h"

#define SITES_TOP 16
#define SITE_NAME_MAX 256

/* Where a stall blocked; strings are copied. */
struct site_key {
	const char *function; /* NULL when the stall had no frame with a name */
	const char *file;
	int line;             /* -1 when unknown */
	__u32 kind;           /* enum stack_kind of the stack it blocked in */
	__u32 reason;         /* enum offcpu_reason */
	const char *hint_id;  /* the stall's hint rule (a static string), NULL */
};

struct site {
	char function[SITE_NAME_MAX]; /* "" when unknown */
	char file[SITE_NAME_MAX];
	int line;
	__u32 kind, reason;
	const char *hint_id;
	bool other; /* the row of the sites that did not stay in the top */
	__u64 count;
	__u64 total_ns;
	__u64 max_ns;
	__u64 hist[HIST_BUCKETS]; /* stall durations, the busy-time histogram's buckets */
};

struct sites;

struct sites *sites__new(void);
void sites__free(struct sites *sites);
void sites__add(struct sites *sites, pid_t pid, const struct site_key *key, __u64 duration_ns);
/* pid's sites, heaviest total first, the "other" row (if it has stalls) last, at most
 * SITES_TOP + 1: how many were written to out. */
int sites__sorted(struct sites *sites, pid_t pid, const struct site **out);
/* The median duration of a site's stalls (ns), within its bucket, never above its max. */
double site__p50_ns(const struct site *site);
void sites__forget(struct sites *sites, pid_t pid);

#endif
