// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "clock.h"
#include "progress.h"

/* The entry of this thread's current iteration; a new iteration resets it. */
static struct progress_entry *progress__entry(struct progress *progress, __u32 tid,
					      __u64 busy_start_ns)
{
	struct progress_entry *entry = NULL;
	int i;

	for (i = 0; i < progress->nr; i++) {
		if (progress->entries[i].tid == tid) {
			entry = &progress->entries[i];
			break;
		}
	}
	if (!entry) {
		if (progress->nr >= PROGRESS_MAX_THREADS)
			return NULL;
		entry = &progress->entries[progress->nr++];
		entry->tid = tid;
		entry->busy_start_ns = 0;
	}
	if (entry->busy_start_ns != busy_start_ns) {
		entry->busy_start_ns = busy_start_ns;
		entry->reported_ns = busy_start_ns;
	}
	return entry;
}

/* Forget threads whose iteration was not seen stuck in this scan. */
static void progress__prune(struct progress *progress, const __u8 *seen)
{
	int i, kept = 0;

	for (i = 0; i < progress->nr; i++)
		if (seen[i])
			progress->entries[kept++] = progress->entries[i];
	progress->nr = kept;
}

void progress__scan(struct progress *progress, const struct loop_thread_table *loop_threads,
		    const struct stall_resolver *resolver, struct fleet *fleet,
		    const struct output *output, struct stall_report *scratch)
{
	struct process_info process;
	__u8 seen[PROGRESS_MAX_THREADS] = {};
	struct loop_thread thread;
	struct progress_entry *entry;
	__u32 tid, index = 0, i;
	__u64 now = clock__ns();

	while (loop_thread_table__next(loop_threads, &index, &tid, &thread)) {
		if (!thread.busy_start_ns)
			continue;
		for (i = 0; i < thread.nr_slots && i < MAX_STACK_SLOTS; i++)
			runtimes__read_ahead(&resolver->runtimes, thread.pid, &thread.slots[i]);
		if (now < thread.busy_start_ns || now - thread.busy_start_ns < progress->interval_ns)
			continue;
		entry = progress__entry(progress, tid, thread.busy_start_ns);
		if (!entry)
			continue;
		seen[entry - progress->entries] = 1;
		if (now - entry->reported_ns < progress->interval_ns)
			continue;
		entry->reported_ns = now;
		stall__from_thread(resolver, tid, &thread, now, scratch);
		output__stall(output, scratch,
			      fleet__info(fleet, thread.pid, &process) ? &process : NULL);
	}
	progress__prune(progress, seen);
}
