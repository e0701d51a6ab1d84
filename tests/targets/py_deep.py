#!/usr/bin/env python3
"""An asyncio loop that stalls at the bottom of a deep Python recursion.

    py_deep.py --ctl DIR [--depth N] [--ms N] [--count N]

On each trigger the coroutine serve() awaits handler(), which calls recurse(N): N nested
recurse() frames, the innermost of which blocks the loop with time.sleep(ms). The stack is then
N + 2 frames deeper than the loop's own frames, enough to overflow a frame walker limited to
fewer frames (loopstall --py-depth). Marker comments `# LINE:name` give the test the lines.

Control directory protocol as in ctl.py (ready, go, report.jsonl); works with Python 3.8+.
"""

import argparse
import asyncio
import threading
import time

from ctl import Ctl, add_ctl_argument


def recurse(n, seconds):
    if n <= 1:
        time.sleep(seconds)  # LINE:sleep
        return 1
    return recurse(n - 1, seconds) + 1  # LINE:recurse


async def handler(depth, seconds):
    return recurse(depth, seconds)  # LINE:handler


async def serve(args, ctl):
    ctl.ready(loop="asyncio", loop_tids=[threading.get_native_id()])
    for n in range(1, args.count + 1):
        await ctl.next_go()
        wall, start = time.time(), time.monotonic()
        frames = await handler(args.depth, args.ms / 1000.0)  # LINE:serve
        end = time.monotonic()
        ctl.report(n=n, action="deep_sleep", depth=frames, start=start, end=end,
                   ms=(end - start) * 1000.0, wall_start=wall)
    await asyncio.sleep(0.3)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_ctl_argument(parser)
    parser.add_argument("--depth", type=int, default=30, help="recurse() frames")
    parser.add_argument("--ms", type=float, default=300.0)
    parser.add_argument("--count", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(serve(args, Ctl(args.ctl)))  # LINE:main


if __name__ == "__main__":
    main()  # LINE:module
