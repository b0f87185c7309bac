import { Inject, Injectable, Logger, type OnModuleDestroy } from '@nestjs/common';
import type IORedis from 'ioredis';
import { APP_CONFIG, type AppConfig } from '../config';
import { createRedis } from '../queue/redis';

export type JobLogLevel = 'info' | 'warn' | 'error';

export interface JobLogLine {
  /** ISO time the line was written. */
  at: string;
  level: JobLogLevel;
  message: string;
  /** Who wrote it: a worker name or 'api'. */
  source: string;
}

/** Lines kept per job (oldest dropped first) and how long a job's log outlives its last line. */
export const JOB_LOG_MAX_LINES = 500;
export const JOB_LOG_TTL_S = 14 * 24 * 3600;

/** The Redis key of one job's log, under the run's key prefix (a test's prefix cleanup removes it). */
export function jobLogKey(prefix: string, jobId: string): string {
  return `${prefix}:_joblog:${jobId}`;
}

/**
 * A job's log lines (what the worker did: started, progress steps, retries, the error), kept as a capped
 * Redis list next to the queues. Writing never fails a job: a lost line is logged and dropped.
 */
@Injectable()
export class JobLog implements OnModuleDestroy {
  private readonly logger = new Logger(JobLog.name);
  private redis?: IORedis;

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {}

  private connection(): IORedis {
    if (!this.redis) {
      this.redis = createRedis(this.config.redisUrl, { maxRetriesPerRequest: 1, lazyConnect: false });
      this.redis.on('error', (err) => this.logger.debug(`redis: ${err.message}`));
    }
    return this.redis;
  }

  async append(jobId: string, source: string, message: string, level: JobLogLevel = 'info'): Promise<void> {
    const line: JobLogLine = { at: new Date().toISOString(), level, message, source };
    const key = jobLogKey(this.config.queuePrefix, jobId);
    try {
      await this.connection()
        .multi()
        .rpush(key, JSON.stringify(line))
        .ltrim(key, -JOB_LOG_MAX_LINES, -1)
        .expire(key, JOB_LOG_TTL_S)
        .exec();
    } catch (err) {
      this.logger.warn(`job ${jobId} log line dropped: ${(err as Error).message}`);
    }
  }

  async read(jobId: string): Promise<JobLogLine[]> {
    const raw = await this.connection().lrange(jobLogKey(this.config.queuePrefix, jobId), 0, -1);
    const out: JobLogLine[] = [];
    for (const r of raw) {
      try {
        out.push(JSON.parse(r) as JobLogLine);
      } catch {
        /* a foreign value: skip it */
      }
    }
    return out;
  }

  async onModuleDestroy(): Promise<void> {
    await this.redis?.quit().catch(() => undefined);
  }
}
