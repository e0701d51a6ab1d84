'use strict';
// An HTTP server whose routes block its event loop in one known way each.
//
//     node [--perf-basic-prof [--interpreted-frames-native-stack]] node_http.js --ctl DIR
//
// Writes DIR/ready ({"pid", "port", "loop_tids", "node", "uv"}) once listening on 127.0.0.1, then
// serves until killed. Each blocking route appends a line to DIR/report.jsonl before answering:
//
//   GET /hash?ms=N   handleHash -> hashPassword: crypto.pbkdf2Sync for N ms of CPU time -> on-CPU
//   GET /exec?ms=N   handleExec -> child_process.execSync('sleep N/1000')     -> off-CPU
//   GET /spin?ms=N   handleSpin -> spinFor: a JavaScript loop for N ms of CPU -> on-CPU, JIT code
//   GET /read?path=P handleRead -> readConfig: fs.readFileSync(P) (a large file)      -> CPU, disk
//   GET /regex?n=N   handleRegex -> validateName: /^(a+)+$/ on N a's and a '!'     -> on-CPU
//   POST /json       handleJson -> parseBody: JSON.parse of the request body        -> on-CPU
//   GET /ok          handleOk: fs.readFile of this file (libuv's thread pool, or io_uring with
//                    UV_USE_IO_URING=1), then a small JSON answer             -> healthy
//
// The function names and their lines are what the tests look for in loopstall's "js" frames.

const childProcess = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const { Ctl, parseArgs, threadCpuMs, timed } = require('./node_ctl');

const args = parseArgs({ ctl: null });
const ctl = new Ctl(args.ctl);
let actions = 0;
let served = 0;

function hashPassword(password, ms) {
  // Many short derivations rather than one long one, to stop at the CPU time asked for. BLAKE2b
  // is OpenSSL's C code; its SHA-512 is assembly that uses rbp as a scratch register, so
  // on-CPU samples landing there have no frame-pointer chain back to the JavaScript frames.
  const deadline = threadCpuMs() + ms;
  let rounds = 0;
  while (threadCpuMs() < deadline) {
    crypto.pbkdf2Sync(password, 'loopstall-salt', 2000, 64, 'blake2b512');
    rounds++;
  }
  return { rounds };
}

function spinFor(ms) {
  const deadline = threadCpuMs() + ms;
  let x = 0;
  let rounds = 0;
  while (threadCpuMs() < deadline) {
    for (let i = 0; i < 100000; i++)
      x = (x * 31 + i) % 1000003;
    rounds++;
  }
  return { rounds, x };
}

function handleHash(res, ms) {
  ctl.report(timed(++actions, 'hash', () => hashPassword('hunter2', ms)));
  res.end('hashed\n');
}

function handleExec(res, ms) {
  ctl.report(timed(++actions, 'exec', () => {
    childProcess.execSync('sleep ' + (ms / 1000).toFixed(3));
  }));
  res.end('slept\n');
}

function handleSpin(res, ms) {
  ctl.report(timed(++actions, 'spin', () => spinFor(ms)));
  res.end('spun\n');
}

function readConfig(path) {
  return fs.readFileSync(path).length;
}

function handleRead(res, path) {
  ctl.report(timed(++actions, 'read', () => readConfig(path)));
  res.end('read\n');
}

function validateName(name) {
  return /^(a+)+$/.test(name);
}

function handleRegex(res, n) {
  ctl.report(timed(++actions, 'regex', () => validateName('a'.repeat(n) + '!')));
  res.end('matched\n');
}

function parseBody(text) {
  return JSON.parse(text).length;
}

function handleJson(req, res) {
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    const text = Buffer.concat(chunks).toString();
    ctl.report(timed(++actions, 'json', () => parseBody(text)));
    res.end('parsed\n');
  });
}

function handleOk(res) {
  fs.readFile(__filename, (err, data) => {
    served++;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ ok: !err, bytes: data ? data.length : 0, served }));
  });
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  const ms = Number(url.searchParams.get('ms') || 300);
  switch (url.pathname) {
  case '/hash': return handleHash(res, ms);
  case '/exec': return handleExec(res, ms);
  case '/spin': return handleSpin(res, ms);
  case '/read': return handleRead(res, url.searchParams.get('path'));
  case '/regex': return handleRegex(res, Number(url.searchParams.get('n')));
  case '/json': return handleJson(req, res);
  case '/ok': return handleOk(res);
  default:
    res.statusCode = 404;
    res.end();
  }
});

server.listen(0, '127.0.0.1', () => {
  ctl.ready({ port: server.address().port, loop_tids: [process.pid] });
});
