#!/usr/bin/env python3
"""A FastAPI app on uvicorn with three routes that block the event loop and two that do not.

    py_fastapi_app.py --ctl DIR --slow-url URL [--loop asyncio|uvloop] [--ms N]

Bad routes (each blocks the loop thread for about --ms):
  GET /sleep   async def, time.sleep()                      -> off-CPU, reason sleep
  GET /cpu     async def, a pure-Python loop for --ms of CPU -> on-CPU
  GET /http    async def, urllib.request.urlopen(--slow-url), a server answering late
                                                            -> off-CPU, reason net
Good routes (the loop keeps running):
  GET /sync_sleep   plain def with time.sleep(): FastAPI runs it in its threadpool
  GET /async_sleep  async def with await asyncio.sleep()

The blocking lines carry `# LINE:name` marker comments so the test finds their line numbers in
this file's text. The CPU loop is one line so every on-CPU sample reports the same line.

uvicorn serves on a socket this program binds to a free port on 127.0.0.1; once it accepts
requests, DIR/ready says {"pid": ..., "port": ..., "loop": ..., "loop_tids": [...]}. It runs
until killed. Needs Debian's python3 with python3-fastapi and python3-uvicorn.
"""

import argparse
import asyncio
import socket
import sys
import threading
import time
import urllib.request

import uvicorn
from fastapi import FastAPI

from ctl import Ctl, add_ctl_argument

app = FastAPI()
BLOCK_S = 0.3
SLOW_URL = None


@app.get("/sleep")
async def blocking_sleep():
    time.sleep(BLOCK_S)  # LINE:sleep
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


@app.get("/sync_sleep")
def good_sync_sleep():
    time.sleep(BLOCK_S)  # LINE:sync_sleep
    return {"route": "sync_sleep"}


@app.get("/async_sleep")
async def good_async_sleep():
    await asyncio.sleep(BLOCK_S)  # LINE:async_sleep
    return {"route": "async_sleep"}


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
