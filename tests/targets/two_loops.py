#!/usr/bin/env python3
"""Two asyncio loops in two threads of one process; only one of them blocks.

    two_loops.py --ctl DIR [--ms N] [--count N]

Thread "blocker" runs a loop that waits for DIR/go and then time.sleep(ms) inside a coroutine,
`--count` times. Thread "healthy" runs a loop that ticks every 10 ms and never blocks. DIR/ready
names both threads' kernel tids: {"blocking_tid": ..., "healthy_tid": ..., "loop_tids": [...]}.
The main thread only waits (in a futex, never in epoll), then exits 0 when the blocker is done.
"""

import argparse
import asyncio
import threading
import time

from ctl import POLL_S, Ctl, add_ctl_argument, timed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_ctl_argument(parser)
    parser.add_argument("--ms", type=float, default=300.0)
    parser.add_argument("--count", type=int, default=2)
    args = parser.parse_args()
    ctl = Ctl(args.ctl)

    tids = {}
    both_running = threading.Barrier(3)
    done = threading.Event()

    async def healthy():
        tids["healthy"] = threading.get_native_id()
        both_running.wait()
        while not done.is_set():
            await asyncio.sleep(0.01)

    async def blocker():
        tids["blocking"] = threading.get_native_id()
        both_running.wait()
        for n in range(1, args.count + 1):
            while not ctl.take_go():
                await asyncio.sleep(POLL_S)
            ctl.report(**timed(n, "sleep", lambda: time.sleep(args.ms / 1000.0)))
        await asyncio.sleep(0.3)  # end the last stalled iteration at the poll call
        done.set()

    threads = [threading.Thread(target=asyncio.run, args=(coro(),), name=name)
               for name, coro in (("healthy", healthy), ("blocker", blocker))]
    for t in threads:
        t.start()
    both_running.wait()
    ctl.ready(loop="asyncio", blocking_tid=tids["blocking"], healthy_tid=tids["healthy"],
              loop_tids=[tids["blocking"], tids["healthy"]])
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
