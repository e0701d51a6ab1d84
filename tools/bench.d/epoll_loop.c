// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * epoll_loop: the smallest event loop for tools/bench's cost per iteration (section 1b):
 * epoll_wait(fd, ev, 4, 0) on an epoll instance holding one readable eventfd, forever, so every
 * call returns one event at once and the loop never sleeps. Prints "ready", then "count N" (the
 * calls so far) at each SIGUSR1; exits at SIGINT or SIGTERM.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

static volatile sig_atomic_t report, stop;

static void on_usr1(int sig)
{
	(void)sig;
	report = 1;
}

static void on_stop(int sig)
{
	stop = sig;
}

int main(void)
{
	struct epoll_event ev[4] = { { .events = EPOLLIN } };
	uint64_t one = 1, count = 0;
	int efd, epfd;

	efd = eventfd(0, EFD_NONBLOCK);
	epfd = epoll_create1(0);
	if (efd < 0 || epfd < 0 || write(efd, &one, sizeof(one)) != sizeof(one) ||
	    epoll_ctl(epfd, EPOLL_CTL_ADD, efd, &ev[0])) {
		perror("epoll_loop");
		return 1;
	}
	signal(SIGUSR1, on_usr1);
	signal(SIGINT, on_stop);
	signal(SIGTERM, on_stop);
	printf("ready\n");
	fflush(stdout);
	while (!stop) {
		/* Level-triggered and never read: the eventfd stays ready, every call returns 1. */
		epoll_wait(epfd, ev, 4, 0);
		count++;
		if (report) {
			report = 0;
			printf("count %llu\n", (unsigned long long)count);
			fflush(stdout);
		}
	}
	return 0;
}
