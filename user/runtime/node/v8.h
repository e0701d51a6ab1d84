/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef V8_H
#define V8_H

#include <stdbool.h>
#include <sys/types.h>
#include <linux/types.h>
#include "symbolize.h"

/* A JavaScript frame from the BPF walk of V8's frames. Strings stay valid until v8__trim or
 * v8__forget of the process. */
struct v8_frame {
	const char *function; /* "(anonymous)" when V8 has no name for it */
	const char *file;     /* the script's name; NULL for builtins and API functions */
	int line, column;     /* 1-based, of the function's start (its parameter list); -1 */
};

struct v8_maps {
	int procs_fd;
	int stacks_fd;
};

struct v8;

struct v8 *v8__new(struct syms *syms, const struct v8_maps *maps);
void v8__free(struct v8 *v8);
/*
 * Recognize a V8 process (node) by its post-mortem metadata and let the BPF walker at it.
 * Returns 0 when its frames are walked, -ENOENT for no V8 (silently) and -ENOTSUP for a V8
 * whose metadata is unusable (after one warning on stderr).
 */
int v8__attach(struct v8 *v8, pid_t pid);
/* Attach again the processes whose binaries could not be read in time, once their retry is due
 * (a few per call: called on every stream tick). */
void v8__retry_missed(struct v8 *v8);
/* Whether pid's JavaScript frames come from the BPF walk (else from a perf map, if any). */
bool v8__active(struct v8 *v8, pid_t pid);
/* The frames of a walked stack, innermost first, at most max: how many. Frames whose function
 * cannot be read are left out, never guessed. */
int v8__resolve(struct v8 *v8, pid_t pid, __u64 js_stack_id, struct v8_frame *frames, int max);
/* Between reports: drop pid's caches if they grew past their bounds. */
void v8__trim(struct v8 *v8, pid_t pid);
/* Forget a process (exited or exec'd): its heap is gone. */
void v8__forget(struct v8 *v8, pid_t pid);

#endif
