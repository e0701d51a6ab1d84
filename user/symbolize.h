/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef SYMBOLIZE_H
#define SYMBOLIZE_H

#include <sys/types.h>
#include <linux/types.h>

/* Kernel symbols from /proc/kallsyms and user symbols through elfutils libdwfl, one Dwfl per
 * process. Not thread-safe: one thread owns a struct syms. */
struct syms;

/* NULL + errno on failure. */
struct syms *syms__new(void);
void syms__free(struct syms *syms);

/* Kernel symbol containing addr; NULL if none. *offset set to addr - symbol start (0 if none).
 * /proc/kallsyms is read on the first call and never again: modules and BPF programs loaded
 * later are not found. Without CAP_SYSLOG every address in kallsyms is 0 and this returns NULL. */
const char *syms__kernel(struct syms *syms, __u64 addr, __u64 *offset);

struct user_sym {
	const char *symbol; /* function name or NULL; owned by syms, valid until syms__forget_pid/free */
	const char *module; /* module path (e.g. /usr/lib/x86_64-linux-gnu/libc.so.6) or NULL */
	__u64 offset;       /* addr - symbol start when symbol != NULL, else addr - module load base */
};

/* Resolve a user address of process pid. Returns 0 when at least the module is known, -ENOENT if
 * the address is in no known module. Never crashes on a process that has exited: returns an error.
 *
 * module is the path as the process sees it (what /proc/PID/maps shows), "[vdso]", or the path
 * followed by " (deleted)" when the file was replaced or removed since it was mapped. When symbol
 * is NULL, offset is the address in the ELF file's own address space (what `addr2line -e module`
 * takes), or addr - start of the module's first mapping if the file could not be read (the same
 * number for shared libraries and PIEs).
 * Errors: -ESRCH when the process is gone before anything was cached for it, -ENOMEM, or another
 * -errno from reading /proc/PID. */
int syms__user(struct syms *syms, pid_t pid, __u64 addr, struct user_sym *out);

/* Address of the defined symbol `name` in any module of process pid (and the module's path,
 * valid like user_sym's strings, if module is not NULL). -ENOENT if no module defines it,
 * -EAGAIN if none that could be read does but some could not be read for now (targetfs's time
 * budget ran out): ask again in a second or so. */
int syms__find_symbol(struct syms *syms, pid_t pid, const char *name, __u64 *addr,
		      const char **module);
/*
 * Address and size, in process pid, of the first ELF section named `name` in any of its
 * modules (a runtime's debug tables live in sections of their own: CPython's .AsyncioDebug).
 * -ENOENT if no module has one.
 */
int syms__find_section(struct syms *syms, pid_t pid, const char *name, __u64 *addr,
		       __u64 *size);
/*
 * Whether process pid's modules changed (a dlopen) since the caller saw them at *generation
 * (0 at first): re-reads its maps, but not more than once a second. 1 and *generation updated
 * when they did; then syms__find_* see the new modules.
 */
int syms__refresh(struct syms *syms, pid_t pid, __u64 *generation);
/* Called for each defined symbol whose name starts with the prefix given to syms__each_symbol,
 * with its address in the process; a non-zero return stops the iteration. */
typedef int (*syms_symbol_fn)(void *ctx, const char *name, __u64 addr);
/* Every defined symbol of the first module of process pid that has a symbol starting with
 * prefix (a runtime's metadata lives in one module), then each of `extra` names (NULL-ended)
 * looked up in that same module. 0, or -ENOENT if no module has such a symbol. */
int syms__each_symbol(struct syms *syms, pid_t pid, const char *prefix,
		      const char *const *extra, syms_symbol_fn fn, void *ctx);
/* Drop what is cached for pid (process exited or exec'd). After an exec the cached modules are
 * those of the old program: the caller must call this, nothing here notices. */
void syms__forget_pid(struct syms *syms, pid_t pid);

#endif
