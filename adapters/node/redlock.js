'use strict';
// lockharness process adapter for the npm `redlock` package (4.2.0, the registry's latest
// release) on ioredis clients, one per redis-server (docs/adapter-protocol.md).
//
// Outcomes. redlock 4 retries an acquire `retryCount` times and reports every failure alike
// (LockError), whether each server refused or timed out; it reports each server's error as a
// 'clientError' event. So a LockError is "fail" only when no server error of the call left an
// outcome unknown (a timeout, a link dropped with the script sent): otherwise our value may
// still sit on servers until its TTL, and the answer is "info". Release and extend alike.
// Options (connect's opts): retry_delay_ms (default 200, redlock's), retry_jitter_ms (100),
// drift_factor (0.01), command_timeout_ms (500, ioredis's per-command timeout).

const Redis = require('ioredis');
const Redlock = require('redlock');
const { serve, certain, errorText, redisOptions, whenReady } = require('./lib/serve');

const VERSION = require('redlock/package.json').version;
let redlock = null;
let clients = [];
let retryDelay = 200;
let waitMs = 0;
let errors = []; // server errors of the call in progress (redlock's 'clientError' events)
const locks = new Map(); // key -> Lock

function retriesFor(wait) {
  // redlock counts attempts, not time: as many retries as fit in the wait
  return Math.max(0, Math.floor(wait / Math.max(retryDelay, 1)));
}

async function call(fn) {
  errors = [];
  try {
    return { value: await fn() };
  } catch (e) {
    return { error: e, unknown: errors.filter((x) => !certain(x)) };
  }
}

function refused(res, what) {
  const why = errorText(res.error);
  if (!(res.error instanceof Redlock.LockError)) return { type: 'info', error: why };
  if (res.unknown.length) {
    return { type: 'info', error: `${what}: ${why}; unknown on ${res.unknown.length} server call(s): ${errorText(res.unknown[0])}` };
  }
  return { type: 'fail', error: why };
}

serve({
  async connect(msg) {
    const opts = msg.opts || {};
    retryDelay = Number(opts.retry_delay_ms ?? 200);
    waitMs = Number(msg.wait_ms ?? 0);
    clients = msg.endpoints.map((ep) => {
      const c = new Redis(redisOptions(ep, opts));
      c.on('error', () => {}); // reconnects on its own; a call's errors come through redlock
      return c;
    });
    const quorum = Math.floor(clients.length / 2) + 1;
    const ready = await whenReady(clients, clients.length, Number(opts.connect_wait_ms ?? 2000));
    if (ready < quorum) {
      clients.forEach((c) => c.disconnect());
      return { type: 'fail', error: `only ${ready} of ${clients.length} redis servers reachable` };
    }
    redlock = new Redlock(clients, {
      retryCount: retriesFor(waitMs),
      retryDelay,
      retryJitter: Number(opts.retry_jitter_ms ?? 100),
      driftFactor: Number(opts.drift_factor ?? 0.01),
    });
    redlock.on('clientError', (e) => errors.push(e));
    return {
      type: 'ok',
      library: `redlock ${VERSION}`,
      capabilities: { fenced: false, expiry: 'ttl', renew: true, still_held: false },
    };
  },

  async acquire(msg) {
    // the wait given at connect, unless this acquire says otherwise
    redlock.retryCount = retriesFor(msg.wait_ms ?? waitMs);
    const res = await call(() => redlock.lock(`redlock:${msg.key}`, msg.ttl_ms));
    if (res.error) return refused(res, 'acquire');
    locks.set(msg.key, res.value);
    return { type: 'ok', fence: null };
  },

  async release(msg) {
    const lock = locks.get(msg.key);
    if (!lock) return { type: 'fail', error: `no lock held on ${msg.key}` };
    locks.delete(msg.key);
    const res = await call(() => lock.unlock());
    return res.error ? refused(res, 'release') : { type: 'ok' };
  },

  async renew(msg) {
    const lock = locks.get(msg.key);
    if (!lock) return { type: 'fail', error: `no lock held on ${msg.key}` };
    redlock.retryCount = 0; // one extend attempt: a renew that fails is reported, not retried
    const res = await call(() => lock.extend(msg.ttl_ms));
    // extend refuses an expired lock by its own clock before sending anything: certain
    return res.error ? refused(res, 'renew') : { type: 'ok' };
  },

  async close() {
    clients.forEach((c) => c.disconnect());
    return { type: 'ok' };
  },
});
