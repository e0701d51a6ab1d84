#!/usr/bin/env python3
"""An asyncio loop woken out of its poll, over and over, by a process on another CPU.

    woken_loop.py --ctl DIR [--wakeups N] [--stall-every K] [--stall-ms MS]

A child process (pinned to the last CPU, the loop to the first) writes a byte to a socketpair
every 300 µs; the loop's reader callback reads what came and, every K-th call, sleeps MS
(time.sleep: a stall). Wakeups this frequent from another CPU sometimes land while the loop's
thread is still leaving the CPU for its poll: the race that hides a wakeup from loopstall.
After N callbacks it exits. Counts its own selector polls (SelectCounter). Writes DIR/ready at
start and at the end one line to DIR/report.jsonl: {"selects", "callbacks", "stalls", "stall_ms"}.
"""

import argparse
import asyncio
import os
import signal
import socket
import threading
import time

from ctl import Ctl, SelectCounter, add_ctl_argument


def waker(sock, cpu):
    """Child process: a byte every 300 µs (spinning, so no timer slack) until the loop goes."""
    os.sched_setaffinity(0, {cpu})
    try:
        while True:
            sock.send(b"x")
            start = time.perf_counter()
            while time.perf_counter() - start < 0.0003:
                pass
    except OSError:
        os._exit(0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_ctl_argument(parser)
    parser.add_argument("--wakeups", type=int, default=20000)
    parser.add_argument("--stall-every", type=int, default=1000)
    parser.add_argument("--stall-ms", type=float, default=120.0)
    args = parser.parse_args()
    ctl = Ctl(args.ctl)
    cpus = sorted(os.sched_getaffinity(0))
    loop_end, waker_end = socket.socketpair()
    child = os.fork()
    if child == 0:
        loop_end.close()
        waker(waker_end, cpus[-1])
    waker_end.close()
    os.sched_setaffinity(0, {cpus[0]})
    loop = asyncio.new_event_loop()
    selects = SelectCounter(loop)
    done = loop.create_future()
    callbacks = stalls = 0
    stall_ms = []

    def on_read():
        nonlocal callbacks, stalls
        loop_end.recv(4096)
        callbacks += 1
        if callbacks % args.stall_every == 0:
            start = time.monotonic()
            time.sleep(args.stall_ms / 1000.0)
            stall_ms.append((time.monotonic() - start) * 1000.0)
        if callbacks >= args.wakeups and not done.done():
            done.set_result(None)

    loop.add_reader(loop_end.fileno(), on_read)
    ctl.ready(loop="asyncio", loop_tids=[threading.get_native_id()], waker_pid=child)
    try:
        loop.run_until_complete(done)
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        loop.close()
    ctl.report(n=1, action="woken", selects=selects.count, callbacks=callbacks,
               stalls=len(stall_ms), stall_ms=stall_ms)


if __name__ == "__main__":
    main()
