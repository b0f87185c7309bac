import { Inject, Injectable, Logger, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { DiscoveryService, MetadataScanner, Reflector } from '@nestjs/core';
import { UnrecoverableError, WaitingError, Worker, type Job } from 'bullmq';
import type IORedis from 'ioredis';
import { APP_CONFIG, type AppConfig } from '../config';
import type { JobEntity } from '../db/entities/job.entity';
import type { LoadedDeployment } from '../db/entities/worker.entity';
import { InvalidInputError } from '../errors';
import { JOB_NAMES, type JobName, type JobPayload } from '../queue/jobs';
import { createRedis } from '../queue/redis';
import { JobLog } from '../events/job-log';
import { JobRepository } from '../repositories/job.repository';
import { JobAbortedError, type AbortReason, type JobContext, type JobResult } from './job-context';
import { handlerProblems, ON_JOB, type HandlerRef } from './on-job.decorator';
import { isFinalFailure } from './retry';
import { PromptWorker } from './prompt-worker';
import { noteShutdownPhase } from '../shutdown';
import { ConsumerWatch } from './consumer-watch';
import { WorkerRegistry } from './worker-registry';

/** A worker app's processor: `process` is one switch over the job names it owns. */
export interface JobProcessor {
  process(name: JobName, ctx: JobContext): Promise<JobResult>;
}

export interface WorkerSpec {
  kind: 'quant' | 'infer';
  queues: string[];
  jobs: readonly JobName[];
  /** What this worker has loaded (reported in heartbeats). */
  loadedDeployments?: () => LoadedDeployment[];
  /** Called once the worker is registered and its spec queues run (worker-infer adds its deployments' queues). */
  onStarted?: (host: QueueHost, workerId: string) => Promise<void>;
  /** Called first on shutdown, before the queues close (worker-infer ends its streams). */
  onStopping?: () => Promise<void>;
}

/**
 * Handles a job that is not a platform job (no `jobs` row): a serving request, whose payload is the request
 * itself and whose outcome goes to its token stream.
 */
export type DirectJobHandler = (job: Job) => Promise<unknown>;

/** Queues consumed at runtime (worker-infer: a deployment created or deleted while it runs). */
export interface QueueHost {
  addQueue(queue: string, opts: { concurrency: number; direct?: DirectJobHandler }): void;
  setConcurrency(queue: string, concurrency: number): void;
  removeQueue(queue: string): Promise<void>;
  queues(): string[];
}

export const JOB_PROCESSOR = Symbol('JOB_PROCESSOR');
export const WORKER_SPEC = Symbol('WORKER_SPEC');

const PROGRESS_FLUSH_MS = 500;
/** Progress messages reach the job's log at most this often. */
const PROGRESS_MESSAGE_MS = 1000;

interface Active {
  controller: AbortController;
}

/**
 * Runs BullMQ workers for the queues in WORKER_SPEC and keeps Postgres in step with every job: running,
 * progress, completed/failed/retrying, the worker that holds it. Lock and stall timings come from config
 * so a SIGKILLed worker's job is taken over by another worker within lockDuration + stalledInterval.
 */
@Injectable()
export class JobRunner implements OnApplicationBootstrap, BeforeApplicationShutdown, QueueHost {
  private readonly logger = new Logger(JobRunner.name);
  private readonly workers = new Map<string, Worker>();
  /** What each queue's consumer was made with (a stuck one is replaced with the same). */
  private readonly queueOpts = new Map<string, { concurrency: number; direct?: DirectJobHandler }>();
  private readonly active = new Map<string, Active>();
  private connection?: IORedis;
  private watch?: ConsumerWatch;
  private stopping = false;
  private workerId = '';
  private workerName = '';

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(WORKER_SPEC) private readonly spec: WorkerSpec,
    @Inject(JOB_PROCESSOR) private readonly processor: JobProcessor,
    private readonly jobs: JobRepository,
    private readonly registry: WorkerRegistry,
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly reflector: Reflector,
    private readonly jobLog: JobLog,
  ) {}

  /** A line in the job's log (shown by the dashboard); never throws. */
  private log(jobId: string, message: string, level: 'info' | 'warn' | 'error' = 'info'): void {
    void this.jobLog.append(jobId, this.workerName || this.workerId, message, level);
  }

  /** Every @OnJob handler among this app's providers. */
  discoverHandlers(): HandlerRef[] {
    const found: HandlerRef[] = [];
    for (const wrapper of this.discovery.getProviders()) {
      const instance = wrapper.instance as Record<string, unknown> | undefined;
      if (!instance || typeof instance !== 'object') continue;
      const proto = Object.getPrototypeOf(instance);
      if (!proto) continue;
      for (const method of this.scanner.getAllMethodNames(proto)) {
        const name = this.reflector.get<JobName | undefined>(ON_JOB, proto[method]);
        if (name) found.push({ name, owner: `${proto.constructor.name}.${method}` });
      }
    }
    return found;
  }

  async onApplicationBootstrap(): Promise<void> {
    const problems = handlerProblems(this.spec.jobs, this.discoverHandlers());
    if (problems.length) throw new Error(`refusing to start the ${this.spec.kind} worker:\n  - ${problems.join('\n  - ')}`);

    this.workerId = await this.registry.register(this.spec.kind, this.spec.queues, () => ({
      activeJobs: this.active.size,
      loadedDeployments: this.spec.loadedDeployments?.() ?? [],
      queues: this.queues(),
    }));
    this.workerName = this.config.worker.name ?? `${this.spec.kind}-${process.pid}`;
    this.connection = createRedis(this.config.redisUrl);
    this.watch = new ConsumerWatch(this.connection, this.config.queuePrefix, this.logger, 10_000, (queue) => this.replaceConsumer(queue));
    this.watch.start(() => this.workers);
    for (const queue of this.spec.queues) this.addQueue(queue, { concurrency: this.config.worker.concurrency });
    await this.spec.onStarted?.(this, this.workerId);
  }

  queues(): string[] {
    return [...this.workers.keys()];
  }

  addQueue(queue: string, opts: { concurrency: number; direct?: DirectJobHandler }): void {
    if (!this.connection) throw new Error('the job runner has not started');
    if (this.workers.has(queue)) {
      this.setConcurrency(queue, opts.concurrency);
      return;
    }
    const w = this.config.worker;
    const direct = opts.direct;
    // Serving queues (direct handlers) start a job taken from an idle queue without BullMQ's extra round trip first.
    const WorkerClass = direct ? PromptWorker : Worker;
    const worker = new WorkerClass<JobPayload, JobResult>(
      queue,
      this.watch!.counted(queue, (job: Job<JobPayload, JobResult>, token?: string) =>
        direct && !JOB_NAMES.includes(job.name as JobName) ? (direct(job) as Promise<JobResult>) : this.run(job, token),
      ),
      {
        connection: this.connection,
        prefix: this.config.queuePrefix,
        concurrency: opts.concurrency,
        lockDuration: w.lockDurationMs,
        stalledInterval: w.stalledIntervalMs,
        maxStalledCount: w.maxStalledCount,
        autorun: false,
      },
    );
    worker.on('error', (err) => this.logger.error(`worker ${queue}: ${err.message}`));
    worker.on('stalled', (id) => this.logger.warn(`job ${id} stalled (its worker died or blocked); it goes back to the queue`));
    // Failures decided by BullMQ without running our processor (a job that stalled more than
    // MAX_STALLED_COUNT times) must still reach Postgres.
    worker.on('failed', (job, err) => {
      if (job?.data?.jobId && /stalled/i.test(err.message)) {
        void this.jobs
          .finishUnfinished([job.data.jobId], { status: 'failed', error: err.message, finishedAt: new Date() })
          .catch((e) => this.logger.warn(`recording failure of ${job.id}: ${(e as Error).message}`));
      }
    });
    this.workers.set(queue, worker);
    this.queueOpts.set(queue, opts);
    void worker.run();
  }

  /** A consumer ConsumerWatch found stuck (idle while a job waits): closed in the background, a new one in its place. */
  private replaceConsumer(queue: string): void {
    const old = this.workers.get(queue);
    const opts = this.queueOpts.get(queue);
    if (this.stopping || !old || !opts || old.closing) return;
    this.workers.delete(queue);
    void this.watch!.closeBounded(old.close(), `replacing the consumer of ${queue}`, queue);
    this.addQueue(queue, { ...opts, concurrency: old.concurrency });
  }

  setConcurrency(queue: string, concurrency: number): void {
    const worker = this.workers.get(queue);
    if (worker && worker.concurrency !== concurrency) worker.concurrency = concurrency;
  }

  /** Stops taking jobs from `queue`; resolves when its running jobs have finished. */
  async removeQueue(queue: string): Promise<void> {
    const worker = this.workers.get(queue);
    if (!worker) return;
    this.workers.delete(queue);
    this.queueOpts.delete(queue);
    await this.watch!.closeBounded(worker.close(), `removing queue ${queue}`, queue);
  }

  /** SIGTERM: finish in-flight jobs within SHUTDOWN_GRACE_MS, then hand the rest back to the queue. */
  async beforeApplicationShutdown(signal?: string): Promise<void> {
    if (!this.workers.size) return;
    this.stopping = true; // no consumer is replaced from here on
    this.logger.log(`shutting down (${signal ?? 'close'}): ${this.active.size} job(s) in flight`);
    noteShutdownPhase('marking the worker draining');
    await this.registry.setStatus('draining');
    noteShutdownPhase('stopping the serving host');
    await this.spec.onStopping?.().catch((e) => this.logger.warn(`stopping: ${(e as Error).message}`));
    noteShutdownPhase(`closing the queues' workers (${[...this.workers.keys()].join(', ')}) after their running jobs`);
    const closing = Promise.all([...this.workers.values()].map((w) => w.close()));
    const timer = setTimeout(() => {
      for (const a of this.active.values()) a.controller.abort('shutdown');
    }, this.config.worker.shutdownGraceMs);
    // BullMQ's close also waits for each queue's blocking connection to end, which has been seen never to happen
    // (ConsumerWatch): once our last job has ended, give it 5 s, then go on without it.
    await this.watch!.closeBounded(closing, "shutdown: the queues' workers");
    clearTimeout(timer);
    await this.watch?.stop();
    noteShutdownPhase('closing the Redis connection');
    await this.connection?.quit().catch(() => undefined);
    noteShutdownPhase('marking the worker stopped');
    await this.registry.setStatus('stopped');
    noteShutdownPhase('closing the app (after the job runner)');
  }

  private async run(bull: Job<JobPayload, JobResult>, token?: string): Promise<JobResult> {
    const id = bull.data?.jobId;
    const row = id ? await this.jobs.get(id) : null;
    if (!row) throw new UnrecoverableError(`no job row for ${bull.id}`);
    if (row.status === 'cancelled') return { skipped: 'cancelled' };
    if (row.status === 'completed') return row.result ?? {}; // re-delivered after it finished: nothing to redo
    if (row.status === 'failed') throw new UnrecoverableError(row.error ?? 'job already failed');

    const claimed = await this.jobs.updateUnfinished(row.id, {
      status: 'running',
      workerId: this.workerId,
      attempts: bull.attemptsStarted,
      startedAt: row.startedAt ?? new Date(),
    });
    if (!claimed) return { skipped: 'finished meanwhile' };
    const startedMs = Date.now();
    this.log(row.id, `started on ${this.workerName} (attempt ${bull.attemptsStarted})`);

    const controller = new AbortController();
    this.active.set(row.id, { controller });
    const ctx = this.context(row, bull, controller);
    try {
      const result = await this.processor.process(bull.name as JobName, ctx);
      await ctx.flush();
      const done = await this.jobs.updateIfOwned(row.id, this.workerId, { status: 'completed', progress: 1, result, error: null, finishedAt: new Date() });
      if (!done) {
        // Cancelled meanwhile, or another worker holds it now: never report a result we did not record.
        const now = await this.jobs.get(row.id);
        controller.abort(now?.status === 'cancelled' ? 'cancelled' : 'lost');
        this.logger.warn(`job ${row.id} finished after it was ${controller.signal.reason === 'lost' ? 'taken over' : 'cancelled'}; result dropped`);
        throw new JobAbortedError(controller.signal.reason as AbortReason);
      }
      this.log(row.id, `completed in ${((Date.now() - startedMs) / 1000).toFixed(1)} s`);
      return result;
    } catch (err) {
      return await this.fail(row, bull, token, controller, err);
    } finally {
      this.active.delete(row.id);
    }
  }

  private async fail(row: JobEntity, bull: Job<JobPayload, JobResult>, token: string | undefined, controller: AbortController, err: unknown): Promise<never> {
    if (controller.signal.aborted || err instanceof JobAbortedError) {
      const reason = (controller.signal.reason ?? (err as JobAbortedError).reason) as AbortReason;
      this.log(row.id, reason === 'shutdown' ? 'worker shutting down: job handed back to the queue' : `stopped: ${new JobAbortedError(reason).message}`, 'warn');
      if (reason === 'shutdown') {
        // Hand it back: another worker (or this one after restart) takes it from the start.
        await this.jobs.updateIfOwned(row.id, this.workerId, { status: 'queued', workerId: null });
        await bull.moveToWait(token);
        throw new WaitingError();
      }
      // 'lost': the new holder owns the row and the BullMQ job; leave both alone.
      if (reason === 'lost') throw new JobAbortedError('lost');
      throw new UnrecoverableError('cancelled');
    }
    const message = err instanceof Error ? err.message : String(err);
    const final = isFinalFailure(err, bull.attemptsMade, bull.opts.attempts ?? 1);
    if (final) {
      if (await this.jobs.updateIfOwned(row.id, this.workerId, { status: 'failed', error: message, finishedAt: new Date() })) {
        // The later steps of a flow can never run now; BullMQ fails them (failParentOnFailure), we record it.
        const ancestors = await this.jobs.ancestors(row.id);
        await this.jobs.finishUnfinished(
          ancestors.map((a) => a.id),
          { status: 'failed', error: `${row.type} step ${row.id} failed: ${message}`, finishedAt: new Date() },
        );
        this.logger.warn(`job ${row.type} ${row.id} failed: ${message}`);
        this.log(row.id, `failed: ${message}`, 'error');
      }
    } else {
      await this.jobs.updateIfOwned(row.id, this.workerId, { status: 'queued', workerId: null, error: `attempt ${bull.attemptsMade + 1} failed, retrying: ${message}` });
      this.logger.warn(`job ${row.type} ${row.id} attempt ${bull.attemptsMade + 1} failed, will retry: ${message}`);
      this.log(row.id, `attempt ${bull.attemptsMade + 1} failed, will retry: ${message}`, 'warn');
    }
    if (err instanceof InvalidInputError) throw new UnrecoverableError(message);
    throw err;
  }

  private context(row: JobEntity, bull: Job<JobPayload, JobResult>, controller: AbortController): JobContext & { flush(): Promise<void> } {
    let latest = row.progress ?? 0;
    let flushed = -1;
    let lastFlushAt = 0;
    let pending: Promise<void> | null = null;
    let loggedDecile = Math.floor(latest * 10);
    let lastMessage = '';
    let lastMessageAt = 0;
    const flush = async () => {
      if (latest === flushed) return;
      const value = latest;
      flushed = value;
      lastFlushAt = Date.now();
      const stillOurs = await this.jobs.updateIfOwned(row.id, this.workerId, { progress: value });
      if (!stillOurs) {
        const now = await this.jobs.get(row.id);
        controller.abort(now?.status === 'cancelled' ? 'cancelled' : 'lost');
      }
      await bull.updateProgress(Math.round(value * 1000) / 10).catch(() => undefined);
    };
    return {
      job: row,
      workerId: this.workerId,
      signal: controller.signal,
      progress: (fraction: number, message?: string) => {
        if (controller.signal.aborted) throw new JobAbortedError(controller.signal.reason as AbortReason);
        latest = Math.min(1, Math.max(0, Number.isFinite(fraction) ? fraction : 0));
        if (message && message !== lastMessage && Date.now() - lastMessageAt >= PROGRESS_MESSAGE_MS) {
          lastMessage = message;
          lastMessageAt = Date.now();
          this.log(row.id, message);
        }
        const decile = Math.floor(latest * 10);
        if (decile > loggedDecile && decile < 10) {
          loggedDecile = decile;
          this.log(row.id, `progress ${decile * 10}%`);
        }
        if (!pending && Date.now() - lastFlushAt >= PROGRESS_FLUSH_MS) {
          pending = flush()
            .catch((e) => this.logger.warn(`progress of ${row.id}: ${(e as Error).message}`))
            .finally(() => (pending = null));
        }
      },
      log: (message: string, level: 'info' | 'warn' | 'error' = 'info') => this.log(row.id, message, level),
      flush: async () => {
        await pending;
      },
    };
  }
}
