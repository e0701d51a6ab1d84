// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <unistd.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include "privileges.h"
#include "util.h"

/* Why each is kept: privileges.h. */
static const int kept_caps[] = { CAP_SYS_PTRACE, CAP_CHECKPOINT_RESTORE };
/* Only targetfs' thread raises these, for as long as it takes a target's credentials. */
static const int dormant_caps[] = { CAP_SETUID, CAP_SETGID };

static bool cap__in(int cap, const int *caps, size_t nr)
{
	size_t i;

	for (i = 0; i < nr; i++)
		if (caps[i] == cap)
			return true;
	return false;
}

static bool cap__kept(int cap)
{
	return cap__in(cap, kept_caps, ARRAY_SIZE(kept_caps));
}

static bool cap__dormant(int cap)
{
	return cap__in(cap, dormant_caps, ARRAY_SIZE(dormant_caps));
}

int privileges__drop(void)
{
	struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
	int cap;

	if (syscall(SYS_capget, &header, data))
		return -errno;
	/* The bounding set first: dropping from it needs CAP_SETPCAP, which goes below. Without
	 * it (a service given only the capabilities it needs) the bounding set stays, and
	 * no_new_privs still keeps an exec from regaining anything. */
	for (cap = 0; cap <= CAP_LAST_CAP; cap++)
		if (!cap__kept(cap) && !cap__dormant(cap) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) && errno != EINVAL &&
		    errno != EPERM)
			return -errno;
	for (cap = 0; cap <= CAP_LAST_CAP; cap++) {
		__u32 bit = 1U << (cap % 32);

		if (cap__kept(cap))
			continue;
		data[cap / 32].effective &= ~bit;
		data[cap / 32].inheritable &= ~bit;
		if (!cap__dormant(cap))
			data[cap / 32].permitted &= ~bit;
	}
	if (syscall(SYS_capset, &header, data))
		return -errno;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -errno;
	return 0;
}
