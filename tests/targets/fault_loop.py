#!/usr/bin/env python3
"""An asyncio loop that counts its iterations and, on demand, stalls, dies mid-stall or execs.

    fault_loop.py --ctl DIR --actions A[,A...] [--ms N] [--comm NAME] [--linger-ms N]
                  [--exec PYTHON SCRIPT ARG...]

A ticker callback runs every 5 ms and counts `ticks`, so the test can tell that the loop still
iterates (after loopstall was killed, say). Each DIR/go runs the next action of --actions inside
a coroutine; each is reported in DIR/report.jsonl (ctl.py):

  count  nothing blocks; the report has {"ticks": N}
  sleep  time.sleep(--ms) in blocking_sleep(): one off-CPU stall of the loop thread
  die    reported first ({"pid": ...}); then a helper thread os._exit(0)s the whole process
         --ms after the loop thread fell into time.sleep(4 * --ms): the process ends in the
         middle of a stall, with the stalled iteration never returning to the loop's poll
  exec   reported first; then os.execv(PYTHON, [PYTHON, SCRIPT, ARG...]) straight from the
         coroutine: the same pid runs another program (its comm is PYTHON's basename)

--comm NAME is written to /proc/self/comm first (for `--all --comm`). After the last action the
loop runs --linger-ms longer, then the process exits 0.
"""

import argparse
import asyncio
import os
import sys
import threading
import time

from ctl import Ctl, add_ctl_argument, timed


def blocking_sleep(ms):
    time.sleep(ms / 1000.0)  # LINE:sleep


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_ctl_argument(parser)
    parser.add_argument("--actions", default="count")
    parser.add_argument("--ms", type=float, default=300.0)
    parser.add_argument("--comm", help="process name (/proc/self/comm), at most 15 bytes")
    parser.add_argument("--linger-ms", type=float, default=300.0)
    parser.add_argument("--exec", nargs=argparse.REMAINDER, default=[],
                        metavar="PYTHON SCRIPT ARG", help="exec: the program to become")
    args = parser.parse_args()
    if args.comm:
        with open("/proc/self/comm", "w") as f:
            f.write(args.comm)
    ctl = Ctl(args.ctl)
    actions = [a for a in args.actions.split(",") if a]
    ticks = 0

    def tick():
        nonlocal ticks
        ticks += 1
        asyncio.get_running_loop().call_later(0.005, tick)

    def die():
        def killer():
            time.sleep(args.ms / 1000.0)
            os._exit(0)
        threading.Thread(target=killer, name="killer", daemon=True).start()
        blocking_sleep(4 * args.ms)

    async def run():
        tick()
        ctl.ready(loop="asyncio", loop_tids=[threading.get_native_id()], comm=args.comm)
        for n, action in enumerate(actions, 1):
            await ctl.next_go()
            if action == "count":
                ctl.report(n=n, action=action, ticks=ticks, end=time.monotonic())
            elif action == "sleep":
                ctl.report(**timed(n, action, lambda: blocking_sleep(args.ms)))
            elif action == "die":
                ctl.report(n=n, action=action, pid=os.getpid(), start=time.monotonic())
                die()
            elif action == "exec":
                ctl.report(n=n, action=action, pid=os.getpid(), start=time.monotonic(),
                           argv=args.exec)
                sys.stdout.flush()
                os.execv(args.exec[0], args.exec)
            else:
                raise SystemExit("unknown action %r" % action)
        await asyncio.sleep(args.linger_ms / 1000.0)

    asyncio.run(run())


if __name__ == "__main__":
    main()
