// Tokens flow worker -> Redis Stream (one key per request, capped and expiring) -> API (XREAD BLOCK) -> SSE.
// Cancellation flows back: a flag key (for requests still waiting in the queue) plus a pub/sub message (for the
// worker running it).
import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import type IORedis from 'ioredis';
import { APP_CONFIG, type AppConfig } from '../config';
import { UnavailableError } from '../errors';
import { createRedis } from '../queue/redis';
import { serveKeys, type StreamEvent } from '../serving/protocol';

/** The worker that ran a request stopped answering (its liveness key expired) before the request's last event: a 503. */
export class WorkerGoneError extends UnavailableError {
  constructor(readonly requestId: string) {
    super(`the worker serving request ${requestId} stopped (its heartbeat expired); retry the request`);
  }
}

/** A stream lives this long after its last event (a reader that never came, a crashed API). */
const STREAM_TTL_S = 300;
const STREAM_MAXLEN = 100_000;
const POOL_IDLE_MAX = 32;

interface PublishBatch {
  pipeline: ReturnType<IORedis['pipeline']>;
  /** Commands queued on `pipeline`. */
  commands: number;
  /** Each publish: its commands' range in the pipeline. */
  waiters: Array<{ from: number; to: number; resolve: (replies: unknown[]) => void; reject: (err: unknown) => void }>;
}

@Injectable()
export class TokenStream implements OnApplicationShutdown {
  private readonly logger = new Logger(TokenStream.name);
  private readonly prefix: string;
  private writer?: IORedis;
  /** Worker: the connection events are appended on (see publish). */
  private publisher?: IORedis;
  /** Worker: events published in this tick, written together when the tick ends (or at once, with `flush`). */
  private batch?: PublishBatch;
  /** Worker: batches written whose reply has not come back. */
  private publishing = 0;
  private subscriber?: IORedis;
  /** Blocking readers: XREAD BLOCK holds a connection, so each active request borrows one. */
  private readonly idle: IORedis[] = [];
  private readonly all = new Set<IORedis>();
  private closed = false;

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {
    this.prefix = config.queuePrefix;
  }

  private get w(): IORedis {
    if (!this.writer) {
      // Auto-pipelining: many concurrent requests' XADDs share round trips.
      this.writer = createRedis(this.config.redisUrl, { enableAutoPipelining: true, maxRetriesPerRequest: 2 });
      this.writer.on('error', (err) => this.logger.warn(`redis: ${err.message}`));
    }
    return this.writer;
  }

  /**
   * Worker: appends events to the request's stream. Several events given together go into one entry (one `e` field
   * each, in order), so the reader wakes once for all of them.
   *
   * Every publish of this process goes out on one connection, in call order (so a request's events stay in order).
   * Events are written together: those of one tick (a decode step's tokens for all running requests) at the end of
   * the tick, and while a write's reply is outstanding, everything published meanwhile in one write when it comes
   * back (a fast decode makes tokens quicker than Redis round trips: they leave in few writes, not one each).
   * `flush`: write now, with whatever waits before it, reply outstanding or not (start, errors, the first text of a
   * reply: the API waits for them). ioredis' auto-pipelining, used before, had the batching but held every event for a
   * setImmediate and behind the outstanding reply, the first text too.
   */
  async publish(requestId: string, events: StreamEvent | StreamEvent[], opts: { flush?: boolean } = {}): Promise<void> {
    const key = serveKeys.stream(this.prefix, requestId);
    const all = Array.isArray(events) ? events : [events];
    const fields: string[] = [];
    for (const ev of all) fields.push('e', JSON.stringify(ev));
    const b = this.batch ?? this.openBatch();
    const from = b.commands;
    b.pipeline.xadd(key, 'MAXLEN', '~', STREAM_MAXLEN, '*', ...fields);
    b.commands++;
    // The stream's expiry is set by its first event and renewed by its last; deltas need no extra command.
    if (!all.every((ev) => ev.t === 'delta' || ev.t === 'done')) {
      b.pipeline.expire(key, STREAM_TTL_S);
      b.commands++;
    }
    const done = new Promise<unknown[]>((resolve, reject) => b.waiters.push({ from, to: b.commands, resolve, reject }));
    if (opts.flush) this.flushBatch(b);
    await done;
  }

  /**
   * Worker, as a request starts: whether it was cancelled while it waited, and whether it holds an admission slot
   * (`admissionKey`'s member). Asked on the events' connection, ahead of them, so Redis answers before it sees any
   * event of the request: the API cannot have read the request's end (and released its slot) first, which would
   * make a finished request look never admitted. It leaves with the tick's batch (after the synchronous
   * tokenization that follows it, usually in the same write as `start`), as it did under auto-pipelining.
   */
  async startCheck(requestId: string, admissionKey: string): Promise<{ cancelled: boolean; admitted: boolean }> {
    const b = this.batch ?? this.openBatch();
    const from = b.commands;
    b.pipeline.exists(serveKeys.cancelled(this.prefix, requestId));
    b.pipeline.zscore(admissionKey, requestId);
    b.commands += 2;
    const [exists, slot] = await new Promise<unknown[]>((resolve, reject) => b.waiters.push({ from, to: b.commands, resolve, reject }));
    return { cancelled: exists === 1, admitted: slot !== null };
  }

  private openBatch(): PublishBatch {
    if (!this.publisher) {
      this.publisher = createRedis(this.config.redisUrl, { maxRetriesPerRequest: 2 });
      this.publisher.on('error', (err) => this.logger.warn(`redis publisher: ${err.message}`));
    }
    const b: PublishBatch = { pipeline: this.publisher.pipeline(), commands: 0, waiters: [] };
    this.batch = b;
    // After the current tick's promise jobs: every request resumed by the same engine step has published by then.
    // With a reply outstanding, the batch leaves when it comes back instead.
    process.nextTick(() => {
      if (this.publishing === 0) this.flushBatch(b);
    });
    return b;
  }

  private flushBatch(b: PublishBatch): void {
    if (this.batch !== b) return; // already written
    this.batch = undefined;
    this.publishing++;
    const settle = () => {
      this.publishing--;
      if (this.publishing === 0 && this.batch) this.flushBatch(this.batch);
    };
    b.pipeline.exec().then(
      (results) => {
        settle();
        for (const w of b.waiters) {
          const failed = (results ?? []).slice(w.from, w.to).find(([err]) => err)?.[0];
          if (failed) w.reject(failed);
          else if (!results || results.length < w.to) w.reject(new Error('redis: no reply for a stream append'));
          else w.resolve(results.slice(w.from, w.to).map(([, value]) => value));
        }
      },
      (err: unknown) => {
        settle();
        for (const w of b.waiters) w.reject(err);
      },
    );
  }

  /**
   * API: the request's events from the start, as they come. Ends after `end` or `error`, or when `signal`
   * aborts; throws when nothing arrives for `idleTimeoutMs`, or when `stillServed` (asked after each second without
   * events) answers false: the worker running the request died, and nothing more will come.
   */
  async *read(requestId: string, opts: { signal?: AbortSignal; idleTimeoutMs: number; stillServed?: () => Promise<boolean> }): AsyncGenerator<StreamEvent> {
    const key = serveKeys.stream(this.prefix, requestId);
    const conn = this.borrow();
    let healthy = true;
    let last = '0';
    let idleSince = Date.now();
    // A client that leaves mid-XREAD: drop the connection so the caller learns it now, not when BLOCK times out.
    const onAbort = () => conn.disconnect();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      type Entries = Array<[string, Array<[string, string[]]>]> | null;
      for (;;) {
        if (opts.signal?.aborted) return;
        let res = (await conn.xread('COUNT', 512, 'BLOCK', 1000, 'STREAMS', key, last)) as Entries;
        if (!res) {
          if (Date.now() - idleSince > opts.idleTimeoutMs) throw new Error(`no events for request ${requestId} in ${opts.idleTimeoutMs} ms`);
          if (!opts.stillServed || (await opts.stillServed())) continue;
          // Its last events may have landed while we asked: read them before giving up.
          res = (await conn.xread('COUNT', 512, 'STREAMS', key, last)) as Entries;
          if (!res) throw new WorkerGoneError(requestId);
        }
        idleSince = Date.now();
        for (const [id, fields] of res[0][1]) {
          last = id;
          for (let f = 1; f < fields.length; f += 2) {
            const ev = JSON.parse(fields[f]) as StreamEvent;
            yield ev;
            if (ev.t === 'end' || ev.t === 'error') return;
          }
        }
      }
    } catch (err) {
      healthy = err instanceof WorkerGoneError; // no command in flight then
      if (opts.signal?.aborted) return;
      throw err;
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
      this.release(conn, healthy && !opts.signal?.aborted);
    }
  }

  /** Drops a finished request's stream. */
  async remove(requestId: string): Promise<void> {
    await this.w.del(serveKeys.stream(this.prefix, requestId));
  }

  /** API: the client went away. The worker stops the request (or skips it if it has not started). */
  async cancel(requestId: string): Promise<void> {
    await Promise.all([
      this.w.set(serveKeys.cancelled(this.prefix, requestId), '1', 'EX', STREAM_TTL_S),
      this.w.publish(serveKeys.cancelChannel(this.prefix), requestId),
    ]);
  }

  /** Worker: calls `fn` with each cancelled request id. */
  async onCancel(fn: (requestId: string) => void): Promise<void> {
    if (!this.subscriber) {
      this.subscriber = createRedis(this.config.redisUrl);
      this.subscriber.on('error', (err) => this.logger.warn(`redis subscriber: ${err.message}`));
      await this.subscriber.subscribe(serveKeys.cancelChannel(this.prefix));
    }
    this.subscriber.on('message', (_channel, id: string) => fn(id));
  }

  /** The shared command connection (admission, session routing). */
  get redis(): IORedis {
    return this.w;
  }

  private borrow(): IORedis {
    const c = this.idle.pop();
    if (c) return c;
    const conn = createRedis(this.config.redisUrl, { maxRetriesPerRequest: 1 });
    conn.on('error', (err) => this.logger.debug(`redis reader: ${err.message}`));
    this.all.add(conn);
    return conn;
  }

  private release(conn: IORedis, reusable: boolean): void {
    // A reader abandoned mid-XREAD still has a blocking command in flight: never hand it to another request.
    if (reusable && !this.closed && this.idle.length < POOL_IDLE_MAX) {
      this.idle.push(conn);
    } else {
      this.all.delete(conn);
      conn.disconnect();
    }
  }

  /** Last shutdown phase: a draining worker still publishes its running requests' final events before this. */
  async onApplicationShutdown(): Promise<void> {
    this.closed = true;
    for (const c of this.all) c.disconnect();
    this.all.clear();
    this.idle.length = 0;
    await this.subscriber?.quit().catch(() => undefined);
    if (this.batch) this.flushBatch(this.batch);
    await this.publisher?.quit().catch(() => undefined);
    await this.writer?.quit().catch(() => undefined);
  }
}
