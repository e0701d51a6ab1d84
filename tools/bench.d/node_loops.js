'use strict';
// Synthetic libuv loops for tools/bench's stack-capture cost (prints "ready" once running).
//
//   node node_loops.js idle                 every iteration: a 1 ms timer (switch-outs only in
//                                           epoll_pwait, between iterations)
//   node node_loops.js sleepy DEPTH US      every iteration: Atomics.wait for US µs, DEPTH
//                                           JavaScript frames deep, then a 1 ms timer (each
//                                           Atomics.wait switch-out is inside a busy iteration)
//
// Both arm the same timer, so their iterations differ only by the nested wait.

const [mode, depthArg, usArg] = process.argv.slice(2);
const word = new Int32Array(new SharedArrayBuffer(4));

function nested(depth, ms) {
  if (depth <= 1)
    Atomics.wait(word, 0, 0, ms);
  else
    nested(depth - 1, ms);
}

function idleIteration() {
  setTimeout(idleIteration, 1);
}

function sleepyIteration(depth, ms) {
  nested(depth, ms);
  setTimeout(sleepyIteration, 1, depth, ms);
}

if (mode === 'idle') {
  idleIteration();
} else if (mode === 'sleepy') {
  sleepyIteration(Number(depthArg), Number(usArg) / 1000);
} else {
  console.error('usage: node node_loops.js idle | sleepy DEPTH US');
  process.exit(2);
}
console.log('ready');
