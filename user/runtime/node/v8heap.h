/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef V8HEAP_H
#define V8HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>
#include "v8meta.h"

/* Reads len bytes of the target's memory at addr; 0 when all were read. */
typedef int (*v8_read_fn)(void *ctx, __u64 addr, void *buf, size_t len);

struct v8_reader {
	v8_read_fn read;
	void *ctx;
	const struct v8_meta *meta;
};

/* What loopstall keeps of a SharedFunctionInfo: the part of a function shared by its closures. */
struct v8_shared {
	bool valid;         /* false: not a readable SharedFunctionInfo */
	char *name;         /* UTF-8, malloc'd; "" for an anonymous function */
	__u64 script;       /* tagged Script pointer; 0 for builtins and API functions */
	int start_position; /* source position of the function's parameter list, -1 if unknown */
	__u64 stamp[2];     /* name_or_scope_info and script_or_debug_info when read */
};

/* A Script: its name and where its lines end. */
struct v8_script {
	bool valid;
	char *name;      /* UTF-8, malloc'd; NULL if the script has none (eval) */
	int *line_ends;  /* source position of each line's end, ascending; NULL if unknown */
	size_t nr_lines;
	__u64 stamp;     /* the source string when read */
};

/*
 * Read the SharedFunctionInfo / Script at a tagged pointer. Everything comes from memory the
 * target controls: reads are bounded (string lengths, cons-string depth, line counts), strings
 * are re-encoded as UTF-8, and what does not look like the object leaves ->valid false.
 */
void v8heap__read_shared(const struct v8_reader *reader, __u64 shared, struct v8_shared *out);
void v8heap__read_script(const struct v8_reader *reader, __u64 script, struct v8_script *out);
/* Whether the object at the address is still the one read: a freed one's address is reused
 * after a GC. One small read, never the names again. */
bool v8heap__same_shared(const struct v8_reader *reader, __u64 shared, const struct v8_shared *s);
bool v8heap__same_script(const struct v8_reader *reader, __u64 script, const struct v8_script *s);
/* 1-based line and column of a source position of the script; false if unknown. */
bool v8heap__position(const struct v8_script *script, int position, int *line, int *column);
void v8heap__free_shared(struct v8_shared *shared);
void v8heap__free_script(struct v8_script *script);

#endif
