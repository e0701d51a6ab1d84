#!/usr/bin/env python3
"""An asyncio loop starved of the GIL by a CPU-bound threading.Thread.

    py_gil.py --ctl DIR [--ms N] [--count N]

On each trigger the loop starts a thread "spinner" that runs pure-Python arithmetic for --ms of
wall time (it never releases the GIL on its own; CPython takes it away every switch interval,
5 ms). Meanwhile the loop keeps doing `await asyncio.sleep(0.001)`, so each of its iterations
ends by waiting for the GIL the spinner holds: a futex wait on the interpreter's GIL.

The report line names both threads' kernel tids (threading.get_native_id()):
{"n": 1, "action": "gil", "spinner_tid": ..., "loop_tid": ..., "iterations": ..., ...}.
Control directory protocol as in ctl.py (ready, go, report.jsonl); works with Python 3.8+.
"""

import argparse
import asyncio
import threading
import time

from ctl import Ctl, add_ctl_argument, serve


def spin(seconds, tid_out):
    tid_out.append(threading.get_native_id())
    deadline, x = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        x = (x * 31 + 7) % 1000003


async def starve(n, seconds):
    tids = []
    spinner = threading.Thread(target=spin, args=(seconds, tids), name="spinner")
    wall, start = time.time(), time.monotonic()
    spinner.start()
    iterations = 0
    while spinner.is_alive():
        await asyncio.sleep(0.001)
        iterations += 1
    spinner.join()
    end = time.monotonic()
    return {"n": n, "action": "gil", "start": start, "end": end, "ms": (end - start) * 1000.0,
            "wall_start": wall, "spinner_tid": tids[0], "loop_tid": threading.get_native_id(),
            "iterations": iterations}


async def run(args, ctl):
    ctl.ready(loop="asyncio", loop_tids=[threading.get_native_id()])
    await serve(ctl, args.count, lambda n: starve(n, args.ms / 1000.0))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_ctl_argument(parser)
    parser.add_argument("--ms", type=float, default=2000.0, help="how long the spinner runs")
    parser.add_argument("--count", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(run(args, Ctl(args.ctl)))


if __name__ == "__main__":
    main()
