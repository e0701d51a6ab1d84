'use strict';
// A worker_threads worker runs its own event loop (its own libuv loop and epoll fd) and blocks
// it on demand; the main thread's loop stays healthy.
//
//     node [--perf-basic-prof [--interpreted-frames-native-stack]] node_worker.js --ctl DIR
//          [--action wait|spin] [--ms N]
//
// Writes DIR/ready ({"pid", "loop_tids": [main], "worker_tid"}) once the worker runs. Each
// DIR/go makes the worker block its loop for N ms; the main thread appends the worker's report
// to DIR/report.jsonl.
//
//   wait   blockFor: Atomics.wait on a value nobody changes  -> off-CPU, a futex wait
//   spin   spinFor: a JavaScript loop for N ms of CPU time    -> on-CPU, JIT code of the worker's
//          own isolate (which appends to the process's one perf map)

const { Worker, isMainThread, parentPort } = require('worker_threads');
const { Ctl, POLL_MS, gettid, parseArgs, threadCpuMs, timed } = require('./node_ctl');

function blockFor(ms) {
  const cell = new Int32Array(new SharedArrayBuffer(4));
  return { result: Atomics.wait(cell, 0, 0, ms) };
}

function spinFor(ms) {
  const deadline = threadCpuMs() + ms;
  let x = 0;
  while (threadCpuMs() < deadline) {
    for (let i = 0; i < 100000; i++)
      x = (x * 31 + i) % 1000003;
  }
  return { x };
}

const ACTIONS = { wait: blockFor, spin: spinFor };

function workerMain() {
  let n = 0;
  // The worker's loop keeps doing short iterations between actions, like a busy service.
  setInterval(() => {}, POLL_MS);
  parentPort.on('message', (msg) => {
    parentPort.postMessage(timed(++n, msg.action, () => ACTIONS[msg.action](msg.ms)));
  });
  parentPort.postMessage({ tid: gettid() });
}

function main() {
  const args = parseArgs({ ctl: null, action: 'wait', ms: 300 });
  if (!ACTIONS[args.action])
    throw new Error('--action must be one of ' + Object.keys(ACTIONS).join(', '));
  const ctl = new Ctl(args.ctl);
  const worker = new Worker(__filename, { argv: process.argv.slice(2) });
  worker.on('error', (err) => {
    console.error(err);
    process.exit(1);
  });
  worker.on('message', (msg) => {
    if (msg.tid) {
      ctl.ready({ loop_tids: [gettid()], worker_tid: msg.tid });
      setInterval(() => {
        if (ctl.takeGo())
          worker.postMessage({ action: args.action, ms: args.ms });
      }, POLL_MS);
    } else {
      ctl.report(msg);
    }
  });
}

if (isMainThread)
  main();
else
  workerMain();
