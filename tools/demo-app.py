"""A small asyncio service with the classic mistakes: blocking calls inside coroutines.

Every request is served on one event loop, so each mistake freezes every other request.
loopstall (tools/demo) shows which, for how long, and where, without touching this code.
"""
import asyncio
import hashlib
import time


async def healthy_ticker():
    # Thousands of short, well-behaved iterations: these must never be reported.
    while True:
        await asyncio.sleep(0.001)


async def sleepy_handler():
    time.sleep(0.25)  # blocks the loop: should be `await asyncio.sleep(0.25)`


async def hashing_handler():
    # CPU-bound work inline: should run in an executor.
    digest = b"seed"
    deadline = time.monotonic() + 0.2
    while time.monotonic() < deadline:
        digest = hashlib.sha256(digest).digest()


async def main():
    asyncio.get_running_loop().create_task(healthy_ticker())
    while True:
        await asyncio.sleep(1)
        await sleepy_handler()
        await asyncio.sleep(1)
        await hashing_handler()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
