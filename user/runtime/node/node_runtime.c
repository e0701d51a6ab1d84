// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Node (V8) behind the runtime interface (user/runtime/runtime.h). JavaScript frames come from
 * the BPF walk of V8's frames when the process's V8 is supported (v8.c), else from the JIT
 * code V8's perf map names (node --perf-basic-prof, jsmap.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/libbpf.h>
#include "jsmap.h"
#include "loopstall.skel.h"
#include "output.h"
#include "in_app.h"
#include "runtime.h"
#include "v8.h"
#include "v8_abi.h"

/* Distinct walked stacks kept (an LRU): those of the iterations still to be reported. */
#define JS_STACKS 4096

const struct runtime_ops node_runtime;

struct node_rt {
	struct v8 *v8;
	/* Perf maps, created at the first frame no ELF file names (NULL until then). */
	struct jsmap *jsmap;
	bool jsmap_fresh; /* re-read for the report being resolved */
};

static void node_rt__configure(struct loopstall_bpf *skel, const struct runtime_limits *limits)
{
	bpf_map__set_max_entries(skel->maps.v8_procs, limits->processes);
	bpf_map__set_max_entries(skel->maps.js_stacks, JS_STACKS);
	bpf_map__set_max_entries(skel->maps.js_budgets, limits->threads);
}

static void *node_rt__new(struct syms *syms, struct loopstall_bpf *skel)
{
	struct node_rt *node = calloc(1, sizeof(*node));

	if (!node)
		return NULL;
	node->v8 = v8__new(syms, &(struct v8_maps){
		.procs_fd = bpf_map__fd(skel->maps.v8_procs),
		.stacks_fd = bpf_map__fd(skel->maps.js_stacks),
	});
	if (!node->v8) {
		free(node);
		return NULL;
	}
	return node;
}

static void node_rt__free(void *rt)
{
	struct node_rt *node = rt;

	v8__free(node->v8);
	jsmap__free(node->jsmap);
	free(node);
}

static int node_rt__counters(struct loopstall_bpf *skel, struct counter *out)
{
	out[0] = (struct counter){
		"js_walks_skipped",
		"JavaScript stack walks skipped: the iteration had used its walks at switch-out",
		&skel->bss->js_walks_skipped,
	};
	return 1;
}

static int node_rt__attach(void *rt, pid_t pid)
{
	struct node_rt *node = rt;

	return v8__attach(node->v8, pid);
}

/* A process whose files were missed for lack of time (V8_UNKNOWN) is looked at again about a
 * second later, before its next stall rather than at it: the BPF walk of that stall needs it. */
static void node_rt__tick(void *rt)
{
	struct node_rt *node = rt;

	v8__retry_missed(node->v8);
}

static void node_rt__report_begin(void *rt, pid_t pid)
{
	struct node_rt *node = rt;

	v8__trim(node->v8, pid);
	node->jsmap_fresh = false;
}

/*
 * A process whose V8 frames are walked gets all its JavaScript frames from the walk:
 * interpreted functions included, and one source for every stack. The perf map, if any, still
 * names the JIT code among the native frames.
 */
static bool node_rt__resolve(void *rt, pid_t pid, const struct stack_slot *slot,
			     struct lang_stack *out)
{
	struct node_rt *node = rt;
	struct v8_frame frames[MAX_JS_DEPTH];
	int i, nr;

	if (!v8__active(node->v8, pid))
		return false;
	nr = v8__resolve(node->v8, pid, slot->js_stack_id, frames, MAX_JS_DEPTH);
	for (i = 0; i < nr; i++)
		out->frames[i] = (struct lang_frame){
			.function = frames[i].function, .file = frames[i].file,
			.line = frames[i].line, .column = frames[i].column,
			.flags = in_app__js(frames[i].file) ? LANG_FRAME_IN_APP : 0,
			.runtime = &node_runtime,
		};
	out->depth = nr;
	out->truncated = false;
	out->runtime = nr ? &node_runtime : NULL;
	return true;
}

/*
 * JIT code is in no ELF file, so it has no symbol (its module may still be known: V8 maps
 * node's builtins a second time next to its JIT code, and that module's range spans it); V8's
 * perf map names it. The map is re-read once per report, at the first frame that needs it:
 * its strings stay valid until the next refresh. Processes without JIT code cost nothing.
 */
static bool node_rt__name_code(void *rt, pid_t pid, __u64 addr, struct user_sym *sym,
			       struct lang_frame *frame)
{
	struct node_rt *node = rt;
	struct jsmap_sym js;

	if (!node->jsmap)
		node->jsmap = jsmap__new();
	if (!node->jsmap)
		return false;
	if (!node->jsmap_fresh) {
		jsmap__refresh(node->jsmap, pid);
		node->jsmap_fresh = true;
	}
	if (jsmap__lookup(node->jsmap, pid, addr, &js))
		return false;
	sym->symbol = js.name;
	sym->module = js.map_path;
	sym->offset = js.offset;
	if (js.js)
		*frame = (struct lang_frame){
			.function = js.name, .file = js.file, .line = js.line, .column = js.column,
			.flags = in_app__js(js.file) ? LANG_FRAME_IN_APP : 0,
			.runtime = &node_runtime,
		};
	return true;
}

static bool js_frame__is_node(const struct lang_frame *frame)
{
	return frame->file && !strncmp(frame->file, "node:", strlen("node:"));
}

/*
 * Node's own look, innermost first; the line is where the function starts. As for Python's
 * event loop, the run of node's own frames at the outer end (the HTTP parser, EventEmitter,
 * timers) is summed up in one line when code of the program is above it (JSON keeps them all).
 */
static void node_rt__text(FILE *file, pid_t pid, const struct lang_stack *stack, int max_frames,
			  bool all_frames)
{
	const struct lang_frame *frame;
	int i, run, end = stack->depth;

	while (end > 0 && js_frame__is_node(&stack->frames[end - 1]))
		end--;
	if (!end)
		end = stack->depth;
	for (i = 0; i < end && i < max_frames; i++) {
		/* Runs of node's and packages' frames inside the program's code: one line. The
		 * innermost frame, the call that blocked, always shows. */
		run = all_frames || !i ? i : output__run_end(stack, i, +1, end);
		if (run > i && output__frame_run(file, stack, i, run)) {
			i = run;
			continue;
		}
		frame = &stack->frames[i];
		if (!frame->file)
			fprintf(file, "    at %s\n", TEXT_SAFE(frame->function));
		else if (frame->line < 0)
			fprintf(file, "    at %s (%s)\n", TEXT_SAFE(frame->function),
				TEXT_SAFE(frame->file));
		else
			fprintf(file, "    at %s (%s:%d)\n", TEXT_SAFE(frame->function),
				TEXT_SAFE(frame->file), frame->line);
	}
	if (end > max_frames)
		fprintf(file, "    ... %d more JavaScript frames\n", end - max_frames);
	if (end < stack->depth)
		fprintf(file, "    (%d node frames)\n", stack->depth - end);
}

static void node_rt__forget(void *rt, pid_t pid)
{
	struct node_rt *node = rt;

	v8__forget(node->v8, pid);
	jsmap__forget_pid(node->jsmap, pid);
}

const struct runtime_ops node_runtime = {
	.name = "js",
	.json = RUNTIME_JSON_COLUMN,
	.configure = node_rt__configure,
	.new = node_rt__new,
	.free = node_rt__free,
	.counters = node_rt__counters,
	.attach = node_rt__attach,
	.tick = node_rt__tick,
	.report_begin = node_rt__report_begin,
	.resolve = node_rt__resolve,
	.name_code = node_rt__name_code,
	.text = node_rt__text,
	.forget = node_rt__forget,
};
