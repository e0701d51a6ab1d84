/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The fixed-width types of the headers both sides share: BPF code has them from vmlinux.h
 * (included first), userspace from the uapi header. */
#ifndef __LOOPSTALL_ABI_TYPES_H
#define __LOOPSTALL_ABI_TYPES_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#endif /* __LOOPSTALL_ABI_TYPES_H */
