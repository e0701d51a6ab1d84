// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The kernel's views of a process, parsed in one place. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#include <stdio.h>
#include <string.h>
#include "procfs.h"
#include "remote.h"

/* A maps line is at most PATH_MAX of path and its ~100 bytes of fields. */
#define MAPS_LINE_MAX (4096 + 128)
/* 65530 mappings (vm.max_map_count's default) of ~100 bytes; mappings past it are not seen. */
#define MAPS_MAX_BYTES (8U << 20)

static bool mapping__parse(char *line, struct proc_mapping *mapping)
{
	unsigned long long start, end, offset, inode;
	char *path, *newline;
	int path_at = 0;

	if (sscanf(line, "%llx-%llx %4s %llx %x:%x %llu %n", &start, &end, mapping->perms, &offset,
		   &mapping->major, &mapping->minor, &inode, &path_at) != 7 || !path_at)
		return false;
	path = line + path_at;
	newline = strchr(path, '\n');
	if (newline)
		*newline = '\0';
	mapping->start = start;
	mapping->end = end;
	mapping->offset = offset;
	mapping->inode = inode;
	mapping->path = path;
	return true;
}

/* /proc/PID/maps read whole by the reader thread (remote.h): it waits for the target's mmap
 * lock, which the target can keep contended. The text is the job's own. */
struct maps_job {
	struct remote_job base;
	char *text;
	size_t len;
};

static int maps_job__run(struct remote_job *job)
{
	struct maps_job *mj = (struct maps_job *)job;
	size_t size = 0;
	char path[64], *grown;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/maps", job->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		if (size - mj->len < MAPS_LINE_MAX) {
			if (size >= MAPS_MAX_BYTES)
				break; /* the mappings past it are not looked at */
			size = size ? size * 2 : 64 * 1024;
			grown = realloc(mj->text, size + 1);
			if (!grown)
				break;
			mj->text = grown;
		}
		n = read(fd, mj->text + mj->len, size - mj->len);
		if (n <= 0) {
			if (n < 0 && !mj->len) {
				n = -errno;
				close(fd);
				return (int)n;
			}
			break;
		}
		mj->len += (size_t)n;
	}
	close(fd);
	if (mj->text)
		mj->text[mj->len] = '\0';
	return mj->text ? 0 : -ENOMEM;
}

static void maps_job__release(struct remote_job *job)
{
	free(((struct maps_job *)job)->text);
	free(job);
}

int procfs__each_mapping(pid_t pid, proc_mapping_fn fn, void *ctx)
{
	struct maps_job *mj = calloc(1, sizeof(*mj));
	struct proc_mapping mapping;
	char *line, *next;
	int ret;

	if (!mj)
		return -ENOMEM;
	mj->base = (struct remote_job){ .pid = pid, .run = maps_job__run,
					.release = maps_job__release };
	ret = remote__run(&mj->base);
	if (ret == -ETIMEDOUT)
		return ret;
	for (line = mj->text; !ret && line && *line; line = next) {
		next = strchr(line, '\n');
		/* The kernel writes whole lines; a cut one (the text's bound) is not parsed. */
		if (!next)
			break;
		*next++ = '\0';
		if (mapping__parse(line, &mapping))
			ret = fn(ctx, &mapping);
	}
	maps_job__release(&mj->base);
	return ret;
}
