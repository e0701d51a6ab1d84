/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef COUNTERS_H
#define COUNTERS_H

#include <linux/types.h>

/*
 * What loopstall counts host-wide instead of losing it silently: the BPF side in its .bss, --all's
 * decisions in the fleet. Shown at the end of a run (text: the non-zero ones on stderr; JSON:
 * the run_summary record) and exported as Prometheus counters.
 */
struct counter {
	const char *name;            /* the JSON key; metric loopstall_<name>_total */
	const char *text;            /* "<count> <text>": what one count is and why it happened */
	const volatile __u64 *value; /* in the mmapped .bss, or the fleet's */
};

/* Room for loopstall's own counters and every runtime's. */
#define MAX_COUNTERS 16

#endif
