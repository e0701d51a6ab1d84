/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef RUNTIME_H
#define RUNTIME_H

/*
 * The seam between generic code (main, stall, progress, outputs) and the language runtimes
 * (user/runtime/<name>/): each runtime implements one struct runtime_ops, lists itself in
 * user/runtime/runtimes.c, and hands its frames to the outputs as struct lang_frame. Generic
 * code calls the runtimes__* functions below and never names a runtime.
 */
#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>
#include <linux/types.h>
#include "counters.h"
#include "loopstall.h"
#include "symbolize.h"

struct loopstall_bpf;

/* Room for the deepest walk of any runtime (MAX_PY_DEPTH) and for a perf map's frames among
 * the native ones (MAX_STACK_DEPTH). */
#define MAX_LANG_DEPTH 128

/* What a frame is besides its position. */
enum lang_frame_flag {
	LANG_FRAME_COROUTINE = 1 << 0, /* an `async def`: the outermost one names the task */
	/* The application's own code (Sentry's in_app): not the runtime's standard library, not an
	 * installed package, not the runtime's internals (in_app.h). */
	LANG_FRAME_IN_APP = 1 << 1,
};

/* One frame of a language runtime's stack: every output takes language frames from here. */
struct lang_frame {
	const char *function;
	const char *qualname; /* NULL when the runtime has none (or before CPython 3.11) */
	const char *file;     /* NULL for eval'd code, builtins and API functions */
	int line, column;     /* 1-based, -1 when unknown */
	unsigned int flags;   /* enum lang_frame_flag */
	const struct runtime_ops *runtime;
};

/* What the runtime itself says of the task that ran a stack (CPython 3.14+'s _AsyncioDebug). */
#define LANG_TASK_NAME_MAX 64
#define LANG_MAX_AWAITED_BY 8
struct lang_task {
	bool known;
	char name[LANG_TASK_NAME_MAX]; /* "Task-12", or the name the program gave */
	int nr_awaited_by;
	/* the coroutines of the tasks awaiting it, each awaited by the next: outermost last */
	char awaited_by[LANG_MAX_AWAITED_BY][LANG_TASK_NAME_MAX];
};

struct lang_stack {
	const struct runtime_ops *runtime; /* NULL: no language frames */
	struct lang_task task;
	bool truncated; /* the walk or the resolution stopped early: outer frames are missing */
	int depth;
	struct lang_frame frames[MAX_LANG_DEPTH]; /* innermost first */
};

/* The fields of a frame in the runtime's JSON array (docs/json.md); function, file and line
 * always. */
enum runtime_json {
	RUNTIME_JSON_QUALNAME = 1 << 0,
	RUNTIME_JSON_COLUMN = 1 << 1,
	RUNTIME_JSON_TRUNCATED = 1 << 2, /* a "truncated" key after the array */
};

/* What the runtimes size their BPF maps by, from the configuration. */
struct runtime_limits {
	__u32 processes; /* traced at once */
	__u32 threads;   /* loop threads */
};

/*
 * A runtime. `rt` is the state its new() returned. Every function is optional (NULL) except
 * new, free, attach, resolve and forget.
 */
struct runtime_ops {
	const char *name; /* its stacks' JSON array: "python", "js" */
	unsigned int json; /* enum runtime_json */
	/* Before the BPF object is loaded: size the runtime's maps. */
	void (*configure)(struct loopstall_bpf *skel, const struct runtime_limits *limits);
	/* After it is loaded; NULL (and errno) on failure. */
	void *(*new)(struct syms *syms, struct loopstall_bpf *skel);
	void (*free)(void *rt);
	/* Its BPF counters (.bss), appended to out: how many. */
	int (*counters)(struct loopstall_bpf *skel, struct counter *out);
	/*
	 * Recognize the runtime in a process and fill the BPF per-process tables so that its
	 * walker reads the process's frames. 0 when it is this runtime's, -ENOENT when not
	 * (silently), -ENOTSUP when it is but cannot be walked (after one warning on stderr).
	 * Called again after an exec (and forget): the new program is recognized anew.
	 */
	int (*attach)(void *rt, pid_t pid);
	/* Once per stream tick (every few ms). */
	void (*tick)(void *rt);
	/* A loop thread's stack slot while its iteration still runs: read what may be gone by the
	 * time the iteration ends. */
	void (*read_ahead)(void *rt, pid_t pid, const struct stack_slot *slot);
	/* Before a report of pid is resolved: the previous report is printed, its strings may go. */
	void (*report_begin)(void *rt, pid_t pid);
	/*
	 * The walked stack of a slot: true when this runtime owns the slot's language frames,
	 * which it wrote into out (out->runtime NULL if there are none after all). Strings stay
	 * valid until the next report_begin or forget of pid.
	 */
	bool (*resolve)(void *rt, pid_t pid, const struct stack_slot *slot, struct lang_stack *out);
	/*
	 * Name a native address no ELF file covers (JIT code): true if the runtime knows it, with
	 * sym filled and, for code of the language, frame (frame->runtime set). Same lifetime.
	 */
	bool (*name_code)(void *rt, pid_t pid, __u64 addr, struct user_sym *sym,
			  struct lang_frame *frame);
	/* The tid holding the runtime's global lock while the slot waited for it, 0 if none, and
	 * the innermost frame it runs in frame (left alone when not read). Same lifetime. */
	__u32 (*lock_holder)(void *rt, pid_t pid, const struct stack_slot *slot,
			     struct lang_frame *frame);
	/* The source text of the line a frame runs (stripped), for a person: 0, or -errno when
	 * it cannot be read. */
	int (*source_line)(void *rt, pid_t pid, const struct lang_frame *frame, char *buf,
			   size_t size);
	/* The text output of a stack, in the language's own traceback look: runs of frames not of
	 * the application summed up in one line (output__frame_run) unless all_frames. */
	void (*text)(FILE *file, pid_t pid, const struct lang_stack *stack, int max_frames,
		     bool all_frames);
	/* The process exited or exec'd: drop what is kept for it, in userspace and in BPF maps. */
	void (*forget)(void *rt, pid_t pid);
};

#define MAX_RUNTIMES 4

struct runtimes {
	int nr;
	const struct runtime_ops *ops[MAX_RUNTIMES];
	void *rt[MAX_RUNTIMES];
};

void runtimes__configure(struct loopstall_bpf *skel, const struct runtime_limits *limits);
/* Every runtime's counters after out[0..nr): the new nr. */
int runtimes__counters(struct loopstall_bpf *skel, struct counter *out, int nr);
/* 0, or -errno after a message on stderr. */
int runtimes__new(struct runtimes *runtimes, struct syms *syms, struct loopstall_bpf *skel);
void runtimes__free(struct runtimes *runtimes);
void runtimes__attach(const struct runtimes *runtimes, pid_t pid);
void runtimes__tick(const struct runtimes *runtimes);
void runtimes__read_ahead(const struct runtimes *runtimes, pid_t pid,
			  const struct stack_slot *slot);
void runtimes__report_begin(const struct runtimes *runtimes, pid_t pid);
void runtimes__resolve(const struct runtimes *runtimes, pid_t pid, const struct stack_slot *slot,
		       struct lang_stack *out);
bool runtimes__name_code(const struct runtimes *runtimes, pid_t pid, __u64 addr,
			 struct user_sym *sym, struct lang_frame *frame);
/* frame->runtime is NULL when the holder's frame is not known. */
__u32 runtimes__lock_holder(const struct runtimes *runtimes, pid_t pid,
			    const struct stack_slot *slot, struct lang_frame *frame);
int runtimes__source_line(const struct runtimes *runtimes, pid_t pid,
			  const struct lang_frame *frame, char *buf, size_t size);
void runtimes__forget(const struct runtimes *runtimes, pid_t pid);

#endif
