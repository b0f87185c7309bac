import { UnrecoverableError } from 'bullmq';
import type { JobEntity } from '../db/entities/job.entity';

/** What a handler gets: its DB row and a way to report progress (which also tells it to stop). */
export interface JobContext {
  job: JobEntity;
  workerId: string;
  /** Aborted when the job was cancelled or the worker is shutting down. */
  signal: AbortSignal;
  /**
   * Reports progress in [0, 1]. Cheap and synchronous (the engine calls it from its loop): writes to
   * Postgres/Redis are throttled in the background. Throws JobAbortedError once the job must stop.
   */
  progress(fraction: number): void;
}

export type JobResult = Record<string, unknown>;

/** Thrown into a handler that must stop: cancelled by a user, or its worker is shutting down. */
export class JobAbortedError extends Error {
  constructor(readonly reason: 'cancelled' | 'shutdown') {
    super(reason === 'cancelled' ? 'job was cancelled' : 'worker is shutting down');
    this.name = 'JobAbortedError';
  }
}

/** A step that this build cannot run: fail the job honestly, no retries. */
export class NotAvailableError extends UnrecoverableError {
  constructor(step: string) {
    super(`${step} is not available in this build yet`);
    this.name = 'NotAvailableError';
  }
}
