// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The runtimes loopstall knows, and the calls generic code makes into all of them. */
#include <errno.h>
#include <string.h>
#include "runtime.h"
#include "util.h"

extern const struct runtime_ops python_runtime;
extern const struct runtime_ops node_runtime;

/* Asked in this order: the first whose walker has a slot's stack owns its language frames. */
static const struct runtime_ops *const known[] = { &python_runtime, &node_runtime };

#define NR_KNOWN ((int)ARRAY_SIZE(known))

void runtimes__configure(struct loopstall_bpf *skel, const struct runtime_limits *limits)
{
	int i;

	for (i = 0; i < NR_KNOWN; i++)
		if (known[i]->configure)
			known[i]->configure(skel, limits);
}

int runtimes__counters(struct loopstall_bpf *skel, struct counter *out, int nr)
{
	int i;

	for (i = 0; i < NR_KNOWN; i++)
		if (known[i]->counters)
			nr += known[i]->counters(skel, out + nr);
	return nr;
}

int runtimes__new(struct runtimes *runtimes, struct syms *syms, struct loopstall_bpf *skel)
{
	int i;

	for (i = 0; i < NR_KNOWN; i++) {
		runtimes->rt[i] = known[i]->new(syms, skel);
		if (!runtimes->rt[i]) {
			int err = -errno;

			fprintf(stderr, "loopstall: cannot set up %s support: %s\n", known[i]->name,
				strerror(-err));
			return err;
		}
		runtimes->ops[i] = known[i];
		runtimes->nr = i + 1;
	}
	return 0;
}

void runtimes__free(struct runtimes *runtimes)
{
	int i;

	for (i = 0; i < runtimes->nr; i++)
		runtimes->ops[i]->free(runtimes->rt[i]);
	runtimes->nr = 0;
}

void runtimes__attach(const struct runtimes *runtimes, pid_t pid)
{
	int i;

	for (i = 0; i < runtimes->nr; i++)
		runtimes->ops[i]->attach(runtimes->rt[i], pid);
}

void runtimes__tick(const struct runtimes *runtimes)
{
	int i;

	for (i = 0; i < runtimes->nr; i++)
		if (runtimes->ops[i]->tick)
			runtimes->ops[i]->tick(runtimes->rt[i]);
}

void runtimes__read_ahead(const struct runtimes *runtimes, pid_t pid,
			  const struct stack_slot *slot)
{
	int i;

	for (i = 0; i < runtimes->nr; i++)
		if (runtimes->ops[i]->read_ahead)
			runtimes->ops[i]->read_ahead(runtimes->rt[i], pid, slot);
}

void runtimes__report_begin(const struct runtimes *runtimes, pid_t pid)
{
	int i;

	for (i = 0; i < runtimes->nr; i++)
		if (runtimes->ops[i]->report_begin)
			runtimes->ops[i]->report_begin(runtimes->rt[i], pid);
}

void runtimes__resolve(const struct runtimes *runtimes, pid_t pid, const struct stack_slot *slot,
		       struct lang_stack *out)
{
	int i;

	for (i = 0; i < runtimes->nr; i++)
		if (runtimes->ops[i]->resolve(runtimes->rt[i], pid, slot, out))
			return;
}

bool runtimes__name_code(const struct runtimes *runtimes, pid_t pid, __u64 addr,
			 struct user_sym *sym, struct lang_frame *frame)
{
	int i;

	for (i = 0; i < runtimes->nr; i++)
		if (runtimes->ops[i]->name_code &&
		    runtimes->ops[i]->name_code(runtimes->rt[i], pid, addr, sym, frame))
			return true;
	return false;
}

int runtimes__source_line(const struct runtimes *runtimes, pid_t pid,
			  const struct lang_frame *frame, char *buf, size_t size)
{
	int i;

	for (i = 0; i < runtimes->nr; i++)
		if (runtimes->ops[i] == frame->runtime && frame->runtime->source_line)
			return frame->runtime->source_line(runtimes->rt[i], pid, frame, buf, size);
	return -ENOENT;
}

__u32 runtimes__lock_holder(const struct runtimes *runtimes, pid_t pid,
			    const struct stack_slot *slot, struct lang_frame *frame)
{
	__u32 tid;
	int i;

	frame->runtime = NULL;
	for (i = 0; i < runtimes->nr; i++) {
		if (!runtimes->ops[i]->lock_holder)
			continue;
		tid = runtimes->ops[i]->lock_holder(runtimes->rt[i], pid, slot, frame);
		if (tid)
			return tid;
	}
	return 0;
}

void runtimes__forget(const struct runtimes *runtimes, pid_t pid)
{
	int i;

	for (i = 0; i < runtimes->nr; i++)
		runtimes->ops[i]->forget(runtimes->rt[i], pid);
}
