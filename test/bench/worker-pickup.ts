// BullMQ pickup latency: Queue.add returned -> the worker's handler started, for BullMQ's Worker and PromptWorker
// (libs/platform/src/worker/prompt-worker.ts), one job at a time with a pause between (a quiet deployment), the two
// alternating on their own queues so both see the same machine load. Also counts the worker's asks for a job
// (moveToActive) that came back empty between taking a job and starting it.
//   node --require ./test/e2e/register.js test/bench/worker-pickup.ts [--jobs 200] [--concurrency 4] [--gap-ms 20]
import { randomBytes } from 'node:crypto';
import * as os from 'node:os';
import { Queue, Worker, type Job } from 'bullmq';
import IORedis from 'ioredis';
import { PromptWorker } from '@lmfleet/platform/worker/prompt-worker';

const args = process.argv.slice(2);
const opt = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const JOBS = Number(opt('jobs', '200'));
const CONCURRENCY = Number(opt('concurrency', '4'));
const GAP_MS = Number(opt('gap-ms', '20'));
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const q = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  const i = (s.length - 1) * p;
  const lo = Math.floor(i);
  return s[lo] + (s[Math.min(lo + 1, s.length - 1)] - s[lo]) * (i - lo);
};

async function main(): Promise<void> {
  const prefix = `lmfb-pickup-${randomBytes(4).toString('hex')}`;
  const conns: IORedis[] = [];
  const conn = () => {
    const c = new IORedis(REDIS_URL, { maxRetriesPerRequest: null });
    conns.push(c);
    return c;
  };
  const kinds = [
    { label: 'BullMQ Worker', Cls: Worker },
    { label: 'PromptWorker', Cls: PromptWorker as typeof Worker },
  ].map((k) => {
    const name = `q-${randomBytes(3).toString('hex')}`;
    let started: (t: number) => void = () => undefined;
    const state = { empty: 0, taken: false };
    const w = new k.Cls(name, async () => started(performance.now()), { connection: conn(), prefix, concurrency: CONCURRENCY, autorun: false });
    const inner = w as unknown as { moveToActive(...a: unknown[]): Promise<Job | undefined> };
    const ask = inner.moveToActive.bind(w);
    inner.moveToActive = async (...a: unknown[]) => {
      const job = await ask(...a);
      if (job) state.taken = true;
      else if (state.taken) state.empty++;
      return job;
    };
    void w.run();
    return { ...k, w, queue: new Queue(name, { connection: conn(), prefix }), onStart: (f: (t: number) => void) => (started = f), state, ms: [] as number[], emptyBeforeStart: 0 };
  });
  try {
    await new Promise((r) => setTimeout(r, 300));
    for (let i = 0; i < JOBS; i++) {
      for (const k of i % 2 ? [...kinds].reverse() : kinds) {
        const began = new Promise<number>((r) => k.onStart(r));
        k.state.taken = false;
        k.state.empty = 0;
        await k.queue.add('j', {}, { jobId: `j${i}` });
        const added = performance.now();
        const t = await began;
        if (k.state.empty) k.emptyBeforeStart++;
        k.ms.push(t - added);
        await new Promise((r) => setTimeout(r, GAP_MS));
      }
    }
    console.log(`worker pickup: ${JOBS} jobs each, one at a time (${GAP_MS} ms apart), concurrency ${CONCURRENCY}, ${os.cpus().length} CPUs, load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
    console.log('| worker | add returned -> handler, p50 (ms) | p90 | jobs with an empty ask before the handler |');
    console.log('| --- | --- | --- | --- |');
    for (const k of kinds) console.log(`| ${k.label} | ${q(k.ms, 0.5).toFixed(3)} | ${q(k.ms, 0.9).toFixed(3)} | ${k.emptyBeforeStart} of ${JOBS} |`);
  } finally {
    for (const k of kinds) {
      await k.w.close();
      await k.queue.close();
    }
    const c = conn();
    let cursor = '0';
    do {
      const [next, keys] = await c.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
      cursor = next;
      if (keys.length) await c.del(...keys);
    } while (cursor !== '0');
    for (const x of conns) x.disconnect();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
