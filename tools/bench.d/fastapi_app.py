"""Workloads (b) and (c): a small FastAPI app, served by uvicorn.

/json is the hot route wrk drives. /block is the classic mistake loopstall must find: a
time.sleep() inside an async def, which freezes the whole loop for 200 ms. /short blocks the same
way for 50 ms, below the default 100 ms threshold: a negative control that must not be reported.
"""
import asyncio
import time

from fastapi import FastAPI

app = FastAPI()


@app.on_event("startup")
async def say_ready():
    loop = asyncio.get_running_loop()
    # tools/bench reads this line: which loop uvicorn chose, and whether debug mode is on.
    print(f"ready loop={type(loop).__module__}.{type(loop).__name__} debug={loop.get_debug()}",
          flush=True)


@app.get("/json")
async def small_json():
    return {"status": "ok", "items": [1, 2, 3]}


@app.get("/block")
async def block():
    time.sleep(0.2)  # blocks the loop for 200 ms: should be `await asyncio.sleep(0.2)`
    return {"slept_ms": 200}


@app.get("/short")
async def short_block():
    time.sleep(0.05)  # 50 ms: below the default 100 ms threshold
    return {"slept_ms": 50}
