/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Reading a traced process's memory: only ever read, never written or stopped. */
#ifndef REMOTE_H
#define REMOTE_H

#include <errno.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <linux/types.h>

/* All len bytes at addr in pid, or -EFAULT: a short read is as bad as none. */
static inline int remote__read(pid_t pid, __u64 addr, void *buf, size_t len)
{
	struct iovec local = { .iov_base = buf, .iov_len = len };
	struct iovec remote = { .iov_base = (void *)(uintptr_t)addr, .iov_len = len };

	if (!addr)
		return -EFAULT;
	return process_vm_readv(pid, &local, 1, &remote, 1, 0) == (ssize_t)len ? 0 : -EFAULT;
}

/* The same as a reader callback (struct pycode_reader, struct v8heap_reader): ctx is a pid_t. */
static inline int remote__reader(void *ctx, __u64 addr, void *buf, size_t len)
{
	return remote__read(*(const pid_t *)ctx, addr, buf, len);
}

#endif /* REMOTE_H */
