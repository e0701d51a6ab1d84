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

from ctl import POLL_S, Ctl, add_ctl_argument, timed


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

    thread_loop = {}
    started = threading.Event()
    stop = threading.Event()

    def second():
        tid = threading.get_native_id()
        with open("/proc/self/task/%d/comm" % tid, "wb") as f:
            f.write(bytes.fromhex(args.thread_name))

        async def idle():
            thread_loop["loop"] = asyncio.get_running_loop()
            thread_loop["tid"] = tid
            started.set()
            while not stop.is_set():
                await asyncio.sleep(0.01)
        asyncio.run(idle())

    worker = threading.Thread(target=second, name="second-loop")
    worker.start()
    started.wait()

    async def run():
        ctl.ready(loop="asyncio", main_tid=main_tid, thread_tid=thread_loop["tid"],
                  loop_tids=[main_tid, thread_loop["tid"]],
                  process_comm_hex=read_comm(main_tid).hex(),
                  thread_comm_hex=read_comm(thread_loop["tid"]).hex())
        for n, action in enumerate(args.actions.split(","), 1):
            while not ctl.take_go():
                await asyncio.sleep(POLL_S)
            if action == "main":
                ctl.report(tid=main_tid, **timed(n, action, lambda: named_sleep(args.ms)))
            else:
                async def in_thread():
                    return timed(n, action, lambda: named_sleep(args.ms))
                future = asyncio.run_coroutine_threadsafe(in_thread(), thread_loop["loop"])
                report = await asyncio.wrap_future(future)
                ctl.report(tid=thread_loop["tid"], **report)
        await asyncio.sleep(0.3)
        stop.set()

    asyncio.run(run())
    worker.join()


if __name__ == "__main__":
    main()
