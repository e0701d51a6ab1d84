/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef STALL_H
#define STALL_H

#include <stdbool.h>
#include <linux/types.h>
#include "jsmap.h"
#include "loopstall.h"
#include "python.h"
#include "symbolize.h"
#include "v8.h"

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

/* A JavaScript function: from the BPF walk of V8's frames (user/runtime/node/v8.c) when the process's V8 is
 * supported, else from the JIT frames V8's perf map names (node --perf-basic-prof). */
struct js_frame {
	const char *function;
	const char *file; /* NULL for eval'd code */
	int line, column; /* where the function starts (its parameter list), not the current line; -1 */
};

struct stack_report {
	__u32 kind;   /* enum stack_kind */
	__u32 reason; /* enum offcpu_reason */
	__s32 syscall;
	__u32 samples;
	__u64 ns;
	__u32 gil_holder_tid; /* reason GIL: the holder, from the GIL or the waker; 0 if unknown */
	char gil_holder_comm[TASK_COMM_LEN];
	bool has_python;
	struct python_stack python;
	int nr_js; /* JavaScript frames among the user frames, innermost first */
	struct js_frame js[MAX_STACK_DEPTH];
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
	int nr_stacks;
	struct stack_report stacks[MAX_STACK_SLOTS]; /* heaviest first */
};

struct stall_resolver {
	struct syms *syms;
	struct python *python;
	struct v8 *v8;
	int stacks_map_fd;
	__u64 *stacks_evicted; /* counted here: stacks a record names that the map no longer has */
	/* Perf maps of JIT runtimes, created at the first frame no ELF file names (NULL until
	 * then); the owner frees it with jsmap__free and forgets pids with jsmap__forget_pid. */
	struct jsmap *jsmap;
};

void stall__from_record(const struct stall_resolver *resolver, const struct stall_record *record,
			struct stall_report *report);
/* A loop thread still inside one iteration at `now`: its totals so far. */
void stall__from_thread(const struct stall_resolver *resolver, __u32 tid,
			const struct loop_thread *thread, __u64 now, struct stall_report *report);

#endif
