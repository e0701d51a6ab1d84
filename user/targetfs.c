// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Files opened on behalf of an untrusted traced process: see targetfs.h. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include "clock.h"
#include "targetfs.h"
#include "util.h"

/* More groups than this and the rest are left out: fewer groups can only grant less. */
#define MAX_GROUPS 64
/* Symlinks followed in one resolution (the kernel's MAXSYMLINKS) and directories deep. */
#define WALK_MAX_LINKS 40
#define WALK_MAX_DEPTH 128
#define LINE_MAX_BYTES 1024
#define READ_CHUNK (64U << 10)
/* The worker only opens and reads: its stack holds two paths. */
#define WORKER_STACK (256U << 10)
/* A request whose worker is still runnable when its budget looks spent is looked at again
 * this much later: its last wait for a CPU is not in run_delay until it runs. */
#define RUNNABLE_RECHECK_NS (20 * NS_PER_MS)

struct creds {
	uid_t fsuid;
	gid_t fsgid;
	int nr_groups;
	gid_t groups[MAX_GROUPS];
};

enum request_kind { REQUEST_OPEN, REQUEST_LINE, REQUEST_MAPPED };

/*
 * The worker thread's scheduler accounts (/proc/thread-self/schedstat, opened by the worker):
 * run_delay is its time runnable but waiting for a CPU. What a request costs the stream is its
 * wall time minus that: on-CPU time plus time blocked in a file system, which is what a target
 * can make long; waiting for a CPU on a loaded host it cannot, and it must not make files miss.
 */
struct sched_time {
	__u64 wall_ns, run_delay_ns;
};

/* Owned by the caller until it gives up waiting, then by the worker thread. */
struct request {
	enum request_kind kind;
	pid_t pid;
	int root_fd;  /* REQUEST_OPEN, REQUEST_LINE */
	char *path;   /* REQUEST_OPEN, REQUEST_LINE */
	__u64 start;  /* REQUEST_MAPPED */
	int line;     /* REQUEST_LINE */
	__u64 budget_ns;
	int schedstat_fd;	/* the worker's, set when it starts the request */
	bool started;
	struct sched_time began; /* when the worker started it */
	__u64 spent_ns;		 /* its cost, when done */
	struct creds creds;
	int result;   /* a descriptor (REQUEST_OPEN, REQUEST_MAPPED), 0 or -errno */
	struct stat st;
	char text[LINE_MAX_BYTES];
	bool done, abandoned;
	pthread_cond_t done_cond;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/* One request at a time: the worker runs one. */
static pthread_mutex_t submit_lock = PTHREAD_MUTEX_INITIALIZER;
/* Under lock: pids whose worker is still blocked after the caller gave up (0: a free slot). */
static pid_t stuck[TARGETFS_MAX_STUCK];
/* Spent in one second (see struct sched_time): a target whose files answer slowly delays the
 * stream this much. */
static __u64 window_start_ns, window_spent_ns;
static int openat2_missing;

/* The calling thread's (or, with its worker's descriptor, the worker's) clock and run_delay. A
 * kernel without schedstat (CONFIG_SCHED_INFO off) reads 0: all wall time is charged. */
static struct sched_time sched_time__now(int schedstat_fd)
{
	struct sched_time t = { .wall_ns = clock__ns() };
	char text[96], *end;
	ssize_t n;

	n = schedstat_fd >= 0 ? pread(schedstat_fd, text, sizeof(text) - 1, 0) : -1;
	if (n > 0) {
		text[n] = '\0';
		strtoull(text, &end, 10); /* on-CPU time */
		t.run_delay_ns = strtoull(end, NULL, 10);
	}
	return t;
}

/* Time spent from `from` to `to` other than waiting for a CPU. */
static __u64 sched_time__spent(const struct sched_time *from, const struct sched_time *to)
{
	__u64 wall = to->wall_ns - from->wall_ns, delay = to->run_delay_ns - from->run_delay_ns;

	return wall > delay ? wall - delay : 0;
}

/* What the worker running req has spent on it so far. */
static __u64 request__spent(const struct request *req)
{
	struct sched_time now = sched_time__now(req->schedstat_fd);

	return sched_time__spent(&req->began, &now);
}

/* Filesystems whose "regular files" are interfaces: reading one can act, or expose another
 * process (/proc/self/environ is loopstall's own). */
static bool fs__is_pseudo(long type)
{
	switch (type) {
	case PROC_SUPER_MAGIC: case SYSFS_MAGIC: case DEBUGFS_MAGIC: case TRACEFS_MAGIC:
	case SECURITYFS_MAGIC: case CGROUP_SUPER_MAGIC: case CGROUP2_SUPER_MAGIC:
	case BPF_FS_MAGIC: case EFIVARFS_MAGIC: case PSTOREFS_MAGIC: case DEVPTS_SUPER_MAGIC:
		return true;
	}
	return false;
}

/* Fields of /proc/PID/status: the 4th of "Uid:" and "Gid:" is the filesystem id. */
static int creds__read(int pid_dir, struct creds *creds)
{
	char line[1024], *field, *end;
	bool uid = false, gid = false;
	unsigned long value;
	FILE *status;
	int fd, i;

	fd = openat(pid_dir, "status", O_RDONLY | O_CLOEXEC);
	status = fd >= 0 ? fdopen(fd, "r") : NULL;
	if (!status) {
		if (fd >= 0)
			close(fd);
		return -ESRCH;
	}
	creds->nr_groups = 0;
	while (fgets(line, sizeof(line), status)) {
		if (!strncmp(line, "Uid:", 4) || !strncmp(line, "Gid:", 4)) {
			field = line + 4;
			for (i = 0; i < 4; i++)
				value = strtoul(field, &field, 10);
			if (line[0] == 'U')
				creds->fsuid = (uid_t)value, uid = true;
			else
				creds->fsgid = (gid_t)value, gid = true;
		} else if (!strncmp(line, "Groups:", 7)) {
			for (field = line + 7; creds->nr_groups < MAX_GROUPS; field = end) {
				value = strtoul(field, &end, 10);
				if (end == field)
					break;
				creds->groups[creds->nr_groups++] = (gid_t)value;
			}
		}
	}
	fclose(status);
	return uid && gid ? 0 : -ESRCH;
}

/* This thread's capabilities become `keep` (of those it has): raw capset is per thread. */
static int caps__set(const int *keep, int nr)
{
	struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {}, now[2];
	int i;

	if (syscall(SYS_capget, &header, now))
		return -errno;
	for (i = 0; i < nr; i++)
		data[keep[i] / 32].effective |= 1U << (keep[i] % 32);
	for (i = 0; i < _LINUX_CAPABILITY_U32S_3; i++) {
		data[i].effective &= now[i].permitted;
		data[i].permitted = now[i].permitted;
	}
	return syscall(SYS_capset, &header, data) ? -errno : 0;
}

/*
 * Become the target for file access, in this thread only: its groups, fsgid and fsuid, then no
 * capability but those in `keep` (none lets a check on a file's mode or owner pass).
 */
static int creds__assume(const struct creds *creds, const int *keep, int nr_keep)
{
	static const int setid[] = { CAP_SETUID, CAP_SETGID };
	int err = caps__set(setid, 2);

	if (err)
		return err;
	if (syscall(SYS_setgroups, creds->nr_groups, creds->groups))
		return -errno;
	/* set*fsid report the previous id, not failure: -1 (never valid) reads the current one. */
	syscall(SYS_setfsgid, creds->fsgid);
	syscall(SYS_setfsuid, creds->fsuid);
	if ((gid_t)syscall(SYS_setfsgid, -1) != creds->fsgid ||
	    (uid_t)syscall(SYS_setfsuid, -1) != creds->fsuid)
		return -EPERM;
	err = caps__set(keep, nr_keep);
	if (err)
		return err;
	return 0;
}

static void dirs__close(int *dirs, int *depth)
{
	while (*depth)
		close(dirs[--*depth]);
}

/*
 * openat2 RESOLVE_IN_ROOT by hand, for kernels before 5.6: one component at a time with
 * O_NOFOLLOW; a symlink's text is resolved again from the root (absolute) or from where it is;
 * ".." goes back to the directory we came from, and from the root stays there. The target's own
 * procfs links are read as text, never jumped through.
 */
static int walk__resolve(int root_fd, const char *path)
{
	char rest[PATH_MAX], link[PATH_MAX], name[NAME_MAX + 1];
	int dirs[WALK_MAX_DEPTH], depth = 0, links = 0, fd, err = 0;
	const char *p = rest;
	struct stat st;
	size_t len;
	ssize_t n;

	if (strlen(path) >= sizeof(rest))
		return -ENAMETOOLONG;
	strcpy(rest, path);
	for (;;) {
		p += strspn(p, "/");
		if (!*p)
			break;
		len = strcspn(p, "/");
		if (len > NAME_MAX) {
			err = -ENAMETOOLONG;
			break;
		}
		memcpy(name, p, len);
		name[len] = '\0';
		p += len;
		if (!strcmp(name, "."))
			continue;
		if (!strcmp(name, "..")) {
			if (depth)
				close(dirs[--depth]);
			continue;
		}
		fd = openat(depth ? dirs[depth - 1] : root_fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st)) {
			err = -errno;
			if (fd >= 0)
				close(fd);
			break;
		}
		if (S_ISLNK(st.st_mode)) {
			n = readlinkat(fd, "", link, sizeof(link) - 1);
			close(fd);
			if (n < 0 || ++links > WALK_MAX_LINKS) {
				err = n < 0 ? -errno : -ELOOP;
				break;
			}
			link[n] = '\0';
			if ((size_t)n + 1 + strlen(p) >= sizeof(rest)) {
				err = -ENAMETOOLONG;
				break;
			}
			/* p points into rest: move the remainder before the link text goes in front. */
			memmove(rest + n + 1, p, strlen(p) + 1);
			memcpy(rest, link, (size_t)n);
			rest[n] = '/';
			p = rest;
			if (link[0] == '/')
				dirs__close(dirs, &depth);
			continue;
		}
		if (depth == WALK_MAX_DEPTH) {
			close(fd);
			err = -ENAMETOOLONG;
			break;
		}
		dirs[depth++] = fd;
	}
	if (!err && !depth)
		return -EISDIR; /* the root itself */
	if (!err)
		fd = dirs[--depth];
	dirs__close(dirs, &depth);
	return err ? err : fd;
}

/* An O_PATH descriptor of path resolved inside root_fd: opening it has no side effect. */
static int path__resolve(int root_fd, const char *path)
{
	struct open_how how = {
		.flags = O_PATH | O_CLOEXEC,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	int fd;

	if (!__atomic_load_n(&openat2_missing, __ATOMIC_RELAXED)) {
		fd = (int)syscall(SYS_openat2, root_fd, path, &how, sizeof(how));
		if (fd >= 0)
			return fd;
		/* Before Linux 5.6, or filtered by a container's seccomp profile. */
		if (errno != ENOSYS)
			return -errno;
		__atomic_store_n(&openat2_missing, 1, __ATOMIC_RELAXED);
	}
	return walk__resolve(root_fd, path);
}

/*
 * Open what an O_PATH descriptor names for reading, if it is a regular file of a real
 * filesystem (and, when the caller will read it later, outside the time budget, not FUSE).
 * Reopening through /proc/thread-self/fd checks the file's permissions with this thread's
 * credentials, as opening it by name would. Consumes path_fd.
 */
static int path_fd__open(int path_fd, struct stat *st, bool allow_fuse)
{
	char proc_path[64];
	struct statfs fs;
	struct stat again;
	int fd = -EINVAL;

	if (fstat(path_fd, st) || fstatfs(path_fd, &fs)) {
		fd = -errno;
		goto out;
	}
	if (!S_ISREG(st->st_mode) || fs__is_pseudo(fs.f_type) ||
	    (!allow_fuse && fs.f_type == FUSE_SUPER_MAGIC))
		goto out;
	snprintf(proc_path, sizeof(proc_path), "/proc/thread-self/fd/%d", path_fd);
	fd = open(proc_path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		fd = -errno;
		goto out;
	}
	if (fstat(fd, &again) || again.st_dev != st->st_dev || again.st_ino != st->st_ino) {
		close(fd);
		fd = -EINVAL;
	}
out:
	close(path_fd);
	return fd;
}

/* Line req->line of an open file into req->text; reads at most TARGETFS_MAX_SCAN bytes. */
static int file__line(int fd, struct request *req)
{
	size_t len = 0, want, take;
	char *chunk, *at, *end, *nl;
	int number = 1, err = -ENOENT;
	off_t off = 0;
	ssize_t n;

	chunk = malloc(READ_CHUNK);
	if (!chunk)
		return -ENOMEM;
	while (off < (off_t)TARGETFS_MAX_SCAN) {
		if (request__spent(req) > req->budget_ns) {
			err = -ETIMEDOUT;
			break;
		}
		want = TARGETFS_MAX_SCAN - (size_t)off;
		n = pread(fd, chunk, want < READ_CHUNK ? want : READ_CHUNK, off);
		if (n <= 0) {
			/* The last line need not end with a newline. */
			err = n < 0 ? -errno : number == req->line ? 0 : -ENOENT;
			break;
		}
		off += n;
		for (at = chunk, end = chunk + n; at < end && number <= req->line; at = nl + 1) {
			nl = memchr(at, '\n', (size_t)(end - at));
			if (number == req->line) {
				take = (size_t)((nl ? nl : end) - at);
				if (take > sizeof(req->text) - 1 - len)
					take = sizeof(req->text) - 1 - len;
				memcpy(req->text + len, at, take);
				len += take;
			}
			if (!nl)
				break;
			number++;
		}
		if (number > req->line) {
			err = 0;
			break;
		}
	}
	free(chunk);
	req->text[len] = '\0';
	return err;
}

/* The file mapped at req->start, through the map_files link that names that mapping. */
static int mapped__resolve(const struct request *req)
{
	char path[64], prefix[24];
	struct dirent *ent;
	int fd = -ENOENT;
	size_t prefix_len;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/map_files", req->pid);
	prefix_len = (size_t)snprintf(prefix, sizeof(prefix), "%" PRIx64 "-", (uint64_t)req->start);
	dir = opendir(path);
	if (!dir)
		return -errno;
	while ((ent = readdir(dir)))
		if (!strncmp(ent->d_name, prefix, prefix_len)) {
			fd = openat(dirfd(dir), ent->d_name, O_PATH | O_CLOEXEC);
			fd = fd < 0 ? -errno : fd;
			break;
		}
	closedir(dir);
	return fd;
}

static int request__work(struct request *req, const struct creds *self)
{
	/* map_files lookups need one of the first two; its links, ptrace access to the target. */
	static const int mapped_caps[] = { CAP_CHECKPOINT_RESTORE, CAP_SYS_ADMIN, CAP_SYS_PTRACE };
	bool mapped = req->kind == REQUEST_MAPPED;
	int fd = -EACCES, err;

	/* /proc/PID/map_files is mode 0500, owned by the target's user, or by root when the target
	 * is not dumpable: look it up as loopstall first, as the target if that is refused. Either
	 * way the file itself is opened with the target's credentials, below. */
	if (mapped && !creds__assume(self, mapped_caps, 3))
		fd = mapped__resolve(req);
	err = mapped ? creds__assume(&req->creds, mapped_caps, 3) :
		       creds__assume(&req->creds, NULL, 0);
	if (err) {
		if (fd >= 0)
			close(fd);
		return err;
	}
	if (!mapped)
		fd = path__resolve(req->root_fd, req->path);
	else if (fd == -EACCES)
		fd = mapped__resolve(req);
	if (fd < 0)
		return fd;
	fd = path_fd__open(fd, &req->st, req->kind == REQUEST_LINE);
	if (fd < 0 || req->kind != REQUEST_LINE)
		return fd;
	err = file__line(fd, req);
	close(fd);
	return err;
}

static void request__free(struct request *req)
{
	if (req->root_fd >= 0)
		close(req->root_fd);
	free(req->path);
	pthread_cond_destroy(&req->done_cond);
	free(req);
}

/*
 * A thread that takes the targets' credentials for one request after another (raw set*id and
 * capset are per thread: the rest of loopstall keeps its own). Replaced when a request it runs
 * outlives the caller's wait: it then finishes that one alone, frees it and exits.
 */
struct worker {
	struct request *req; /* the request to run, NULL while idle */
	bool retire;	     /* exit when idle: see targetfs__reset */
	pthread_cond_t wake;
	/* Its /proc/thread-self/schedstat and stat (whether it is runnable), -1 if none: opened by
	 * the worker, closed when it exits. */
	int schedstat_fd, stat_fd;
};

static struct worker *worker; /* the one requests go to; NULL: start one */

static void *worker__run(void *arg)
{
	struct worker *w = arg;
	struct request *req;
	struct creds self;
	int result;

	/* loopstall's own file credentials, before any request changes them. */
	self.fsuid = (uid_t)syscall(SYS_setfsuid, -1);
	self.fsgid = (gid_t)syscall(SYS_setfsgid, -1);
	self.nr_groups = (int)syscall(SYS_getgroups, MAX_GROUPS, self.groups);
	if (self.nr_groups < 0)
		self.nr_groups = 0;
	w->schedstat_fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
	w->stat_fd = open("/proc/thread-self/stat", O_RDONLY | O_CLOEXEC);
	pthread_mutex_lock(&lock);
	for (;;) {
		while (!w->req && !w->retire)
			pthread_cond_wait(&w->wake, &lock);
		if (!w->req) {
			pthread_mutex_unlock(&lock);
			break;
		}
		req = w->req;
		/* Under lock: the caller reads these when its wait times out. */
		req->schedstat_fd = w->schedstat_fd;
		req->began = sched_time__now(req->schedstat_fd);
		req->started = true;
		pthread_mutex_unlock(&lock);
		result = request__work(req, &self);
		pthread_mutex_lock(&lock);
		req->spent_ns = request__spent(req);
		req->result = result;
		req->done = true;
		w->req = NULL;
		if (!req->abandoned) {
			pthread_cond_signal(&req->done_cond);
			continue;
		}
		pid_set__remove(stuck, ARRAY_SIZE(stuck), req->pid);
		pthread_mutex_unlock(&lock);
		if (result >= 0 && req->kind != REQUEST_LINE)
			close(result);
		request__free(req);
		break;
	}
	if (w->schedstat_fd >= 0)
		close(w->schedstat_fd);
	if (w->stat_fd >= 0)
		close(w->stat_fd);
	pthread_cond_destroy(&w->wake);
	free(w);
	return NULL;
}

void targetfs__reset(void)
{
	pthread_mutex_lock(&submit_lock);
	pthread_mutex_lock(&lock);
	if (worker) {
		worker->retire = true;
		pthread_cond_signal(&worker->wake);
		worker = NULL;
	}
	pthread_mutex_unlock(&lock);
	pthread_mutex_unlock(&submit_lock);
}

/* The worker, started if there is none; under lock. NULL if no thread can be started. */
static struct worker *worker__get(void)
{
	sigset_t all, old;
	pthread_attr_t attr;
	pthread_t thread;
	struct worker *w;
	int err;

	if (worker)
		return worker;
	w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->schedstat_fd = w->stat_fd = -1;
	pthread_cond_init(&w->wake, NULL);
	/* Signals are for the main thread: a SIGINT must interrupt what it waits on. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, WORKER_STACK);
	err = pthread_create(&thread, &attr, worker__run, w);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		pthread_cond_destroy(&w->wake);
		free(w);
		return NULL;
	}
	worker = w;
	return w;
}

/* The target's creds and, for a path, its root; both from one /proc/PID so from one process.
 * NULL with *err -ESRCH (gone), -ENOMEM or another -errno. */
static struct request *request__new(enum request_kind kind, pid_t pid, const char *path, int *err)
{
	struct request *req = calloc(1, sizeof(*req));
	pthread_condattr_t attr;
	char dir_path[32];
	int pid_dir;

	*err = -ENOMEM;
	if (!req)
		return NULL;
	req->kind = kind;
	req->pid = pid;
	req->root_fd = -1;
	req->schedstat_fd = -1;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&req->done_cond, &attr);
	pthread_condattr_destroy(&attr);
	snprintf(dir_path, sizeof(dir_path), "/proc/%d", pid);
	pid_dir = open(dir_path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (pid_dir < 0) {
		*err = errno == ENOENT ? -ESRCH : -errno;
		goto fail;
	}
	*err = creds__read(pid_dir, &req->creds);
	if (*err)
		goto fail;
	if (path) {
		req->path = strdup(path);
		req->root_fd = openat(pid_dir, "root", O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (!req->path || req->root_fd < 0) {
			*err = !req->path ? -ENOMEM : errno == ENOENT ? -ESRCH : -errno;
			goto fail;
		}
	}
	close(pid_dir);
	return req;
fail:
	if (pid_dir >= 0)
		close(pid_dir);
	request__free(req);
	return NULL;
}

/* What the stream may still spend this second (see window_spent_ns). */
static __u64 window__left(__u64 now)
{
	if (now - window_start_ns >= NS_PER_SEC) {
		window_start_ns = now;
		window_spent_ns = 0;
	}
	return window_spent_ns < TARGETFS_BUDGET_MS * NS_PER_MS ?
	       TARGETFS_BUDGET_MS * NS_PER_MS - window_spent_ns : 0;
}

/* Whether w is runnable (waiting for a CPU or on one): the 'R' after its name in stat. */
static bool worker__runnable(const struct worker *w)
{
	char text[256], *name_end;
	ssize_t n;

	n = w->stat_fd >= 0 ? pread(w->stat_fd, text, sizeof(text) - 1, 0) : -1;
	if (n <= 0)
		return false;
	text[n] = '\0';
	name_end = strrchr(text, ')');
	return name_end && name_end[1] == ' ' && name_end[2] == 'R';
}

/*
 * Wait for req, under lock, until it is done or has spent its budget (see struct sched_time):
 * from when its worker started it, minus the worker's waits for a CPU. The last such wait is
 * in run_delay only once the worker runs again: a runnable worker is given RUNNABLE_RECHECK_NS
 * more, up to TARGETFS_WAIT_MAX_MS in all. Returns what req spent.
 */
static __u64 request__wait(struct request *req, const struct worker *w, __u64 submitted_ns)
{
	__u64 now = submitted_ns, spent = 0, next;
	struct timespec deadline;
	int err = 0;

	while (!req->done) {
		if (err) {
			now = clock__ns();
			spent = req->started ? request__spent(req) : 0;
			if (now - submitted_ns >= TARGETFS_WAIT_MAX_MS * NS_PER_MS)
				break;
			if (spent >= req->budget_ns && !worker__runnable(w))
				break;
		}
		next = now + (spent < req->budget_ns ? req->budget_ns - spent : RUNNABLE_RECHECK_NS);
		if (next > submitted_ns + TARGETFS_WAIT_MAX_MS * NS_PER_MS)
			next = submitted_ns + TARGETFS_WAIT_MAX_MS * NS_PER_MS;
		deadline.tv_sec = (time_t)(next / NS_PER_SEC);
		deadline.tv_nsec = (long)(next % NS_PER_SEC);
		err = pthread_cond_timedwait(&req->done_cond, &lock, &deadline);
	}
	return req->done ? req->spent_ns : spent;
}

/*
 * Run req in the worker and wait for it within the budget. Its stat and line go to st and
 * text (either may be NULL). Returns its result (a descriptor, 0 or -errno); req is freed, or left
 * to its thread, which frees it.
 */
static int request__run(struct request *req, struct stat *st, char *text, size_t size)
{
	__u64 now = clock__ns(), left;
	struct worker *w;
	int slot, err;

	pthread_mutex_lock(&lock);
	left = window__left(now);
	if (!left || pid_set__has(stuck, ARRAY_SIZE(stuck), req->pid, &slot) || slot < 0) {
		pthread_mutex_unlock(&lock);
		request__free(req);
		return -EBUSY;
	}
	req->budget_ns = left;
	w = worker__get();
	if (!w) {
		pthread_mutex_unlock(&lock);
		request__free(req);
		return -EAGAIN;
	}
	w->req = req;
	pthread_cond_signal(&w->wake);
	window_spent_ns += request__wait(req, w, now);
	if (!req->done) {
		/* Left to the worker, which exits after it; the next request starts another. */
		req->abandoned = true;
		worker = NULL;
		pid_set__add(stuck, ARRAY_SIZE(stuck), req->pid);
		pthread_mutex_unlock(&lock);
		return -ETIMEDOUT;
	}
	pthread_mutex_unlock(&lock);
	err = req->result;
	if (err >= 0 && st)
		*st = req->st;
	if (err >= 0 && text)
		snprintf(text, size, "%s", req->text);
	request__free(req);
	return err;
}

static int request__submit(struct request *req, int err_new, struct stat *st, char *text,
			   size_t size)
{
	int err;

	if (!req)
		return err_new;
	pthread_mutex_lock(&submit_lock);
	err = request__run(req, st, text, size);
	pthread_mutex_unlock(&submit_lock);
	return err;
}

int targetfs__open(pid_t pid, const char *path, struct stat *st)
{
	struct request *req;
	int err;

	if (!path || path[0] != '/')
		return -EINVAL;
	req = request__new(REQUEST_OPEN, pid, path, &err);
	return request__submit(req, err, st, NULL, 0);
}

int targetfs__open_mapped(pid_t pid, __u64 start, struct stat *st)
{
	struct request *req;
	int err;

	req = request__new(REQUEST_MAPPED, pid, NULL, &err);
	if (req)
		req->start = start;
	return request__submit(req, err, st, NULL, 0);
}

int targetfs__read_line(pid_t pid, const char *path, int line, char *buf, size_t size)
{
	struct request *req;
	int err;

	if (!path || path[0] != '/' || line <= 0 || !size)
		return -EINVAL;
	req = request__new(REQUEST_LINE, pid, path, &err);
	if (req)
		req->line = line;
	return request__submit(req, err, NULL, buf, size);
}
