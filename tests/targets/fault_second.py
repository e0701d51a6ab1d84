#!/usr/bin/env python3
"""A second, different asyncio program: what fault_loop.py execs into, or what takes over a pid.

    fault_second.py --ctl DIR [--count N] [--ms N] [--comm NAME] [--linger-ms N]

Its own functions and file name, so a test can tell its Python frames from fault_loop.py's:
each DIR/go runs second_program_sleep(--ms) (time.sleep) in a coroutine, --count times. DIR/ready
also has {"comm": the process name as the kernel has it}.
"""

import argparse
import asyncio
import threading
import time

from ctl import Ctl, add_ctl_argument, timed


def second_program_sleep(ms):
    time.sleep(ms / 1000.0)  # LINE:second_sleep


async def second_program_main(args, ctl):
    with open("/proc/self/comm") as f:
        comm = f.read().rstrip("\n")
    ctl.ready(loop="asyncio", loop_tids=[threading.get_native_id()], comm=comm)
    for n in range(1, args.count + 1):
        await ctl.next_go()
        ctl.report(**timed(n, "sleep", lambda: second_program_sleep(args.ms)))
    await asyncio.sleep(args.linger_ms / 1000.0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_ctl_argument(parser)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--ms", type=float, default=300.0)
    parser.add_argument("--comm", help="process name (/proc/self/comm), at most 15 bytes")
    parser.add_argument("--linger-ms", type=float, default=300.0)
    args = parser.parse_args()
    if args.comm:
        with open("/proc/self/comm", "w") as f:
            f.write(args.comm)
    asyncio.run(second_program_main(args, Ctl(args.ctl)))


if __name__ == "__main__":
    main()
