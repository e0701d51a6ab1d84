/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef PYTHON_H
#define PYTHON_H

#include <stdbool.h>
#include <sys/types.h>
#include <linux/types.h>
#include "loop_threads.h"
#include "loopstall.h"
#include "python_abi.h"
#include "runtime.h"
#include "symbolize.h"

struct python_frame {
	const char *function; /* co_name */
	const char *qualname; /* co_qualname (3.11+), NULL before */
	const char *file;     /* co_filename */
	int line;             /* -1 when the position has no line */
	bool coroutine;       /* an `async def` frame */
	bool in_app;          /* the application's code (in_app.h) */
};

/* A frame whose code object was freed, or replaced, between the walk and its resolution. */
#define PY_FREED_FUNCTION "<freed code object>"
#define PY_FREED_FILE "<unknown>"

struct python_stack {
	struct lang_task task; /* 3.14+, read through the _asyncio module's _AsyncioDebug */
	int depth;
	bool truncated; /* the walk or the resolution stopped early: frames are missing */
	struct python_frame frames[MAX_PY_DEPTH]; /* innermost first */
};

struct python_maps {
	int procs_fd;
	int threads_fd;
	int stacks_fd;
	struct loop_thread_table loop_threads;
	int resync_fd; /* tids whose mapping the BPF side found wrong */
};

struct python;

struct python *python__new(struct syms *syms, const struct python_maps *maps);
void python__free(struct python *python);
/*
 * Recognize a CPython process, find its version, offsets and GIL, and let the BPF walker at it.
 * Returns 0 for a supported CPython, -ENOENT for no CPython (native stacks only, silently) and
 * -ENOTSUP for an unsupported version (after one warning on stderr).
 */
int python__attach(struct python *python, pid_t pid);
/* Map the loop threads the BPF side knows to their PyThreadState; cheap, call it often. */
void python__sync_threads(struct python *python);
/*
 * Resolve a walked stack into frames; false if the id names no stack. The frames' strings stay
 * valid until python__release_codes() (or python__forget() of the pid).
 */
bool python__resolve(struct python *python, pid_t pid, __u64 py_stack_id,
		     struct python_stack *out);
/* Free the code objects that python__resolve() found replaced; call it between reports. */
void python__release_codes(struct python *python);
/* The kernel tid of the thread owning a PyThreadState of process pid, 0 if unknown. */
__u32 python__thread_tid(struct python *python, pid_t pid, __u64 tstate);
/*
 * The innermost frame a thread of process pid runs now, read from its PyThreadState (the
 * thread runs on: a frame it just left reads as none); false if none could be read. Strings
 * live as python__resolve's.
 */
bool python__thread_frame(struct python *python, pid_t pid, __u64 tstate, struct python_frame *out);
/*
 * Read the code objects of a stack the walker just stored, before the iteration ends: a code
 * object freed by then still resolves (see python__resolve). Each stack is read once.
 */
#define PY_READ_AHEAD_STACKS 256
void python__read_ahead(struct python *python, pid_t pid, __u64 py_stack_id);
/* Line `line` of the target's source file, stripped, for a person reading the report. */
int python__source_line(pid_t pid, const char *file, int line, char *buf, size_t size);
/* Forget a process (exited or exec'd): its code objects are gone. */
void python__forget(struct python *python, pid_t pid);

#endif
