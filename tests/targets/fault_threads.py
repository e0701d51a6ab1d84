#!/usr/bin/env python3
"""An asyncio loop that spawns and joins thousands of short-lived threads, some of them loops.

    fault_threads.py --ctl DIR [--threads N] [--batch N] [--pause-ms N] [--loop-every K] [--ms N]
                     [--count N] [--starts-before-sleep N]

From the main loop, --threads threading.Threads are started in batches of --batch, one batch per
loop iteration, --pause-ms apart (an asyncio.sleep); every --loop-every'th thread runs a tiny asyncio loop of its own
(asyncio.run of two short sleeps: it polls epoll, so it is a loop thread while it lives), the
others only bump a counter. Finished threads are joined from the loop (only those already done,
so a join never blocks the loop). DIR/churn.json is written once all have been joined:
{"threads": N, "loop_threads": M, "seconds": S}.

Independently, each DIR/go makes the main loop stall: time.sleep(--ms) in main_loop_sleep(),
--count times; the report has {"spawned": threads started so far, "tid": the main loop's tid}.
With --starts-before-sleep N the same callback first starts N threads (each start waits for the
thread to run: a lock wait and GIL handoffs in the stalled iteration, before the sleep); the
churn pauses for that iteration, so that these are the only thread starts in it.
After the last action and the last thread, the loop lingers 300 ms and the process exits 0.
"""

import argparse
import asyncio
import json
import os
import threading
import time

from ctl import Ctl, add_ctl_argument, serve, timed


def main_loop_sleep(ms):
    time.sleep(ms / 1000.0)  # LINE:main_sleep


def plain_worker(counter, lock):
    with lock:
        counter[0] += 1


def loop_worker(counter, lock):
    async def tiny():
        await asyncio.sleep(0)
        await asyncio.sleep(0.001)
    asyncio.run(tiny())
    with lock:
        counter[0] += 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_ctl_argument(parser)
    parser.add_argument("--threads", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--pause-ms", type=float, default=10.0)
    parser.add_argument("--loop-every", type=int, default=3)
    parser.add_argument("--ms", type=float, default=300.0)
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--starts-before-sleep", type=int, default=0)
    args = parser.parse_args()
    ctl = Ctl(args.ctl)
    done_counter, lock = [0], threading.Lock()
    state = {"spawned": 0, "loops": 0, "paused": False}

    async def churn():
        started = time.monotonic()
        running = []
        while state["spawned"] < args.threads or running:
            for _ in range(0 if state["paused"] else min(args.batch,
                                                         args.threads - state["spawned"])):
                is_loop = state["spawned"] % args.loop_every == 0
                t = threading.Thread(target=loop_worker if is_loop else plain_worker,
                                     args=(done_counter, lock),
                                     name="churn-%d" % state["spawned"])
                t.start()
                running.append(t)
                state["spawned"] += 1
                state["loops"] += is_loop
            await asyncio.sleep(args.pause_ms / 1000.0)
            still = []
            for t in running:
                if t.is_alive():
                    still.append(t)
                else:
                    t.join()
            running = still
        tmp = os.path.join(ctl.path, ".churn.tmp")
        with open(tmp, "w") as f:
            json.dump({"threads": state["spawned"], "loop_threads": state["loops"],
                       "finished": done_counter[0], "seconds": time.monotonic() - started}, f)
        os.rename(tmp, os.path.join(ctl.path, "churn.json"))

    def starts_then_sleep():
        started = [threading.Thread(target=plain_worker, args=(done_counter, lock))
                   for _ in range(args.starts_before_sleep)]
        for t in started:
            t.start()
        main_loop_sleep(args.ms)
        for t in started:
            t.join()

    async def stall(n):
        if args.starts_before_sleep:
            state["paused"] = True
            await asyncio.sleep(args.pause_ms * 3 / 1000.0)  # let a due batch go by
        report = dict(timed(n, "sleep", starts_then_sleep), spawned=state["spawned"],
                      tid=threading.get_native_id(), starts_before_sleep=args.starts_before_sleep)
        state["paused"] = False
        return report

    async def run():
        ctl.ready(loop="asyncio", loop_tids=[threading.get_native_id()], threads=args.threads)
        await asyncio.gather(churn(), serve(ctl, args.count, stall, linger_s=0))
        await asyncio.sleep(0.3)

    asyncio.run(run())


if __name__ == "__main__":
    main()
