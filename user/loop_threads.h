/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef LOOP_THREADS_H
#define LOOP_THREADS_H

#include <stdbool.h>
#include <linux/types.h>
#include "loopstall.h"

/*
 * The BPF side's loop thread table (loopstall.h): the loop_threads array map and, through the
 * skeleton's mapping of global data, the tid of each entry, so a scan finds the live entries
 * without a syscall per free one. An entry copied while its thread exits (or its index is
 * taken by another) is skipped: its tid is read again after the copy.
 */
struct loop_thread_table {
	int fd;
	const volatile __u32 *tids; /* LOOP_THREADS of them */
};

struct loopstall_bpf;

/* The table of a loaded skeleton. */
struct loop_thread_table loop_thread_table__of(const struct loopstall_bpf *skel);
/* The first live entry at or after *index: its tid and a copy of it; *index moves past it.
 * False after the last. */
bool loop_thread_table__next(const struct loop_thread_table *table, __u32 *index, __u32 *tid,
			     struct loop_thread *thread);
/* A copy of tid's entry; false if it has none. */
bool loop_thread_table__find(const struct loop_thread_table *table, __u32 tid,
			     struct loop_thread *thread);

#endif
