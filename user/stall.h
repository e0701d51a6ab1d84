/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef STALL_H
#define STALL_H

#include <stdbool.h>
#include <linux/types.h>
#include "hints.h"
#include "loopstall.h"
#include "runtime.h"
#include "sites.h"
#include "symbolize.h"

struct kernel_frame {
	__u64 address;
	const char *symbol; /* NULL when not in kallsyms */
	__u64 offset;
};

struct user_frame {
	__u64 address;
	const char *symbol; /* NULL when unknown */
	const char *module; /* NULL when the address is in no known mapping */
	__u64 offset;
	bool resolved; /* module known */
};

struct stack_report {
	__u32 kind;   /* enum stack_kind */
	__u32 reason; /* enum offcpu_reason */
	__s32 syscall;
	__u32 samples;
	__u64 ns;
	__u32 gil_holder_tid; /* reason GIL: the holder, from the GIL or the waker; 0 if unknown */
	char gil_holder_comm[TASK_COMM_LEN];
	/* the frame the holder runs when the stall is reported; runtime NULL when not known */
	struct lang_frame gil_holder_frame;
	struct lang_stack lang; /* the language runtime's frames, if any */
	int nr_kernel;
	int nr_user;
	struct kernel_frame kernel[MAX_STACK_DEPTH];
	struct user_frame user[MAX_STACK_DEPTH];
};

/* A stall, finished (from a ring-buffer record) or still going on (from the live thread state). */
struct stall_report {
	bool in_progress;
	__u32 pid;
	__u32 tid;
	char comm[TASK_COMM_LEN];
	__u64 start_ns; /* CLOCK_MONOTONIC */
	__u64 duration_ns;
	__u64 on_cpu_ns;
	__u64 off_cpu_ns;
	__u64 runqueue_ns;
	__u64 untracked_ns; /* stack time beyond the stacks kept per iteration */
	/* qualname of the outermost coroutine frame: the asyncio task's coroutine, or NULL */
	const char *task_coroutine;
	/* qualname of the innermost coroutine frame of the application's own code (the route
	 * endpoint, the handler, the BackgroundTasks function), or NULL */
	const char *app_coroutine;
	/* The task as the runtime knows it (name, awaiters), NULL when it does not say. */
	const struct lang_task *task;
	const struct hint_rule *hint; /* what to change (hints.h), NULL when no rule fits */
	char hint_text[HINT_TEXT_MAX];
	struct site_key site; /* where it blocked, for sites.h; strings valid like the frames' */
	/* What it delayed, read when it ended (stall_record): not known while in progress. */
	bool waiting_known;
	__u32 ready_fds;
	__u32 connections;
	int nr_stacks;
	struct stack_report stacks[MAX_STACK_SLOTS]; /* heaviest first */
};

struct stall_resolver {
	struct syms *syms;
	struct runtimes runtimes;
	int stacks_map_fd;
	__u64 *stacks_evicted; /* counted here: stacks a record names that the map no longer has */
};

void stall__from_record(const struct stall_resolver *resolver, const struct stall_record *record,
			struct stall_report *report);
/* A loop thread still inside one iteration at `now`: its totals so far. */
void stall__from_thread(const struct stall_resolver *resolver, __u32 tid,
			const struct loop_thread *thread, __u64 now, struct stall_report *report);

#endif
