#!/usr/bin/env node
// The floor of the serving path's Redis hops on this machine, without the API or the engine: a Redis PING, a
// BullMQ add, add -> a BullMQ worker (another connection) starting the job, and XADD -> a blocked XREAD waking up.
// Read beside serve-overhead.ts: what the added time to first token costs beyond these is HTTP, Nest and scheduling.
//   node test/bench/serve-hops.js [--n 100]     (REDIS_URL or redis://127.0.0.1:6379; keys under a random prefix, removed)
'use strict';
const { Queue, Worker } = require('bullmq');
const IORedis = require('ioredis');

const n = Number(process.argv[process.argv.indexOf('--n') + 1] || 100) || 100;
const url = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
const q = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  const i = (s.length - 1) * p;
  const lo = Math.floor(i);
  return s[lo] + (s[Math.min(lo + 1, s.length - 1)] - s[lo]) * (i - lo);
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

(async () => {
  const prefix = `lmfleet-hops-${process.pid}`;
  const a = new IORedis(url, { maxRetriesPerRequest: null });
  const b = new IORedis(url, { maxRetriesPerRequest: null });
  const c = new IORedis(url, { maxRetriesPerRequest: null });
  const queue = new Queue('hops', { connection: a, prefix });
  let started;
  const worker = new Worker('hops', async () => started(performance.now()), { connection: b, prefix, concurrency: 4 });
  const res = { ping: [], add: [], pickup: [], stream: [] };
  try {
    await worker.waitUntilReady();
    await sleep(300);
    for (let i = 0; i < n; i++) {
      let t = performance.now();
      await a.ping();
      res.ping.push(performance.now() - t);
      const p = new Promise((r) => (started = r));
      t = performance.now();
      await queue.add('x', { i }, { jobId: `j${i}`, removeOnComplete: true });
      res.add.push(performance.now() - t);
      res.pickup.push((await p) - t);
      const key = `${prefix}:stream:${i}`;
      const read = c.xread('BLOCK', 2000, 'STREAMS', key, '0');
      await sleep(2);
      t = performance.now();
      await a.xadd(key, '*', 'e', '1');
      await read;
      res.stream.push(performance.now() - t);
      await sleep(3);
    }
    const f = (x) => x.toFixed(3).padStart(7);
    console.log(`serve hops: ${n} samples each, ${require('node:os').cpus().length} CPUs, ${url}\n`);
    console.log('| hop (ms)                        |   p50   |   p90   |');
    console.log('| ------------------------------- | ------- | ------- |');
    console.log(`| Redis PING                      | ${f(q(res.ping, 0.5))} | ${f(q(res.ping, 0.9))} |`);
    console.log(`| BullMQ add                      | ${f(q(res.add, 0.5))} | ${f(q(res.add, 0.9))} |`);
    console.log(`| add -> worker starts the job    | ${f(q(res.pickup, 0.5))} | ${f(q(res.pickup, 0.9))} |`);
    console.log(`| XADD -> blocked XREAD wakes     | ${f(q(res.stream, 0.5))} | ${f(q(res.stream, 0.9))} |`);
  } finally {
    await worker.close();
    await queue.obliterate({ force: true }).catch(() => undefined);
    await queue.close();
    let cursor = '0';
    do {
      const [next, keys] = await a.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
      cursor = next;
      if (keys.length) await a.del(...keys);
    } while (cursor !== '0');
    for (const x of [a, b, c]) x.disconnect();
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
