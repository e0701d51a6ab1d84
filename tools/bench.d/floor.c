// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * floor OBJECT PID MODE: attach floor.bpf.c's programs of MODE (see modes below), print
 * "attached", stay attached until SIGINT or SIGTERM.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/libbpf.h>

static volatile sig_atomic_t stop;

/* Each mode and the programs it attaches. */
static const struct {
	const char *mode;
	const char *progs[3];
} modes[] = {
	{ "empty", { "enter_empty", "exit_empty" } },          /* both poll programs, empty */
	{ "clock", { "enter_clock", "exit_empty" } },          /* the entry one reads the clock */
	{ "enter-clock", { "enter_clock" } },                  /* one program, one clock read */
	/* ... and empty scheduler programs, as loopstall has for every task's switches */
	{ "enter-clock-sched", { "enter_clock", "sched_switch_empty", "sched_waking_empty" } },
};

static bool mode__has(int mode, const char *prog)
{
	size_t i;

	for (i = 0; i < sizeof(modes[mode].progs) / sizeof(modes[mode].progs[0]); i++)
		if (modes[mode].progs[i] && !strcmp(modes[mode].progs[i], prog))
			return true;
	return false;
}

static void on_signal(int sig)
{
	stop = sig;
}

int main(int argc, char **argv)
{
	struct bpf_object *obj;
	struct bpf_program *prog;
	struct bpf_map *rodata;
	int mode = -1;
	size_t i;
	__u32 pid;

	for (i = 0; argc == 4 && i < sizeof(modes) / sizeof(modes[0]); i++)
		if (!strcmp(argv[3], modes[i].mode))
			mode = i;
	if (mode < 0) {
		fprintf(stderr, "usage: floor OBJECT PID empty|clock|enter-clock|enter-clock-sched\n");
		return 2;
	}
	pid = strtoul(argv[2], NULL, 10);
	obj = bpf_object__open_file(argv[1], NULL);
	if (!obj) {
		fprintf(stderr, "floor: cannot open %s\n", argv[1]);
		return 1;
	}
	bpf_object__for_each_program(prog, obj)
		bpf_program__set_autoload(prog, mode__has(mode, bpf_program__name(prog)));
	rodata = bpf_object__find_map_by_name(obj, ".rodata");
	if (!rodata || bpf_map__set_initial_value(rodata, &pid, sizeof(pid)) ||
	    bpf_object__load(obj)) {
		fprintf(stderr, "floor: cannot load %s\n", argv[1]);
		return 1;
	}
	bpf_object__for_each_program(prog, obj) {
		if (bpf_program__autoload(prog) && !bpf_program__attach(prog)) {
			fprintf(stderr, "floor: cannot attach %s\n", bpf_program__name(prog));
			return 1;
		}
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	printf("attached\n");
	fflush(stdout);
	while (!stop)
		pause();
	bpf_object__close(obj);
	return 0;
}
