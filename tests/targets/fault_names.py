#!/usr/bin/env python3
"""Two asyncio loops (main thread and one more) under names chosen to break naive output code.

    fault_names.py --ctl DIR --process-name HEX --thread-name HEX [--actions A,...] [--ms N]

The names are given as hex bytes (any bytes but NUL and newline, so quotes, backslashes,
control characters, bytes that are not UTF-8) and written to /proc/self/comm (the process, i.e.
the main thread) and /proc/self/task/TID/comm (the second loop thread) before either loop
polls. The kernel keeps at most 15 bytes. DIR/ready has the names as the kernel then shows them
(hex) and both tids: {"main_tid", "thread_tid", "process_comm_hex", "thread_comm_hex"}.

Each DIR/go runs the next action: `main` stalls the main loop (time.sleep(--ms) in a coroutine),
`thread` stalls the second thread's loop the same way. Then 300 ms of idling and exit 0.
"""

import argparse
import asyncio
import threading
import time

from ctl import Ctl, IdleLoop, add_ctl_argument, serve, timed


def named_sleep(ms):
    time.sleep(ms / 1000.0)


def read_comm(tid):
    with open("/proc/self/task/%d/comm" % tid, "rb") as f:
        return f.read().rstrip(b"\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_ctl_argument(parser)
    parser.add_argument("--process-name", required=True, help="hex bytes")
    parser.add_argument("--thread-name", required=True, help="hex bytes")
    parser.add_argument("--actions", default="main,thread")
    parser.add_argument("--ms", type=float, default=300.0)
    args = parser.parse_args()
    ctl = Ctl(args.ctl)
    main_tid = threading.get_native_id()
    with open("/proc/self/comm", "wb") as f:
        f.write(bytes.fromhex(args.process_name))

    def name_thread(tid):
        with open("/proc/self/task/%d/comm" % tid, "wb") as f:
            f.write(bytes.fromhex(args.thread_name))
    second = IdleLoop("second-loop", setup=name_thread)
    actions = args.actions.split(",")

    async def act(n):
        action = actions[n - 1]
        if action == "main":
            return dict(tid=main_tid, **timed(n, action, lambda: named_sleep(args.ms)))
        report = await second.run(lambda: timed(n, action, lambda: named_sleep(args.ms)))
        return dict(tid=second.tid, **report)

    async def run():
        ctl.ready(loop="asyncio", main_tid=main_tid, thread_tid=second.tid,
                  loop_tids=[main_tid, second.tid],
                  process_comm_hex=read_comm(main_tid).hex(),
                  thread_comm_hex=read_comm(second.tid).hex())
        await serve(ctl, len(actions), act)

    asyncio.run(run())
    second.stop()


if __name__ == "__main__":
    main()
