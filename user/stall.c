// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>
#include "in_app.h"
#include "stall.h"
#include "syscall_names.h"
#include "targets.h"
#include "util.h"

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

	for (i = 0; symbol && i < ARRAY_SIZE(prefixes); i++)
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

static void stack__resolve_user(const struct stall_resolver *resolver, __u32 pid, __u64 id,
				struct stack_report *stack)
{
	__u64 ips[MAX_STACK_DEPTH];
	int i, depth = stack__read(resolver, id, ips);
	struct lang_stack *lang = &stack->lang;
	struct lang_frame code;

	for (i = 0; i < depth; i++) {
		struct user_frame *frame = &stack->user[i];
		struct user_sym sym = {};
		/* Callers' addresses are return addresses: the call is the byte before. */
		__u64 lookup = i ? ips[i] - 1 : ips[i];

		frame->address = ips[i];
		frame->resolved = syms__user(resolver->syms, pid, lookup, &sym) == 0;
		code.runtime = NULL;
		/* JIT code is in no ELF file, so it has no symbol: its runtime may name it. */
		if (!sym.symbol &&
		    runtimes__name_code(&resolver->runtimes, pid, lookup, &sym, &code))
			frame->resolved = true;
		frame->symbol = sym.symbol;
		frame->module = sym.module;
		frame->offset = sym.offset + (lookup != ips[i]);
		if (!code.runtime || (lang->runtime && lang->runtime != code.runtime) ||
		    lang->depth >= MAX_LANG_DEPTH)
			continue;
		lang->runtime = code.runtime;
		lang->frames[lang->depth++] = code;
	}
	stack->nr_user = depth;
}

static int stack__cmp_heaviest(const void *a, const void *b)
{
	const struct stack_report *left = a, *right = b;

	return left->ns < right->ns ? 1 : left->ns > right->ns ? -1 : 0;
}

/* The coroutine an asyncio task runs is the outermost `async def` frame of its stack. */
static const char *frame__name(const struct lang_frame *frame)
{
	return frame->qualname ? frame->qualname : frame->function;
}

static const char *stall__task(const struct stall_report *report)
{
	const struct lang_stack *lang;
	int i, depth;

	for (i = 0; i < report->nr_stacks; i++) {
		lang = &report->stacks[i].lang;
		for (depth = lang->depth - 1; depth >= 0; depth--)
			if (lang->frames[depth].flags & LANG_FRAME_COROUTINE)
				return frame__name(&lang->frames[depth]);
	}
	return NULL;
}

/* The application's coroutine: the innermost `async def` of its own code, of the heaviest
 * stack that has one. */
static const char *stall__app_coroutine(const struct stall_report *report)
{
	const unsigned int app = LANG_FRAME_COROUTINE | LANG_FRAME_IN_APP;
	const struct lang_stack *lang;
	int i, depth;

	for (i = 0; i < report->nr_stacks; i++) {
		lang = &report->stacks[i].lang;
		for (depth = 0; depth < lang->depth; depth++)
			if ((lang->frames[depth].flags & app) == app)
				return frame__name(&lang->frames[depth]);
	}
	return NULL;
}

static bool str__same(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

/* Names come from caches (one string per code object) or from a perf map (one string per
 * entry, and one function has several, one per tier): compared as strings. */
static bool lang__same(const struct lang_stack *a, const struct lang_stack *b)
{
	int i;

	if (!a->runtime || a->runtime != b->runtime || a->depth != b->depth ||
	    a->truncated != b->truncated)
		return false;
	for (i = 0; i < a->depth; i++)
		if (!str__same(a->frames[i].function, b->frames[i].function) ||
		    !str__same(a->frames[i].file, b->frames[i].file) ||
		    a->frames[i].line != b->frames[i].line)
			return false;
	return true;
}

/*
 * On-CPU samples of one Python line land on many native stacks and instruction offsets: the
 * interpreter's C frames move under it, and without frame pointers they unwind to noise. One
 * entry per language stack is what a reader wants; the heaviest sample's native stack stays.
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
			    lang__same(&stack->lang, &kept->lang)) {
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

/* A sample stands for a whole sampling period of CPU time, part of which may have run before
 * the stall began (a stall with 0.3 ms on a CPU can meet one 10 ms sample): the on-CPU stacks
 * share out the stall's measured on-CPU time and never claim more. */
static void stacks__fit_on_cpu(struct stall_report *report)
{
	__u64 sampled = 0;
	int i;

	for (i = 0; i < report->nr_stacks; i++)
		if (report->stacks[i].kind == STACK_ON_CPU)
			sampled += report->stacks[i].ns;
	if (sampled <= report->on_cpu_ns)
		return;
	for (i = 0; i < report->nr_stacks; i++)
		if (report->stacks[i].kind == STACK_ON_CPU)
			report->stacks[i].ns = (__u64)((unsigned __int128)report->stacks[i].ns *
						       report->on_cpu_ns / sampled);
}

static struct hint_frame frame__hint_view(const struct lang_frame *frame)
{
	return (struct hint_frame){
		.function = frame->qualname ? frame->qualname : frame->function,
		.file = frame->file, .line = frame->line,
		.in_app = frame->flags & LANG_FRAME_IN_APP,
		.coroutine = frame->flags & LANG_FRAME_COROUTINE,
	};
}

/* The stack as the hint rules see it (hints.h), in the caller's arrays; false when it has no
 * language frames (no rule is about native-only stacks). */
static bool stack__hint_view(const struct stack_report *stack, struct hint_stack *view,
			     struct hint_frame *frames, struct hint_native *natives)
{
	int i;

	if (!stack->lang.runtime || !stack->lang.depth)
		return false;
	*view = (struct hint_stack){
		.runtime = stack->lang.runtime->name,
		.kind = stack->kind == STACK_ON_CPU ? HINT_ON_CPU : HINT_OFF_CPU,
		.reason = stack->reason, .syscall = syscall__name(stack->syscall),
		.nr_frames = stack->lang.depth, .frames = frames,
		.nr_natives = stack->nr_user, .natives = natives,
	};
	for (i = 0; i < stack->lang.depth; i++)
		frames[i] = frame__hint_view(&stack->lang.frames[i]);
	for (i = 0; i < stack->nr_user; i++)
		natives[i] = (struct hint_native){ .module = stack->user[i].module,
						   .symbol = stack->user[i].symbol };
	return true;
}

/*
 * What to do about the stall: the hint of the heaviest stack a rule matches, and the site to
 * count it at (sites.h): that stack's frame to change, else the heaviest stack's.
 */
static void stall__advise(const struct stall_resolver *resolver, struct stall_report *report)
{
	struct hint_frame frames[MAX_LANG_DEPTH];
	struct hint_native natives[MAX_STACK_DEPTH];
	const struct stack_report *stack, *site_stack = NULL;
	char holder[64], source[256];
	struct hint_frame holder_frame;
	struct hint_stack view;
	int i, app = -1;

	report->hint = NULL;
	report->hint_text[0] = '\0';
	report->site = (struct site_key){ .line = -1 };
	for (i = 0; i < report->nr_stacks && !report->hint; i++) {
		stack = &report->stacks[i];
		if (!stack__hint_view(stack, &view, frames, natives))
			continue;
		report->hint = hint__match(&view);
		if (!site_stack || report->hint) {
			site_stack = stack;
			app = hint__app_frame(&view);
			if (app >= 0)
				report->site = (struct site_key){
					.function = frames[app].function, .file = frames[app].file,
					.line = frames[app].line,
				};
		}
		if (!report->hint)
			continue;
		if (stack->gil_holder_tid) {
			snprintf(holder, sizeof(holder), "thread %u (%s)", stack->gil_holder_tid,
				 stack->gil_holder_comm);
			view.holder = holder;
		}
		if (stack->gil_holder_frame.runtime) {
			holder_frame = frame__hint_view(&stack->gil_holder_frame);
			view.holder_frame = &holder_frame;
		}
		/* The line the application's frame runs is the concrete call (runtimes whose
		 * frames carry where the function starts have no such text). */
		if (app >= 0 && frames[app].in_app &&
		    !runtimes__source_line(&resolver->runtimes, report->pid, &stack->lang.frames[app],
					   source, sizeof(source)))
			view.source = source;
		hint__format(report->hint, &view, report->hint_text, sizeof(report->hint_text));
	}
	/* No language frames: the innermost native function and its module. */
	if (!site_stack && report->nr_stacks) {
		site_stack = &report->stacks[0];
		for (i = 0; i < site_stack->nr_user && !report->site.function; i++)
			report->site = (struct site_key){ .function = site_stack->user[i].symbol,
							  .file = site_stack->user[i].module,
							  .line = -1 };
	}
	if (site_stack) {
		report->site.kind = site_stack->kind;
		report->site.reason = site_stack->reason;
	}
	report->site.hint_id = report->hint ? report->hint->id : NULL;
}

static void stacks__resolve(const struct stall_resolver *resolver, __u32 pid,
			    const struct stack_slot *slots, __u32 nr_slots,
			    struct stall_report *report)
{
	__u32 i;

	runtimes__report_begin(&resolver->runtimes, pid);
	report->nr_stacks = 0;
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
		stack->gil_holder_tid = runtimes__lock_holder(&resolver->runtimes, pid, &slots[i],
							      &stack->gil_holder_frame);
		if (stack->gil_holder_tid == report->tid)
			stack->gil_holder_tid = 0;
		/* The waker's frame is not known. */
		if (!stack->gil_holder_tid)
			stack->gil_holder_frame.runtime = NULL;
		if (!stack->gil_holder_tid)
			stack->gil_holder_tid = slots[i].waker_tid;
		stack->gil_holder_comm[0] = '\0';
		if (stack->gil_holder_tid)
			task__comm(pid, stack->gil_holder_tid, stack->gil_holder_comm);
		stack->lang.runtime = NULL;
		stack->lang.truncated = false;
		stack->lang.depth = 0;
		stack__resolve_kernel(resolver, slots[i].kernel_stack_id, stack);
		stack__resolve_user(resolver, pid, slots[i].user_stack_id, stack);
		/* A walked stack replaces the frames the native pass found. */
		runtimes__resolve(&resolver->runtimes, pid, &slots[i], &stack->lang);
		report->nr_stacks++;
	}
	stacks__merge_on_cpu(report);
	stacks__fit_on_cpu(report);
	qsort(report->stacks, report->nr_stacks, sizeof(report->stacks[0]), stack__cmp_heaviest);
	report->task_coroutine = stall__task(report);
	report->app_coroutine = stall__app_coroutine(report);
	report->task = NULL;
	for (i = 0; i < (__u32)report->nr_stacks && !report->task; i++)
		if (report->stacks[i].lang.task.known)
			report->task = &report->stacks[i].lang.task;
	stall__advise(resolver, report);
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
	report->waiting_known = record->waiting_known;
	report->ready_fds = record->ready_fds;
	report->connections = record->connections;
	stacks__resolve(resolver, record->pid, record->slots, record->nr_slots, report);
}

void stall__from_thread(const struct stall_resolver *resolver, __u32 tid,
			const struct loop_thread *thread, __u64 now, struct stall_report *report)
{
	struct stack_slot slots[MAX_STACK_SLOTS];
	__u64 since_change = now > thread->last_change_ns ? now - thread->last_change_ns : 0;
	__u64 run_delay, queued = 0;

	memcpy(slots, thread->slots, sizeof(slots));
	report->in_progress = true;
	report->waiting_known = false;
	report->pid = thread->pid;
	report->tid = tid;
	task__comm(thread->pid, tid, report->comm);
	report->start_ns = thread->busy_start_ns;
	report->duration_ns = now - thread->busy_start_ns;
	report->on_cpu_ns = thread->on_cpu_ns;
	report->off_cpu_ns = thread->off_cpu_ns;
	report->runqueue_ns = thread->runqueue_ns;
	report->untracked_ns = thread->untracked_stack_ns;
	/* The BPF side charges time at the events it sees; the interval since the last one is
	 * still to charge: a blocked thread is off-CPU, an active one ran except for the run delay
	 * the kernel added since. */
	if (thread->run_state == RUN_BLOCKED) {
		report->off_cpu_ns += since_change;
		if (thread->current_slot < MAX_STACK_SLOTS)
			slots[thread->current_slot].ns += since_change;
	} else {
		if (!task__run_delay(thread->pid, tid, &run_delay) &&
		    run_delay > thread->seen_run_delay_ns)
			queued = run_delay - thread->seen_run_delay_ns;
		if (queued > since_change)
			queued = since_change;
		/* Woken out of the loop's poll: that wait for a CPU was the idle loop's (BPF's
		 * thread__account() moves the start the same way). */
		if (thread->run_state == RUN_WOKEN_IDLE) {
			report->start_ns += queued;
			report->duration_ns -= queued;
			since_change -= queued;
			queued = 0;
		}
		report->runqueue_ns += queued;
		report->on_cpu_ns += since_change - queued;
	}
	stacks__resolve(resolver, thread->pid, slots, thread->nr_slots, report);
}
