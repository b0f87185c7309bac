// ConsumerWatch (libs/platform/src/worker/consumer-watch.ts) on real Redis and real BullMQ queues: it warns about a
// job left waiting while the queue's consumer has free slots (once), not about one a busy consumer cannot take yet,
// and a close that never ends is left behind a grace period after the queue's last job.
import { randomBytes } from 'node:crypto';
import { Queue, Worker } from 'bullmq';
import IORedis from 'ioredis';
import { ConsumerWatch } from '@lmfleet/platform/worker/consumer-watch';
import { deleteRedisPrefix } from './support/test-env';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `lmft-watch-${randomBytes(4).toString('hex')}`;
const conn = new IORedis(REDIS_URL, { maxRetriesPerRequest: null });

function logger() {
  const warnings: string[] = [];
  return { warnings, log: { warn: (m: string) => warnings.push(m) } as never };
}

afterAll(async () => {
  conn.disconnect();
  await deleteRedisPrefix(REDIS_URL, prefix);
});

describe('ConsumerWatch', () => {
  it('warns once about a job waiting past stallMs while the consumer has free slots (and asks to replace an idle one); not while its slots are full', async () => {
    const q = new Queue('stuck', { connection: conn, prefix });
    await q.add('x', {}, { jobId: 'j1', timestamp: Date.now() - 60_000 });
    const { warnings, log } = logger();
    const replaced: string[] = [];
    const watch = new ConsumerWatch(conn, prefix, log, 10_000, (q) => replaced.push(q));
    const consumer = { concurrency: 2, closing: undefined } as unknown as Worker; // a consumer that takes nothing
    await watch.check(new Map([['stuck', consumer]])); // first seen: it may have just been put back
    expect(warnings).toEqual([]);
    await watch.check(new Map([['stuck', consumer]]));
    await watch.check(new Map([['stuck', consumer]]));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/queue stuck: job j1 has waited 6\d\.\d s while this worker runs 0 of its 2 slots.*; replacing the consumer$/);
    expect(replaced).toEqual(['stuck']);
    // Both slots busy: the job waits for a slot, not for a stuck consumer.
    const { warnings: none, log: log2 } = logger();
    const busy = new ConsumerWatch(conn, prefix, log2, 10_000, (q) => replaced.push(q));
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const run = busy.counted('stuck', () => held);
    const jobs = [run(), run()];
    await busy.check(new Map([['stuck', consumer]]));
    await busy.check(new Map([['stuck', consumer]]));
    expect(none).toEqual([]);
    // One of two slots busy: a consumer that takes nothing more, but one running a job is left alone (warned only).
    const { warnings: one, log: log3 } = logger();
    const half = new ConsumerWatch(conn, prefix, log3, 10_000, (q) => replaced.push(q));
    const r1 = half.counted('stuck', () => held)();
    await half.check(new Map([['stuck', consumer]]));
    await half.check(new Map([['stuck', consumer]]));
    expect(one).toEqual([expect.stringMatching(/runs 1 of its 2 slots: its consumer is not taking jobs \(BullMQ's blocking connection\?\)$/)]);
    expect(replaced).toEqual(['stuck']);
    release();
    await Promise.all([...jobs, r1]);
    await Promise.all([watch.stop(), busy.stop(), half.stop(), q.close()]);
  });

  it('closeBounded: a close that ends is waited for; one that never ends is left grace after the last job', async () => {
    const { warnings, log } = logger();
    const watch = new ConsumerWatch(conn, prefix, log);
    expect(await watch.closeBounded(Promise.resolve(), 'fine', 'q', 50)).toBe(true);
    let finish!: () => void;
    const job = watch.counted('q', () => new Promise<void>((r) => (finish = r)))();
    const t0 = Date.now();
    const bounded = watch.closeBounded(new Promise(() => {}), 'stuck close', 'q', 200);
    setTimeout(() => finish(), 300);
    expect(await bounded).toBe(false);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(450); // the job's 300 ms, then the 200 ms grace
    await job;
    expect(warnings).toEqual([expect.stringMatching(/^stuck close: BullMQ's close did not end 0.2 s after the last job did/)]);
    await watch.stop();
  });
});
