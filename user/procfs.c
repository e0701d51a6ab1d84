// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The kernel's views of a process, parsed in one place. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "procfs.h"

/* A maps line is at most PATH_MAX of path and its ~100 bytes of fields. */
#define MAPS_LINE_MAX (4096 + 128)

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

int procfs__each_mapping(pid_t pid, proc_mapping_fn fn, void *ctx)
{
	char path[64], line[MAPS_LINE_MAX];
	struct proc_mapping mapping;
	bool whole = true;
	int ret = 0;
	FILE *maps;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	maps = fopen(path, "re");
	if (!maps)
		return -errno;
	while (!ret && fgets(line, sizeof(line), maps)) {
		/* The tail of a line longer than any the kernel writes is not a line of its own. */
		bool skip = !whole;

		whole = strchr(line, '\n') != NULL;
		if (!skip && mapping__parse(line, &mapping))
			ret = fn(ctx, &mapping);
	}
	fclose(maps);
	return ret;
}
