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

from ctl import Ctl, IdleLoop, add_ctl_argument, serve, timed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_ctl_argument(parser)
    parser.add_argument("--ms", type=float, default=300.0)
    parser.add_argument("--count", type=int, default=2)
    args = parser.parse_args()
    ctl = Ctl(args.ctl)

    healthy = IdleLoop("healthy")
    blocking = {}
    blocker_running = threading.Event()

    async def blocker():
        blocking["tid"] = threading.get_native_id()
        blocker_running.set()
        await serve(ctl, args.count,
                    lambda n: timed(n, "sleep", lambda: time.sleep(args.ms / 1000.0)))

    thread = threading.Thread(target=asyncio.run, args=(blocker(),), name="blocker")
    thread.start()
    blocker_running.wait()
    ctl.ready(loop="asyncio", blocking_tid=blocking["tid"], healthy_tid=healthy.tid,
              loop_tids=[blocking["tid"], healthy.tid])
    thread.join()
    healthy.stop()

if __name__ == "__main__":
    main()
