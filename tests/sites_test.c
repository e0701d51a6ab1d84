// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The per-process sites tables of user/sites.c as --all uses them: stalls of many processes
 * interleaved, pids in no order (as the kernel reuses them), each process's table forgotten at
 * its exit. Each process must keep one table for all its stalls, and a forgotten one must be
 * gone (tools/soak grew 60 KB per process while every stall made a table no exit freed).
 */
#include <stdio.h>
#include "../user/sites.h"
#include "check.h"

#define PROCESSES 512
#define STALLS 3

/* A pid per index, in no order: a multiplier coprime to PROCESSES permutes them. */
static pid_t pid_of(int i)
{
	return 1000 + (i * 197) % PROCESSES;
}

int main(void)
{
	const struct site *rows[SITES_TOP + 1];
	struct site_key key = { .function = "handler", .file = "/srv/app.py", .line = 7 };
	struct sites *sites = sites__new();
	int i, round, nr;

	CHECK(sites, "sites__new");
	if (!sites)
		return 1;
	for (round = 0; round < STALLS; round++)
		for (i = 0; i < PROCESSES; i++)
			sites__add(sites, pid_of(i), &key, 1000000ULL * (i + 1));
	for (i = 0; i < PROCESSES; i++) {
		nr = sites__sorted(sites, pid_of(i), rows);
		CHECK(nr == 1 && rows[0]->count == STALLS &&
			      rows[0]->total_ns == STALLS * 1000000ULL * (i + 1),
		      "pid %d: %d rows, first counts %llu stalls", pid_of(i), nr,
		      nr ? (unsigned long long)rows[0]->count : 0ULL);
	}
	/* Every other process exits. */
	for (i = 0; i < PROCESSES; i += 2)
		sites__forget(sites, pid_of(i));
	for (i = 0; i < PROCESSES; i++) {
		nr = sites__sorted(sites, pid_of(i), rows);
		CHECK(i % 2 ? nr == 1 && rows[0]->count == STALLS : nr == 0,
		      "pid %d after the exits: %d rows", pid_of(i), nr);
	}
	/* A reused pid starts a table of its own. */
	sites__add(sites, pid_of(0), &key, 5);
	nr = sites__sorted(sites, pid_of(0), rows);
	CHECK(nr == 1 && rows[0]->count == 1, "reused pid: %d rows", nr);
	sites__free(sites);
	return failures ? 1 : 0;
}
