#!/usr/bin/env python3
"""An asyncio loop in a process that also has a CPython subinterpreter.

    fault_subinterp.py --ctl DIR [--ms N] [--count N]

Before the loop starts, the main thread creates a subinterpreter (_xxsubinterpreters, 3.8-3.12;
_interpreters, 3.13) and runs a line of code in it, then leaves it idle. The main thread then has
two PyThreadStates with its thread id: the main interpreter's (running the loop) and the idle
subinterpreter's (no frame). Each DIR/go runs time.sleep(--ms) in subinterp_loop_sleep() inside
a coroutine, --count times; then 300 ms of idling and exit 0.
"""

import argparse
import asyncio
import threading
import time

from ctl import Ctl, add_ctl_argument, serve, timed

try:
    import _xxsubinterpreters as interpreters
except ImportError:  # 3.13 renamed it
    import _interpreters as interpreters


def subinterp_loop_sleep(ms):
    time.sleep(ms / 1000.0)  # LINE:sub_sleep


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_ctl_argument(parser)
    parser.add_argument("--ms", type=float, default=300.0)
    parser.add_argument("--count", type=int, default=1)
    args = parser.parse_args()
    ctl = Ctl(args.ctl)
    sub = interpreters.create()
    interpreters.run_string(sub, "x = 1 + 1")

    async def run():
        ctl.ready(loop="asyncio", loop_tids=[threading.get_native_id()], subinterpreter=str(sub))
        await serve(ctl, args.count,
                    lambda n: timed(n, "sleep", lambda: subinterp_loop_sleep(args.ms)))

    asyncio.run(run())


if __name__ == "__main__":
    main()
