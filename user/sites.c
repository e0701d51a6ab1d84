// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#define _GNU_SOURCE
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "compare.h"
#include "hist.h"
#include "sites.h"
#include "caches.h"

struct process_sites {
	pid_t pid; /* first: the tree's key (pid__cmp) */
	int nr;
	struct site *top; /* SITES_TOP, allocated with the first stall */
	struct site other;
};

struct sites {
	void *processes; /* tsearch tree of struct process_sites by pid */
	const struct site *sorted[SITES_TOP + 1];
};

struct sites *sites__new(void)
{
	return calloc(1, sizeof(struct sites));
}

CACHE_COUNT(sites_count, "site_tables")

static void process_sites__free(void *ptr)
{
	struct process_sites *proc = ptr;

	cache_count__add(&sites_count, -1);
	free(proc->top);
	free(proc);
}

void sites__free(struct sites *sites)
{
	if (!sites)
		return;
	tdestroy(sites->processes, process_sites__free);
	free(sites);
}

static struct process_sites *sites__process(struct sites *sites, pid_t pid, bool create)
{
	struct process_sites key = { .pid = pid }, *proc, **node;

	node = tfind(&key, &sites->processes, pid__cmp);
	if (node || !create)
		return node ? *node : NULL;
	proc = calloc(1, sizeof(*proc));
	if (!proc)
		return NULL;
	cache_count__add(&sites_count, 1);
	/* The key before the insert: a pid set afterwards sits where pid 0 goes, where no later
	 * tfind looks, so every stall made a new table and sites__forget freed none. */
	proc->pid = pid;
	proc->other.other = true;
	proc->top = calloc(SITES_TOP, sizeof(*proc->top));
	if (!proc->top || !tsearch(proc, &sites->processes, pid__cmp)) {
		process_sites__free(proc);
		return NULL;
	}
	return proc;
}

static bool site__is(const struct site *site, const struct site_key *key)
{
	return site->line == key->line && site->kind == key->kind && site->reason == key->reason &&
	       !strncmp(site->function, key->function ? key->function : "", SITE_NAME_MAX - 1) &&
	       !strncmp(site->file, key->file ? key->file : "", SITE_NAME_MAX - 1);
}

static void site__count(struct site *site, __u64 duration_ns)
{
	site->count++;
	site->total_ns += duration_ns;
	if (duration_ns > site->max_ns)
		site->max_ns = duration_ns;
	site->hist[hist__bucket(duration_ns)]++;
}

static void site__merge(struct site *into, const struct site *from)
{
	unsigned int i;

	into->count += from->count;
	into->total_ns += from->total_ns;
	if (from->max_ns > into->max_ns)
		into->max_ns = from->max_ns;
	for (i = 0; i < HIST_BUCKETS; i++)
		into->hist[i] += from->hist[i];
}

/*
 * A new site when the top is full takes the place of the lightest one, whose stalls move to
 * "other", if this stall alone weighs more than that site's total: a site that appears late
 * but blocks long still makes the table; many light sites stay in "other".
 */
static struct site *sites__slot(struct process_sites *proc, __u64 duration_ns)
{
	struct site *lightest = NULL;
	int i;

	if (proc->nr < SITES_TOP)
		return &proc->top[proc->nr++];
	for (i = 0; i < proc->nr; i++)
		if (!lightest || proc->top[i].total_ns < lightest->total_ns)
			lightest = &proc->top[i];
	if (lightest->total_ns >= duration_ns)
		return NULL;
	site__merge(&proc->other, lightest);
	return lightest;
}

void sites__add(struct sites *sites, pid_t pid, const struct site_key *key, __u64 duration_ns)
{
	struct process_sites *proc = sites__process(sites, pid, true);
	struct site *site;
	int i;

	if (!proc)
		return;
	for (i = 0; i < proc->nr; i++)
		if (site__is(&proc->top[i], key)) {
			site__count(&proc->top[i], duration_ns);
			return;
		}
	site = sites__slot(proc, duration_ns);
	if (!site) {
		site__count(&proc->other, duration_ns);
		return;
	}
	memset(site, 0, sizeof(*site));
	snprintf(site->function, sizeof(site->function), "%s", key->function ? key->function : "");
	snprintf(site->file, sizeof(site->file), "%s", key->file ? key->file : "");
	site->line = key->line;
	site->kind = key->kind;
	site->reason = key->reason;
	site->hint_id = key->hint_id;
	site__count(site, duration_ns);
}

static int site__cmp_heaviest(const void *a, const void *b)
{
	const struct site *left = *(const struct site *const *)a, *right = *(const struct site *const *)b;

	return left->total_ns < right->total_ns ? 1 : left->total_ns > right->total_ns ? -1 : 0;
}

int sites__sorted(struct sites *sites, pid_t pid, const struct site **out)
{
	struct process_sites *proc = sites ? sites__process(sites, pid, false) : NULL;
	int i, nr = 0;

	if (!proc)
		return 0;
	for (i = 0; i < proc->nr; i++)
		out[nr++] = &proc->top[i];
	qsort(out, nr, sizeof(*out), site__cmp_heaviest);
	if (proc->other.count)
		out[nr++] = &proc->other;
	return nr;
}

double site__p50_ns(const struct site *site)
{
	return hist__quantile(site->hist, site->max_ns, 0.5);
}

void sites__forget(struct sites *sites, pid_t pid)
{
	struct process_sites *proc = sites ? sites__process(sites, pid, false) : NULL;

	if (!proc)
		return;
	tdelete(proc, &sites->processes, pid__cmp);
	process_sites__free(proc);
}
