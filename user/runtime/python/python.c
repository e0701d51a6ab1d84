// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * CPython support: recognize an interpreter in a traced process, tell the BPF walker where its
 * threads' frames are, and turn walked (code object, position) pairs into function, file and
 * line. Everything read here comes from the target's memory, which the target controls: every
 * read is bounded and checked, and garbage ends a stack early instead of being reported.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <search.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>
#include "clock.h"
#include "compare.h"
#include "in_app.h"
#include "linetable.h"
#include "python.h"
#include "python_debug.h"
#include "pycode.h"
#include "python_offsets.h"
#include "remote.h"
#include "targetfs.h"
#include "targets.h"
#include "util.h"
#include "caches.h"

/* Bounds on how far a hostile or corrupt target can make us walk. */
#define MAX_INTERPRETERS 64
#define MAX_THREAD_STATES 65536 /* in all interpreters */
/* Walks of the thread lists begun before a look-up is left to the next scan: each one a thread
 * exiting or starting under it broke. */
#define MAX_THREAD_LIST_WALKS 8
/* An unresolved loop thread (its tstate not created yet) is retried this often... */
#define THREAD_RETRY_NS 1000000000ULL
/* ... and one whose mapping the BPF side found wrong, at the next scan but not more often. */
#define THREAD_RESYNC_NS 50000000ULL
/* Bounds the work of one scan when the BPF side keeps flagging threads. */
#define MAX_RESYNCS_PER_SCAN 1024
/* _asyncio, a library, is mapped at the first `import asyncio`: looked for this often while
 * missing, and only in a process whose modules changed since the last look. */
#define ASYNCIO_RETRY_NS 1000000000ULL

enum python_kind {
	PYTHON_NOT = 0, /* no CPython in this process */
	PYTHON_SUPPORTED,
	PYTHON_UNSUPPORTED,
	PYTHON_UNKNOWN, /* its binaries could not all be read yet: looked at again */
};

struct thread_attempt {
	__u32 tid;
	__u64 tstate; /* 0 until found */
	__u64 tried_ns;
};

struct python_process {
	pid_t pid;
	enum python_kind kind;
	__u64 unknown_ns; /* PYTHON_UNKNOWN since then: looked at again TARGETFS_RETRY_NS later */
	int minor;
	char stdlib[256]; /* its standard library directory, "" when not known */
	struct python_offsets offsets;
	__u64 runtime;   /* &_PyRuntime */
	__u64 code_type; /* &PyCode_Type: a code object's ob_type must be this */
	/* In a PID namespace below ours (a container): the tids tstates record are not ours. */
	bool pidns_nested;
	/* 3.14+: asyncio's TaskObj fields, from _AsyncioDebug (tasks false without one) */
	bool tasks;
	/* No _AsyncioDebug, and no _asyncio module yet either: looked for again. */
	bool tasks_pending;
	__u64 tasks_tried_ns, modules_generation;
	__u32 task_name, task_awaited_by, task_awaited_by_is_set, task_is_task, task_coro;
	__u64 unicode_type, long_type; /* &PyUnicode_Type, &PyLong_Type: a task name's type */
	/*
	 * Tasks read while their stall lasted (python__read_ahead): a task that finished by the
	 * time the stall is reported is freed, its name cleared. A ring, allocated with tasks.
	 */
	struct task_read {
		__u64 stack_id;
		struct lang_task task;
	} *tasks_read;
	unsigned int tasks_read_next;
	void *codes;     /* tsearch tree of struct code_info by address */
	void *threads;   /* tsearch tree of struct thread_attempt by tid */
	/* Stacks whose code objects python__read_ahead() already read: a ring. */
	__u64 read_ahead[PY_READ_AHEAD_STACKS];
	unsigned int read_ahead_next;
};

struct python {
	struct syms *syms;
	struct python_maps maps;
	void *processes; /* tsearch tree of struct python_process by pid */
	/* Code objects found replaced at their address while frames resolved earlier in the same
	 * report may still point at their names: freed by python__release_codes(). */
	struct code_info **retired;
	size_t nr_retired, retired_cap;
};

static __u64 remote__u64(pid_t pid, __u64 addr)
{
	__u64 value = 0;

	remote__read(pid, addr, &value, sizeof(value));
	return value;
}

/* 3.12+ put a frame without code on the chain at every entry into the eval loop. */
static bool frame__is_shim(const struct python_offsets *off, __u32 owner)
{
	return off->frame_owner != PY_NONE16 && owner >= off->frame_owner_shim;
}

static void code__free(void *code)
{
	pycode__free(code);
}

/* Frames resolved earlier in the report being built may still point at a replaced code
 * object's names: it is freed by python__release_codes(), once that report is out. */
static int code__retire(struct python *python, struct code_info *code)
{
	struct code_info **retired;

	retired = array__grow(python->retired, &python->retired_cap, python->nr_retired + 1,
			      sizeof(*retired), 16);
	if (!retired)
		return -ENOMEM;
	python->retired = retired;
	python->retired[python->nr_retired++] = code;
	return 0;
}

/*
 * Code objects are immutable once created, so one read per address serves every later stall:
 * the code object walked with this fingerprint, if it is (or was) the one read. When the
 * object at an address is freed and nothing replaced it yet, the last one read there stays
 * (not live): the frames walked while it lived carry its fingerprint.
 */
static const struct code_info *code__get(struct python *python, struct python_process *proc,
					 __u64 addr, __u32 name_fingerprint)
{
	struct pycode_reader reader = { .read = remote__reader, .ctx = &proc->pid,
					.offsets = &proc->offsets, .code_type = proc->code_type };
	struct code_info key = { .addr = addr }, *code, *old, **node;

	node = tfind(&key, &proc->codes, u64__cmp);
	if (node) {
		(*node)->live = pycode__unchanged(&reader, *node);
		if ((*node)->live && pycode__walked(*node, name_fingerprint))
			return *node;
	}
	code = pycode__new(addr);
	if (!code)
		return NULL;
	pycode__read(&reader, code);
	if (node) {
		old = *node;
		if (!code->valid && old->valid) {
			pycode__free(code);
			old->live = false;
			return old;
		}
		if (code__retire(python, old)) {
			pycode__free(code);
			return NULL;
		}
		tdelete(old, &proc->codes, u64__cmp);
	}
	if (!tsearch(code, &proc->codes, u64__cmp)) {
		code__free(code);
		return NULL;
	}
	return code;
}

static struct python_process *process__find(struct python *python, pid_t pid)
{
	struct python_process key = { .pid = pid }, **node;

	node = tfind(&key, &python->processes, pid__cmp);
	return node ? *node : NULL;
}

CACHE_COUNT(python_process_count, "python_processes")

static void process__free(void *ptr)
{
	struct python_process *proc = ptr;

	cache_count__add(&python_process_count, -1);
	tdestroy(proc->codes, code__free);
	tdestroy(proc->threads, free);
	free(proc->tasks_read);
	free(proc);
}

/*
 * The version, from Py_Version (3.11+: *hexversion, else 0) or else the name of the module
 * holding _PyRuntime.
 */
static int python__version(struct python *python, pid_t pid, const char *module, int *minor,
			   __u32 *hexversion)
{
	const char *base = module ? strrchr(module, '/') : NULL;
	__u64 addr;
	int major;

	*hexversion = 0;
	if (!syms__find_symbol(python->syms, pid, "Py_Version", &addr, NULL) &&
	    !remote__read(pid, addr, hexversion, sizeof(*hexversion))) {
		*minor = *hexversion >> 16 & 0xff;
		return *hexversion >> 24 == 3 ? 0 : -ENOTSUP;
	}
	base = base ? base + 1 : module;
	if (base && (sscanf(base, "libpython%d.%d", &major, minor) == 2 ||
		     sscanf(base, "python%d.%d", &major, minor) == 2))
		return major == 3 ? 0 : -ENOTSUP;
	return -ENOTSUP;
}

static __u64 python__gil(const struct python_process *proc, __u64 *end)
{
	const struct python_offsets *off = &proc->offsets;
	__u64 gil, interp;

	if (off->interp_ceval_gil != PY_NONE32) {
		/* 3.12+: each interpreter points at the GIL it uses. */
		interp = remote__u64(proc->pid, proc->runtime + off->runtime_interpreters_head);
		gil = interp ? remote__u64(proc->pid, interp + off->interp_ceval_gil) : 0;
	} else {
		gil = proc->runtime + off->runtime_gil;
	}
	/* A GIL waiter sleeps on a futex inside one of the struct's condition variables or
	 * mutexes: accept the whole span from the first to the end of the last. */
	*end = gil ? gil + off->gil_switch_mutex + off->pthread_mutex_size : 0;
	return gil;
}

static int python__publish(struct python *python, struct python_process *proc)
{
	struct python_proc value = { .offsets = proc->offsets };

	value.gil_start = python__gil(proc, &value.gil_end);
	if (bpf_map_update_elem(python->maps.procs_fd, &proc->pid, &value, BPF_ANY))
		return -errno;
	return 0;
}

/* Our tid of a thread the process records as ns_tid (its own PID namespace's). */
static __u32 process__host_tid(const struct python_process *proc, __u32 ns_tid)
{
	if (!proc->pidns_nested || !ns_tid)
		return ns_tid;
	return (__u32)task__host_tid(proc->pid, (pid_t)ns_tid);
}

static struct python_process *process__new(struct python *python, pid_t pid)
{
	struct python_process *proc = calloc(1, sizeof(*proc));

	if (!proc)
		return NULL;
	cache_count__add(&python_process_count, 1);
	proc->pid = pid;
	task__ns_tid(pid, pid, &proc->pidns_nested);
	if (!tsearch(proc, &python->processes, pid__cmp)) {
		free(proc);
		return NULL;
	}
	return proc;
}

static void python__map_all_threads(struct python *python, struct python_process *proc);

/* proc is not CPython (PYTHON_NOT), or not known yet (PYTHON_UNKNOWN: looked at again
 * TARGETFS_RETRY_NS later). */
static int process__undecided(struct python_process *proc, enum python_kind kind)
{
	proc->kind = kind;
	proc->unknown_ns = clock__ns();
	return -ENOENT;
}

/*
 * 3.13+ publishes its own struct offsets in _Py_DebugOffsets at the start of _PyRuntime: read
 * them from the running interpreter, so a new patch release needs no new table. A table that
 * does not check out is not papered over with the static row: the interpreter is not what
 * that row describes either.
 */
static int python__debug_offsets(struct python_process *proc, const char **why)
{
	size_t size = python_debug__size(proc->minor);
	unsigned char *debug;
	int err = -ENOMEM;

	debug = malloc(size);
	*why = "out of memory for _Py_DebugOffsets";
	if (debug) {
		err = remote__read(proc->pid, proc->runtime, debug, size);
		*why = "_Py_DebugOffsets unreadable";
		if (!err)
			err = python_debug__apply(proc->minor, debug, size, &proc->offsets, why);
	}
	free(debug);
	return err;
}

/* Thread states in list order: each interpreter's newest first, the oldest last. */
struct tstate_list {
	__u64 *tstates;
	size_t count, cap;
};

static int tstate_list__add(struct tstate_list *list, __u64 tstate)
{
	__u64 *grown = array__grow(list->tstates, &list->cap, list->count + 1, sizeof(*grown), 64);

	if (!grown)
		return -ENOMEM;
	list->tstates = grown;
	list->tstates[list->count++] = tstate;
	return 0;
}

/*
 * Append one interpreter's thread list. The process runs on while it is read: a thread that
 * exits frees its state, whose `next` is then garbage, and a walk that followed it would end
 * there, before the oldest states (the main thread's) as if the list ended. So a link counts
 * only if the state it leads to links back, and the state whose `next` ends the list must
 * still be linked after that read. -EAGAIN when a link did not hold.
 */
static int interp__tstates(const struct python_process *proc, __u64 interp,
			   struct tstate_list *list)
{
	const struct python_offsets *off = &proc->offsets;
	__u64 before = 0, tstate, next;
	int err;

	tstate = remote__u64(proc->pid, interp + off->interp_threads_head);
	while (tstate && list->count < MAX_THREAD_STATES) {
		if (remote__u64(proc->pid, tstate + off->tstate_prev) != before)
			return -EAGAIN;
		err = tstate_list__add(list, tstate);
		if (err)
			return err;
		next = remote__u64(proc->pid, tstate + off->tstate_next);
		if (!next && remote__u64(proc->pid, tstate + off->tstate_prev) != before)
			return -EAGAIN;
		before = tstate;
		tstate = next;
	}
	return 0;
}

/*
 * The thread states of every interpreter (of at most MAX_INTERPRETERS, MAX_THREAD_STATES in
 * all), read whole: walked again when threads starting or exiting broke a walk. 0, -EAGAIN when every
 * walk broke, -ENOMEM. The caller frees list->tstates.
 */
static int python__tstates(const struct python_process *proc, struct tstate_list *list)
{
	__u64 interp;
	int err = -EAGAIN, walks, interps;

	*list = (struct tstate_list){ 0 };
	for (walks = 0; err == -EAGAIN && walks < MAX_THREAD_LIST_WALKS; walks++) {
		list->count = 0;
		err = 0;
		interp = remote__u64(proc->pid, proc->runtime + proc->offsets.runtime_interpreters_head);
		for (interps = 0; !err && interp && interps < MAX_INTERPRETERS; interps++) {
			err = interp__tstates(proc, interp, list);
			interp = remote__u64(proc->pid, interp + proc->offsets.interp_next);
		}
	}
	return err;
}

static __u64 tstate__frame(const struct python_process *proc, __u64 tstate)
{
	const struct python_offsets *off = &proc->offsets;
	__u64 frame = remote__u64(proc->pid, tstate + off->tstate_frame);

	if (frame && off->cframe_current_frame != PY_NONE16)
		frame = remote__u64(proc->pid, frame + off->cframe_current_frame);
	return frame;
}

/*
 * A minor newer than our tables, read through the newest layout: its offsets passed every
 * bound, now they must also lead somewhere real. The main thread's state must be on the
 * thread list, and its frames must be code objects (or shims): else no frames at all rather
 * than wrong ones.
 */
static int python__check_live(struct python_process *proc, const char **why)
{
	const struct python_offsets *off = &proc->offsets;
	__u32 ns_pid = (__u32)task__ns_tid(proc->pid, proc->pid, NULL);
	__u64 main = 0, frame, code, type;
	struct tstate_list list;
	int err, depth, codes = 0;
	size_t i;
	__u8 owner;

	err = python__tstates(proc, &list);
	for (i = 0; !err && !main && i < list.count; i++)
		if (remote__u64(proc->pid, list.tstates[i] + off->tstate_native_thread_id) == ns_pid)
			main = list.tstates[i];
	free(list.tstates);
	/* Thread starts and exits kept breaking the walk: no verdict on the offsets yet. */
	if (err == -EAGAIN)
		return -EBUSY;
	*why = err ? "out of memory for the thread list" :
		     "the main thread is not on its interpreter's thread list";
	if (!main || !proc->code_type)
		return -EINVAL;
	*why = "the main thread's frames are not code objects";
	frame = tstate__frame(proc, main);
	for (depth = 0; frame && depth < MAX_PY_DEPTH; depth++) {
		owner = 0;
		remote__read(proc->pid, frame + off->frame_owner, &owner, sizeof(owner));
		code = remote__u64(proc->pid, frame + off->frame_code) & ~(__u64)off->code_tag_mask;
		/* PyObject: ob_refcnt, then ob_type. */
		type = remote__u64(proc->pid, code + sizeof(__u64));
		if (!frame__is_shim(off, owner) && type != proc->code_type)
			return -EINVAL;
		codes += !frame__is_shim(off, owner);
		frame = remote__u64(proc->pid, frame + off->frame_previous);
	}
	return codes ? 0 : -EINVAL;
}

/*
 * The _asyncio module's own debug table (section .AsyncioDebug of whatever maps the module: the
 * interpreter in 3.15, _asyncio.cpython-314-*.so in 3.14): uint64_t offsets, each section
 * headed by its struct's size. Its layout is Modules/_asynciomodule.c's
 * _Py_AsyncioModuleDebugOffsets, not in the installed headers; the section's size tells it.
 */
enum asyncio_debug_word {
	ASYNCIO_TASK_SIZE, ASYNCIO_TASK_NAME, ASYNCIO_TASK_AWAITED_BY, ASYNCIO_TASK_IS_TASK,
	ASYNCIO_TASK_AWAITED_BY_IS_SET, ASYNCIO_TASK_CORO, ASYNCIO_TASK_NODE,
	ASYNCIO_INTERP_SIZE, ASYNCIO_INTERP_TASKS_HEAD,
	ASYNCIO_THREAD_SIZE, ASYNCIO_THREAD_RUNNING_LOOP, ASYNCIO_THREAD_RUNNING_TASK,
	ASYNCIO_THREAD_TASKS_HEAD,
	ASYNCIO_DEBUG_WORDS,
};

/* Stalls whose task is read ahead, per process: a stall has few stacks, and few stalls overlap. */
#define TASKS_READ_AHEAD 16

/* Word `at` of the table, if it lies inside the struct whose size is word `size`. */
static bool asyncio__offset(const __u64 *words, int at, int size, __u32 *out)
{
	if (!words[size] || words[size] > (1U << 20) || words[at] + sizeof(__u64) > words[size])
		return false;
	*out = (__u32)words[at];
	return true;
}

/*
 * Name and awaiter of the task each stack ran in, where the interpreter has the table (3.14+,
 * once asyncio is imported): the walker then records the thread's running task. Without it
 * the task stays the outermost coroutine frame.
 */
static void python__asyncio(struct python *python, struct python_process *proc)
{
	__u64 words[ASYNCIO_DEBUG_WORDS], addr, size;
	__u32 running;
	int err;

	if (proc->offsets.gen_iframe == PY_NONE16 || proc->offsets.long_digit == PY_NONE16)
		return;
	err = syms__find_section(python->syms, proc->pid, ".AsyncioDebug", &addr, &size);
	/* Until the module itself is mapped (a library loaded at the first `import asyncio`) and
	 * read, its table may still come; once it is, a version without one never gets one. */
	proc->tasks_pending = err == -ENOENT && syms__find_symbol(python->syms, proc->pid,
								  "PyInit__asyncio", &addr, NULL);
	if (err || size != sizeof(words) || remote__read(proc->pid, addr, words, sizeof(words)))
		return;
	if (!asyncio__offset(words, ASYNCIO_TASK_NAME, ASYNCIO_TASK_SIZE, &proc->task_name) ||
	    !asyncio__offset(words, ASYNCIO_TASK_AWAITED_BY, ASYNCIO_TASK_SIZE,
			     &proc->task_awaited_by) ||
	    !asyncio__offset(words, ASYNCIO_TASK_CORO, ASYNCIO_TASK_SIZE, &proc->task_coro) ||
	    /* Two chars: within the struct like any word-sized field before its end. */
	    words[ASYNCIO_TASK_IS_TASK] >= words[ASYNCIO_TASK_SIZE] ||
	    words[ASYNCIO_TASK_AWAITED_BY_IS_SET] >= words[ASYNCIO_TASK_SIZE] ||
	    !asyncio__offset(words, ASYNCIO_THREAD_RUNNING_TASK, ASYNCIO_THREAD_SIZE, &running) ||
	    syms__find_symbol(python->syms, proc->pid, "PyUnicode_Type", &proc->unicode_type, NULL) ||
	    syms__find_symbol(python->syms, proc->pid, "PyLong_Type", &proc->long_type, NULL))
		return;
	proc->task_is_task = (__u32)words[ASYNCIO_TASK_IS_TASK];
	proc->task_awaited_by_is_set = (__u32)words[ASYNCIO_TASK_AWAITED_BY_IS_SET];
	proc->tasks_read = calloc(TASKS_READ_AHEAD, sizeof(*proc->tasks_read));
	if (!proc->tasks_read)
		return;
	proc->offsets.tstate_asyncio_task = running;
	proc->tasks = true;
}

/*
 * Look for the table again when the process mapped new modules (_asyncio imported since), then
 * let the walker record tasks from the next stall on.
 */
static void python__asyncio_late(struct python *python, struct python_process *proc)
{
	__u64 now = clock__ns();

	if (!proc->tasks_pending || now - proc->tasks_tried_ns < ASYNCIO_RETRY_NS)
		return;
	proc->tasks_tried_ns = now;
	if (syms__refresh(python->syms, proc->pid, &proc->modules_generation) <= 0)
		return;
	python__asyncio(python, proc);
	if (proc->tasks)
		python__publish(python, proc);
}

/* A task's name: its str, or "Task-N" for the counter asyncio keeps until someone asks. */
static bool task__name(const struct python_process *proc, __u64 task, char *buf, size_t size)
{
	const struct python_offsets *off = &proc->offsets;
	struct pycode_reader reader = { .read = remote__reader, .ctx = (void *)&proc->pid,
					.offsets = off };
	__u64 name = remote__u64(proc->pid, task + proc->task_name), type, tag;
	__u32 digits[2] = { 0, 0 };
	char *text;

	type = name ? remote__u64(proc->pid, name + sizeof(__u64)) : 0; /* ob_refcnt, ob_type */
	if (type && type == proc->unicode_type) {
		text = pycode__str(&reader, name);
		if (!text)
			return false;
		snprintf(buf, size, "%s", text);
		free(text);
		return true;
	}
	if (!type || type != proc->long_type)
		return false;
	/* lv_tag: digit count << 3 | sign (2: negative); a counter fits two 30-bit digits. */
	tag = remote__u64(proc->pid, name + off->long_lv_tag);
	if ((tag & 3) == 2 || tag >> 3 > 2 ||
	    remote__read(proc->pid, name + off->long_digit, digits, (tag >> 3) * sizeof(digits[0])))
		return false;
	snprintf(buf, size, "Task-%llu", (unsigned long long)digits[0] | (__u64)digits[1] << 30);
	return true;
}

/* The qualname of the code a coroutine object runs, from its own frame. */
static bool coro__qualname(const struct python_process *proc, __u64 coro, char *buf, size_t size)
{
	const struct python_offsets *off = &proc->offsets;
	struct pycode_reader reader = { .read = remote__reader, .ctx = (void *)&proc->pid,
					.offsets = off };
	__u64 code, name;
	char *text;

	code = remote__u64(proc->pid, coro + off->gen_iframe + off->frame_code) &
	       ~(__u64)off->code_tag_mask;
	if (!code || remote__u64(proc->pid, code + sizeof(__u64)) != proc->code_type)
		return false;
	name = remote__u64(proc->pid, code + off->code_qualname);
	text = name ? pycode__str(&reader, name) : NULL;
	if (!text)
		return false;
	snprintf(buf, size, "%s", text);
	free(text);
	return true;
}

/*
 * The task's name and who awaits it: a chain of tasks each awaited by one other (a set of
 * awaiters, or a plain Future, ends it). Read when the stall is reported: a task that is gone
 * by then gives no name, never another task's.
 */
static void python__task(const struct python_process *proc, __u64 task, struct lang_task *out)
{
	__u8 is_task = 0, is_set = 0;
	__u64 by;

	memset(out, 0, sizeof(*out));
	if (!proc->tasks || !task || !task__name(proc, task, out->name, sizeof(out->name)))
		return;
	out->known = true;
	while (out->nr_awaited_by < LANG_MAX_AWAITED_BY) {
		by = remote__u64(proc->pid, task + proc->task_awaited_by);
		if (!by || remote__read(proc->pid, task + proc->task_awaited_by_is_set, &is_set, 1) ||
		    is_set || remote__read(proc->pid, by + proc->task_is_task, &is_task, 1) ||
		    !is_task ||
		    !coro__qualname(proc, remote__u64(proc->pid, by + proc->task_coro),
				    out->awaited_by[out->nr_awaited_by],
				    sizeof(out->awaited_by[0])))
			break;
		out->nr_awaited_by++;
		task = by;
	}
}

/* One warning per process, then native stacks only. */
static int process__unsupported(struct python_process *proc, const char *fmt, ...)
{
	va_list ap;

	proc->kind = PYTHON_UNSUPPORTED;
	fprintf(stderr, "loopstall: pid %d: ", proc->pid);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, ": native stacks only\n");
	return -ENOTSUP;
}

int python__attach(struct python *python, pid_t pid)
{
	const struct python_offsets *offsets, *newest;
	struct python_process *proc;
	const char *module = NULL, *why;
	int minor = 0, err;
	__u32 hexversion;
	char version[32];

	proc = process__find(python, pid);
	if (proc && proc->kind == PYTHON_UNKNOWN && !targetfs__retry_due(proc->unknown_ns))
		return -ENOENT;
	if (proc && proc->kind != PYTHON_UNKNOWN)
		return proc->kind == PYTHON_SUPPORTED ? 0 : proc->kind == PYTHON_NOT ? -ENOENT : -ENOTSUP;
	if (!proc)
		proc = process__new(python, pid);
	if (!proc)
		return -ENOMEM;
	/* Not found in what could be read: on a loaded machine, the module holding it may be
	 * among the files targetfs gave up on for now. A process is not "no CPython" for that. */
	err = syms__find_symbol(python->syms, pid, "_PyRuntime", &proc->runtime, &module);
	if (err)
		return process__undecided(proc, err == -EAGAIN ? PYTHON_UNKNOWN : PYTHON_NOT);
	err = python__version(python, pid, module, &minor, &hexversion);
	offsets = err ? NULL : python_debug__row(minor);
	if (err)
		return process__unsupported(proc, "CPython of unknown version");
	if (!offsets) {
		newest = &python_offsets_table[sizeof(python_offsets_table) /
					       sizeof(python_offsets_table[0]) - 1];
		return process__unsupported(proc, "CPython 3.%d is not supported (3.8 to 3.%d are)",
					    minor, newest->minor);
	}
	snprintf(version, sizeof(version), "3.%d.%u", minor, hexversion >> 8 & 0xff);
	proc->minor = minor;
	in_app__python_stdlib(module, minor, proc->stdlib, sizeof(proc->stdlib));
	proc->offsets = *offsets;
	syms__find_symbol(python->syms, pid, "PyCode_Type", &proc->code_type, NULL);
	if (python_debug__size(minor)) {
		err = python__debug_offsets(proc, &why);
		/* A newer minor than our tables: its offsets must also lead somewhere real. */
		if (!err && offsets->minor != minor)
			err = python__check_live(proc, &why);
		/* Not read for lack of time (remote's budget on a loaded host, or a read of this
		 * pid still pending), or thread lists that never held still: not a table that
		 * fails its checks; looked at again. */
		if (targetfs__missed(err))
			return process__undecided(proc, PYTHON_UNKNOWN);
		if (err)
			return process__unsupported(proc, "CPython %s: its _Py_DebugOffsets does not "
						    "check out (%s)", version, why);
	}
	python__asyncio(python, proc);
	err = python__publish(python, proc);
	if (err)
		return err;
	proc->kind = PYTHON_SUPPORTED;
	python__map_all_threads(python, proc);
	return 0;
}

/* Map a loop thread (our tid) to its tstate for the BPF walker. */
static void thread__publish(struct python *python, __u32 tid, __u32 ns_tid, __u64 tstate)
{
	struct python_thread value = { .tstate = tstate, .ns_tid = ns_tid };

	bpf_map_update_elem(python->maps.threads_fd, &tid, &value, BPF_ANY);
}

/*
 * Find in the interpreters' thread lists the PyThreadState of tid (0 in *found if none). A
 * thread can own several: one per subinterpreter it entered, and on <= 3.11 a thread being
 * started briefly shares its creator's ids. The oldest one running code (a current frame) is
 * the one to walk. An error (python__tstates) when the lists could not be read whole.
 */
static int python__find_tstate(const struct python_process *proc, __u32 ns_tid, __u64 tls_base,
			       __u64 *found)
{
	const struct python_offsets *off = &proc->offsets;
	struct tstate_list list;
	bool found_running = false;
	__u64 tstate, id;
	size_t i;
	int err;

	*found = 0;
	err = python__tstates(proc, &list);
	for (i = 0; !err && i < list.count; i++) {
		tstate = list.tstates[i];
		/* 3.11+ records the kernel tid; older versions only pthread_self(). */
		if (off->tstate_native_thread_id != PY_NONE16)
			id = remote__u64(proc->pid, tstate + off->tstate_native_thread_id) == ns_tid;
		else
			id = remote__u64(proc->pid, tstate + off->tstate_thread_id) == tls_base;
		/* New tstates are pushed at the head: the last match is the oldest. */
		if (id && (!found_running || tstate__frame(proc, tstate))) {
			*found = tstate;
			found_running = tstate__frame(proc, tstate) != 0;
		}
	}
	free(list.tstates);
	return err;
}

static struct thread_attempt *thread__attempt(struct python_process *proc, __u32 tid)
{
	struct thread_attempt key = { .tid = tid }, *attempt, **node;

	node = tfind(&key, &proc->threads, u32__cmp);
	if (node)
		return *node;
	attempt = calloc(1, sizeof(*attempt));
	if (!attempt)
		return NULL;
	attempt->tid = tid;
	if (!tsearch(attempt, &proc->threads, u32__cmp)) {
		free(attempt);
		return NULL;
	}
	return attempt;
}

/*
 * 3.11+ tstates carry their kernel tid: map every existing thread at once, so a loop that
 * stalls in its very first iteration after attaching already gets Python frames. Older versions
 * only know pthread_self(), which the BPF side learns per loop thread. As in
 * python__find_tstate(), the oldest match running code wins: on 3.11 the tstate of a thread
 * being started sits at the head of the list with its creator's ids and no frame yet, and it
 * can read as running code when that thread starts between the reads of its id and its frame.
 * So the list is taken oldest first and a thread is published once, its oldest match: the
 * BPF side, walking meanwhile, never sees a newer one. Threads of a list that could not be
 * read whole are left to python__sync_thread().
 */
static void python__map_all_threads(struct python *python, struct python_process *proc)
{
	const struct python_offsets *off = &proc->offsets;
	struct thread_attempt *attempt;
	struct tstate_list list;
	__u32 ns_tid, tid;
	__u64 tstate;
	size_t i;
	int err;

	if (off->tstate_native_thread_id == PY_NONE16)
		return;
	err = python__tstates(proc, &list);
	for (i = err ? 0 : list.count; i-- > 0;) {
		tstate = list.tstates[i];
		ns_tid = (__u32)remote__u64(proc->pid, tstate + off->tstate_native_thread_id);
		tid = ns_tid && tstate__frame(proc, tstate) ? process__host_tid(proc, ns_tid) : 0;
		attempt = tid ? thread__attempt(proc, tid) : NULL;
		if (attempt && !attempt->tstate) {
			attempt->tstate = tstate;
			thread__publish(python, tid, ns_tid, tstate);
		}
	}
	free(list.tstates);
}

static void python__sync_thread(struct python *python, struct python_process *proc, __u32 tid,
				const struct loop_thread *thread, __u64 retry_ns)
{
	struct thread_attempt *attempt = thread__attempt(proc, tid);
	__u64 now = clock__ns(), tstate = 0;
	__u32 ns_tid;

	/* Found or not, look again now and then: the thread's running tstate can change
	 * (a subinterpreter entered, a tstate reused after a thread start). */
	if (!attempt || (attempt->tried_ns && now - attempt->tried_ns < retry_ns))
		return;
	ns_tid = proc->pidns_nested ? (__u32)task__ns_tid(proc->pid, tid, NULL) : tid;
	/* Lists that thread starts and exits kept breaking are no look-up: the next scan, not
	 * the next retry, reads them again. */
	if (ns_tid && python__find_tstate(proc, ns_tid, thread->tls_base, &tstate))
		return;
	attempt->tried_ns = now;
	/* Even when unchanged: the BPF side drops the mapping of a thread that exits, and a new
	 * thread with the same tid may get a tstate at the same address. */
	if (tstate)
		thread__publish(python, tid, ns_tid, tstate);
	if (tstate)
		attempt->tstate = tstate;
}

/* A loop thread the BPF side flagged, looked up again now rather than at its periodic retry. */
static void python__resync(struct python *python)
{
	struct python_process *proc;
	struct loop_thread thread;
	__u32 tid;
	int i;

	for (i = 0; i < MAX_RESYNCS_PER_SCAN; i++) {
		if (bpf_map_get_next_key(python->maps.resync_fd, NULL, &tid))
			break;
		bpf_map_delete_elem(python->maps.resync_fd, &tid);
		if (!loop_thread_table__find(&python->maps.loop_threads, tid, &thread))
			continue;
		proc = process__find(python, thread.pid);
		if (proc && proc->kind == PYTHON_SUPPORTED)
			python__sync_thread(python, proc, tid, &thread, THREAD_RESYNC_NS);
	}
}

void python__sync_threads(struct python *python)
{
	struct python_process *proc;
	struct loop_thread thread;
	__u32 tid, index = 0;

	python__resync(python);
	while (loop_thread_table__next(&python->maps.loop_threads, &index, &tid, &thread)) {
		if (python__attach(python, thread.pid))
			continue;
		proc = process__find(python, thread.pid);
		if (!proc)
			continue;
		python__sync_thread(python, proc, tid, &thread, THREAD_RETRY_NS);
		python__asyncio_late(python, proc);
	}
}

/* Byte offset of the frame's current instruction, -1 if the frame is not yet executing. */
static long frame__offset(const struct python_process *proc, const struct py_frame *raw,
			  const struct code_info *code)
{
	const struct python_offsets *off = &proc->offsets;
	__s64 lasti = (__s64)raw->lasti;
	long offset;

	switch (off->lasti_mode) {
	case PY_LASTI_BYTES:
		return lasti < 0 ? 0 : lasti;
	case PY_LASTI_UNITS:
		return lasti < 0 ? 0 : lasti * 2;
	default:
		offset = (long)(raw->lasti - (raw->code + off->code_code_adaptive));
		/* 3.11+: a frame being set up points before its first traceable instruction. */
		if (offset < 0 || (raw->owner != off->frame_owned_by_generator &&
				   offset < (long)code->firsttraceable * 2))
			return -1;
		return offset;
	}
}

enum frame_resolution {
	FRAME_RESOLVED,
	FRAME_SKIPPED, /* a shim, or a frame not yet executing: no frame of the stack */
	FRAME_FREED,   /* its code object is gone or now another function's */
	FRAME_UNREADABLE, /* not a code object: the stack is cut there */
};

/* A walked (code object, position) pair as function, file and line. */
static enum frame_resolution frame__resolve(struct python *python, struct python_process *proc,
					    const struct py_frame *frame, struct python_frame *out)
{
	const struct code_info *code;
	long offset;

	if (frame__is_shim(&proc->offsets, frame->owner))
		return FRAME_SKIPPED;
	code = code__get(python, proc, frame->code, frame->name_fingerprint);
	/* Freed since the walk, or now another function: say so rather than give another
	 * function's name, file or line. Its callers are still right. */
	if (code && (code->freed || code->valid) && !pycode__walked(code, frame->name_fingerprint)) {
		*out = (struct python_frame){ .function = PY_FREED_FUNCTION, .file = PY_FREED_FILE,
					      .line = -1 };
		return FRAME_FREED;
	}
	if (!code || !code->valid)
		return FRAME_UNREADABLE;
	offset = frame__offset(proc, frame, code);
	if (offset < 0)
		return FRAME_SKIPPED;
	*out = (struct python_frame){
		.function = code->function,
		.qualname = code->qualname,
		.file = code->file,
		.coroutine = code->flags & CO_COROUTINE,
		.in_app = in_app__python(code->file, proc->stdlib),
		.line = linetable__line(proc->minor, code->firstlineno, code->linetable,
					code->linetable_len, (unsigned int)offset),
	};
	return FRAME_RESOLVED;
}

bool python__resolve(struct python *python, pid_t pid, __u64 py_stack_id,
		     struct python_stack *out)
{
	struct python_process *proc = process__find(python, pid);
	struct py_stack raw;
	__u32 i;

	out->depth = 0;
	out->truncated = false;
	out->task.known = false;
	if (!proc || proc->kind != PYTHON_SUPPORTED || !py_stack_id ||
	    bpf_map_lookup_elem(python->maps.stacks_fd, &py_stack_id, &raw))
		return false;
	out->truncated = raw.truncated;
	for (i = 0; proc->tasks && i < TASKS_READ_AHEAD; i++)
		if (proc->tasks_read[i].stack_id == py_stack_id)
			out->task = proc->tasks_read[i].task;
	if (!out->task.known)
		python__task(proc, raw.task, &out->task);
	for (i = 0; i < raw.depth && i < MAX_PY_DEPTH; i++) {
		switch (frame__resolve(python, proc, &raw.frames[i], &out->frames[out->depth])) {
		case FRAME_RESOLVED:
		case FRAME_FREED:
			out->depth++;
			break;
		case FRAME_SKIPPED:
			break;
		case FRAME_UNREADABLE:
			out->truncated = true;
			return true;
		}
	}
	return true;
}

/*
 * The frame a thread runs now, read as the BPF walker reads one (python__walk): code object,
 * position, owner and the name's fingerprint, which frame__resolve checks against the code
 * object it reads next. The thread runs on meanwhile: a frame it left may be garbage by the
 * time it is read, and then fails that check or reads as no code object.
 */
static bool frame__read(const struct python_process *proc, __u64 addr, struct py_frame *out)
{
	const struct python_offsets *off = &proc->offsets;
	__s64 name_hash = -1;
	__s32 lasti32 = 0;
	__u8 owner = 0;
	__u64 name;

	*out = (struct py_frame){ .code = remote__u64(proc->pid, addr + off->frame_code) &
					  ~(__u64)off->code_tag_mask };
	if (!out->code)
		return false;
	if (off->lasti_mode == PY_LASTI_POINTER) {
		out->lasti = remote__u64(proc->pid, addr + off->frame_lasti);
	} else {
		remote__read(proc->pid, addr + off->frame_lasti, &lasti32, sizeof(lasti32));
		out->lasti = (__u64)(__s64)lasti32;
	}
	if (off->frame_owner != PY_NONE16)
		remote__read(proc->pid, addr + off->frame_owner, &owner, sizeof(owner));
	out->owner = owner;
	if (frame__is_shim(off, out->owner))
		return true;
	name = remote__u64(proc->pid, out->code + off->code_name);
	if (name)
		remote__read(proc->pid, name + off->unicode_hash, &name_hash, sizeof(name_hash));
	out->name_fingerprint = (__u32)(name_hash != -1 ? (__u64)name_hash : name);
	return true;
}

bool python__thread_frame(struct python *python, pid_t pid, __u64 tstate, struct python_frame *out)
{
	struct python_process *proc = process__find(python, pid);
	struct py_frame frame;
	__u64 addr;
	int depth;

	if (!proc || proc->kind != PYTHON_SUPPORTED || !tstate)
		return false;
	addr = tstate__frame(proc, tstate);
	for (depth = 0; addr && depth < MAX_PY_DEPTH; depth++) {
		if (!frame__read(proc, addr, &frame))
			return false;
		switch (frame__resolve(python, proc, &frame, out)) {
		case FRAME_RESOLVED:
			return true;
		case FRAME_SKIPPED:
			break;
		case FRAME_FREED:
		case FRAME_UNREADABLE:
			return false;
		}
		addr = remote__u64(pid, addr + proc->offsets.frame_previous);
	}
	return false;
}

void python__read_ahead(struct python *python, pid_t pid, __u64 py_stack_id)
{
	struct python_process *proc = process__find(python, pid);
	struct task_read *read;
	struct py_stack raw;
	unsigned int i;

	if (!proc || proc->kind != PYTHON_SUPPORTED || !py_stack_id)
		return;
	for (i = 0; i < PY_READ_AHEAD_STACKS; i++)
		if (proc->read_ahead[i] == py_stack_id)
			return;
	proc->read_ahead[proc->read_ahead_next++ % PY_READ_AHEAD_STACKS] = py_stack_id;
	if (bpf_map_lookup_elem(python->maps.stacks_fd, &py_stack_id, &raw))
		return;
	if (proc->tasks && raw.task) {
		read = &proc->tasks_read[proc->tasks_read_next++ % TASKS_READ_AHEAD];
		read->stack_id = py_stack_id;
		python__task(proc, raw.task, &read->task);
	}
	for (i = 0; i < raw.depth && i < MAX_PY_DEPTH; i++) {
		/* Skipped by python__resolve, and not fingerprinted. */
		if (frame__is_shim(&proc->offsets, raw.frames[i].owner))
			continue;
		code__get(python, proc, raw.frames[i].code, raw.frames[i].name_fingerprint);
	}
}

int python__source_line(pid_t pid, const char *file, int line, char *buf, size_t size)
{
	char text[1024];
	int err;

	/* co_filename is the target's to choose: opened only as the target itself could. */
	err = targetfs__read_line(pid, file, line, text, sizeof(text));
	if (err)
		return err;
	text[strcspn(text, "\r")] = '\0';
	snprintf(buf, size, "%s", text + strspn(text, " \t"));
	return 0;
}

static void thread__unmap(const void *node, VISIT which, void *ctx)
{
	const struct thread_attempt *attempt = *(struct thread_attempt *const *)node;
	const struct python *python = ctx;

	if (which == postorder || which == leaf)
		bpf_map_delete_elem(python->maps.threads_fd, &attempt->tid);
}

/*
 * glibc publishes struct pthread's layout for thread debuggers: _thread_db_pthread_tid is a
 * descriptor of three u32 (size in bits, count, offset) locating the kernel tid in it.
 */
static int pthread__tid_offset(struct python *python, pid_t pid, __u32 *offset)
{
	__u32 descriptor[3];
	__u64 addr;

	if (syms__find_symbol(python->syms, pid, "_thread_db_pthread_tid", &addr, NULL) ||
	    remote__read(pid, addr, descriptor, sizeof(descriptor)) || descriptor[0] != 32)
		return -ENOENT;
	*offset = descriptor[2];
	return 0;
}

__u32 python__thread_tid(struct python *python, pid_t pid, __u64 tstate)
{
	struct python_process *proc = process__find(python, pid);
	const struct python_offsets *off;
	__u64 pthread;
	__u32 tid = 0, offset;

	if (!proc || !tstate)
		return 0;
	off = &proc->offsets;
	if (off->tstate_native_thread_id != PY_NONE16)
		return process__host_tid(proc,
					 (__u32)remote__u64(pid, tstate + off->tstate_native_thread_id));
	/* <= 3.10 only records pthread_self(): the tid is inside glibc's struct pthread. */
	pthread = remote__u64(pid, tstate + off->tstate_thread_id);
	if (pthread && !pthread__tid_offset(python, pid, &offset))
		remote__read(pid, pthread + offset, &tid, sizeof(tid));
	return tid;
}

void python__forget(struct python *python, pid_t pid)
{
	struct python_process *proc = process__find(python, pid);
	__u32 key = pid;

	if (!proc)
		return;
	bpf_map_delete_elem(python->maps.procs_fd, &key);
	twalk_r(proc->threads, thread__unmap, python);
	tdelete(proc, &python->processes, pid__cmp);
	process__free(proc);
}

struct python *python__new(struct syms *syms, const struct python_maps *maps)
{
	struct python *python = calloc(1, sizeof(*python));

	if (!python)
		return NULL;
	python->syms = syms;
	python->maps = *maps;
	return python;
}

void python__release_codes(struct python *python)
{
	if (!python)
		return;
	while (python->nr_retired)
		pycode__free(python->retired[--python->nr_retired]);
}

void python__free(struct python *python)
{
	if (!python)
		return;
	python__release_codes(python);
	free(python->retired);
	tdestroy(python->processes, process__free);
	free(python);
}
