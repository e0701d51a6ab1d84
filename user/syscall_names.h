/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef SYSCALL_NAMES_H
#define SYSCALL_NAMES_H

/* The name of syscall nr on the build architecture, NULL if unknown. */
const char *syscall__name(int nr);

#endif
