/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef PROCFS_H
#define PROCFS_H

#include <stdbool.h>
#include <sys/types.h>
#include <linux/types.h>

/* One line of /proc/PID/maps. The kernel writes it, but the path is a name the target chose:
 * it names a file, it does not open one (user/targetfs.h does that). */
struct proc_mapping {
	__u64 start, end;
	__u64 offset; /* in the file */
	unsigned int major, minor;
	__u64 inode; /* 0: anonymous memory */
	char perms[5]; /* "r-xp" */
	const char *path; /* "" for anonymous memory; valid during the callback only */
};

/* Called for each mapping in address order; a non-zero return stops the walk and is returned. */
typedef int (*proc_mapping_fn)(void *ctx, const struct proc_mapping *mapping);

/* Walk the mappings of process pid: what fn returned last, or -errno if maps cannot be read. */
int procfs__each_mapping(pid_t pid, proc_mapping_fn fn, void *ctx);

#endif
