#!/usr/bin/env python3
"""An asyncio loop that, on demand, runs as many short busy iterations as it can.

    fault_flood.py --ctl DIR [--busy-us N] [--seconds S] [--count N] [--comm NAME]
                   [--exit-after-flood]

Each DIR/go starts a flood: for --seconds, a callback busy-waits --busy-us microseconds and
reschedules itself with call_soon, so every loop iteration (one epoll_wait with a zero timeout,
then the callback) is busy at least --busy-us: thousands of iterations per second, each above a
small loopstall threshold (-t 0.05). The report comes when the flood is over:
{"runs": callbacks run = flood iterations, "ms": ...}. Between floods the loop idles (20 ms
polls). --count floods, then 300 ms more idling, then exit 0.

--exit-after-flood  the last callback of the first flood ends the process (os._exit(0)) at once,
                    while loopstall is still behind on the events of the flood; no report.
--comm NAME         written to /proc/self/comm first (for `--all --comm`).
"""

import argparse
import asyncio
import os
import threading
import time

from ctl import Ctl, add_ctl_argument


def busy_wait(us):
    deadline = time.perf_counter() + us / 1e6
    while time.perf_counter() < deadline:
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_ctl_argument(parser)
    parser.add_argument("--busy-us", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--comm", help="process name (/proc/self/comm), at most 15 bytes")
    parser.add_argument("--exit-after-flood", action="store_true")
    args = parser.parse_args()
    if args.comm:
        with open("/proc/self/comm", "w") as f:
            f.write(args.comm)
    ctl = Ctl(args.ctl)

    async def flood(n):
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        runs = 0
        start = time.monotonic()
        deadline = start + args.seconds

        def step():
            nonlocal runs
            busy_wait(args.busy_us)
            runs += 1
            if time.monotonic() < deadline:
                loop.call_soon(step)
            elif args.exit_after_flood:
                os._exit(0)
            else:
                done.set_result(None)

        loop.call_soon(step)
        await done
        end = time.monotonic()
        ctl.report(n=n, action="flood", runs=runs, start=start, end=end,
                   ms=(end - start) * 1000.0)

    async def run():
        ctl.ready(loop="asyncio", loop_tids=[threading.get_native_id()])
        for n in range(1, args.count + 1):
            await ctl.next_go()
            await flood(n)
        await asyncio.sleep(0.3)

    asyncio.run(run())


if __name__ == "__main__":
    main()
