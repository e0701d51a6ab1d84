'use strict';
// The control-directory protocol of ctl.py, for the Node.js targets:
//
//   DIR/ready         written (atomically) once the event loop runs: {"pid": ..., "node": ...}
//   DIR/go            created by the test to trigger ONE action; the target deletes it, then acts
//   DIR/report.jsonl  one JSON line per finished action, CLOCK_MONOTONIC times in seconds (libuv's
//                     uv_hrtime, the clock of Python's time.monotonic()):
//                     {"n": 1, "action": "hash", "start": 123.4, "end": 123.7, "ms": 300.1,
//                      "wall_start": 1795359845.1}

const fs = require('fs');
const os = require('os');
const path = require('path');

const POLL_MS = 20;

function monotonic() {
  return Number(process.hrtime.bigint()) / 1e9;
}

// CPU time of the calling thread in ms (the first field of schedstat, in ns): CPU-bound actions
// run for a CPU time, not a wall time, so that on a loaded machine the stall grows longer
// (runqueue time) while its on-CPU part stays what was asked for. Node 20 has no thread CPU
// clock of its own (process.cpuUsage() counts V8's compiler and GC threads too).
function threadCpuMs() {
  return schedstatMs()[0];
}

// [CPU time, run delay] of the calling thread in ms: the time it ran, and the time it waited
// runnable for a CPU (the first two fields of schedstat, in ns).
function schedstatMs() {
  return fs.readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ').slice(0, 2)
    .map((ns) => Number(ns) / 1e6);
}

// The kernel's id of the calling thread: what loopstall reports as "tid".
function gettid() {
  return Number(fs.readlinkSync('/proc/thread-self').split('/').pop());
}

// --name value pairs after the script; --ctl is required.
function parseArgs(defaults) {
  const args = Object.assign({}, defaults);
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || i + 1 >= argv.length)
      throw new Error('usage: ' + path.basename(process.argv[1]) + ' --ctl DIR [--name value ...]');
    const name = argv[i].slice(2);
    args[name] = typeof defaults[name] === 'number' ? Number(argv[i + 1]) : argv[i + 1];
  }
  if (!args.ctl)
    throw new Error('--ctl DIR is required');
  return args;
}

class Ctl {
  constructor(dir) {
    this.dir = dir;
    fs.mkdirSync(dir, { recursive: true });
    this.go = path.join(dir, 'go');
    this.reportPath = path.join(dir, 'report.jsonl');
  }

  ready(info) {
    const tmp = path.join(this.dir, '.ready.tmp');
    fs.writeFileSync(tmp, JSON.stringify(Object.assign({ pid: process.pid, node: process.version,
      uv: process.versions.uv }, info)));
    fs.renameSync(tmp, path.join(this.dir, 'ready'));
  }

  // True (once) if the test asked for an action.
  takeGo() {
    try {
      fs.unlinkSync(this.go);
      return true;
    } catch (e) {
      return false;
    }
  }

  report(info) {
    fs.appendFileSync(this.reportPath, JSON.stringify(info) + '\n');
  }
}

// The host-wide steal time so far in ms (/proc/stat, USER_HZ ticks of 10 ms), as ctl.py's
// host_steal_ms().
function hostStealMs() {
  return Number(fs.readFileSync('/proc/stat', 'latin1').split('\n')[0].split(/ +/)[8]) * 10;
}

// Run one blocking action and return its report, with the scheduler's view of it: cpu_ms the
// thread's CPU time in it, run_delay_ms its wait for a CPU; host_steal_ms an upper bound of the
// VM's steal time in it (ctl.py's timed() says why), a tick per CPU of resolution included.
function timed(n, name, fn) {
  const wall = Date.now() / 1000;
  const steal = hostStealMs();
  const [cpu, delay] = schedstatMs();
  const start = monotonic();
  const extra = fn() || {};
  const end = monotonic();
  const [cpuEnd, delayEnd] = schedstatMs();
  return Object.assign({ n, action: name, start, end, ms: (end - start) * 1000, wall_start: wall,
    cpu_ms: cpuEnd - cpu, run_delay_ms: delayEnd - delay,
    host_steal_ms: hostStealMs() - steal + 10 * os.cpus().length }, extra);
}

module.exports = { Ctl, POLL_MS, gettid, monotonic, parseArgs, threadCpuMs, timed };
