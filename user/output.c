// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <string.h>
#include <time.h>
#include "hist.h"
#include "output.h"
#include "syscall_names.h"

#define NS_PER_MS 1e6
#define NS_PER_SEC 1000000000LL
/* A person reads the top of a stack: the text output keeps this many frames and stacks. */
#define TEXT_MAX_FRAMES 24
#define TEXT_MAX_STACKS 3

static const char *const reason_names[] = {
	[REASON_NONE] = NULL,	  [REASON_SLEEP] = "sleep", [REASON_NET] = "net",
	[REASON_DISK] = "disk",	  [REASON_LOCK] = "lock",   [REASON_OTHER] = "other",
	[REASON_GIL] = "gil",
};

static const char *reason__name(__u32 reason)
{
	return reason < sizeof(reason_names) / sizeof(reason_names[0]) ? reason_names[reason] : NULL;
}

static double ms(__u64 ns)
{
	return (double)ns / NS_PER_MS;
}

int output__init(struct output *output, const char *path, bool json, const char *folded_path)
{
	struct timespec mono, real;

	output->json = json;
	output->file = path ? fopen(path, "w") : stdout;
	if (!output->file)
		return -errno;
	if (folded_path) {
		output->folded = fopen(folded_path, "w");
		if (!output->folded)
			return -errno;
		setvbuf(output->folded, NULL, _IOLBF, 0);
	}
	/* Line-buffered: each event reaches a reader (a pipe, a log shipper) as it happens. */
	setvbuf(output->file, NULL, _IOLBF, 0);
	clock_gettime(CLOCK_MONOTONIC, &mono);
	clock_gettime(CLOCK_REALTIME, &real);
	output->monotonic_to_realtime_ns = (real.tv_sec - mono.tv_sec) * NS_PER_SEC +
					   (real.tv_nsec - mono.tv_nsec);
	return 0;
}

void output__close(struct output *output)
{
	if (output->file && output->file != stdout)
		fclose(output->file);
	if (output->folded)
		fclose(output->folded);
	output->file = NULL;
	output->folded = NULL;
}

/* Length of the valid UTF-8 sequence at c (RFC 3629: no overlongs, surrogates or values above
 * U+10FFFF), 0 if it is not one. */
static int utf8__valid(const unsigned char *c)
{
	int len, i;
	unsigned int cp;

	if (*c < 0x80)
		return 1;
	if (*c >= 0xc2 && *c <= 0xdf)
		len = 2, cp = *c & 0x1f;
	else if (*c >= 0xe0 && *c <= 0xef)
		len = 3, cp = *c & 0x0f;
	else if (*c >= 0xf0 && *c <= 0xf4)
		len = 4, cp = *c & 0x07;
	else
		return 0;
	for (i = 1; i < len; i++) {
		if ((c[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (c[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

/* RFC 8259 string: the target controls comm, file and symbol names, so escape everything
 * needed, and replace bytes that are not UTF-8 (a JSON text must be) with U+FFFD. */
static void json__string(FILE *file, const char *text)
{
	const unsigned char *c;
	int len;

	if (!text) {
		fputs("null", file);
		return;
	}
	fputc('"', file);
	for (c = (const unsigned char *)text; *c; c++) {
		if (*c >= 0x80) {
			len = utf8__valid(c);
			if (!len) {
				fputs("\ufffd", file);
				continue;
			}
			fwrite(c, 1, len, file);
			c += len - 1;
			continue;
		}
		switch (*c) {
		case '"': fputs("\\\"", file); break;
		case '\\': fputs("\\\\", file); break;
		case '\n': fputs("\\n", file); break;
		case '\r': fputs("\\r", file); break;
		case '\t': fputs("\\t", file); break;
		default:
			if (*c < 0x20 || *c == 0x7f)
				fprintf(file, "\\u%04x", *c);
			else
				fputc(*c, file);
		}
	}
	fputc('"', file);
}

static void format_time(const struct output *output, __u64 monotonic_ns, char *buf, size_t size,
			bool iso)
{
	__s64 wall_ns = (__s64)monotonic_ns + output->monotonic_to_realtime_ns;
	time_t seconds = wall_ns / NS_PER_SEC;
	long micros = (wall_ns % NS_PER_SEC) / 1000;
	struct tm tm;
	size_t len;

	if (iso) {
		gmtime_r(&seconds, &tm);
		len = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(buf + len, size - len, ".%06ldZ", micros);
	} else {
		localtime_r(&seconds, &tm);
		len = strftime(buf, size, "%H:%M:%S", &tm);
		snprintf(buf + len, size - len, ".%03ld", micros / 1000);
	}
}

static void json__python(FILE *file, const struct python_stack *python)
{
	const struct python_frame *frame;
	int i;

	fputs(",\"python\":[", file);
	for (i = 0; i < python->depth; i++) {
		frame = &python->frames[i];
		fputs(i ? ",{\"function\":" : "{\"function\":", file);
		json__string(file, frame->function);
		fputs(",\"qualname\":", file);
		json__string(file, frame->qualname);
		fputs(",\"file\":", file);
		json__string(file, frame->file);
		if (frame->line >= 0)
			fprintf(file, ",\"line\":%d}", frame->line);
		else
			fputs(",\"line\":null}", file);
	}
	fprintf(file, "],\"truncated\":%s", python->truncated ? "true" : "false");
}

static void json__js(FILE *file, const struct stack_report *stack)
{
	const struct js_frame *frame;
	int i;

	fputs(",\"js\":[", file);
	for (i = 0; i < stack->nr_js; i++) {
		frame = &stack->js[i];
		fputs(i ? ",{\"function\":" : "{\"function\":", file);
		json__string(file, frame->function);
		fputs(",\"file\":", file);
		json__string(file, frame->file);
		if (frame->line >= 0)
			fprintf(file, ",\"line\":%d", frame->line);
		else
			fputs(",\"line\":null", file);
		if (frame->column >= 0)
			fprintf(file, ",\"column\":%d}", frame->column);
		else
			fputs(",\"column\":null}", file);
	}
	fputc(']', file);
}

static void json__stack(FILE *file, const struct stack_report *stack)
{
	int i;

	fprintf(file, "{\"kind\":\"%s\",\"ms\":%.3f,\"samples\":%u,\"reason\":",
		stack->kind == STACK_ON_CPU ? "on_cpu" : "off_cpu", ms(stack->ns), stack->samples);
	json__string(file, reason__name(stack->reason));
	fputs(",\"syscall\":", file);
	json__string(file, syscall__name(stack->syscall));
	if (stack->reason == REASON_GIL && stack->gil_holder_tid) {
		fprintf(file, ",\"gil_holder\":{\"tid\":%u,\"comm\":", stack->gil_holder_tid);
		json__string(file, stack->gil_holder_comm);
		fputc('}', file);
	}
	if (stack->has_python)
		json__python(file, &stack->python);
	if (stack->nr_js)
		json__js(file, stack);
	fputs(",\"kernel\":[", file);
	for (i = 0; i < stack->nr_kernel; i++) {
		fputs(i ? ",{\"symbol\":" : "{\"symbol\":", file);
		json__string(file, stack->kernel[i].symbol);
		fputc('}', file);
	}
	fputs("],\"user\":[", file);
	for (i = 0; i < stack->nr_user; i++) {
		const struct user_frame *frame = &stack->user[i];

		fputs(i ? ",{\"symbol\":" : "{\"symbol\":", file);
		json__string(file, frame->symbol);
		fputs(",\"module\":", file);
		json__string(file, frame->module && frame->module[0] ? frame->module : NULL);
		if (frame->resolved)
			fprintf(file, ",\"offset\":%llu", (unsigned long long)frame->offset);
		else
			fputs(",\"offset\":null", file);
		fprintf(file, ",\"address\":\"0x%llx\"}", (unsigned long long)frame->address);
	}
	fputs("]}", file);
}

/* ,"cgroup":S,"container_id":S: null when the process or its container is not known. */
static void json__labels(FILE *file, const struct process_info *process)
{
	fputs(",\"cgroup\":", file);
	json__string(file, process ? process->cgroup : NULL);
	fputs(",\"container_id\":", file);
	json__string(file, process && process->container_id[0] ? process->container_id : NULL);
}

static void json__stall(const struct output *output, const struct stall_report *report,
			const struct process_info *process)
{
	FILE *file = output->file;
	char when[64];
	int i;

	format_time(output, report->start_ns, when, sizeof(when), true);
	fprintf(file, "{\"event\":\"%s\",\"time\":\"%s\",\"pid\":%u,\"tid\":%u,\"comm\":",
		report->in_progress ? "stall_progress" : "stall", when, report->pid, report->tid);
	json__string(file, report->comm);
	json__labels(file, process);
	fprintf(file, ",\"duration_ms\":%.3f,\"on_cpu_ms\":%.3f,\"off_cpu_ms\":%.3f,\"runqueue_ms\":%.3f,",
		ms(report->duration_ns), ms(report->on_cpu_ns), ms(report->off_cpu_ns),
		ms(report->runqueue_ns));
	if (report->task_coroutine) {
		fputs("\"task\":{\"coroutine\":", file);
		json__string(file, report->task_coroutine);
		fputs("},", file);
	} else {
		fputs("\"task\":null,", file);
	}
	fprintf(file, "\"untracked_ms\":%.3f,\"stacks\":[", ms(report->untracked_ns));
	for (i = 0; i < report->nr_stacks; i++) {
		if (i)
			fputc(',', file);
		json__stack(file, &report->stacks[i]);
	}
	fputs("]}\n", file);
}

/*
 * pyleak's and Python's own traceback look: outermost call first, the blocking call last. A
 * person wants the task's code, so the event loop's own frames above the outermost coroutine
 * are summed up in one line (JSON keeps them all).
 */
static void text__python(FILE *file, __u32 pid, const struct python_stack *python)
{
	const struct python_frame *frame;
	char source[256];
	int i, start = python->depth - 1;

	while (start >= 0 && !python->frames[start].coroutine)
		start--;
	if (start < 0)
		start = python->depth - 1;
	if (python->truncated)
		fprintf(file, "    (outer Python frames not read)\n");
	if (start < python->depth - 1)
		fprintf(file, "    (%d event-loop frames)\n", python->depth - 1 - start);
	for (i = start; i >= 0; i--) {
		frame = &python->frames[i];
		fprintf(file, "    File \"%s\", line %d, in %s\n", frame->file, frame->line,
			frame->qualname ? frame->qualname : frame->function);
		if (!python__source_line(pid, frame->file, frame->line, source, sizeof(source)))
			fprintf(file, "      %s\n", source);
	}
}

static bool js_frame__is_node(const struct js_frame *frame)
{
	return frame->file && !strncmp(frame->file, "node:", strlen("node:"));
}

/*
 * Node's own look, innermost first; the line is where the function starts. As for Python's
 * event loop, the run of node's own frames at the outer end (the HTTP parser, EventEmitter,
 * timers) is summed up in one line when code of the program is above it (JSON keeps them all).
 */
static void text__js(FILE *file, const struct stack_report *stack)
{
	const struct js_frame *frame;
	int i, end = stack->nr_js;

	while (end > 0 && js_frame__is_node(&stack->js[end - 1]))
		end--;
	if (!end)
		end = stack->nr_js;
	for (i = 0; i < end && i < TEXT_MAX_FRAMES; i++) {
		frame = &stack->js[i];
		if (!frame->file)
			fprintf(file, "    at %s\n", frame->function);
		else if (frame->line < 0)
			fprintf(file, "    at %s (%s)\n", frame->function, frame->file);
		else
			fprintf(file, "    at %s (%s:%d)\n", frame->function, frame->file, frame->line);
	}
	if (end > TEXT_MAX_FRAMES)
		fprintf(file, "    ... %d more JavaScript frames\n", end - TEXT_MAX_FRAMES);
	if (end < stack->nr_js)
		fprintf(file, "    (%d node frames)\n", stack->nr_js - end);
}

static void text__stack(FILE *file, __u32 pid, const struct stack_report *stack)
{
	const char *syscall = syscall__name(stack->syscall);
	int i;

	if (stack->kind == STACK_ON_CPU)
		fprintf(file, "  on-CPU %.1f ms (%u samples)\n", ms(stack->ns), stack->samples);
	else
		fprintf(file, "  off-CPU %.1f ms: %s%s%s\n", ms(stack->ns), reason__name(stack->reason),
			syscall ? " in " : "", syscall ? syscall : "");
	if (stack->reason == REASON_GIL && stack->gil_holder_tid)
		fprintf(file, "    GIL held by tid %u (%s)\n", stack->gil_holder_tid, stack->gil_holder_comm);
	if (stack->has_python)
		text__python(file, pid, &stack->python);
	if (stack->nr_js)
		text__js(file, stack);
	for (i = 0; i < stack->nr_user && i < TEXT_MAX_FRAMES; i++) {
		const struct user_frame *frame = &stack->user[i];

		if (frame->symbol)
			fprintf(file, "    %s+0x%llx (%s)\n", frame->symbol,
				(unsigned long long)frame->offset, frame->module);
		else if (frame->module)
			fprintf(file, "    0x%llx (%s+0x%llx)\n", (unsigned long long)frame->address,
				frame->module, (unsigned long long)frame->offset);
		else
			fprintf(file, "    0x%llx\n", (unsigned long long)frame->address);
	}
	if (stack->nr_user > TEXT_MAX_FRAMES)
		fprintf(file, "    ... %d more\n", stack->nr_user - TEXT_MAX_FRAMES);
	for (i = 0; i < stack->nr_kernel && i < TEXT_MAX_FRAMES; i++) {
		const struct kernel_frame *frame = &stack->kernel[i];

		if (frame->symbol)
			fprintf(file, "    [k] %s+0x%llx\n", frame->symbol,
				(unsigned long long)frame->offset);
		else
			fprintf(file, "    [k] 0x%llx\n", (unsigned long long)frame->address);
	}
}

static void text__stall(const struct output *output, const struct stall_report *report)
{
	FILE *file = output->file;
	char when[32];
	int i;

	format_time(output, report->start_ns, when, sizeof(when), false);
	fprintf(file, "%s %s pid %u tid %u (%s): %.1f ms: on-CPU %.1f ms, off-CPU %.1f ms, "
		      "runqueue %.1f ms\n",
		when, report->in_progress ? "STALL (still busy)" : "STALL", report->pid,
		report->tid, report->comm, ms(report->duration_ns), ms(report->on_cpu_ns),
		ms(report->off_cpu_ns), ms(report->runqueue_ns));
	if (report->task_coroutine)
		fprintf(file, "  in task running %s\n", report->task_coroutine);
	for (i = 0; i < report->nr_stacks && i < TEXT_MAX_STACKS; i++)
		text__stack(file, report->pid, &report->stacks[i]);
	fputc('\n', file);
}

/* A folded frame must not contain the format's separators. */
static void folded__frame(FILE *file, const char *text)
{
	for (; *text; text++)
		fputc(*text == ';' || *text == '\n' ? '_' : *text, file);
}

/*
 * One line per stack, root first: process; Python frames as "function (file:line)"; the
 * symbolized native frames; kernel frames marked "_[k]" (the flamegraph.pl convention).
 * Weighted by milliseconds, at least 1.
 */
static void folded__stack(FILE *file, const struct stall_report *report,
			  const struct stack_report *stack)
{
	const struct python_frame *py;
	char location[64];
	int i;

	folded__frame(file, report->comm);
	for (i = stack->has_python ? stack->python.depth - 1 : -1; i >= 0; i--) {
		py = &stack->python.frames[i];
		fputc(';', file);
		folded__frame(file, py->qualname ? py->qualname : py->function);
		fputs(" (", file);
		folded__frame(file, py->file);
		snprintf(location, sizeof(location), ":%d)", py->line);
		fputs(location, file);
	}
	for (i = stack->nr_user - 1; i >= 0; i--) {
		if (!stack->user[i].symbol)
			continue;
		fputc(';', file);
		folded__frame(file, stack->user[i].symbol);
	}
	for (i = stack->nr_kernel - 1; i >= 0; i--) {
		if (!stack->kernel[i].symbol)
			continue;
		fputc(';', file);
		folded__frame(file, stack->kernel[i].symbol);
		fputs("_[k]", file);
	}
	fprintf(file, " %llu\n", stack->ns >= NS_PER_MS ? (unsigned long long)ms(stack->ns) : 1ULL);
}

void output__stall(const struct output *output, const struct stall_report *report,
		   const struct process_info *process)
{
	int i;

	if (output->json)
		json__stall(output, report, process);
	else
		text__stall(output, report);
	/* Only finished stalls: progress reports of the same iteration would count it twice. */
	if (output->folded && !report->in_progress)
		for (i = 0; i < report->nr_stacks; i++)
			folded__stack(output->folded, report, &report->stacks[i]);
}

void output__summary(const struct output *output, const struct process_info *process,
		     const struct process_stats *stats)
{
	__u32 pid = process->pid;
	const char *comm = process->comm;
	double p50 = hist__quantile_ns(stats, 0.50), p99 = hist__quantile_ns(stats, 0.99);
	FILE *file = output->file;

	if (output->json) {
		fprintf(file, "{\"event\":\"summary\",\"pid\":%u,\"comm\":", pid);
		json__string(file, comm);
		json__labels(file, process);
		fprintf(file, ",\"iterations\":%llu,\"stalls\":%llu,\"lost_events\":%llu,"
			      "\"busy_ms\":{\"p50\":%.4f,\"p99\":%.4f,\"max\":%.3f}}\n",
			(unsigned long long)stats->iterations, (unsigned long long)stats->stalls,
			(unsigned long long)stats->lost_events, p50 / NS_PER_MS, p99 / NS_PER_MS,
			ms(stats->max_busy_ns));
		return;
	}
	fprintf(file, "pid %u (%s): %llu iterations, %llu stalls, %llu lost events; busy time "
		      "p50 %.3f ms, p99 %.3f ms, max %.1f ms\n",
		pid, comm, (unsigned long long)stats->iterations, (unsigned long long)stats->stalls,
		(unsigned long long)stats->lost_events, p50 / NS_PER_MS, p99 / NS_PER_MS,
		ms(stats->max_busy_ns));
}

void output__counters(const struct output *output, const struct counter *counters, int nr)
{
	int i;

	if (output->json) {
		fprintf(output->file, "{\"event\":\"run_summary\"");
		for (i = 0; i < nr; i++)
			fprintf(output->file, ",\"%s\":%llu", counters[i].name,
				(unsigned long long)*counters[i].value);
		fprintf(output->file, "}\n");
	}
	for (i = 0; i < nr; i++)
		if (*counters[i].value)
			fprintf(stderr, "loopstall: %llu %s\n", (unsigned long long)*counters[i].value,
				counters[i].text);
}
