// Watches this worker's BullMQ consumers from the outside. BullMQ takes jobs over a dedicated blocking connection
// per queue; when that connection does not come back (upstream: taskforcesh/bullmq#4065, #4585) the consumer takes
// nothing more and Worker.close() can wait on it forever, with nothing in the logs. This counts the jobs each
// queue's processor is running, warns when a queue has a job waiting longer than `stallMs` while this worker runs
// fewer of its jobs than it could (and, when it runs none, asks for the consumer to be replaced: `onStuck`), and
// tells shutdown when the last job has ended (so a close that hangs on BullMQ's connection alone can be left
// behind).
import type { Logger } from '@nestjs/common';
import { Queue, type Worker } from 'bullmq';
import type IORedis from 'ioredis';

export class ConsumerWatch {
  private readonly inspectors = new Map<string, Queue>();
  private readonly running = new Map<string, number>();
  private readonly warned = new Set<string>();
  /** Per queue, the oldest waiting job at the last check: a job must be seen waiting at two checks in a row. */
  private readonly lastOldest = new Map<string, string>();
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly connection: IORedis,
    private readonly prefix: string,
    private readonly logger: Logger,
    private readonly stallMs = 10_000,
    /** A consumer that runs nothing while a job waits past stallMs: replace it (a healthy idle one takes a job in ms). */
    private readonly onStuck?: (queue: string) => void,
  ) {}

  /** Wraps a queue's processor so that its running jobs are counted. */
  counted<A extends unknown[], R>(queue: string, fn: (...args: A) => Promise<R>): (...args: A) => Promise<R> {
    return async (...args: A) => {
      this.running.set(queue, (this.running.get(queue) ?? 0) + 1);
      try {
        return await fn(...args);
      } finally {
        this.running.set(queue, (this.running.get(queue) ?? 1) - 1);
      }
    };
  }

  /** Jobs running: of `queue`, or of every queue. */
  runningJobs(queue?: string): number {
    if (queue !== undefined) return this.running.get(queue) ?? 0;
    let n = 0;
    for (const v of this.running.values()) n += v;
    return n;
  }

  /**
   * `close` (a BullMQ Worker's close, which waits for its running jobs), or, when that has not ended `graceMs` after
   * the last job of `queue` (of every queue when undefined) did, false with a warning.
   */
  async closeBounded(close: Promise<unknown>, what: string, queue?: string, graceMs = 5000): Promise<boolean> {
    let settled = false;
    const closing = close.then(() => (settled = true));
    const afterJobs = (async () => {
      while (!settled && this.runningJobs(queue) > 0) await new Promise((r) => setTimeout(r, 100));
      await new Promise((r) => setTimeout(r, graceMs).unref());
      return false;
    })();
    const closed = await Promise.race([closing, afterJobs]);
    if (!closed) this.logger.warn(`${what}: BullMQ's close did not end ${graceMs / 1000} s after the last job did; going on without it`);
    return closed;
  }

  start(workers: () => Map<string, Worker>, everyMs = Math.max(1000, this.stallMs / 2)): void {
    this.timer = setInterval(() => void this.check(workers()).catch(() => undefined), everyMs);
    this.timer.unref();
  }

  async check(workers: Map<string, Worker>, now = Date.now()): Promise<void> {
    for (const [name, w] of workers) {
      if (w.closing) continue;
      const busy = this.running.get(name) ?? 0;
      if (busy >= w.concurrency) continue;
      let q = this.inspectors.get(name);
      if (!q) {
        q = new Queue(name, { connection: this.connection, prefix: this.prefix });
        this.inspectors.set(name, q);
      }
      const [oldest] = await q.getJobs(['wait'], 0, 0, true);
      const seenBefore = oldest?.id !== undefined && this.lastOldest.get(name) === oldest.id;
      if (oldest?.id) this.lastOldest.set(name, oldest.id);
      else this.lastOldest.delete(name);
      // Its timestamp is when it was added: a job put back in the queue (stalled elsewhere) looks old at once, so
      // only one still there at the next check counts.
      if (!oldest?.id || !seenBefore || now - oldest.timestamp < this.stallMs || this.warned.has(`${name}/${oldest.id}`)) continue;
      this.warned.add(`${name}/${oldest.id}`);
      const replace = busy === 0 && this.onStuck !== undefined;
      this.logger.warn(
        `queue ${name}: job ${oldest.id} has waited ${((now - oldest.timestamp) / 1000).toFixed(1)} s while this worker runs ${busy} of its ${w.concurrency} slots: its consumer is not taking jobs (BullMQ's blocking connection?)${replace ? '; replacing the consumer' : ''}`,
      );
      if (replace) this.onStuck!(name);
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await Promise.all([...this.inspectors.values()].map((q) => q.close().catch(() => undefined)));
    this.inspectors.clear();
  }
}
