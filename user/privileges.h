/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef PRIVILEGES_H
#define PRIVILEGES_H

/*
 * Once the BPF programs are loaded and attached, keep only what reading targets needs:
 * CAP_SYS_PTRACE (process_vm_readv, /proc/PID/mem, maps and root of other users' processes),
 * CAP_CHECKPOINT_RESTORE (/proc/PID/map_files: the binaries exactly as mapped) and, permitted
 * but not effective, CAP_SETUID and CAP_SETGID: only targetfs' worker thread raises them,
 * to take a target's file credentials. Files are read as the target could read them, so
 * CAP_DAC_READ_SEARCH goes: a read that needs it is one the target could not make. Everything
 * else, CAP_BPF and CAP_SYS_ADMIN included, leaves the effective, permitted, inheritable and
 * bounding sets, and no exec can regain it (no_new_privs). Returns 0 or -errno.
 */
int privileges__drop(void);

#endif
