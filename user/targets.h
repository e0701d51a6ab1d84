/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef TARGETS_H
#define TARGETS_H

#include <stdbool.h>
#include <sys/types.h>
#include "cli.h"
#include "loopstall.h"

struct target {
	pid_t pid;
	int pidfd; /* readable once the process has exited */
	bool exited;
	char comm[TASK_COMM_LEN];
};

struct targets {
	struct target list[MAX_TARGET_PIDS];
	int nr;
	pid_t child;    /* the launched command, 0 when attaching */
	int release_fd; /* write end the suspended child waits on */
	int exec_status_fd; /* close-on-exec pipe: EOF means exec succeeded, else the errno */
};

/* Check that pid can be traced and remember it; prints one line and returns < 0 if not. */
int targets__add_pid(struct targets *targets, pid_t pid);
/* Fork argv's command, held just before exec until targets__release(). */
int targets__spawn(struct targets *targets, char **argv);
/* Let the launched command exec; prints one line and returns < 0 if the exec failed. */
int targets__release(struct targets *targets);
/* Kill a launched command that never got to run (loopstall failed to attach). */
void targets__abort(struct targets *targets);
/* Poll the targets' liveness; true once every target has exited. */
bool targets__all_exited(struct targets *targets);
void targets__close(struct targets *targets);
/* A thread's name from /proc, "?" when it is gone. */
void task__comm(pid_t pid, pid_t tid, char comm[TASK_COMM_LEN]);
/* The thread's run delay (ns waiting runnable for a CPU, as the scheduler counts it), from
 * /proc/PID/task/TID/schedstat: 0 or -errno. */
int task__run_delay(pid_t pid, pid_t tid, __u64 *run_delay_ns);
const char *targets__comm(const struct targets *targets, pid_t pid);
/*
 * The id thread tid of process pid has in its own PID namespace (the last NSpid of its
 * status: what gettid() returns inside a container), tid itself if it has no other, 0 if the
 * thread is gone. *nested, if not NULL, tells whether it lives in a PID namespace below ours.
 */
pid_t task__ns_tid(pid_t pid, pid_t tid, bool *nested);
/* The reverse: our id of the thread of pid whose id in pid's namespace is ns_tid, 0 if none. */
pid_t task__host_tid(pid_t pid, pid_t ns_tid);

#endif
