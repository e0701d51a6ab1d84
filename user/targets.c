// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include "targets.h"

/* include/linux/sched.h: the task is a kernel thread. */
#define PF_KTHREAD 0x00200000
/* Field 9 of /proc/PID/stat: the 6th space after the ")" that ends the comm. */
#define STAT_FLAGS_FIELD 6

/* The state letter and the flags of /proc/PID/stat. */
static int proc__state(pid_t pid, char *state, unsigned long *flags)
{
	char path[64], buf[1024], *after_comm, *field;
	ssize_t len;
	int fd, i;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len <= 0)
		return -ESRCH;
	buf[len] = '\0';
	/* comm may itself contain spaces and parentheses: skip to the last ')'. */
	after_comm = strrchr(buf, ')');
	if (!after_comm)
		return -EINVAL;
	field = after_comm + 1;
	*state = field[0] == ' ' ? field[1] : '\0';
	for (i = 0; i < STAT_FLAGS_FIELD && field; i++)
		field = strchr(field + 1, ' ');
	if (!field)
		return -EINVAL;
	*flags = strtoul(field + 1, NULL, 10);
	return 0;
}

void task__comm(pid_t pid, pid_t tid, char comm[TASK_COMM_LEN])
{
	char path[64];
	FILE *file;

	snprintf(comm, TASK_COMM_LEN, "?");
	snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", pid, tid);
	file = fopen(path, "r");
	if (!file)
		return;
	if (fgets(comm, TASK_COMM_LEN, file))
		comm[strcspn(comm, "\n")] = '\0';
	fclose(file);
}

int task__run_delay(pid_t pid, pid_t tid, __u64 *run_delay_ns)
{
	unsigned long long cpu, delay;
	char path[64];
	FILE *file;
	int n;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/schedstat", pid, tid);
	file = fopen(path, "re");
	if (!file)
		return -errno;
	n = fscanf(file, "%llu %llu", &cpu, &delay);
	fclose(file);
	if (n != 2)
		return -EINVAL;
	*run_delay_ns = delay;
	return 0;
}

pid_t task__ns_tid(pid_t pid, pid_t tid, bool *nested)
{
	char path[64], line[256], *field;
	pid_t ns_tid = 0;
	FILE *file;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/status", pid, tid);
	file = fopen(path, "re");
	if (!file)
		return 0;
	while (fgets(line, sizeof(line), file)) {
		if (strncmp(line, "NSpid:", 6))
			continue;
		/* "NSpid:\t4242\t7\t1": ours first, the innermost namespace's last. */
		field = strrchr(line, '\t');
		ns_tid = field ? (pid_t)atoi(field + 1) : 0;
		if (nested)
			*nested = field && field != strchr(line, '\t');
		break;
	}
	fclose(file);
	/* Kernels before 4.1 have no NSpid line: no namespaces to tell apart either. */
	return ns_tid > 0 ? ns_tid : tid;
}

pid_t task__host_tid(pid_t pid, pid_t ns_tid)
{
	struct dirent *entry;
	pid_t tid, found = 0;
	char path[64];
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	dir = opendir(path);
	if (!dir)
		return 0;
	while (!found && (entry = readdir(dir))) {
		tid = (pid_t)atoi(entry->d_name);
		if (tid > 0 && task__ns_tid(pid, tid, NULL) == ns_tid)
			found = tid;
	}
	closedir(dir);
	return found;
}

static int pidfd__open(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int targets__remember(struct targets *targets, pid_t pid)
{
	struct target *target;

	if (targets->nr >= MAX_TARGET_PIDS) {
		fprintf(stderr, "loopstall: too many target processes (at most %d)\n", MAX_TARGET_PIDS);
		return -E2BIG;
	}
	target = &targets->list[targets->nr];
	target->pid = pid;
	target->exited = false;
	target->pidfd = pidfd__open(pid);
	if (target->pidfd < 0) {
		fprintf(stderr, "loopstall: pid %d: %s\n", pid,
			errno == ESRCH ? "no such process" : strerror(errno));
		return -errno;
	}
	task__comm(pid, pid, target->comm);
	targets->nr++;
	return 0;
}

int targets__add_pid(struct targets *targets, pid_t pid)
{
	unsigned long flags;
	char path[64], state;
	int i, err;

	for (i = 0; i < targets->nr; i++)
		if (targets->list[i].pid == pid)
			return 0;
	err = proc__state(pid, &state, &flags);
	if (err == -ENOENT || err == -ESRCH) {
		fprintf(stderr, "loopstall: pid %d: no such process\n", pid);
		return err;
	}
	if (err) {
		fprintf(stderr, "loopstall: pid %d: cannot read /proc/%d/stat: %s\n", pid, pid,
			strerror(-err));
		return err;
	}
	/* Z: exited, its parent has not reaped it yet (X: being reaped): nothing left to trace. */
	if (state == 'Z' || state == 'X') {
		fprintf(stderr, "loopstall: pid %d: has exited (a zombie until its parent reaps it)\n",
			pid);
		return -ESRCH;
	}
	if (flags & PF_KTHREAD) {
		fprintf(stderr, "loopstall: pid %d: is a kernel thread, it runs no event loop\n", pid);
		return -EINVAL;
	}
	/* A thread id is visible as /proc/TID too, but tracing works per process. */
	snprintf(path, sizeof(path), "/proc/%d/task/%d", pid, pid);
	if (access(path, F_OK)) {
		fprintf(stderr, "loopstall: pid %d: is a thread, not a process; give its process "
				"id (Tgid in /proc/%d/status)\n", pid, pid);
		return -EINVAL;
	}
	return targets__remember(targets, pid);
}

static void __attribute__((noreturn)) child__exec(int release_fd, int status_fd, char **argv)
{
	char go;
	int err;

	if (read(release_fd, &go, 1) != 1)
		_exit(127); /* loopstall gave up before releasing us */
	close(release_fd);
	execvp(argv[0], argv);
	err = errno;
	if (write(status_fd, &err, sizeof(err)) < 0)
		_exit(127);
	_exit(127);
}

int targets__spawn(struct targets *targets, char **argv)
{
	int release[2], status[2];
	pid_t pid;

	if (pipe2(release, O_CLOEXEC) || pipe2(status, O_CLOEXEC)) {
		fprintf(stderr, "loopstall: pipe: %s\n", strerror(errno));
		return -errno;
	}
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "loopstall: fork: %s\n", strerror(errno));
		return -errno;
	}
	if (pid == 0) {
		close(release[1]);
		close(status[0]);
		child__exec(release[0], status[1], argv);
	}
	close(release[0]);
	close(status[1]);
	targets->child = pid;
	targets->release_fd = release[1];
	targets->exec_status_fd = status[0];
	return targets__remember(targets, pid);
}

int targets__release(struct targets *targets)
{
	ssize_t len;
	int err = 0;

	if (write(targets->release_fd, "x", 1) != 1)
		err = errno;
	close(targets->release_fd);
	targets->release_fd = -1;
	if (!err) {
		len = read(targets->exec_status_fd, &err, sizeof(err));
		if (len != sizeof(err))
			err = 0;
	}
	close(targets->exec_status_fd);
	targets->exec_status_fd = -1;
	if (err) {
		fprintf(stderr, "loopstall: cannot run the command: %s\n", strerror(err));
		waitpid(targets->child, NULL, 0);
		return -err;
	}
	task__comm(targets->child, targets->child, targets->list[0].comm);
	return 0;
}

void targets__abort(struct targets *targets)
{
	if (!targets->child || targets->release_fd < 0)
		return;
	close(targets->release_fd);
	targets->release_fd = -1;
	waitpid(targets->child, NULL, 0);
}

bool targets__all_exited(struct targets *targets)
{
	bool all = true;
	int i;

	for (i = 0; i < targets->nr; i++) {
		struct target *target = &targets->list[i];
		struct pollfd pfd = { .fd = target->pidfd, .events = POLLIN };

		if (!target->exited && poll(&pfd, 1, 0) == 1) {
			target->exited = true;
			if (target->pid == targets->child)
				waitpid(target->pid, NULL, WNOHANG);
		}
		all = all && target->exited;
	}
	return all;
}

const char *targets__comm(const struct targets *targets, pid_t pid)
{
	int i;

	for (i = 0; i < targets->nr; i++)
		if (targets->list[i].pid == pid)
			return targets->list[i].comm;
	return NULL;
}

/* The command loopstall started is ended with it, as `timeout` would: it was started only to be
 * traced, and an orphan would keep the terminal's pipes open. */
static void targets__end_child(struct targets *targets)
{
	int i;

	for (i = 0; i < targets->nr; i++) {
		if (targets->list[i].pid != targets->child || targets->list[i].exited)
			continue;
		kill(targets->child, SIGTERM);
		waitpid(targets->child, NULL, 0);
	}
}

void targets__close(struct targets *targets)
{
	int i;

	targets__abort(targets);
	targets__end_child(targets);
	for (i = 0; i < targets->nr; i++)
		close(targets->list[i].pidfd);
	targets->nr = 0;
}
