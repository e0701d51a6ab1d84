#!/usr/bin/env python3
"""An asyncio loop whose stall sits a few Python frames deep, at known source lines.

    py_nested.py --ctl DIR [--action sleep|busy|busy+sleep] [--ms N] [--count N]
                 [--in-task NAME]

The coroutine serve() awaits handler(), which calls the plain function helper(), which blocks
the loop thread: `sleep` with time.sleep(ms) (off-CPU), `busy` with a pure-Python loop that
spins for ms of CPU time (on-CPU); `busy+sleep` does both, one after the other, in the same
loop iteration. With --in-task, serve() runs handler() in a task of that name and awaits it
(the blocking frames are then that task's, awaited by serve's). Each of those lines carries a `# LINE:name` marker comment so the test finds
the line numbers in this file's text instead of hard-coding them. The busy loop is one line on
purpose: every on-CPU sample of helper() then reports the same line.

Control directory protocol as in ctl.py (ready, go, report.jsonl); works with Python 3.8+.
"""

import argparse
import asyncio
import threading
import time

from ctl import Ctl, add_ctl_argument


def helper(action, seconds):
    if action == "sleep":
        time.sleep(seconds)  # LINE:sleep
    else:
        deadline, x = time.thread_time() + seconds, 0
        while time.thread_time() < deadline: x = (x * 31 + 7) % 1000003  # noqa: E701  LINE:busy


async def handler(actions, seconds):
    for action in actions:
        helper(action, seconds)  # LINE:handler


async def serve(args, ctl):
    ctl.ready(loop="asyncio", loop_tids=[threading.get_native_id()])
    for n in range(1, args.count + 1):
        await ctl.next_go()
        wall, start = time.time(), time.monotonic()
        actions, seconds = args.action.split("+"), args.ms / 1000.0
        if args.in_task:
            await asyncio.create_task(handler(actions, seconds), name=args.in_task)  # LINE:task
        else:
            await handler(actions, seconds)  # LINE:serve
        end = time.monotonic()
        ctl.report(n=n, action=args.action, start=start, end=end, ms=(end - start) * 1000.0,
                   wall_start=wall)
    await asyncio.sleep(0.3)  # end the last stalled iteration at the loop's poll call


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_ctl_argument(parser)
    parser.add_argument("--action", choices=["sleep", "busy", "busy+sleep"], default="sleep")
    parser.add_argument("--ms", type=float, default=300.0)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--in-task", metavar="NAME", help="run handler() in a task so named")
    args = parser.parse_args()
    asyncio.run(serve(args, Ctl(args.ctl)))  # LINE:main


if __name__ == "__main__":
    main()  # LINE:module
