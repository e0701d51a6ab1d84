"""One short-lived soak process: an asyncio loop that stalls twice, in functions of its own.

    worker.py TAG STALL_MS SETTLE_MS [--threads N]

The stalling functions are compiled from source named after TAG (sleep_TAG, spin_TAG in
/soak/TAG.py), so every process has code objects no other process has: a stall that shows
another process's function got someone else's stack. One iteration sleeps STALL_MS in
time.sleep (off-CPU), another spins STALL_MS on CPU; --threads N starts N threads that sleep and
spin too (their stacks are not the loop's). The first stall comes SETTLE_MS after the loop starts.
Works on CPython 3.8 and later.
"""
import asyncio
import sys
import threading
import time

SOURCE = """
import time

def sleep_{tag}(seconds):
    time.sleep(seconds)

def spin_{tag}(seconds):
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pass
"""


def main():
    # loopstall --all decides on the name it sees at the first poll (tools/soak --comm ^soak$).
    with open("/proc/self/comm", "w") as comm:
        comm.write("soak")
    tag, stall_s, settle_s = sys.argv[1], int(sys.argv[2]) / 1000.0, int(sys.argv[3]) / 1000.0
    threads = int(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[4] == "--threads" else 0
    space = {}
    exec(compile(SOURCE.format(tag=tag), "/soak/%s.py" % tag, "exec"), space)
    sleep, spin = space["sleep_" + tag], space["spin_" + tag]
    for _ in range(threads):
        threading.Thread(target=lambda: (sleep(stall_s), spin(stall_s / 4)), daemon=True).start()

    async def run():
        await asyncio.sleep(settle_s)
        sleep(stall_s)
        await asyncio.sleep(0.02)
        spin(stall_s)
        # The stalled iteration ends at the next poll: give the loop a few.
        await asyncio.sleep(0.05)

    asyncio.run(run())


if __name__ == "__main__":
    main()
