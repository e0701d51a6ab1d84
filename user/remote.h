/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef REMOTE_H
#define REMOTE_H

/*
 * Reads of a traced process's memory and of its /proc/PID/maps: only ever read, never written
 * or stopped, and bounded in time whatever the target does.
 *
 * A read can sleep as long as the target wants: process_vm_readv faults the target's pages in,
 * and a page of a file on a FUSE server the target runs (or a userfaultfd range it registered)
 * waits for that server's answer; /proc/PID/maps waits for the target's mmap lock, which a
 * target can keep contended. No signal short of SIGKILL ends those waits (a FUSE read that
 * reached its server not even that). So every read runs in a reader thread, and the caller
 * waits until the reader has been blocked in it REMOTE_TIMEOUT_MS: its time on a CPU and its
 * waits for one do not count (a loaded host is not the target's doing), and the wait ends at
 * REMOTE_WAIT_MAX_MS whatever the reader did; and, in all, REMOTE_BUDGET_MS a second on reads
 * that were blocked over REMOTE_SLOW_MS (a target that answers slowly). Legitimate reads take
 * microseconds, milliseconds from swap.
 *
 * A read that outlives the wait is left to its thread, which owns the read's buffer (a late
 * answer never writes into the caller's memory) and exits once the read returns (the target
 * answers, or dies: a dead FUSE server's requests fail); a fresh reader takes the next read.
 * Until then every read of that pid fails at once with -EBUSY, and loopstall says so once,
 * naming the pid. At most REMOTE_MAX_STUCK threads are ever left behind, so hung reads cost the
 * stream REMOTE_MAX_STUCK * REMOTE_TIMEOUT_MS at most while they hang; with all of them stuck,
 * reads fail with -EBUSY until one returns. Thread-safe.
 */

#include <errno.h>
#include <stddef.h>
#include <sys/types.h>
#include <linux/types.h>

/* A read's wait; slow reads' waits in all, a second. */
#define REMOTE_TIMEOUT_MS 100
#define REMOTE_BUDGET_MS 250
/* A reader on a CPU or waiting for one (a loaded host) is waited for, up to this in all. */
#define REMOTE_WAIT_MAX_MS 500
#define REMOTE_SLOW_MS 5
#define REMOTE_MAX_STUCK 8

/*
 * Work done for pid by the reader thread. run() fills what the job owns and returns 0 or
 * -errno. A job whose wait timed out belongs to the reader thread from then on: it calls
 * release() once run() returned, which frees the job and everything it owns.
 */
struct remote_job {
	pid_t pid;
	int (*run)(struct remote_job *job);
	void (*release)(struct remote_job *job);
};

/*
 * Run job in the reader thread and wait for it within the budget. Returns run()'s result,
 * -EBUSY (pid is unreadable, or the budget is spent) without running it, -EAGAIN (no thread),
 * or -ETIMEDOUT: then the job is the reader thread's, and neither it nor what it owns may be
 * touched again.
 */
int remote__run(struct remote_job *job);

/* Capabilities are per thread: after loopstall dropped its own, the reader (started with the
 * old ones) is replaced by one started with the new. */
void remote__reset(void);

/* All len bytes at addr in pid, or -EFAULT (a short read is as bad as none), -EBUSY, ... */
int remote__read(pid_t pid, __u64 addr, void *buf, size_t len);

/* The same as a reader callback (struct pycode_reader, struct v8heap_reader): ctx is a pid_t. */
static inline int remote__reader(void *ctx, __u64 addr, void *buf, size_t len)
{
	return remote__read(*(const pid_t *)ctx, addr, buf, len);
}

#endif /* REMOTE_H */
