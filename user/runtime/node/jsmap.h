/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef JSMAP_H
#define JSMAP_H

#include <stdbool.h>
#include <sys/types.h>
#include <linux/types.h>

/*
 * Names of JIT code from the perf maps V8 writes (node --perf-basic-prof): /tmp/perf-PID.map,
 * one "START SIZE name" line (hex) per code object, appended over time. Read through
 * /proc/PID/root (containers, PrivateTmp) with the pid as the process's own namespace sees it.
 * A later line for an address wins over an earlier one (V8 reuses code space); memory is
 * bounded (entries, name bytes, backlog read per refresh), the oldest entries going first.
 * Not thread-safe: one thread owns a struct jsmap.
 */
struct jsmap;

struct jsmap_sym {
	/* JavaScript code (JS:, LazyCompile:, Function:, Script:, Eval:): function, file, line
	 * and column of the function's start. Otherwise (Builtin:, Stub:, BytecodeHandler:,
	 * RegExp:, ...) only `name`, and js is false. */
	bool js;
	const char *name;     /* function name ("(anonymous)" if V8 gave none), or the raw name */
	const char *file;     /* script as V8 names it ("/srv/app.js", "node:internal/..."), or NULL */
	int line;             /* 1-based, -1 if unknown */
	int column;           /* 1-based, -1 if unknown */
	const char *map_path; /* the perf map's path as the process sees it: /tmp/perf-NSPID.map */
	__u64 offset;         /* addr - start of the code object */
};

/* NULL + errno on failure. */
struct jsmap *jsmap__new(void);
void jsmap__free(struct jsmap *jsmap);

/* Read what process pid appended to its perf map since the last refresh. Strings handed out by
 * jsmap__lookup for pid stay valid until the next jsmap__refresh or jsmap__forget_pid of pid.
 * A missing map is looked for again at most once a second. 0, or -errno (-ENOENT: no map). */
int jsmap__refresh(struct jsmap *jsmap, pid_t pid);
/* The code object containing addr, as of the last refresh: 0 or -ENOENT. */
int jsmap__lookup(struct jsmap *jsmap, pid_t pid, __u64 addr, struct jsmap_sym *out);
/* Drop what is kept for pid (process exited or exec'd). */
void jsmap__forget_pid(struct jsmap *jsmap, pid_t pid);

/* Split a V8 code name ("JS:~handler /srv/app.js:12:34") into its parts; true if it names
 * JavaScript code. Writes into buf (NUL-separated function and file); exposed for tests. */
bool jsmap__parse_name(const char *name, char *buf, size_t size, const char **function,
		       const char **file, int *line, int *column);

#endif
