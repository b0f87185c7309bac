import { Inject, Injectable, Logger, type OnModuleDestroy } from '@nestjs/common';
import { FlowProducer, Queue } from 'bullmq';
import type IORedis from 'ioredis';
import { APP_CONFIG, type AppConfig } from '../config';
import type { JobEntity } from '../db/entities/job.entity';
import { buildQuantizeFlow, jobOptions, type JobPayload, type QuantizeFlowJobs, type RetryPolicy } from './jobs';
import { createRedis } from './redis';

/** BullMQ at the edge: queues by name, the flow producer, removal. Payloads are DB ids only. */
@Injectable()
export class JobQueue implements OnModuleDestroy {
  private readonly logger = new Logger(JobQueue.name);
  private readonly connection: IORedis;
  private readonly queues = new Map<string, Queue>();
  private flows?: FlowProducer;
  private readonly retry: RetryPolicy;

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {
    // Fail fast on the API path instead of queueing commands while Redis is down.
    this.connection = createRedis(config.redisUrl, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: false });
    this.connection.on('error', (err) => this.logger.warn(`redis: ${err.message}`));
    this.retry = { attempts: config.jobs.attempts, backoffMs: config.jobs.backoffMs };
  }

  /** The queues' connection: commands sent on it run in Redis in the order sent, before and after BullMQ's own. */
  get redis(): IORedis {
    return this.connection;
  }

  queue(name: string): Queue {
    let q = this.queues.get(name);
    if (!q) {
      q = new Queue(name, { connection: this.connection, prefix: this.config.queuePrefix });
      this.queues.set(name, q);
    }
    return q;
  }

  async enqueue(job: Pick<JobEntity, 'id' | 'type' | 'queueName'>): Promise<void> {
    const data: JobPayload = { jobId: job.id };
    await this.queue(job.queueName).add(job.type, data, jobOptions(job.type, job.id, this.retry));
  }

  async addQuantizeFlow(ids: QuantizeFlowJobs): Promise<void> {
    this.flows ??= new FlowProducer({ connection: this.connection, prefix: this.config.queuePrefix });
    await this.flows.add(buildQuantizeFlow(ids, this.retry));
  }

  /**
   * Removes a job that no worker holds (waiting, delayed, waiting-children; with its children). Returns
   * false when it is locked by a worker or already gone: the worker notices the cancellation itself.
   */
  async remove(queueName: string, bullJobId: string): Promise<boolean> {
    const job = await this.queue(queueName).getJob(bullJobId);
    if (!job) return false;
    try {
      await job.remove({ removeChildren: true });
      return true;
    } catch (err) {
      this.logger.debug(`could not remove ${bullJobId}: ${(err as Error).message}`);
      return false;
    }
  }

  async exists(queueName: string, bullJobId: string): Promise<boolean> {
    return (await this.queue(queueName).getJob(bullJobId)) !== undefined;
  }

  async ping(): Promise<boolean> {
    try {
      return (await this.connection.ping()) === 'PONG';
    } catch {
      return false;
    }
  }

  async onModuleDestroy(): Promise<void> {
    await Promise.allSettled([...this.queues.values()].map((q) => q.close()));
    await this.flows?.close().catch(() => undefined);
    await this.connection.quit().catch(() => undefined);
  }
}
