#!/usr/bin/env python3
"""An asyncio loop starved of the GIL by a CPU-bound threading.Thread.

    py_gil.py --ctl DIR [--action starve|client] [--ms N] [--count N]

On each trigger the loop starts a thread "spinner" that runs pure-Python arithmetic for --ms of
wall time (it never releases the GIL on its own; CPython takes it away every switch interval,
5 ms). Meanwhile the loop keeps doing `await asyncio.sleep(0.001)`, so each of its iterations
ends by waiting for the GIL the spinner holds: a futex wait on the interpreter's GIL.

--action client: a sync cache client in a callback, ROUND_TRIPS request/response round trips
on a socket to a forked peer while the spinner runs. Each receive releases the GIL and waits
~5 ms (the switch interval) to get it back: dozens of GIL waits in one iteration, more than the
walker's per-iteration budget.

The report line names both threads' kernel tids (threading.get_native_id()):
{"n": 1, "action": "gil", "spinner_tid": ..., "loop_tid": ..., "iterations": ..., ...}.
Control directory protocol as in ctl.py (ready, go, report.jsonl); works with Python 3.8+.
"""

import argparse
import asyncio
import os
import socket
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


ROUND_TRIPS = 32


def echo_peer():
    """A forked process answering each byte with one byte after 1 ms: the cache server. The
    client's receive blocks, so the spinner surely has the GIL when the answer comes."""
    ours, theirs = socket.socketpair()
    if os.fork() == 0:
        ours.close()
        while theirs.recv(1):
            time.sleep(0.001)
            theirs.sendall(b"!")
        os._exit(0)
    theirs.close()
    return ours


def client(n, peer):
    tids, stop = [], threading.Event()

    def spin_until_stopped():
        tids.append(threading.get_native_id())
        x = 0
        while not stop.is_set():
            x = (x * 31 + 7) % 1000003

    spinner = threading.Thread(target=spin_until_stopped, name="spinner")
    wall, start = time.time(), time.monotonic()
    spinner.start()
    for _ in range(ROUND_TRIPS):
        peer.sendall(b"?")
        assert peer.recv(1) == b"!"
    stop.set()
    spinner.join()
    end = time.monotonic()
    return {"n": n, "action": "client", "start": start, "end": end,
            "ms": (end - start) * 1000.0, "wall_start": wall, "spinner_tid": tids[0],
            "loop_tid": threading.get_native_id(), "round_trips": ROUND_TRIPS}


async def run(args, ctl):
    ctl.ready(loop="asyncio", loop_tids=[threading.get_native_id()])
    if args.action == "client":
        await serve(ctl, args.count, lambda n: client(n, args.peer))
    else:
        await serve(ctl, args.count, lambda n: starve(n, args.ms / 1000.0))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_ctl_argument(parser)
    parser.add_argument("--ms", type=float, default=2000.0, help="how long the spinner runs")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--action", choices=["starve", "client"], default="starve")
    args = parser.parse_args()
    if args.action == "client":
        args.peer = echo_peer()
    asyncio.run(run(args, Ctl(args.ctl)))


if __name__ == "__main__":
    main()
