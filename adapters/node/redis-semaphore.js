'use strict';
// lockharness process adapter for the npm `redis-semaphore` package's Mutex (5.8.0) on one
// ioredis client (docs/adapter-protocol.md).
//
// The Mutex polls `SET key id PX ttl NX` every retryInterval until acquireTimeout, and refreshes
// a held lock in the background every refreshInterval (default 0.8 x TTL): expiry "hidden"
// (option refresh=false turns it off: expiry "ttl"). Outcomes: acquire's TimeoutError means
// every attempt was answered "taken" ("fail"); any other error is a command whose outcome is
// unknown ("info") unless it was certainly never sent. Its release does not look at the
// server's answer, so a release of a lease already lost is "ok" here as it is to its users.
// With acquireTimeout 0 the Mutex makes no attempt at all, so a wait of 0 becomes 1 ms (one
// attempt). Options: retry_interval_ms (10, the library's), refresh (true),
// command_timeout_ms (500).

const Redis = require('ioredis');
const { Mutex, TimeoutError } = require('redis-semaphore');
const { serve, certain, errorText, redisOptions, whenReady } = require('./lib/serve');

const VERSION = require('redis-semaphore/package.json').version;
let client = null;
let opts = {};
let waitMs = 0;
let refresh = true;
const mutexes = new Map(); // key -> Mutex
const lost = new Set(); // keys whose background refresh found the lock gone

function outcome(e) {
  if (e instanceof TimeoutError) return { type: 'fail', error: `TimeoutError: ${e.message}` };
  return certain(e) ? { type: 'fail', error: errorText(e) } : { type: 'info', error: errorText(e) };
}

serve({
  async connect(msg) {
    opts = msg.opts || {};
    waitMs = Number(msg.wait_ms ?? 0);
    refresh = String(opts.refresh ?? 'true') !== 'false';
    client = new Redis(redisOptions(msg.endpoints[0], opts));
    client.on('error', () => {});
    if ((await whenReady([client], 1, Number(opts.connect_wait_ms ?? 2000))) < 1) {
      client.disconnect();
      return { type: 'fail', error: 'redis unreachable' };
    }
    return {
      type: 'ok',
      library: `redis-semaphore ${VERSION}`,
      capabilities: { fenced: false, expiry: refresh ? 'hidden' : 'ttl', renew: false, still_held: true },
    };
  },

  async acquire(msg) {
    const key = msg.key;
    lost.delete(key);
    const m = new Mutex(client, key, {
      lockTimeout: msg.ttl_ms,
      acquireTimeout: Math.max(1, msg.wait_ms ?? waitMs),
      retryInterval: Number(opts.retry_interval_ms ?? 10),
      refreshInterval: refresh ? Math.round(msg.ttl_ms * 0.8) : 0,
      onLockLost: () => lost.add(key), // the library's default throws from a timer
    });
    try {
      await m.acquire();
    } catch (e) {
      return outcome(e);
    }
    mutexes.set(key, m);
    return { type: 'ok', fence: null };
  },

  async release(msg) {
    const m = mutexes.get(msg.key);
    if (!m) return { type: 'fail', error: `no lock held on ${msg.key}` };
    mutexes.delete(msg.key);
    try {
      await m.release();
    } catch (e) {
      return outcome(e);
    }
    return { type: 'ok' };
  },

  async still_held(msg) {
    const m = mutexes.get(msg.key);
    return { type: 'ok', held: Boolean(m && m.isAcquired && !lost.has(msg.key)) };
  },

  async close() {
    for (const m of mutexes.values()) m.stopRefresh();
    if (client) client.disconnect();
    return { type: 'ok' };
  },
});
