// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * floor OBJECT PID empty|clock|enter-clock: attach floor.bpf.c's programs (empty: the empty
 * entry and exit ones; clock: the clock-reading entry one and the empty exit one; enter-clock:
 * the clock-reading entry one alone), print "attached", stay attached until SIGINT or SIGTERM.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/libbpf.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	stop = sig;
}

int main(int argc, char **argv)
{
	struct bpf_object *obj;
	struct bpf_program *prog;
	struct bpf_map *rodata;
	const char *entry, *exit_prog;
	__u32 pid;

	if (argc != 4 || (strcmp(argv[3], "empty") && strcmp(argv[3], "clock") &&
			  strcmp(argv[3], "enter-clock"))) {
		fprintf(stderr, "usage: floor OBJECT PID empty|clock|enter-clock\n");
		return 2;
	}
	pid = strtoul(argv[2], NULL, 10);
	entry = strcmp(argv[3], "empty") ? "enter_clock" : "enter_empty";
	exit_prog = strcmp(argv[3], "enter-clock") ? "exit_empty" : "";
	obj = bpf_object__open_file(argv[1], NULL);
	if (!obj) {
		fprintf(stderr, "floor: cannot open %s\n", argv[1]);
		return 1;
	}
	bpf_object__for_each_program(prog, obj)
		bpf_program__set_autoload(prog, !strcmp(bpf_program__name(prog), entry) ||
						!strcmp(bpf_program__name(prog), exit_prog));
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
