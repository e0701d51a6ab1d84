// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <string.h>
#include <time.h>
#include "clock.h"
#include "hist.h"
#include "in_app.h"
#include "output.h"
#include "syscall_names.h"
#include "utf8.h"
#include "util.h"
#include "caches.h"

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
	return reason < ARRAY_SIZE(reason_names) ? reason_names[reason] : NULL;
}

static double ms(__u64 ns)
{
	return (double)ns / NS_PER_MS;
}

static int output__error(const char *path)
{
	int err = -errno;

	fprintf(stderr, "loopstall: %s: %s\n", path, strerror(-err));
	return err;
}

int output__init(struct output *output, const char *path, bool json, const char *folded_path)
{
	struct timespec mono, real;

	output->json = json;
	output->path = path;
	output->folded_path = folded_path;
	output->file = path ? fopen(path, "w") : stdout;
	if (!output->file)
		return output__error(path);
	if (folded_path) {
		output->folded = fopen(folded_path, "w");
		if (!output->folded)
			return output__error(folded_path);
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

const char *output__failed(const struct output *output)
{
	if (output->file && ferror(output->file))
		return output->path ? output->path : "standard output";
	if (output->folded && ferror(output->folded))
		return output->folded_path;
	return NULL;
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

/* Characters a terminal acts on or reorders: C1 controls (U+009B is CSI, as ESC [ is) and the
 * bidirectional overrides and isolates (text shown in another order than it is). */
static bool text__is_control(__u32 cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x200e || cp == 0x200f ||
	       (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

const char *output__text_safe(const char *text, char *buf, size_t size)
{
	const unsigned char *c;
	__u32 cp;
	size_t used = 0;
	char piece[16];
	int len, n;

	if (!text)
		text = "(null)";
	for (c = (const unsigned char *)text; *c; c += len) {
		/* A string ends at its NUL, which is no continuation byte. */
		len = (int)utf8__decode(c, 4, &cp);
		if (!len)
			n = snprintf(piece, sizeof(piece), "\\x%02x", *c), len = 1;
		else if (cp == '\\')
			n = snprintf(piece, sizeof(piece), "\\\\");
		else if (cp < 0x80 && text__is_control(cp))
			n = snprintf(piece, sizeof(piece), "\\x%02x", cp);
		else if (text__is_control(cp))
			n = snprintf(piece, sizeof(piece), "\\u%04x", cp);
		else
			n = snprintf(piece, sizeof(piece), "%.*s", len, (const char *)c);
		/* Room for the piece and, if anything follows, for the "..." that cuts it short. */
		if (used + (size_t)n + (c[len] ? 3 : 0) >= size) {
			snprintf(buf + used, size - used, "%s", size - used > 3 ? "..." : "");
			return buf;
		}
		memcpy(buf + used, piece, (size_t)n);
		used += (size_t)n;
	}
	buf[used] = '\0';
	return buf;
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
			/* A string ends at its NUL, which is no continuation byte. */
			len = utf8__sequence(c, 4);
			if (!len) {
				fputs(UTF8_REPLACEMENT, file);
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

/* The runtime's array under its own name, with the fields docs/json.md gives it. */
#define RUN_MAX_PACKAGES 4

bool output__frame_run(FILE *file, const struct lang_stack *stack, int first, int last)
{
	char packages[RUN_MAX_PACKAGES][64], package[64];
	int i, j, nr = 0, more = 0;

	if (first > last) {
		i = first, first = last, last = i;
	}
	if (last - first < 1)
		return false;
	for (i = first; i <= last; i++) {
		in_app__package(stack->frames[i].file, package, sizeof(package));
		for (j = 0; j < nr && strcmp(packages[j], package); j++)
			;
		if (j < nr)
			continue;
		if (nr == RUN_MAX_PACKAGES) {
			more = 1;
			continue;
		}
		snprintf(packages[nr++], sizeof(packages[0]), "%s", package);
	}
	fprintf(file, "    (%d frames in ", last - first + 1);
	for (j = 0; j < nr; j++)
		fprintf(file, "%s%s", j ? ", " : "", TEXT_SAFE(packages[j]));
	fprintf(file, "%s)\n", more ? ", ..." : "");
	return true;
}

int output__run_end(const struct lang_stack *stack, int i, int step, int limit)
{
	if (stack->frames[i].flags & LANG_FRAME_IN_APP)
		return i;
	while (i + step >= 0 && i + step < limit && !(stack->frames[i + step].flags & LANG_FRAME_IN_APP))
		i += step;
	return i;
}

/* One frame's object: the fields of the runtime's JSON array (docs/json.md). */
static void json__frame(FILE *file, const struct lang_frame *frame)
{
	unsigned int fields = frame->runtime->json;

	fputs("{\"function\":", file);
	json__string(file, frame->function);
	if (fields & RUNTIME_JSON_QUALNAME) {
		fputs(",\"qualname\":", file);
		json__string(file, frame->qualname);
	}
	fputs(",\"file\":", file);
	json__string(file, frame->file);
	if (frame->line >= 0)
		fprintf(file, ",\"line\":%d", frame->line);
	else
		fputs(",\"line\":null", file);
	if (fields & RUNTIME_JSON_COLUMN && frame->column >= 0)
		fprintf(file, ",\"column\":%d", frame->column);
	else if (fields & RUNTIME_JSON_COLUMN)
		fputs(",\"column\":null", file);
	fprintf(file, ",\"in_app\":%s}", frame->flags & LANG_FRAME_IN_APP ? "true" : "false");
}

static void json__lang(FILE *file, const struct lang_stack *lang)
{
	int i;

	fprintf(file, ",\"%s\":[", lang->runtime->name);
	for (i = 0; i < lang->depth; i++) {
		if (i)
			fputc(',', file);
		json__frame(file, &lang->frames[i]);
	}
	fputc(']', file);
	if (lang->runtime->json & RUNTIME_JSON_TRUNCATED)
		fprintf(file, ",\"truncated\":%s", lang->truncated ? "true" : "false");
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
		if (stack->gil_holder_frame.runtime) {
			fputs(",\"frame\":", file);
			json__frame(file, &stack->gil_holder_frame);
		}
		fputc('}', file);
	}
	if (stack->lang.runtime)
		json__lang(file, &stack->lang);
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
		fputs(",\"app_coroutine\":", file);
		json__string(file, report->app_coroutine);
		if (report->task) {
			fputs(",\"name\":", file);
			json__string(file, report->task->name);
			fputs(",\"awaited_by\":[", file);
			for (i = 0; i < report->task->nr_awaited_by; i++) {
				if (i)
					fputc(',', file);
				json__string(file, report->task->awaited_by[i]);
			}
			fputc(']', file);
		}
		fputs("},", file);
	} else {
		fputs("\"task\":null,", file);
	}
	if (report->hint) {
		fputs("\"hint\":{\"id\":", file);
		json__string(file, report->hint->id);
		fputs(",\"text\":", file);
		json__string(file, report->hint_text);
		fputs("},", file);
	} else {
		fputs("\"hint\":null,", file);
	}
	if (report->waiting_known)
		fprintf(file, "\"waiting\":{\"ready_fds\":%u,\"connections\":%u},",
			report->ready_fds, report->connections);
	else
		fputs("\"waiting\":null,", file);
	fprintf(file, "\"untracked_ms\":%.3f,\"stacks\":[", ms(report->untracked_ns));
	for (i = 0; i < report->nr_stacks; i++) {
		if (i)
			fputc(',', file);
		json__stack(file, &report->stacks[i]);
	}
	fputs("]}\n", file);
}

static void text__stack(FILE *file, __u32 pid, const struct stack_report *stack, bool all_frames)
{
	const struct lang_frame *holder = &stack->gil_holder_frame;
	const char *syscall = syscall__name(stack->syscall);
	int i;

	if (stack->kind == STACK_ON_CPU)
		fprintf(file, "  on-CPU %.1f ms (%u samples)\n", ms(stack->ns), stack->samples);
	else
		fprintf(file, "  off-CPU %.1f ms: %s%s%s\n", ms(stack->ns), reason__name(stack->reason),
			syscall ? " in " : "", syscall ? syscall : "");
	if (stack->reason == REASON_GIL && stack->gil_holder_tid) {
		fprintf(file, "    GIL held by tid %u (%s)", stack->gil_holder_tid,
			TEXT_SAFE(stack->gil_holder_comm));
		if (holder->runtime)
			fprintf(file, ", running %s (%s:%d)",
				TEXT_SAFE(holder->qualname ? holder->qualname : holder->function),
				TEXT_SAFE(holder->file ? holder->file : "?"), holder->line);
		fputc('\n', file);
	}
	if (stack->lang.runtime)
		stack->lang.runtime->text(file, pid, &stack->lang, TEXT_MAX_FRAMES, all_frames);
	for (i = 0; i < stack->nr_user && i < TEXT_MAX_FRAMES; i++) {
		const struct user_frame *frame = &stack->user[i];

		if (frame->symbol)
			fprintf(file, "    %s+0x%llx (%s)\n", TEXT_SAFE(frame->symbol),
				(unsigned long long)frame->offset, TEXT_SAFE(frame->module));
		else if (frame->module)
			fprintf(file, "    0x%llx (%s+0x%llx)\n", (unsigned long long)frame->address,
				TEXT_SAFE(frame->module), (unsigned long long)frame->offset);
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
	/* Room for a hint whose names and source line were all escapes. */
	char hint[2 * HINT_TEXT_MAX];
	FILE *file = output->file;
	char when[32];
	int i;

	format_time(output, report->start_ns, when, sizeof(when), false);
	fprintf(file, "%s %s pid %u tid %u (%s): %.1f ms: on-CPU %.1f ms, off-CPU %.1f ms, "
		      "runqueue %.1f ms\n",
		when, report->in_progress ? "STALL (still busy)" : "STALL", report->pid,
		report->tid, TEXT_SAFE(report->comm), ms(report->duration_ns), ms(report->on_cpu_ns),
		ms(report->off_cpu_ns), ms(report->runqueue_ns));
	/* The application's coroutine first: the task's own (a server's per-request coroutine)
	 * is true but says little. */
	if (report->task_coroutine) {
		fputs("  in ", file);
		if (report->app_coroutine)
			fprintf(file, "%s, ", TEXT_SAFE(report->app_coroutine));
		if (report->task)
			fprintf(file, "task %s ", TEXT_SAFE(report->task->name));
		else
			fputs("task ", file);
		fprintf(file, "running %s", TEXT_SAFE(report->task_coroutine));
		for (i = 0; report->task && i < report->task->nr_awaited_by; i++)
			fprintf(file, "%s %s", i ? "," : ", awaited by",
				TEXT_SAFE(report->task->awaited_by[i]));
		fputc('\n', file);
	}
	if (report->hint)
		fprintf(file, "  fix: %s\n", output__text_safe(report->hint_text, hint, sizeof(hint)));
	if (report->waiting_known && (report->ready_fds || report->connections))
		fprintf(file, "  waiting when it ended: %u ready fds, %u connections to accept\n",
			report->ready_fds, report->connections);
	for (i = 0; i < report->nr_stacks && i < TEXT_MAX_STACKS; i++)
		text__stack(file, report->pid, &report->stacks[i], output->all_frames);
	fputc('\n', file);
}

/* A folded frame must not contain the format's separators. */
static void folded__frame(FILE *file, const char *text)
{
	for (; *text; text++)
		fputc(*text == ';' || *text == '\n' ? '_' : *text, file);
}

/*
 * One line per stack, root first: process; language frames as "function (file:line)" (without
 * what is unknown); the symbolized native frames; kernel frames marked "_[k]" (the
 * flamegraph.pl convention). Weighted by milliseconds, at least 1.
 */
static void folded__stack(FILE *file, const struct stall_report *report,
			  const struct stack_report *stack)
{
	const struct lang_frame *frame;
	int i;

	folded__frame(file, report->comm);
	for (i = stack->lang.depth - 1; i >= 0; i--) {
		frame = &stack->lang.frames[i];
		fputc(';', file);
		folded__frame(file, frame->qualname ? frame->qualname : frame->function);
		if (!frame->file)
			continue;
		fputs(" (", file);
		folded__frame(file, frame->file);
		if (frame->line >= 0)
			fprintf(file, ":%d", frame->line);
		fputc(')', file);
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

/* A site's reason: the off-CPU reason, or on_cpu. */
static const char *site__reason(const struct site *site)
{
	return site->kind == STACK_ON_CPU ? "on_cpu" : reason__name(site->reason);
}

static void json__sites(FILE *file, const struct site *const *sites, int nr_sites)
{
	const struct site *site;
	int i;

	fputs(",\"sites\":[", file);
	for (i = 0; i < nr_sites; i++) {
		site = sites[i];
		fputs(i ? ",{" : "{", file);
		if (site->other) {
			fputs("\"other\":true", file);
		} else {
			fputs("\"function\":", file);
			json__string(file, site->function[0] ? site->function : NULL);
			fputs(",\"file\":", file);
			json__string(file, site->file[0] ? site->file : NULL);
			if (site->line > 0)
				fprintf(file, ",\"line\":%d", site->line);
			else
				fputs(",\"line\":null", file);
			fputs(",\"reason\":", file);
			json__string(file, site__reason(site));
			fputs(",\"hint\":", file);
			json__string(file, site->hint_id);
		}
		fprintf(file, ",\"count\":%llu,\"total_ms\":%.3f,\"p50_ms\":%.3f,\"max_ms\":%.3f}",
			(unsigned long long)site->count, ms(site->total_ns),
			site__p50_ns(site) / NS_PER_MS, ms(site->max_ns));
	}
	fputc(']', file);
}

void output__sites(FILE *file, __u32 pid, const char *comm, const struct site *const *sites,
		   int nr_sites)
{
	const struct site *site;
	char where[2 * TEXT_SAFE_MAX + 32];
	int i;

	if (!nr_sites)
		return;
	fprintf(file, "pid %u (%s): where the loop blocked, heaviest first\n", pid, TEXT_SAFE(comm));
	fprintf(file, "  %-48s %6s %10s %9s %9s %-7s %s\n", "site", "count", "total ms", "p50 ms",
		"max ms", "reason", "hint");
	for (i = 0; i < nr_sites; i++) {
		site = sites[i];
		if (site->other)
			snprintf(where, sizeof(where), "(other sites)");
		else if (site->line > 0)
			snprintf(where, sizeof(where), "%s (%s:%d)",
				 TEXT_SAFE(site->function[0] ? site->function : "?"), TEXT_SAFE(site->file),
				 site->line);
		else
			snprintf(where, sizeof(where), "%s (%s)",
				 TEXT_SAFE(site->function[0] ? site->function : "?"),
				 TEXT_SAFE(site->file[0] ? site->file : "?"));
		fprintf(file, "  %-48s %6llu %10.1f %9.1f %9.1f %-7s %s\n", where,
			(unsigned long long)site->count, ms(site->total_ns), site__p50_ns(site) / NS_PER_MS,
			ms(site->max_ns), site->other ? "" : site__reason(site) ?: "",
			site->hint_id ? site->hint_id : "");
	}
}

void output__summary(const struct output *output, const struct process_info *process,
		     const struct process_stats *stats, const struct site *const *sites,
		     int nr_sites)
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
			      "\"busy_ms\":{\"p50\":%.4f,\"p99\":%.4f,\"max\":%.3f}",
			(unsigned long long)stats->iterations, (unsigned long long)stats->stalls,
			(unsigned long long)stats->lost_events, p50 / NS_PER_MS, p99 / NS_PER_MS,
			ms(stats->max_busy_ns));
		json__sites(file, sites, nr_sites);
		fputs("}\n", file);
		return;
	}
	fprintf(file, "pid %u (%s): %llu iterations, %llu stalls, %llu lost events; busy time "
		      "p50 %.3f ms, p99 %.3f ms, max %.1f ms\n",
		pid, TEXT_SAFE(comm), (unsigned long long)stats->iterations, (unsigned long long)stats->stalls,
		(unsigned long long)stats->lost_events, p50 / NS_PER_MS, p99 / NS_PER_MS,
		ms(stats->max_busy_ns));
	output__sites(file, pid, comm, sites, nr_sites);
}

void output__counters(const struct output *output, const struct counter *counters, int nr)
{
	const struct cache_count *cache;
	int i;

	if (output->json) {
		fprintf(output->file, "{\"event\":\"run_summary\"");
		for (i = 0; i < nr; i++)
			fprintf(output->file, ",\"%s\":%llu", counters[i].name,
				(unsigned long long)*counters[i].value);
		fprintf(output->file, ",\"caches\":{");
		for (cache = caches__first(); cache; cache = cache->next)
			fprintf(output->file, "%s\"%s\":%ld", cache == caches__first() ? "" : ",",
				cache->name, cache_count__get(cache));
		fprintf(output->file, "}}\n");
	}
	for (i = 0; i < nr; i++)
		if (*counters[i].value)
			fprintf(stderr, "loopstall: %llu %s\n", (unsigned long long)*counters[i].value,
				counters[i].text);
}
