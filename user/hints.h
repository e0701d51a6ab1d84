/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef HINTS_H
#define HINTS_H

/*
 * What to change for a stall: one table of rules (hints.c, documented in docs/hints.md) matched
 * against what loopstall knows of a stack: the runtime, the reason and syscall, the language
 * frames with their files, the native modules. The first rule that matches wins; its text is
 * a template naming the concrete call and the function to change.
 */
#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

/* Room for a hint's text: the template, a source line and names. */
#define HINT_TEXT_MAX 768

enum hint_kind {
	HINT_ANY_KIND = 0,
	HINT_OFF_CPU,
	HINT_ON_CPU,
};

struct hint_frame {
	const char *function; /* the qualified name where the runtime has one */
	const char *file;     /* NULL for builtins */
	int line;             /* the line running (Python), or where the function starts; -1 */
	bool in_app;          /* the application's code, not the runtime's or a package's */
	bool coroutine;
};

struct hint_native {
	const char *module; /* path, NULL when the address is in no known mapping */
	const char *symbol; /* NULL when unknown */
};

/* One stack as the rules see it. */
struct hint_stack {
	const char *runtime; /* the runtime's name (runtime.h): "python", "js" */
	enum hint_kind kind;
	__u32 reason;        /* enum offcpu_reason */
	const char *syscall; /* NULL when none */
	int nr_frames;
	const struct hint_frame *frames; /* innermost first */
	int nr_natives;
	const struct hint_native *natives; /* the native frames, innermost first */
	const char *holder;         /* reason GIL: the holding thread ("tid 42 (worker)"), or NULL */
	const struct hint_frame *holder_frame; /* the frame the holder runs, or NULL */
	const char *source;         /* the innermost application frame's source line, or NULL */
};

struct hint_rule {
	const char *id;
	const char *runtime; /* the runtime's name */
	enum hint_kind kind;
	unsigned int reasons; /* 1 << enum offcpu_reason, any of them; 0: any reason */
	/* Patterns are fnmatch(3) globs, alternatives separated by '|'; NULL matches anything. */
	const char *syscalls;
	/*
	 * The library: some frame whose file matches `file` (a builtin's NULL file is "") and
	 * function matches `function`, or some native frame whose module's file name matches
	 * `module`, or whose symbol matches `symbol`. All NULL: no library needed.
	 */
	const char *file;
	const char *function;
	const char *module;
	const char *symbol;
	/* The innermost native module other than the C library's must be known and its file
	 * name must not match (the interpreter: on-CPU time in anything else is a C extension's). */
	const char *not_innermost;
	bool coroutine; /* some frame is an `async def` */
	/*
	 * {function} the innermost application function, {where} its file:line, {call} the
	 * concrete call (the source line, else the library function it called, else the syscall),
	 * {library} the innermost native module's file name, {holder} the GIL holder,
	 * {holder_frame} ", running F (file:line)" when the holder's frame is known, else "".
	 */
	const char *text;
};

extern const struct hint_rule hint_rules[];
extern const int nr_hint_rules;

/* The first rule matching the stack, NULL when none does. */
const struct hint_rule *hint__match(const struct hint_stack *stack);
/* The frame to change: the innermost application frame, else the innermost with a file; -1. */
int hint__app_frame(const struct hint_stack *stack);
/* The rule's text for the stack, in buf (always terminated, cut at size). */
void hint__format(const struct hint_rule *rule, const struct hint_stack *stack, char *buf,
		  size_t size);

#endif
