/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef TARGETFS_H
#define TARGETFS_H

/*
 * Files opened on behalf of a traced process, which is untrusted: the only way loopstall opens
 * a file whose name or content the target controls (a code object's file name, a perf map, a
 * script name, the binaries and libraries it mapped). Use it for every such file; do not open
 * them any other way.
 *
 * What it guarantees, whatever the target does:
 * - The path is resolved inside the target's root (/proc/PID/root: its container's overlay, its
 *   chroot) and never leaves it: not through "..", an absolute or relative symlink, nor a /proc
 *   magic link (openat2 RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS; where openat2 is missing, a
 *   walk that resolves each component itself, with the same rules).
 * - It is opened with the target's credentials (its fsuid, fsgid and supplementary groups from
 *   /proc/PID/status, no capabilities), by a thread of its own that sets them with raw
 *   syscalls (they are per thread; glibc's wrappers would change every thread). The kernel then
 *   checks every directory and the file as it would for the target: a file the target cannot
 *   open fails with -EACCES. This needs CAP_SETUID and CAP_SETGID (kept, not effective, after
 *   attach: see privileges.h); without them nothing is opened. The thread lives on between
 *   requests; capabilities are per thread too, so call targetfs__reset() after loopstall
 *   drops its own.
 * - Only regular files: the name is resolved with O_PATH (no open side effects: a FIFO's open
 *   would block, a device's may act), checked with fstat/fstatfs, and only then opened
 *   (O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC). FIFOs, sockets, devices and files of
 *   pseudo file systems (procfs, sysfs, debugfs, ...) are refused with -EINVAL.
 * - A time budget: the calls of one second spend at most TARGETFS_BUDGET_MS of the worker
 *   thread's time on a CPU or blocked in a file system (what a target can make long), not its
 *   time waiting for a CPU (what a loaded host makes long: a budget of wall time made a new
 *   process's files miss on a busy host). A thread blocked beyond it (a FUSE server the target
 *   runs, a hung network file system) is left behind and the call returns -ETIMEDOUT; while it
 *   is blocked, every other call for the same pid returns -EBUSY at once, and at most
 *   TARGETFS_MAX_STUCK threads are ever left behind in all. Whatever the load, a call waits at
 *   most TARGETFS_WAIT_MAX_MS.
 * - Descriptors returned to the caller are not on FUSE (their later reads, e.g. by libdwfl,
 *   would not be bounded in time).
 *
 * Errors are -errno (-ESRCH: the process is gone; a file is read only while it lives, with its
 * credentials of the moment, which may have changed since it was last read); callers print nothing of why a file was refused (the reason can say whether
 * a file the target may not read exists). Thread-safe.
 */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <linux/types.h>
#include "clock.h"

#define TARGETFS_BUDGET_MS 250
#define TARGETFS_WAIT_MAX_MS 2000
#define TARGETFS_MAX_STUCK 8
/* A file missed for lack of time (see targetfs__missed) is asked for again this long after. */
#define TARGETFS_RETRY_NS 1000000000ULL

/* err is targetfs's time budget running out (-ETIMEDOUT, -EBUSY: a slow file system, or a
 * loaded machine keeping its thread off a CPU), not the file's fate: ask again later. */
static inline bool targetfs__missed(int err)
{
	return err == -ETIMEDOUT || err == -EBUSY;
}

/* Whether something missed at missed_ns (see targetfs__missed) is due to be asked for again. */
static inline bool targetfs__retry_due(__u64 missed_ns)
{
	return clock__ns() - missed_ns >= TARGETFS_RETRY_NS;
}
/* targetfs__read_line() looks at no more than this many bytes of a file. */
#define TARGETFS_MAX_SCAN (4U << 20)

/*
 * Open `path`, absolute, as process pid sees it and could open it. Returns a read-only
 * descriptor and fills *st, or -errno.
 */
int targetfs__open(pid_t pid, const char *path, struct stat *st);

/*
 * Line `line` (1-based) of the file `path` names for pid, opened as by targetfs__open(): its
 * first size - 1 bytes, without the newline, NUL-terminated. Only the first TARGETFS_MAX_SCAN
 * bytes of the file are read. Returns 0, -ENOENT if the file has no such line, or -errno.
 */
int targetfs__read_line(pid_t pid, const char *path, int line, char *buf, size_t size);

/*
 * The file pid has mapped at address `start` (a mapping's first byte, as in /proc/PID/maps),
 * from /proc/PID/map_files: exactly the file that is mapped, even if its path was replaced,
 * renamed, deleted or is in another mount namespace, never one the target names. Opened with
 * the target's credentials; needs CAP_CHECKPOINT_RESTORE (or CAP_SYS_ADMIN) to look it up.
 * Returns a read-only descriptor and fills *st, or -errno.
 */
int targetfs__open_mapped(pid_t pid, __u64 start, struct stat *st);

/* Capabilities are per thread: after loopstall dropped its own, the worker thread (started
 * with the old ones) is replaced by one started with the new. */
void targetfs__reset(void);

#endif
