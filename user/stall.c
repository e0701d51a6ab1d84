// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>
#include "stall.h"
#include "targets.h"

static int stack__read(const struct stall_resolver *resolver, __u64 id, __u64 ips[MAX_STACK_DEPTH])
{
	int depth;

	if (!id)
		return 0;
	if (bpf_map_lookup_elem(resolver->stacks_map_fd, &id, ips)) {
		__atomic_fetch_add(resolver->stacks_evicted, 1, __ATOMIC_RELAXED);
		return 0;
	}
	for (depth = 0; depth < MAX_STACK_DEPTH && ips[depth]; depth++)
		;
	return depth;
}

/* The innermost kernel frames of a captured stack are the BPF program and the tracepoint glue
 * that ran it: not where the loop thread was. */
static bool kernel_frame__is_tracing(const char *symbol)
{
	static const char *const prefixes[] = { "bpf_", "__bpf_", "__traceiter_", "perf_trace_" };
	size_t i;

	for (i = 0; symbol && i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (!strncmp(symbol, prefixes[i], strlen(prefixes[i])))
			return true;
	return false;
}

static void stack__resolve_kernel(const struct stall_resolver *resolver, __u64 id,
				  struct stack_report *stack)
{
	__u64 ips[MAX_STACK_DEPTH], offset;
	int i, depth = stack__read(resolver, id, ips);
	const char *symbol;

	stack->nr_kernel = 0;
	for (i = 0; i < depth; i++) {
		struct kernel_frame *frame = &stack->kernel[stack->nr_kernel];

		symbol = syms__kernel(resolver->syms, ips[i], &offset);
		if (!stack->nr_kernel && kernel_frame__is_tracing(symbol))
			continue;
		frame->address = ips[i];
		frame->symbol = symbol;
		frame->offset = offset;
		stack->nr_kernel++;
	}
}

/*
 * JIT code is in no ELF file, so it has no symbol (its module may still be known: V8 maps
 * node's builtins a second time next to its JIT code, and that module's range spans it); V8's
 * perf map names it. The map is re-read once per report, at the first frame that needs it:
 * its strings stay valid until the next refresh.
 */
static struct jsmap *stall__jsmap(const struct stall_resolver *resolver, __u32 pid,
				  bool *refreshed)
{
	/* Created here so that processes without JIT code cost nothing and the owner need not
	 * know; the resolver is the caller's own object, const to stack resolution only. */
	struct stall_resolver *owner = (struct stall_resolver *)resolver;

	if (!owner->jsmap)
		owner->jsmap = jsmap__new();
	if (owner->jsmap && !*refreshed) {
		jsmap__refresh(owner->jsmap, pid);
		*refreshed = true;
	}
	return owner->jsmap;
}

static void stack__resolve_user(const struct stall_resolver *resolver, __u32 pid, __u64 id,
				struct stack_report *stack, bool *js_refreshed)
{
	__u64 ips[MAX_STACK_DEPTH];
	int i, depth = stack__read(resolver, id, ips);
	struct jsmap_sym js;

	stack->nr_js = 0;
	for (i = 0; i < depth; i++) {
		struct user_frame *frame = &stack->user[i];
		struct user_sym sym = {};
		/* Callers' addresses are return addresses: the call is the byte before. */
		__u64 lookup = i ? ips[i] - 1 : ips[i];

		frame->address = ips[i];
		frame->resolved = syms__user(resolver->syms, pid, lookup, &sym) == 0;
		frame->symbol = sym.symbol;
		frame->module = sym.module;
		frame->offset = sym.offset + (lookup != ips[i]);
		if (sym.symbol ||
		    jsmap__lookup(stall__jsmap(resolver, pid, js_refreshed), pid, lookup, &js))
			continue;
		frame->resolved = true;
		frame->symbol = js.name;
		frame->module = js.map_path;
		frame->offset = js.offset + (lookup != ips[i]);
		if (js.js)
			stack->js[stack->nr_js++] = (struct js_frame){
				.function = js.name, .file = js.file, .line = js.line, .column = js.column,
			};
	}
	stack->nr_user = depth;
}

/*
 * A process whose V8 frames are walked gets all its "js" frames from the walk: interpreted
 * functions included, and one source for every stack. The perf map, if any, still names the
 * JIT code among the native frames.
 */
static void stack__resolve_js(const struct stall_resolver *resolver, __u32 pid, __u64 id,
			      struct stack_report *stack)
{
	struct v8_frame frames[MAX_JS_DEPTH];
	int i, nr;

	if (!v8__active(resolver->v8, pid))
		return;
	nr = v8__resolve(resolver->v8, pid, id, frames, MAX_JS_DEPTH);
	for (i = 0; i < nr; i++)
		stack->js[i] = (struct js_frame){
			.function = frames[i].function, .file = frames[i].file,
			.line = frames[i].line, .column = frames[i].column,
		};
	stack->nr_js = nr;
}

static int stack__cmp_heaviest(const void *a, const void *b)
{
	const struct stack_report *left = a, *right = b;

	return left->ns < right->ns ? 1 : left->ns > right->ns ? -1 : 0;
}

/* The coroutine an asyncio task runs is the outermost `async def` frame of its stack. */
static const char *stall__task(const struct stall_report *report)
{
	const struct python_stack *python;
	int i, depth;

	for (i = 0; i < report->nr_stacks; i++) {
		python = &report->stacks[i].python;
		if (!report->stacks[i].has_python)
			continue;
		for (depth = python->depth - 1; depth >= 0; depth--)
			if (python->frames[depth].coroutine)
				return python->frames[depth].qualname ? python->frames[depth].qualname
								      : python->frames[depth].function;
	}
	return NULL;
}

static bool python__same(const struct python_stack *a, const struct python_stack *b)
{
	int i;

	if (a->depth != b->depth || a->truncated != b->truncated)
		return false;
	/* Names come from one cache per process: one code object, one string. */
	for (i = 0; i < a->depth; i++)
		if (a->frames[i].file != b->frames[i].file ||
		    a->frames[i].function != b->frames[i].function ||
		    a->frames[i].line != b->frames[i].line)
			return false;
	return true;
}

static bool str__same(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

/* Names from a perf map: one string per entry, and one function has several (one per tier). */
static bool js__same(const struct stack_report *a, const struct stack_report *b)
{
	int i;

	if (a->nr_js != b->nr_js)
		return false;
	for (i = 0; i < a->nr_js; i++)
		if (!str__same(a->js[i].function, b->js[i].function) ||
		    !str__same(a->js[i].file, b->js[i].file) || a->js[i].line != b->js[i].line)
			return false;
	return true;
}

/*
 * On-CPU samples of one Python line land on many native stacks and instruction offsets: the
 * interpreter's C frames move under it, and without frame pointers they unwind to noise. One
 * entry per Python stack is what a reader wants; the heaviest sample's native stack stays.
 * The same for JavaScript stacks: the native code a JS function calls (crypto, JSON) varies.
 */
static void stacks__merge_on_cpu(struct stall_report *report)
{
	struct stack_report *kept, *stack;
	int i, j, nr = 0;

	for (i = 0; i < report->nr_stacks; i++) {
		stack = &report->stacks[i];
		for (j = 0; j < nr; j++) {
			kept = &report->stacks[j];
			if (stack->kind == STACK_ON_CPU && kept->kind == STACK_ON_CPU &&
			    ((stack->has_python && kept->has_python &&
			      python__same(&stack->python, &kept->python)) ||
			     (!stack->has_python && !kept->has_python && stack->nr_js &&
			      js__same(stack, kept)))) {
				kept->ns += stack->ns;
				kept->samples += stack->samples;
				break;
			}
		}
		if (j == nr && nr++ != i)
			report->stacks[nr - 1] = *stack;
	}
	report->nr_stacks = nr;
}

static void stacks__resolve(const struct stall_resolver *resolver, __u32 pid,
			    const struct stack_slot *slots, __u32 nr_slots,
			    struct stall_report *report)
{
	bool js_refreshed = false;
	__u32 i;

	/* The previous report is printed: no frame points at a replaced code object any more. */
	python__release_codes(resolver->python);
	report->nr_stacks = 0;
	v8__trim(resolver->v8, pid);
	for (i = 0; i < nr_slots && i < MAX_STACK_SLOTS; i++) {
		struct stack_report *stack = &report->stacks[report->nr_stacks];

		if (!slots[i].ns)
			continue;
		stack->kind = slots[i].kind;
		stack->reason = slots[i].reason;
		stack->syscall = slots[i].syscall;
		stack->samples = slots[i].samples;
		stack->ns = slots[i].ns;
		/* The GIL's own record of its holder is exact; the waker may be a timer. It names
		 * the waiting thread itself while the GIL is changing hands (the waiter dropped it
		 * for a syscall and another thread is just taking it): no holder to report then. */
		stack->gil_holder_tid = slots[i].gil_holder && resolver->python ?
			python__thread_tid(resolver->python, pid, slots[i].gil_holder) : 0;
		if (stack->gil_holder_tid == report->tid)
			stack->gil_holder_tid = 0;
		if (!stack->gil_holder_tid)
			stack->gil_holder_tid = slots[i].waker_tid;
		stack->gil_holder_comm[0] = '\0';
		if (stack->gil_holder_tid)
			task__comm(pid, stack->gil_holder_tid, stack->gil_holder_comm);
		stack->has_python = resolver->python &&
				    python__resolve(resolver->python, pid, slots[i].py_stack_id,
						    &stack->python);
		stack__resolve_kernel(resolver, slots[i].kernel_stack_id, stack);
		stack__resolve_user(resolver, pid, slots[i].user_stack_id, stack, &js_refreshed);
		stack__resolve_js(resolver, pid, slots[i].js_stack_id, stack);
		report->nr_stacks++;
	}
	stacks__merge_on_cpu(report);
	qsort(report->stacks, report->nr_stacks, sizeof(report->stacks[0]), stack__cmp_heaviest);
	report->task_coroutine = stall__task(report);
}

void stall__from_record(const struct stall_resolver *resolver, const struct stall_record *record,
			struct stall_report *report)
{
	report->in_progress = false;
	report->pid = record->pid;
	report->tid = record->tid;
	memcpy(report->comm, record->comm, sizeof(report->comm));
	report->comm[sizeof(report->comm) - 1] = '\0';
	report->start_ns = record->start_ns;
	report->duration_ns = record->duration_ns;
	report->on_cpu_ns = record->on_cpu_ns;
	report->off_cpu_ns = record->off_cpu_ns;
	report->runqueue_ns = record->runqueue_ns;
	report->untracked_ns = record->untracked_stack_ns;
	stacks__resolve(resolver, record->pid, record->slots, record->nr_slots, report);
}

void stall__from_thread(const struct stall_resolver *resolver, __u32 tid,
			const struct loop_thread *thread, __u64 now, struct stall_report *report)
{
	struct stack_slot slots[MAX_STACK_SLOTS];
	__u64 since_change = now > thread->last_change_ns ? now - thread->last_change_ns : 0;

	memcpy(slots, thread->slots, sizeof(slots));
	report->in_progress = true;
	report->pid = thread->pid;
	report->tid = tid;
	task__comm(thread->pid, tid, report->comm);
	report->start_ns = thread->busy_start_ns;
	report->duration_ns = now - thread->busy_start_ns;
	report->on_cpu_ns = thread->on_cpu_ns;
	report->off_cpu_ns = thread->off_cpu_ns;
	report->runqueue_ns = thread->runqueue_ns;
	report->untracked_ns = thread->untracked_stack_ns;
	/* The BPF side charges time at state changes; a thread blocked since then has the
	 * interval up to now still to charge. */
	switch (thread->run_state) {
	case RUN_ON_CPU:
		report->on_cpu_ns += since_change;
		break;
	case RUN_RUNNABLE:
		report->runqueue_ns += since_change;
		break;
	default:
		report->off_cpu_ns += since_change;
		if (thread->current_slot < MAX_STACK_SLOTS)
			slots[thread->current_slot].ns += since_change;
	}
	stacks__resolve(resolver, thread->pid, slots, thread->nr_slots, report);
}
