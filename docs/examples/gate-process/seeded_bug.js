'use strict';
// A seeded bug for the gate example: a lock adapter (lockharness process protocol) whose
// acquire reads the key and then writes it, without SET's NX: two clients that both read it
// free both "hold" it. A gate must go red on it. Uses ioredis from adapters/node.
const path = require('node:path');
const NODE = path.join(__dirname, '..', '..', '..', 'adapters', 'node');
const Redis = require(path.join(NODE, 'node_modules', 'ioredis'));
const { serve, redisOptions, whenReady } = require(path.join(NODE, 'lib', 'serve'));

let client = null;
const mine = new Map(); // key -> our token

serve({
  async connect(msg) {
    client = new Redis(redisOptions(msg.endpoints[0], msg.opts || {}));
    client.on('error', () => {});
    if ((await whenReady([client], 1, 2000)) < 1) return { type: 'fail', error: 'unreachable' };
    return {
      type: 'ok',
      library: 'seeded-bug 0',
      capabilities: { fenced: false, expiry: 'ttl', renew: false, still_held: false },
    };
  },
  async acquire(msg) {
    const token = `${process.pid}-${Date.now()}-${Math.random()}`;
    const end = Date.now() + msg.wait_ms;
    for (;;) {
      if ((await client.get(`bug:${msg.key}`)) === null) {
        await new Promise((r) => setTimeout(r, 20)); // the window between the read and the write
        await client.set(`bug:${msg.key}`, token, 'PX', msg.ttl_ms); // the bug: no NX
        mine.set(msg.key, token);
        return { type: 'ok', fence: null };
      }
      if (Date.now() >= end) return { type: 'fail', error: 'taken' };
      await new Promise((r) => setTimeout(r, 5));
    }
  },
  async release(msg) {
    const token = mine.get(msg.key);
    mine.delete(msg.key);
    const script = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0";
    const done = await client.eval(script, 1, `bug:${msg.key}`, token);
    return done === 1 ? { type: 'ok' } : { type: 'fail', error: 'not owner' };
  },
  async close() {
    if (client) client.disconnect();
    return { type: 'ok' };
  },
});
