/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Reads of the traced process's memory for the frame walkers: a failed read yields 0, which
 * every walker treats as the end of what it can follow. */
#ifndef READ_USER_H
#define READ_USER_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

static __always_inline __u64 read_user_u64(__u64 addr)
{
	__u64 value = 0;

	bpf_probe_read_user(&value, sizeof(value), (void *)addr);
	return value;
}

#endif /* READ_USER_H */
