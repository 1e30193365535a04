'use strict';
// The adapter side of lockharness's process protocol (docs/adapter-protocol.md): one JSON
// object per line on stdin, one reply per line on stdout, requests handled one at a time in
// order. A handler returns the reply; one that throws is answered "info" (the outcome of what
// it was doing is unknown), never left unanswered.

const readline = require('node:readline');

function reply(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function errorText(e) {
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  return String(e);
}

// ioredis errors: a ReplyError is the server's answer (the command ran, or was refused, and
// is known); "Stream isn't writeable" means the command was never sent (no offline queue).
// Anything else (a command timeout, a connection closed with the command in flight) leaves the
// outcome unknown.
function certain(e) {
  if (!e) return true;
  if (e.name === 'ReplyError') return true;
  return typeof e.message === 'string' && e.message.includes("Stream isn't writeable");
}

// The ioredis settings every adapter here uses: no hidden retries, no offline queue, a
// timeout on every command, quick reconnects.
function redisOptions(ep, opts) {
  const timeout = Number(opts.command_timeout_ms || 500);
  return {
    host: ep.host,
    port: ep.port,
    commandTimeout: timeout,
    connectTimeout: Math.max(timeout, 1000),
    enableOfflineQueue: false, // a command while disconnected fails at once, certainly unsent
    maxRetriesPerRequest: 0, // a command in flight when the link drops is not sent again
    autoResendUnfulfilledCommands: false,
    retryStrategy: (times) => Math.min(times * 50, 500),
    lazyConnect: false,
  };
}

// Wait until `need` of the clients are ready, or `ms` passed: how many are.
function whenReady(clients, need, ms) {
  return new Promise((resolve) => {
    const count = () => clients.filter((c) => c.status === 'ready').length;
    const started = Date.now();
    const tick = () => {
      if (count() >= need || Date.now() - started >= ms) return resolve(count());
      setTimeout(tick, 20);
    };
    tick();
  });
}

function serve(handlers) {
  process.on('unhandledRejection', (e) => process.stderr.write(`unhandled: ${errorText(e)}\n`));
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  const queue = [];
  let busy = false;
  let closed = false; // stdin ended: exit once what was asked is answered
  async function drain() {
    if (busy) return;
    busy = true;
    while (queue.length) {
      const line = queue.shift();
      let msg;
      try {
        msg = JSON.parse(line);
      } catch (e) {
        reply({ type: 'info', error: `not a JSON line: ${line.slice(0, 80)}` });
        continue;
      }
      const h = handlers[msg.op];
      if (!h) {
        reply({ type: 'fail', error: `unknown op ${JSON.stringify(msg.op)}` });
        continue;
      }
      let r;
      try {
        r = await h(msg);
      } catch (e) {
        r = { type: 'info', error: errorText(e) };
      }
      reply(r);
      if (msg.op === 'close') {
        rl.close();
        // give stdout its last line, then go, whatever connections are left
        process.stdout.write('', () => process.exit(0));
        return;
      }
    }
    busy = false;
    if (closed) process.exit(0);
  }
  rl.on('line', (line) => {
    queue.push(line);
    drain();
  });
  rl.on('close', () => {
    closed = true;
    if (!busy) process.exit(0);
  });
}

module.exports = { serve, reply, errorText, certain, redisOptions, whenReady };
