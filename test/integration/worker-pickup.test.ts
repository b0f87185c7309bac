// PromptWorker (libs/platform/src/worker/prompt-worker.ts) against BullMQ's own Worker on real Redis: a job taken
// from an idle queue starts before the worker's next ask for a job has returned, and bursts are still taken whole.
import { randomBytes } from 'node:crypto';
import { Queue, Worker, type Job } from 'bullmq';
import IORedis from 'ioredis';
import { PromptWorker } from '@lmfleet/platform/worker/prompt-worker';
import { deleteRedisPrefix, waitFor } from './support/test-env';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `lmft-pickup-${randomBytes(4).toString('hex')}`;
const connections: IORedis[] = [];
const conn = () => {
  const c = new IORedis(REDIS_URL, { maxRetriesPerRequest: null });
  connections.push(c);
  return c;
};

afterAll(async () => {
  for (const c of connections) c.disconnect();
  await deleteRedisPrefix(REDIS_URL, prefix);
});

/** The Worker internals the test watches (bullmq 5). */
type Internals = { moveToActive(...a: unknown[]): Promise<Job | undefined>; waiting: Promise<number> | null };

/** A worker whose asks for a job (moveToActive) and handler starts are logged in order. */
function logged(Cls: typeof Worker, queue: string, concurrency: number, handler: (job: Job) => Promise<void>) {
  const log: string[] = [];
  const w = new Cls(
    queue,
    async (job) => {
      log.push(`start ${job.id}`);
      await handler(job);
    },
    { connection: conn(), prefix, concurrency, autorun: false },
  );
  const inner = w as unknown as Internals;
  const ask = inner.moveToActive.bind(w);
  inner.moveToActive = async (...a: unknown[]) => {
    const job = await ask(...a);
    log.push(job ? `took ${job.id}` : 'none');
    return job;
  };
  void w.run();
  return { w, log };
}

/** Blocked on the queue's marker: idle, the state a quiet deployment's worker is in. */
const idle = (w: Worker) => waitFor(async () => (w as unknown as Internals).waiting !== null, 'worker blocked on the marker', 10_000, 10);

describe('worker pickup', () => {
  // Why PromptWorker exists: BullMQ's Worker, in the idle state it often settles in after serving a job, asks again
  // (and gets nothing) between taking the next job and starting it (['took b', 'none', 'start b']); not always, so
  // only PromptWorker's order is asserted.
  it('PromptWorker: jobs one at a time from an idle queue start as soon as they are taken, concurrency 4', async () => {
    const Cls = PromptWorker as typeof Worker;
    const name = `q-${randomBytes(3).toString('hex')}`;
    const queue = new Queue(name, { connection: conn(), prefix });
    let done!: () => void;
    const { w, log } = logged(Cls, name, 4, async () => done());
    const ids = ['a', 'b', 'c', 'd', 'e'];
    for (const id of ids) {
      await idle(w);
      // Let the loop settle after the previous job (its asks after it, the marker that job left) before the next.
      await new Promise((r) => setTimeout(r, 200));
      await idle(w);
      const finished = new Promise<void>((r) => (done = r));
      await queue.add('j', {}, { jobId: id });
      await finished;
    }
    for (const id of ids) {
      expect(log.slice(log.indexOf(`took ${id}`), log.indexOf(`start ${id}`) + 1)).toEqual([`took ${id}`, `start ${id}`]);
    }
    await w.close();
    await queue.close();
  });

  it('PromptWorker: a burst runs concurrently up to the concurrency, and later jobs are taken as slots free', async () => {
    const name = `q-${randomBytes(3).toString('hex')}`;
    const queue = new Queue(name, { connection: conn(), prefix });
    let running = 0;
    let peak = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const completed: string[] = [];
    const { w } = logged(PromptWorker as typeof Worker, name, 4, async (job) => {
      running++;
      peak = Math.max(peak, running);
      if (Number(job.id!.slice(1)) < 4) await gate; // the first four hold their slots until all four run
      running--;
      completed.push(job.id!);
    });
    w.on('failed', (job, err) => completed.push(`failed ${job?.id}: ${err.message}`));
    await idle(w);
    await queue.addBulk(Array.from({ length: 4 }, (_, i) => ({ name: 'j', data: {}, opts: { jobId: `j${i}` } })));
    await waitFor(async () => running === 4, 'four jobs running at once', 10_000, 10);
    // Queued behind a full worker, then added one at a time while it drains.
    await queue.addBulk(Array.from({ length: 4 }, (_, i) => ({ name: 'j', data: {}, opts: { jobId: `j${4 + i}` } })));
    release();
    for (let i = 8; i < 12; i++) {
      await waitFor(async () => completed.length >= i, `job ${i - 1} done`, 10_000, 10);
      await queue.add('j', {}, { jobId: `j${i}` });
    }
    await waitFor(async () => completed.length === 12, 'all twelve jobs done', 10_000, 10);
    expect(peak).toBe(4);
    expect([...completed].sort()).toEqual(Array.from({ length: 12 }, (_, i) => `j${i}`).sort());
    await w.close();
    await queue.close();
  });
});
