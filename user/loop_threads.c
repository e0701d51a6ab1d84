// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <bpf/bpf.h>
#include "loop_threads.h"
#include "loopstall.skel.h"

struct loop_thread_table loop_thread_table__of(const struct loopstall_bpf *skel)
{
	return (struct loop_thread_table){
		.fd = bpf_map__fd(skel->maps.loop_threads),
		.tids = skel->bss->loop_thread_tids,
	};
}

static bool entry__copy(const struct loop_thread_table *table, __u32 index, __u32 tid,
			struct loop_thread *thread)
{
	return tid && !bpf_map_lookup_elem(table->fd, &index, thread) && table->tids[index] == tid;
}

bool loop_thread_table__next(const struct loop_thread_table *table, __u32 *index, __u32 *tid,
			     struct loop_thread *thread)
{
	while (*index < LOOP_THREADS) {
		*tid = table->tids[*index];
		if (entry__copy(table, (*index)++, *tid, thread))
			return true;
	}
	return false;
}

bool loop_thread_table__find(const struct loop_thread_table *table, __u32 tid,
			     struct loop_thread *thread)
{
	__u32 index = loop_thread__find(table->tids, tid);

	return index < LOOP_THREADS && entry__copy(table, index, tid, thread);
}
