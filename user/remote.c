// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Reads of a traced process, bounded in time: see remote.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>
#include "clock.h"
#include "remote.h"
#include "util.h"

/* The reader only copies: its stack holds a few frames. */
#define READER_STACK (64U << 10)
/* Pids already warned about, most recent first out: a pid stuck again is not said twice. */
#define MAX_WARNED 64
/* A reader not blocked long enough at the deadline is looked at again this much later. */
#define RECHECK_NS (20 * NS_PER_MS)

/* What the caller and the reader thread share about one job, under lock. */
struct handoff {
	struct remote_job *job;
	int result;
	/* When the reader took the job: the clock and its scheduler time (see sched__ns). */
	__u64 began_ns, began_sched_ns;
	__u64 spent_ns; /* the job's time blocked */
	bool began, done, abandoned;
};

struct reader {
	struct handoff *work; /* NULL while idle */
	bool retire;          /* exit when idle: see remote__reset */
	pid_t tid;            /* 0 until it runs */
	int schedstat_fd;     /* its /proc/thread-self/schedstat, open while it runs, or -1 */
	pthread_cond_t wake, done;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/* One job at a time: the reader runs one. */
static pthread_mutex_t submit_lock = PTHREAD_MUTEX_INITIALIZER;
static struct reader *reader; /* the one jobs go to; NULL: start one */
/* Under lock: pids whose reader was left behind (0: a free slot). */
static pid_t stuck[REMOTE_MAX_STUCK];
static pid_t warned[MAX_WARNED];
static unsigned int warned_next;
/* Spent this second by slow reads (see REMOTE_SLOW_MS and struct handoff's spent_ns). */
static __u64 window_start_ns, window_spent_ns;

/* A thread's time on a CPU plus its waits for one, from its schedstat file (0 when unreadable,
 * as without CONFIG_SCHED_INFO): the wall time around a job minus that is its time blocked, what
 * a target can make long. Its CPU time a target bounds no more than the reads' sizes do (a large
 * maps file, libdwfl's report), and a loaded host's run queue is not the target's doing. */
static __u64 sched__ns(int schedstat_fd)
{
	char text[96], *end;
	ssize_t n = schedstat_fd >= 0 ? pread(schedstat_fd, text, sizeof(text) - 1, 0) : -1;
	__u64 cpu = 0;

	if (n <= 0)
		return 0;
	text[n] = '\0';
	cpu = strtoull(text, &end, 10);
	return cpu + strtoull(end, NULL, 10);
}

/* The time blocked in a span from the clock's and the scheduler's growth over it; the whole span
 * when the scheduler's is unknown (an unreadable schedstat, a reading gone backwards). */
static __u64 span__blocked_ns(__u64 wall_ns, __u64 sched_from, __u64 sched_to)
{
	if (!sched_from || sched_to < sched_from)
		return wall_ns;
	/* Two clocks: the scheduler's may run a little ahead of ours. */
	return wall_ns > sched_to - sched_from ? wall_ns - (sched_to - sched_from) : 0;
}

/* Under lock: how long the reader has been blocked in work's job so far (not running, not
 * waiting for a CPU): 0 before it took the job. Summed from its schedstat, not seen in one
 * snapshot of its state: a read on a loaded host alternates between waits for a CPU and short
 * waits for disk or the target's mmap lock, and only their sum says whether the target holds
 * it. The reader cannot exit meanwhile: it needs the lock to end the job. */
static __u64 handoff__blocked_ns(const struct handoff *work, const struct reader *r)
{
	if (!work->began)
		return 0;
	return span__blocked_ns(clock__ns() - work->began_ns, work->began_sched_ns,
				sched__ns(r->schedstat_fd));
}

/* Whether the reader is runnable now (waiting for a CPU, or not started yet), not blocked. Its
 * schedstat adds a wait for a CPU only once the wait ends: a wait under way shows here. */
static bool reader__runnable(const struct reader *r)
{
	char path[64], text[256], *state;
	ssize_t n;
	int fd;

	if (!r->tid)
		return true;
	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", r->tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	n = fd >= 0 ? read(fd, text, sizeof(text) - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return false;
	text[n] = '\0';
	state = strrchr(text, ')');
	return state && state[1] == ' ' && state[2] == 'R';
}

/* Under lock: once per pid (of the last MAX_WARNED), with how long the reader (tid) was blocked
 * in the read and waited for, and the kernel function it waits in, which tells a FUSE or
 * userfaultfd wait from a lock or a disk. */
static void stuck__warn(pid_t pid, pid_t tid, __u64 blocked_ns, __u64 waited_ns)
{
	char path[64], wchan[64] = "";
	unsigned int i;
	ssize_t n = -1;
	int fd;

	for (i = 0; i < MAX_WARNED; i++)
		if (warned[i] == pid)
			return;
	warned[warned_next++ % MAX_WARNED] = pid;
	snprintf(path, sizeof(path), "/proc/self/task/%d/wchan", tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, wchan, sizeof(wchan) - 1);
		close(fd);
	}
	wchan[n > 0 ? n : 0] = '\0';
	fprintf(stderr, "loopstall: pid %d: its memory did not answer a read (blocked %llu ms of "
		"%llu ms, in %s; a page on a FUSE server or a userfaultfd range it does not serve "
		"would): not read while that read is pending\n", pid,
		(unsigned long long)(blocked_ns / NS_PER_MS), (unsigned long long)(waited_ns / NS_PER_MS),
		n > 0 && strcmp(wchan, "0") ? wchan : "the kernel");
}

static void *reader__run(void *arg)
{
	struct reader *r = arg;
	struct handoff *work;
	__u64 wall;
	int result;

	pthread_mutex_lock(&lock);
	r->tid = (pid_t)syscall(SYS_gettid);
	r->schedstat_fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
	for (;;) {
		while (!r->work && !r->retire)
			pthread_cond_wait(&r->wake, &lock);
		if (!r->work) {
			pthread_mutex_unlock(&lock);
			break;
		}
		work = r->work;
		work->began_ns = clock__ns();
		work->began_sched_ns = sched__ns(r->schedstat_fd);
		work->began = true;
		pthread_mutex_unlock(&lock);
		result = work->job->run(work->job);
		wall = clock__ns() - work->began_ns;
		pthread_mutex_lock(&lock);
		r->work = NULL;
		work->result = result;
		work->spent_ns = span__blocked_ns(wall, work->began_sched_ns,
						  sched__ns(r->schedstat_fd));
		work->done = true;
		if (!work->abandoned) {
			pthread_cond_signal(&r->done);
			continue;
		}
		/* Left behind: the caller gave this thread up, and the job with it. */
		pid_set__remove(stuck, ARRAY_SIZE(stuck), work->job->pid);
		pthread_mutex_unlock(&lock);
		work->job->release(work->job);
		free(work);
		break;
	}
	if (r->schedstat_fd >= 0)
		close(r->schedstat_fd);
	pthread_cond_destroy(&r->wake);
	pthread_cond_destroy(&r->done);
	free(r);
	return NULL;
}

void remote__reset(void)
{
	pthread_mutex_lock(&submit_lock);
	pthread_mutex_lock(&lock);
	if (reader) {
		reader->retire = true;
		pthread_cond_signal(&reader->wake);
		reader = NULL;
	}
	pthread_mutex_unlock(&lock);
	pthread_mutex_unlock(&submit_lock);
}

/* The reader, started if there is none; under lock. NULL if no thread can be started. */
static struct reader *reader__get(void)
{
	pthread_condattr_t cond_attr;
	pthread_attr_t attr;
	sigset_t all, old;
	pthread_t thread;
	struct reader *r;
	int err;

	if (reader)
		return reader;
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->schedstat_fd = -1;
	pthread_cond_init(&r->wake, NULL);
	pthread_condattr_init(&cond_attr);
	pthread_condattr_setclock(&cond_attr, CLOCK_MONOTONIC);
	pthread_cond_init(&r->done, &cond_attr);
	pthread_condattr_destroy(&cond_attr);
	/* Signals are for the main thread: a SIGINT must interrupt what it waits on. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, READER_STACK);
	err = pthread_create(&thread, &attr, reader__run, r);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		pthread_cond_destroy(&r->wake);
		pthread_cond_destroy(&r->done);
		free(r);
		return NULL;
	}
	reader = r;
	return r;
}

/* Under lock: the wait still allowed this second on slow reads. */
static __u64 window__left(__u64 now)
{
	if (now - window_start_ns >= NS_PER_SEC) {
		window_start_ns = now;
		window_spent_ns = 0;
	}
	return window_spent_ns < REMOTE_BUDGET_MS * NS_PER_MS ?
	       REMOTE_BUDGET_MS * NS_PER_MS - window_spent_ns : 0;
}

static struct timespec timespec__at(__u64 ns)
{
	return (struct timespec){ .tv_sec = (time_t)(ns / NS_PER_SEC),
				  .tv_nsec = (long)(ns % NS_PER_SEC) };
}

static int handoff__wait(struct handoff *work, struct reader *r)
{
	__u64 now = clock__ns(), left = window__left(now), blocked = 0, at;
	struct timespec deadline;
	int err = 0;

	if (left > REMOTE_TIMEOUT_MS * NS_PER_MS)
		left = REMOTE_TIMEOUT_MS * NS_PER_MS;
	deadline = timespec__at(now + left);
	r->work = work;
	pthread_cond_signal(&r->wake);
	for (;;) {
		while (!work->done && !err)
			err = pthread_cond_timedwait(&r->done, &lock, &deadline);
		if (work->done)
			break;
		/* Time on a CPU or waiting for one (a loaded host) is not the target's doing: only
		 * time blocked counts against the wait, and a reader waiting for a CPU now is not
		 * blocked whatever its schedstat says yet. */
		at = clock__ns();
		blocked = handoff__blocked_ns(work, r);
		if (at - now >= REMOTE_WAIT_MAX_MS * NS_PER_MS ||
		    (blocked >= left && !reader__runnable(r)))
			break;
		deadline = timespec__at(at + (blocked + RECHECK_NS < left ? left - blocked :
					      RECHECK_NS));
		err = 0;
	}
	if (work->done) {
		if (work->spent_ns >= REMOTE_SLOW_MS * NS_PER_MS)
			window_spent_ns += work->spent_ns;
		return work->result;
	}
	/* Left to the reader, which exits after it; the next job starts another. Not charged to
	 * the window: that would fail other processes' reads for the rest of the second. A pid
	 * times out once while its read is pending, REMOTE_MAX_STUCK at most. */
	work->abandoned = true;
	reader = NULL;
	pid_set__add(stuck, ARRAY_SIZE(stuck), work->job->pid);
	stuck__warn(work->job->pid, r->tid, blocked, clock__ns() - now);
	return -ETIMEDOUT;
}

int remote__run(struct remote_job *job)
{
	struct handoff *work;
	struct reader *r;
	int slot, err;

	work = calloc(1, sizeof(*work));
	if (!work)
		return -ENOMEM;
	work->job = job;
	pthread_mutex_lock(&submit_lock);
	pthread_mutex_lock(&lock);
	/* No free slot: a read that hangs now could not be left behind. */
	if (pid_set__has(stuck, ARRAY_SIZE(stuck), job->pid, &slot) || slot < 0 ||
	    !window__left(clock__ns()))
		err = -EBUSY;
	else if (!(r = reader__get()))
		err = -EAGAIN;
	else
		err = handoff__wait(work, r);
	pthread_mutex_unlock(&lock);
	pthread_mutex_unlock(&submit_lock);
	if (err != -ETIMEDOUT)
		free(work);
	return err;
}

struct read_job {
	struct remote_job base;
	__u64 addr;
	size_t len;
	unsigned char buf[]; /* the job's own: a late answer lands here */
};

static int read_job__run(struct remote_job *job)
{
	struct read_job *rj = (struct read_job *)job;
	struct iovec local = { .iov_base = rj->buf, .iov_len = rj->len };
	struct iovec remote = { .iov_base = (void *)(uintptr_t)rj->addr, .iov_len = rj->len };

	return process_vm_readv(job->pid, &local, 1, &remote, 1, 0) == (ssize_t)rj->len ? 0 :
	       -EFAULT;
}

static void read_job__release(struct remote_job *job)
{
	free(job);
}

int remote__read(pid_t pid, __u64 addr, void *buf, size_t len)
{
	struct read_job *rj;
	int err;

	if (!addr)
		return -EFAULT;
	rj = malloc(sizeof(*rj) + len);
	if (!rj)
		return -ENOMEM;
	*rj = (struct read_job){ .base = { .pid = pid, .run = read_job__run,
					   .release = read_job__release },
				 .addr = addr, .len = len };
	err = remote__run(&rj->base);
	if (err == -ETIMEDOUT)
		return err;
	if (!err)
		memcpy(buf, rj->buf, len);
	free(rj);
	return err;
}
