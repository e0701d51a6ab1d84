// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* CPython behind the runtime interface (user/runtime/runtime.h). */
#include <errno.h>
#include <bpf/libbpf.h>
#include "loopstall.skel.h"
#include "output.h"
#include "python.h"
#include "runtime.h"

/* Distinct walked stacks kept (an LRU): those of the iterations still to be reported. */
#define PY_STACKS 4096

const struct runtime_ops python_runtime;

static void python_rt__configure(struct loopstall_bpf *skel, const struct runtime_limits *limits)
{
	bpf_map__set_max_entries(skel->maps.python_procs, limits->processes);
	bpf_map__set_max_entries(skel->maps.python_threads, limits->threads);
	bpf_map__set_max_entries(skel->maps.py_stacks, PY_STACKS);
}

static void *python_rt__new(struct syms *syms, struct loopstall_bpf *skel)
{
	return python__new(syms, &(struct python_maps){
		.procs_fd = bpf_map__fd(skel->maps.python_procs),
		.threads_fd = bpf_map__fd(skel->maps.python_threads),
		.stacks_fd = bpf_map__fd(skel->maps.py_stacks),
		.loop_threads = loop_thread_table__of(skel),
		.resync_fd = bpf_map__fd(skel->maps.python_resync),
	});
}

static void python_rt__free(void *rt)
{
	python__free(rt);
}

static int python_rt__counters(struct loopstall_bpf *skel, struct counter *out)
{
	out[0] = (struct counter){
		"py_walks_skipped",
		"Python stack walks skipped: the iteration had used its walks at switch-out",
		&skel->bss->py_walks_skipped,
	};
	out[1] = (struct counter){
		"py_thread_mismatch",
		"Python stacks not read: the thread's PyThreadState was not (yet) its own",
		&skel->bss->py_thread_mismatch,
	};
	return 2;
}

static int python_rt__attach(void *rt, pid_t pid)
{
	return python__attach(rt, pid);
}

/* Threads that became loop threads since, and processes that exec'd into CPython, get their
 * interpreter found here. */
static void python_rt__tick(void *rt)
{
	python__sync_threads(rt);
}

/* Code objects that die before the iteration ends (generated functions, reloads) are read
 * while they live: the report resolves their frames after the end. */
static void python_rt__read_ahead(void *rt, pid_t pid, const struct stack_slot *slot)
{
	python__read_ahead(rt, pid, slot->py_stack_id);
}

/* The previous report is printed: no frame points at a replaced code object any more. */
static void python_rt__report_begin(void *rt, pid_t pid)
{
	python__release_codes(rt);
}

static struct lang_frame python_rt__frame(const struct python_frame *frame)
{
	return (struct lang_frame){
		.function = frame->function,
		.qualname = frame->qualname,
		.file = frame->file,
		.line = frame->line,
		.column = -1,
		.flags = (frame->coroutine ? LANG_FRAME_COROUTINE : 0) |
			 (frame->in_app ? LANG_FRAME_IN_APP : 0),
		.runtime = &python_runtime,
	};
}

static bool python_rt__resolve(void *rt, pid_t pid, const struct stack_slot *slot,
			       struct lang_stack *out)
{
	struct python_stack python;
	int i;

	if (!python__resolve(rt, pid, slot->py_stack_id, &python))
		return false;
	out->runtime = &python_runtime;
	out->truncated = python.truncated;
	out->task = python.task;
	out->depth = python.depth < MAX_LANG_DEPTH ? python.depth : MAX_LANG_DEPTH;
	for (i = 0; i < out->depth; i++)
		out->frames[i] = python_rt__frame(&python.frames[i]);
	return true;
}

/*
 * The GIL's own record of its holder (a PyThreadState) made a kernel tid, and the frame it runs
 * now: read when the stall is reported, not when it waited, so right for a thread that still
 * runs the same code (the CPU-bound loop that starves the others).
 */
static __u32 python_rt__lock_holder(void *rt, pid_t pid, const struct stack_slot *slot,
				    struct lang_frame *frame)
{
	struct python_frame python;
	__u32 tid = slot->gil_holder ? python__thread_tid(rt, pid, slot->gil_holder) : 0;

	if (tid && python__thread_frame(rt, pid, slot->gil_holder, &python))
		*frame = python_rt__frame(&python);
	return tid;
}

/*
 * pyleak's and Python's own traceback look: outermost call first, the blocking call last. A
 * person wants the task's code, so the event loop's own frames above the outermost coroutine
 * are summed up in one line, and so is each run of frames outside the application's code
 * (JSON keeps them all).
 */
static void python_rt__text(FILE *file, pid_t pid, const struct lang_stack *stack, int max_frames,
			    bool all_frames)
{
	const struct lang_frame *frame;
	char source[256];
	int i, end, start = stack->depth - 1;

	while (start >= 0 && !(stack->frames[start].flags & LANG_FRAME_COROUTINE))
		start--;
	if (start < 0)
		start = stack->depth - 1;
	if (stack->truncated)
		fprintf(file, "    (outer Python frames not read)\n");
	if (start < stack->depth - 1)
		fprintf(file, "    (%d event-loop frames)\n", stack->depth - 1 - start);
	for (i = start; i >= 0; i--) {
		/* A run of the server's and libraries' frames between the task and the application's
		 * code: one line. The innermost frame, the call that blocked, always shows. */
		end = all_frames ? i : output__run_end(stack, i, -1, stack->depth);
		if (end < 1)
			end = 1;
		if (end < i && output__frame_run(file, stack, end, i)) {
			i = end;
			continue;
		}
		frame = &stack->frames[i];
		fprintf(file, "    File \"%s\", line %d, in %s\n", TEXT_SAFE(frame->file), frame->line,
			TEXT_SAFE(frame->qualname ? frame->qualname : frame->function));
		if (!python__source_line(pid, frame->file, frame->line, source, sizeof(source)))
			fprintf(file, "      %s\n", TEXT_SAFE(source));
	}
}

static int python_rt__source_line(void *rt, pid_t pid, const struct lang_frame *frame, char *buf,
				  size_t size)
{
	return python__source_line(pid, frame->file, frame->line, buf, size);
}

static void python_rt__forget(void *rt, pid_t pid)
{
	python__forget(rt, pid);
}

const struct runtime_ops python_runtime = {
	.name = "python",
	.json = RUNTIME_JSON_QUALNAME | RUNTIME_JSON_TRUNCATED,
	.configure = python_rt__configure,
	.new = python_rt__new,
	.free = python_rt__free,
	.counters = python_rt__counters,
	.attach = python_rt__attach,
	.tick = python_rt__tick,
	.read_ahead = python_rt__read_ahead,
	.report_begin = python_rt__report_begin,
	.resolve = python_rt__resolve,
	.lock_holder = python_rt__lock_holder,
	.source_line = python_rt__source_line,
	.text = python_rt__text,
	.forget = python_rt__forget,
};
