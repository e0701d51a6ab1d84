#!/usr/bin/env python3
"""A healthy asyncio loop: many short iterations, no stall.

    healthy_loop.py --ctl DIR [--iterations N]

Runs N x `await asyncio.sleep(0)` (each one is one loop iteration: the loop polls its selector
with timeout 0 and runs the task again), then exits. It counts its own selector polls by wrapping
`loop._selector.select` (a private attribute, fine for a test target), so the test can compare
the count with loopstall's `iterations`. Writes DIR/ready at start and, at the end, one line to
DIR/report.jsonl: {"selects": ..., "iterations_requested": N, ...}.
"""

import argparse
import asyncio
import threading
import time

from ctl import Ctl, SelectCounter, add_ctl_argument


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_ctl_argument(parser)
    parser.add_argument("--iterations", type=int, default=20000)
    args = parser.parse_args()
    ctl = Ctl(args.ctl)

    loop = asyncio.new_event_loop()
    selects = SelectCounter(loop)

    async def spin():
        ctl.ready(loop="asyncio", loop_tids=[threading.get_native_id()])
        for _ in range(args.iterations):
            await asyncio.sleep(0)

    start = time.monotonic()
    try:
        loop.run_until_complete(spin())
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()
    end = time.monotonic()
    ctl.report(n=1, action="spin", selects=selects.count, iterations_requested=args.iterations,
               start=start, end=end, ms=(end - start) * 1000.0)


if __name__ == "__main__":
    main()
