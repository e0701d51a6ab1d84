// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * targetfs against a real hostile target: a child process chrooted into a directory of our
 * making, running as nobody, whose files, symlinks, FIFO, device, procfs, 1 GB sparse file and
 * unanswered FUSE mount loopstall would open on its behalf. Everything twice: with openat2, then
 * with openat2 made to fail with ENOSYS (a seccomp filter) so the fallback walk runs.
 * And a loaded host: the worker kept off its CPU longer than the budget must not make a file miss.
 * Needs root (chroot, mknod, mounts in a private mount namespace); skipped otherwise.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <grp.h>
#include <sys/sysmacros.h>
#include "check.h"
#include "clock.h"
#include "targetfs.h"

#define NOBODY 65534
#define OTHER_UID 4242

static char base[PATH_MAX], root[PATH_MAX + 8];

/* root/name, in one of two buffers (a call may need two paths). */
static const char *in_root(const char *name)
{
	static char paths[2][PATH_MAX * 2];
	static int next;
	char *path = paths[next++ % 2];

	snprintf(path, PATH_MAX * 2, "%s/%s", root, name);
	return path;
}

static void file__write(const char *name, const char *text, uid_t uid, mode_t mode)
{
	int fd = open(in_root(name), O_WRONLY | O_CREAT | O_TRUNC, mode);

	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) ||
	    fchown(fd, uid, uid) || fchmod(fd, mode))
		CHECK(0, "cannot write %s: %s", name, strerror(errno));
	if (fd >= 0)
		close(fd);
}

static void root__make(void)
{
	char outside[PATH_MAX + 16];
	int fd;

	snprintf(base, sizeof(base), "/tmp/targetfs-test-XXXXXX");
	if (!mkdtemp(base)) {
		perror("mkdtemp");
		exit(1);
	}
	snprintf(root, sizeof(root), "%s/root", base);
	mkdir(root, 0755);
	/* Outside the root, and readable by all: only the resolution can keep it out. */
	snprintf(outside, sizeof(outside), "%s/outside.txt", base);
	fd = open(outside, O_WRONLY | O_CREAT, 0644);
	if (fd >= 0 && write(fd, "OUTSIDE\n", 8) == 8)
		close(fd);
	file__write("own.py", "first line\n    second line\nlast line without newline", NOBODY, 0600);
	file__write("secret.txt", "ROOT SECRET\n", 0, 0600);
	file__write("other.txt", "OTHER SECRET\n", OTHER_UID, 0600);
	file__write("outside.txt", "inside the root\n", NOBODY, 0644);
	mkdir(in_root("hidden"), 0700);
	file__write("hidden/public.txt", "IN A ROOT-ONLY DIRECTORY\n", 0, 0644);
	mkdir(in_root("dir"), 0755);
	CHECK(!symlink(outside, in_root("abs")), "symlink abs");
	CHECK(!symlink("../../../../outside.txt", in_root("dir/up")), "symlink up");
	CHECK(!symlink("/proc/self/environ", in_root("environ")), "symlink environ");
	CHECK(!symlink("/proc/self/fd/0", in_root("stdin")), "symlink stdin");
	CHECK(!mkfifo(in_root("fifo"), 0666), "mkfifo");
	CHECK(!mknod(in_root("zero"), S_IFCHR | 0666, makedev(1, 5)), "mknod");
	fd = open(in_root("big"), O_WRONLY | O_CREAT, 0644);
	CHECK(fd >= 0 && !ftruncate(fd, 1L << 30), "sparse file");
	if (fd >= 0)
		close(fd);
	mkdir(in_root("proc"), 0555);
	CHECK(!mount("proc", in_root("proc"), "proc", 0, NULL), "mount proc: %s", strerror(errno));
	mkdir(in_root("fuse"), 0755);
}

/* The target: maps two files, chroots, becomes nobody, waits to be killed. Returns its pid. */
static pid_t target__start(__u64 *own_map, __u64 *secret_map)
{
	int ready[2], fd;
	void *maps[2];
	pid_t pid;

	if (pipe(ready))
		return -1;
	pid = fork();
	if (!pid) {
		fd = open(in_root("own.py"), O_RDONLY);
		maps[0] = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
		fd = open(in_root("secret.txt"), O_RDONLY);
		maps[1] = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
		if (chroot(root) || chdir("/") || setgroups(0, NULL) || setgid(NOBODY) ||
		    setuid(NOBODY) || write(ready[1], maps, sizeof(maps)) != sizeof(maps))
			_exit(1);
		pause();
		_exit(0);
	}
	close(ready[1]);
	if (read(ready[0], maps, sizeof(maps)) != sizeof(maps)) {
		child__kill(pid);
		return -1;
	}
	close(ready[0]);
	*own_map = (__u64)(unsigned long)maps[0];
	*secret_map = (__u64)(unsigned long)maps[1];
	return pid;
}

static void check_line(pid_t pid, const char *path, int line, int want, const char *text)
{
	char buf[128] = "";
	__u64 start = clock__ns();
	int err = targetfs__read_line(pid, path, line, buf, sizeof(buf));

	CHECK(err == want, "%.60s line %d: %d (%s), want %d", path, line, err, strerror(-err), want);
	if (!err && text)
		CHECK(!strcmp(buf, text), "%s line %d: \"%s\", want \"%s\"", path, line, buf, text);
	/* Whatever the load, no call waits longer (a stuck open takes the budget). */
	CHECK(clock__ns() - start < (TARGETFS_WAIT_MAX_MS + 100) * 1000000ULL, "%.60s: took %llu ms", path,
	      (unsigned long long)(clock__ns() - start) / 1000000);
}

static void check_all(pid_t pid, __u64 own_map, __u64 secret_map)
{
	char long_name[10240];
	struct stat st, want;
	int fd;

	check_line(pid, "/own.py", 1, 0, "first line");
	check_line(pid, "/own.py", 2, 0, "    second line");
	check_line(pid, "/own.py", 3, 0, "last line without newline");
	check_line(pid, "/own.py", 4, -ENOENT, NULL);
	check_line(pid, "/secret.txt", 1, -EACCES, NULL);
	check_line(pid, "/other.txt", 1, -EACCES, NULL);
	check_line(pid, "/hidden/public.txt", 1, -EACCES, NULL);
	/* Both escapes land on the root's own outside.txt. */
	check_line(pid, "/abs", 1, -ENOENT, NULL);
	check_line(pid, "/dir/up", 1, 0, "inside the root");
	check_line(pid, "/../../../outside.txt", 1, 0, "inside the root");
	check_line(pid, "/environ", 1, -EINVAL, NULL);
	check_line(pid, "/proc/self/environ", 1, -EINVAL, NULL);
	check_line(pid, "/proc/1/environ", 1, -EINVAL, NULL);
	check_line(pid, "/fifo", 1, -EINVAL, NULL);
	check_line(pid, "/zero", 1, -EINVAL, NULL);
	check_line(pid, "/big", 1, -ENOENT, NULL);
	check_line(pid, "own.py", 1, -EINVAL, NULL);
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[0] = '/';
	long_name[sizeof(long_name) - 1] = '\0';
	check_line(pid, long_name, 1, -ENAMETOOLONG, NULL);
	/* /proc/self/fd/0 is a magic link: refused (openat2), or its text resolved in the root. */
	fd = targetfs__read_line(pid, "/stdin", 1, long_name, 64);
	CHECK(fd == -ELOOP || fd == -ENOENT || fd == -EINVAL, "/stdin: %d", fd);

	fd = targetfs__open(pid, "/own.py", &st);
	CHECK(fd >= 0 && st.st_size == 52, "open own.py: %d", fd);
	if (fd >= 0)
		close(fd);
	fd = targetfs__open_mapped(pid, own_map, &st);
	CHECK(fd >= 0, "open mapped own.py: %d", fd);
	if (fd >= 0) {
		fstat(fd, &st);
		CHECK(!stat(in_root("own.py"), &want) && st.st_ino == want.st_ino, "mapped own.py: another inode");
		close(fd);
	}
	CHECK(targetfs__open_mapped(pid, secret_map, &st) == -EACCES, "mapped secret.txt opened");
	CHECK(targetfs__open_mapped(pid, 4096, &st) == -ENOENT, "unmapped address opened");
}

/* A FUSE mount nobody serves: the first open blocks until the connection is aborted. */
static void check_stuck(pid_t pid)
{
	char opts[128], buf[64];
	__u64 start;
	int fuse, err;

	fuse = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	snprintf(opts, sizeof(opts), "fd=%d,rootmode=40755,user_id=0,group_id=0,allow_other", fuse);
	if (fuse < 0 || mount("loopstall-test", in_root("fuse"), "fuse", 0, opts)) {
		fprintf(stderr, "targetfs_test: no FUSE (%s): budget not tested\n", strerror(errno));
		if (fuse >= 0)
			close(fuse);
		return;
	}
	start = clock__ns();
	err = targetfs__read_line(pid, "/fuse/file.py", 1, buf, sizeof(buf));
	CHECK(err == -ETIMEDOUT, "FUSE: %d", err);
	CHECK(clock__ns() - start < 2 * TARGETFS_BUDGET_MS * 1000000ULL, "FUSE: budget exceeded");
	start = clock__ns();
	err = targetfs__read_line(pid, "/own.py", 1, buf, sizeof(buf));
	CHECK(err == -EBUSY && clock__ns() - start < 10000000ULL, "stuck pid read again: %d", err);
	/* Aborts the connection: the thread left behind returns. Then a new second of budget. */
	umount2(in_root("fuse"), MNT_FORCE | MNT_DETACH);
	close(fuse);
	usleep(1100000);
	check_line(pid, "/own.py", 1, 0, "first line");
}

#define HOG_NS (600 * 1000000ULL)
#define HOGS 3

static int hogs_running;

/*
 * Spins for HOG_NS at nice -20 on CPU 0 (pinned by its creator). Beside three of them, a nice 10
 * thread there (weight 110 against 3 x 88761) waits seconds for its next slice; after them, a few
 * normal threads of the host's other load keep it waiting less than 100 ms (nice 19 would be
 * seconds, past TARGETFS_WAIT_MAX_MS). A SCHED_FIFO hog would not do: the fair server (Linux
 * 6.12) runs normal threads 50 ms a second whatever RT does.
 */
static void *hog__run(void *arg)
{
	__u64 end;

	(void)arg;
	if (setpriority(PRIO_PROCESS, (id_t)gettid(), -20))
		return NULL;
	end = clock__ns() + HOG_NS;
	__atomic_add_fetch(&hogs_running, 1, __ATOMIC_RELEASE);
	while (clock__ns() < end)
		;
	return NULL;
}

static void cpus__pin(pthread_t thread, int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	CHECK(!pthread_setaffinity_np(thread, sizeof(set), &set), "pin to CPU %d", cpu);
}

/*
 * A loaded host: targetfs's worker, on CPU 0, waits for it longer than the budget while the
 * caller, on CPU 1, waits for the answer. Waiting for a CPU is not the file's doing: the line is
 * read (a wall-time budget returned -ETIMEDOUT here), and the wait is not charged to the
 * second's budget (the next starved read, within the same second, succeeds too). EEVDF gives
 * a thread that was kept waiting its due sooner or later (its lag): rounds that were not
 * starved beyond the budget prove nothing and are run again.
 */
static void check_starved(pid_t pid)
{
	pthread_t hogs[HOGS];
	char buf[64];
	__u64 start;
	int round, starved = 0, i, err;

	if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
		fprintf(stderr, "targetfs_test: one CPU: a starved worker not tested\n");
		return;
	}
	/* The worker inherits the CPUs and nice value of the thread that starts it: restart it
	 * from CPU 0 at nice 10. */
	cpus__pin(pthread_self(), 0);
	CHECK(!setpriority(PRIO_PROCESS, (id_t)gettid(), 10), "nice 10");
	targetfs__reset();
	check_line(pid, "/own.py", 1, 0, "first line");
	CHECK(!setpriority(PRIO_PROCESS, (id_t)gettid(), 0), "nice 0");
	cpus__pin(pthread_self(), 1);
	for (round = 0; round < 8 && starved < 2; round++) {
		__atomic_store_n(&hogs_running, 0, __ATOMIC_RELAXED);
		for (i = 0; i < HOGS; i++) {
			CHECK(!pthread_create(&hogs[i], NULL, hog__run, NULL), "hog thread");
			cpus__pin(hogs[i], 0);
		}
		start = clock__ns();
		while (__atomic_load_n(&hogs_running, __ATOMIC_ACQUIRE) < HOGS &&
		       clock__ns() - start < HOG_NS)
			usleep(1000);
		CHECK(__atomic_load_n(&hogs_running, __ATOMIC_ACQUIRE) == HOGS, "hogs at nice -20");
		start = clock__ns();
		err = targetfs__read_line(pid, "/own.py", 1, buf, sizeof(buf));
		CHECK(err == 0 && !strcmp(buf, "first line"), "starved worker, round %d: %d", round, err);
		starved += clock__ns() - start > TARGETFS_BUDGET_MS * 1000000ULL;
		for (i = 0; i < HOGS; i++)
			pthread_join(hogs[i], NULL);
	}
	CHECK(starved, "the worker was never kept from its CPU beyond the budget");
}

static void openat2__disable(void)
{
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat2, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(filter) / sizeof(filter[0]), .filter = filter };

	CHECK(!prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog), "seccomp: %s", strerror(errno));
}

int main(void)
{
	__u64 own_map, secret_map;
	char cmd[PATH_MAX + 32];
	pid_t pid;

	if (geteuid()) {
		fprintf(stderr, "targetfs_test: needs root\n");
		return SKIP;
	}
	if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)) {
		fprintf(stderr, "targetfs_test: no private mount namespace: %s\n", strerror(errno));
		return SKIP;
	}
	root__make();
	pid = target__start(&own_map, &secret_map);
	CHECK(pid > 0, "target did not start");
	if (pid > 0) {
		check_all(pid, own_map, secret_map);
		check_stuck(pid);
		check_starved(pid);
		openat2__disable();
		check_all(pid, own_map, secret_map);
		child__kill(pid);
		check_line(pid, "/own.py", 1, -ESRCH, NULL);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", base);
	umount2(in_root("proc"), MNT_DETACH);
	if (system(cmd))
		CHECK(0, "cannot remove %s", base);
	return check__exit("targetfs_test");
}
