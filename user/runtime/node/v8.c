// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * V8 (node) support: recognize a V8 process from its post-mortem metadata, tell the BPF walker
 * how to recognize JavaScript frames, and turn walked SharedFunctionInfo pointers into
 * function, script and line. Everything read here comes from the target's memory: every read
 * is bounded and checked (user/runtime/node/v8heap.c), and what cannot be read is left out.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <search.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>
#include "clock.h"
#include "compare.h"
#include "loopstall.h"
#include "procfs.h"
#include "remote.h"
#include "targetfs.h"
#include "v8_abi.h"
#include "v8.h"
#include "v8heap.h"
#include "v8meta.h"
#include "caches.h"

/* Cached per process before v8__trim starts over: a service that keeps generating functions
 * (eval, vm) must not grow us without bound. */
#define MAX_FUNCTIONS 65536
#define MAX_STRING_BYTES (16U << 20)

enum v8_kind {
	V8_NOT = 0, /* no V8 metadata in this process */
	V8_SUPPORTED,
	V8_UNSUPPORTED,
	V8_UNKNOWN, /* its binaries could not all be read yet: looked at again */
};

struct function_entry {
	__u64 addr; /* tagged SharedFunctionInfo */
	struct v8_shared shared;
	struct v8_frame frame; /* strings interned in the process */
};

struct script_entry {
	__u64 addr;
	struct v8_script script;
	const char *file; /* interned */
};

struct v8_process {
	pid_t pid;
	enum v8_kind kind;
	__u64 unknown_ns; /* V8_UNKNOWN since then: looked at again TARGETFS_RETRY_NS later */
	struct v8_meta meta;
	void *functions; /* tsearch tree of struct function_entry by address */
	void *scripts;   /* tsearch tree of struct script_entry by address */
	void *strings;   /* tsearch tree of interned strings */
	size_t nr_functions, string_bytes;
};

struct v8 {
	struct syms *syms;
	struct v8_maps maps;
	void *processes; /* tsearch tree of struct v8_process by pid */
	size_t nr_unknown; /* processes in V8_UNKNOWN, retried by v8__retry_missed */
};

CACHE_COUNT(function_count, "js_functions")
CACHE_COUNT(script_count, "js_scripts")
CACHE_COUNT(v8_process_count, "node_processes")

static void function__free(void *ptr)
{
	struct function_entry *entry = ptr;

	cache_count__add(&function_count, -1);
	v8heap__free_shared(&entry->shared);
	free(entry);
}

static void script__free(void *ptr)
{
	struct script_entry *entry = ptr;

	cache_count__add(&script_count, -1);
	v8heap__free_script(&entry->script);
	free(entry);
}

static void process__clear(struct v8_process *proc)
{
	tdestroy(proc->functions, function__free);
	tdestroy(proc->scripts, script__free);
	tdestroy(proc->strings, free);
	proc->functions = proc->scripts = proc->strings = NULL;
	proc->nr_functions = proc->string_bytes = 0;
}

static void process__free(void *ptr)
{
	struct v8_process *proc = ptr;

	cache_count__add(&v8_process_count, -1);
	process__clear(proc);
	free(proc);
}

static struct v8_process *process__find(struct v8 *v8, pid_t pid)
{
	struct v8_process key = { .pid = pid }, **node;

	node = v8 ? tfind(&key, &v8->processes, pid__cmp) : NULL;
	return node ? *node : NULL;
}

static struct v8_process *process__new(struct v8 *v8, pid_t pid)
{
	struct v8_process *proc = calloc(1, sizeof(*proc));

	if (!proc)
		return NULL;
	cache_count__add(&v8_process_count, 1);
	proc->pid = pid;
	if (!tsearch(proc, &v8->processes, pid__cmp)) {
		free(proc);
		return NULL;
	}
	return proc;
}

/* One copy per distinct string: frames point at it until the process's caches are cleared. */
static const char *process__intern(struct v8_process *proc, const char *text)
{
	char *copy, **node;

	if (!text)
		return NULL;
	node = tfind(text, &proc->strings, str__cmp);
	if (node)
		return *node;
	copy = strdup(text);
	if (!copy)
		return NULL;
	node = tsearch(copy, &proc->strings, str__cmp);
	if (!node || *node != copy) {
		free(copy);
		return node ? *node : NULL;
	}
	proc->string_bytes += strlen(copy) + 1;
	return copy;
}

struct v8 *v8__new(struct syms *syms, const struct v8_maps *maps)
{
	struct v8 *v8 = calloc(1, sizeof(*v8));

	if (!v8)
		return NULL;
	v8->syms = syms;
	v8->maps = *maps;
	return v8;
}

void v8__free(struct v8 *v8)
{
	if (!v8)
		return;
	tdestroy(v8->processes, process__free);
	v8meta__free_cache();
	free(v8);
}

/*
 * The executable mappings of the file mapped at addr where it was loaded: V8's and libuv's code.
 * V8 also maps its embedded builtins a second time for each isolate, next to the isolate's code
 * space (for short calls): those copies are of the same file, but at another load bias, among
 * the heaps. A range that reached them would take heap pointers for return addresses (a
 * worker's copy lies above its heap: the frames under its Atomics.wait were lost so).
 */
struct code_range {
	__u64 addr;
	int pass;
	unsigned int major, minor;
	__u64 inode, bias, start, end;
};

/* The file that holds addr, then its load bias (its mapping at offset 0), then its executable
 * ranges at that bias: one pass over the mappings each. */
static int code_range__visit(void *ctx, const struct proc_mapping *mapping)
{
	struct code_range *range = ctx;
	bool same_file = mapping->inode == range->inode && mapping->major == range->major &&
			 mapping->minor == range->minor;

	if (!mapping->inode)
		return 0;
	if (range->pass == 0 && range->addr >= mapping->start && range->addr < mapping->end) {
		range->major = mapping->major;
		range->minor = mapping->minor;
		range->inode = mapping->inode;
		return 1;
	}
	if (range->pass == 1 && same_file && !mapping->offset) {
		range->bias = mapping->start;
		return 1;
	}
	if (range->pass == 2 && same_file && mapping->perms[2] == 'x' &&
	    mapping->start - mapping->offset == range->bias) {
		if (!range->start || mapping->start < range->start)
			range->start = mapping->start;
		if (mapping->end > range->end)
			range->end = mapping->end;
	}
	return 0;
}

static int code__range(pid_t pid, __u64 addr, __u64 *code_start, __u64 *code_end)
{
	struct code_range range = { .addr = addr };
	int err;

	for (range.pass = 0; range.pass < 3; range.pass++) {
		err = procfs__each_mapping(pid, code_range__visit, &range);
		if (err < 0)
			return err;
		if (!range.inode || (range.pass == 1 && !range.bias))
			break;
	}
	*code_start = range.start;
	*code_end = range.end;
	return range.end ? 0 : -ENOENT;
}

static int v8__publish(struct v8 *v8, const struct v8_process *proc)
{
	const struct v8_meta *meta = &proc->meta;
	const struct v8_layout *layout = meta->layout;
	struct v8_proc value = {
		.map_instance_type = (__u16)meta->map_instance_type,
		.js_function_first = (__u16)meta->type_js_function,
		.js_function_last = (__u16)(meta->type_js_function + layout->js_function_types - 1),
		.heap_object_map = (__u16)meta->heap_object_map,
		.function_shared = (__u16)meta->function_shared,
		.heap_object_tag = (__u8)meta->heap_object_tag,
		.heap_object_tag_mask = (__u8)meta->heap_object_tag_mask,
		.native_context_type = layout->native_context_type,
		.entry_c_entry_fp = layout->entry_c_entry_fp,
		.internal_marker = (__u64)meta->frametype_internal << layout->frame_marker_shift,
		.entry_marker = (__u64)meta->frametype_entry << layout->frame_marker_shift,
		.construct_entry_marker =
			(__u64)meta->frametype_construct_entry << layout->frame_marker_shift,
	};

	/* Without it, walks only start from rbp: no harm, fewer off-CPU frames. */
	code__range(proc->pid, meta->anchor, &value.code_start, &value.code_end);
	if (bpf_map_update_elem(v8->maps.procs_fd, &proc->pid, &value, BPF_ANY))
		return -errno;
	return 0;
}

int v8__attach(struct v8 *v8, pid_t pid)
{
	struct v8_process *proc = process__find(v8, pid);
	char why[128];
	int err;

	if (proc && proc->kind == V8_UNKNOWN && !targetfs__retry_due(proc->unknown_ns))
		return -ENOENT;
	if (proc && proc->kind != V8_UNKNOWN)
		return proc->kind == V8_SUPPORTED ? 0 : proc->kind == V8_NOT ? -ENOENT : -ENOTSUP;
	if (!proc)
		proc = process__new(v8, pid);
	if (!proc)
		return -ENOMEM;
	if (proc->kind == V8_UNKNOWN)
		v8->nr_unknown--;
	err = v8meta__read(v8->syms, pid, &proc->meta, why, sizeof(why));
	if (err && err != -ENOTSUP && err != -EFAULT) {
		/* No V8 metadata, or the process is gone; or its files missed for lack of time,
		 * which a loaded machine causes: not "no V8" for the run. */
		proc->kind = err == -EAGAIN ? V8_UNKNOWN : V8_NOT;
		proc->unknown_ns = clock__ns();
		v8->nr_unknown += proc->kind == V8_UNKNOWN;
		return -ENOENT;
	}
	if (!err) {
		err = v8__publish(v8, proc);
		if (err)
			snprintf(why, sizeof(why), "cannot walk its V8 frames: %s", strerror(-err));
	}
	if (err) {
		proc->kind = V8_UNSUPPORTED;
		/* The native unwinder stops in code without frame pointers (OpenSSL's assembly,
		 * glibc): JIT frames above such a leaf are not reached. */
		fprintf(stderr, "loopstall: pid %d: %s: JavaScript frames only from V8's perf map "
				"(node --perf-basic-prof), where native frames reach them\n", pid, why);
		return -ENOTSUP;
	}
	proc->kind = V8_SUPPORTED;
	return 0;
}

/* Bounds one tick's work; the rest are retried on the next ticks. */
#define V8_RETRIES_PER_CALL 8

struct retry_due {
	pid_t pids[V8_RETRIES_PER_CALL];
	size_t nr;
};

static void process__collect_due(const void *node, VISIT which, void *ctx)
{
	const struct v8_process *proc = *(struct v8_process *const *)node;
	struct retry_due *due = ctx;

	if ((which == postorder || which == leaf) && proc->kind == V8_UNKNOWN &&
	    due->nr < V8_RETRIES_PER_CALL && targetfs__retry_due(proc->unknown_ns))
		due->pids[due->nr++] = proc->pid;
}

void v8__retry_missed(struct v8 *v8)
{
	struct retry_due due = {};
	size_t i;

	if (!v8->nr_unknown)
		return;
	twalk_r(v8->processes, process__collect_due, &due);
	for (i = 0; i < due.nr; i++)
		v8__attach(v8, due.pids[i]);
}

bool v8__active(struct v8 *v8, pid_t pid)
{
	struct v8_process *proc = process__find(v8, pid);

	return proc && proc->kind == V8_SUPPORTED;
}

static const struct script_entry *script__get(struct v8_process *proc,
					      const struct v8_reader *reader, __u64 addr)
{
	struct script_entry key = { .addr = addr }, *entry, **node;

	node = tfind(&key, &proc->scripts, u64__cmp);
	if (node) {
		if (v8heap__same_script(reader, addr, &(*node)->script))
			return *node;
		entry = *node;
		tdelete(entry, &proc->scripts, u64__cmp);
		script__free(entry);
	}
	entry = calloc(1, sizeof(*entry));
	if (!entry)
		return NULL;
	cache_count__add(&script_count, 1);
	entry->addr = addr;
	v8heap__read_script(reader, addr, &entry->script);
	entry->file = process__intern(proc, entry->script.name);
	if (!tsearch(entry, &proc->scripts, u64__cmp)) {
		script__free(entry);
		return NULL;
	}
	return entry;
}

static void function__name(struct v8_process *proc, const struct v8_reader *reader,
			   struct function_entry *entry)
{
	const struct script_entry *script;
	struct v8_frame *frame = &entry->frame;

	frame->function = process__intern(proc, entry->shared.name[0] ? entry->shared.name
								       : "(anonymous)");
	frame->file = NULL;
	frame->line = frame->column = -1;
	if (!entry->shared.script)
		return;
	script = script__get(proc, reader, entry->shared.script);
	if (!script || !script->script.valid)
		return;
	frame->file = script->file;
	if (!v8heap__position(&script->script, entry->shared.start_position, &frame->line,
			      &frame->column))
		frame->line = frame->column = -1;
}

/* SharedFunctionInfos are immutable once compiled, so one read per address serves every later
 * stall; the stamp check catches an address reused after a GC. */
static const struct function_entry *function__get(struct v8_process *proc, __u64 addr)
{
	struct v8_reader reader = { .read = remote__reader, .ctx = &proc->pid, .meta = &proc->meta };
	struct function_entry key = { .addr = addr }, *entry, **node;

	node = tfind(&key, &proc->functions, u64__cmp);
	if (node) {
		if (v8heap__same_shared(&reader, addr, &(*node)->shared))
			return *node;
		entry = *node;
		tdelete(entry, &proc->functions, u64__cmp);
		function__free(entry);
		proc->nr_functions--;
	}
	entry = calloc(1, sizeof(*entry));
	if (!entry)
		return NULL;
	cache_count__add(&function_count, 1);
	entry->addr = addr;
	v8heap__read_shared(&reader, addr, &entry->shared);
	if (entry->shared.valid)
		function__name(proc, &reader, entry);
	if (!tsearch(entry, &proc->functions, u64__cmp)) {
		function__free(entry);
		return NULL;
	}
	proc->nr_functions++;
	return entry;
}

int v8__resolve(struct v8 *v8, pid_t pid, __u64 js_stack_id, struct v8_frame *frames, int max)
{
	struct v8_process *proc = process__find(v8, pid);
	const struct function_entry *entry;
	struct js_stack stack;
	__u32 i;
	int nr = 0;

	if (!proc || proc->kind != V8_SUPPORTED || !js_stack_id ||
	    bpf_map_lookup_elem(v8->maps.stacks_fd, &js_stack_id, &stack))
		return 0;
	for (i = 0; i < stack.depth && i < MAX_JS_DEPTH && nr < max; i++) {
		entry = function__get(proc, stack.shared[i]);
		if (entry && entry->shared.valid && entry->frame.function)
			frames[nr++] = entry->frame;
	}
	return nr;
}

void v8__trim(struct v8 *v8, pid_t pid)
{
	struct v8_process *proc = process__find(v8, pid);

	if (proc && (proc->nr_functions > MAX_FUNCTIONS || proc->string_bytes > MAX_STRING_BYTES))
		process__clear(proc);
}

void v8__forget(struct v8 *v8, pid_t pid)
{
	struct v8_process *proc = process__find(v8, pid);

	if (!proc)
		return;
	v8->nr_unknown -= proc->kind == V8_UNKNOWN;
	tdelete(proc, &v8->processes, pid__cmp);
	bpf_map_delete_elem(v8->maps.procs_fd, &pid);
	process__free(proc);
}
