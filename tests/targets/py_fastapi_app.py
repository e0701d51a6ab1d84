#!/usr/bin/env python3
"""A FastAPI app on uvicorn with three routes that block the event loop and two that do not.

    py_fastapi_app.py --ctl DIR --slow-url URL [--loop asyncio|uvloop] [--ms N]

Bad routes (each blocks the loop thread for about --ms; /sleep and /subprocess take ?ms=N):
  GET /sleep   async def, time.sleep()                      -> off-CPU, reason sleep
  GET /cpu     async def, a pure-Python loop for --ms of CPU -> on-CPU
  GET /http    async def, urllib.request.urlopen(--slow-url), a server answering late
                                                            -> off-CPU, reason net
  GET /requests     async def, requests.get(--slow-url)      -> off-CPU, net (python3-requests)
  GET /kv           async def, a redis-style client: send a command on a plain blocking socket
                    to --slow-url's server, recv its late reply -> off-CPU, net
  GET /hash         async def, hashlib.sha256 over a 16 MB buffer for --ms of CPU -> on-CPU in
                    libcrypto (C code, the GIL released)
  GET /background   schedules an `async def` BackgroundTasks task that calls time.sleep()
  GET /lock         async def, `with LOCK:` while a thread holds LOCK for --ms -> off-CPU, lock
  GET /subprocess   async def, subprocess.run(["sleep", ...])                -> off-CPU
Good routes (the loop keeps running):
  GET /sync_sleep   plain def with time.sleep(): FastAPI runs it in its threadpool
  GET /async_sleep  async def with await asyncio.sleep()
  GET /to_thread    async def with await asyncio.to_thread(time.sleep, ...)

The blocking lines carry `# LINE:name` marker comments so the test finds their line numbers in
this file's text. The CPU loop is one line so every on-CPU sample reports the same line.

uvicorn serves on a socket this program binds to a free port on 127.0.0.1; once it accepts
requests, DIR/ready says {"pid": ..., "port": ..., "loop": ..., "loop_tids": [...]}. It runs
until killed. Needs Debian's python3 with python3-fastapi and python3-uvicorn.
"""

import argparse
import asyncio
import hashlib
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import uvicorn
from fastapi import BackgroundTasks, FastAPI

from ctl import Ctl, add_ctl_argument

app = FastAPI()
BLOCK_S = 0.3
SLOW_URL = None


@app.get("/sleep")
async def blocking_sleep(ms: float = 0):
    time.sleep(ms / 1000.0 or BLOCK_S)  # LINE:sleep
    return {"route": "sleep"}


@app.get("/cpu")
async def blocking_cpu():
    deadline, x = time.thread_time() + BLOCK_S, 0
    while time.thread_time() < deadline: x = (x * 31 + 7) % 1000003  # noqa: E701  LINE:cpu
    return {"route": "cpu", "x": x}


@app.get("/http")
async def blocking_http():
    body = urllib.request.urlopen(SLOW_URL).read()  # LINE:http
    return {"route": "http", "bytes": len(body)}


@app.get("/requests")
async def blocking_requests():
    import requests  # only this route needs python3-requests
    body = requests.get(SLOW_URL, timeout=30).content  # LINE:requests
    return {"route": "requests", "bytes": len(body)}


def kv_get(key):
    """A redis-style synchronous client: one command out, one reply back, on a plain socket."""
    host, port = SLOW_URL.split("/")[2].split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(b"GET /%s HTTP/1.0\r\n\r\n" % key.encode())
        reply = sock.recv(65536)  # LINE:kv
    return reply


@app.get("/kv")
async def blocking_kv():
    return {"route": "kv", "bytes": len(kv_get("answer"))}


BLOB = bytes(16 << 20)


@app.get("/hash")
async def blocking_hash():
    deadline, n = time.thread_time() + BLOCK_S, 0
    while time.thread_time() < deadline: n += len(hashlib.sha256(BLOB).digest())  # noqa: E701  LINE:hash
    return {"route": "hash", "n": n}


async def send_report():
    time.sleep(BLOCK_S)  # LINE:background


@app.get("/background")
async def schedule_report(tasks: BackgroundTasks):
    tasks.add_task(send_report)
    return {"route": "background"}


LOCK = threading.Lock()


def hold_lock(held):
    with LOCK:
        held.set()
        time.sleep(BLOCK_S)


@app.get("/lock")
async def blocking_lock():
    held = threading.Event()
    threading.Thread(target=hold_lock, args=(held,), name="lock-holder").start()
    held.wait()
    with LOCK:  # LINE:lock
        pass
    return {"route": "lock"}


@app.get("/subprocess")
async def blocking_subprocess(ms: float = 0):
    subprocess.run(["sleep", str(ms / 1000.0 or BLOCK_S)], check=True)  # LINE:subprocess
    return {"route": "subprocess"}


@app.get("/sync_sleep")
def good_sync_sleep():
    time.sleep(BLOCK_S)  # LINE:sync_sleep
    return {"route": "sync_sleep"}


@app.get("/async_sleep")
async def good_async_sleep():
    await asyncio.sleep(BLOCK_S)  # LINE:async_sleep
    return {"route": "async_sleep"}


@app.get("/to_thread")
async def good_to_thread():
    await asyncio.to_thread(time.sleep, BLOCK_S)  # LINE:to_thread
    return {"route": "to_thread"}


async def serve(args, ctl):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    serving = asyncio.ensure_future(server.serve(sockets=[sock]))
    while not server.started:
        if serving.done():
            serving.result()  # raises what made uvicorn fail
            sys.exit("uvicorn stopped before it started")
        await asyncio.sleep(0.01)
    ctl.ready(loop=args.loop, port=sock.getsockname()[1], loop_tids=[threading.get_native_id()])
    await serving


def main():
    global BLOCK_S, SLOW_URL
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_ctl_argument(parser)
    parser.add_argument("--slow-url", required=True, help="what GET /http fetches")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--ms", type=float, default=300.0, help="how long each route blocks")
    args = parser.parse_args()
    BLOCK_S, SLOW_URL = args.ms / 1000.0, args.slow_url
    if args.loop == "uvloop":
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(serve(args, Ctl(args.ctl)))


if __name__ == "__main__":
    main()
