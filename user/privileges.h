/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef PRIVILEGES_H
#define PRIVILEGES_H

/*
 * Once the BPF programs are loaded and attached, keep only what reading targets needs:
 * CAP_SYS_PTRACE (process_vm_readv, /proc/PID/mem and maps of other users' processes),
 * CAP_DAC_READ_SEARCH (their binaries), CAP_CHECKPOINT_RESTORE (/proc/PID/map_files: the
 * binaries exactly as mapped) and, permitted but not effective, CAP_SETUID and CAP_SETGID: only
 * targetfs' short-lived threads raise them, to take a target's file credentials. Everything
 * else, CAP_BPF and CAP_SYS_ADMIN included, leaves the effective, permitted, inheritable and
 * bounding sets, and no exec can regain it (no_new_privs). Returns 0 or -errno.
 */
int privileges__drop(void);

#endif
