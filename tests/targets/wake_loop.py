#!/usr/bin/env python3
"""An asyncio loop whose every iteration begins with a wakeup out of a blocked poll.

    wake_loop.py --ctl DIR [--iterations N] [--sleep-ms MS] [--callback-ms MS]

N times: the loop blocks in epoll_wait until a timer (loop.call_later(sleep-ms)) wakes it, and in
that same iteration the timer's callback busy-spins callback-ms of wall time. Under a CPU hog on the same CPU the thread
waits for a CPU after each wakeup: that wait is the loop's idle time, not its callback's. With
--callback-ms 0 the loop is idle: each iteration does nothing but go back to sleep.

Writes DIR/ready at start and, at the end, one line to DIR/report.jsonl with its own measures:
{"callbacks": N, "callback_ms": [...], "sleep_run_delay_ms": ..., "cpu": ...}: the wall time of
each callback (none when callback-ms is 0), and the run delay (/proc/thread-self/schedstat) the thread gathered between going
to sleep and its callback starting, i.e. its waits for a CPU after the wakeups.
"""

import argparse
import asyncio
import os
import threading
import time

from ctl import Ctl, add_ctl_argument, schedstat


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_ctl_argument(parser)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--sleep-ms", type=float, default=10.0)
    parser.add_argument("--callback-ms", type=float, default=2.0)
    args = parser.parse_args()
    ctl = Ctl(args.ctl)
    callbacks = []
    fired = 0
    wait_delay_ns = slept_delay_ns = 0
    loop = asyncio.new_event_loop()
    done = loop.create_future()

    def callback():
        nonlocal fired, wait_delay_ns
        fired += 1
        wait_delay_ns += schedstat()[1] - slept_delay_ns
        if args.callback_ms > 0:
            start = time.monotonic()
            while time.monotonic() - start < args.callback_ms / 1000.0:
                pass
            callbacks.append((time.monotonic() - start) * 1000.0)
        if fired >= args.iterations:
            done.set_result(None)
        else:
            sleep()

    def sleep():
        nonlocal slept_delay_ns
        slept_delay_ns = schedstat()[1]
        loop.call_later(args.sleep_ms / 1000.0, callback)

    ctl.ready(loop="asyncio", loop_tids=[threading.get_native_id()])
    sleep()
    loop.run_until_complete(done)
    loop.close()
    ctl.report(callbacks=fired, callback_ms=callbacks, sleep_run_delay_ms=wait_delay_ns / 1e6,
               cpu=sorted(os.sched_getaffinity(0)))


if __name__ == "__main__":
    main()
