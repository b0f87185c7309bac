import type { JobEntity } from '../db/entities/job.entity';

/** What a handler gets: its DB row and a way to report progress (which also tells it to stop). */
export interface JobContext {
  job: JobEntity;
  workerId: string;
  /** Aborted when the job was cancelled or the worker is shutting down. */
  signal: AbortSignal;
  /**
   * Reports progress in [0, 1]. Cheap and synchronous (the engine calls it from its loop): writes to
   * Postgres/Redis are throttled in the background. Throws JobAbortedError once the job must stop. A
   * `message` (the engine's "layer 3/24" and such) goes to the job's log, at most one line a second.
   */
  progress(fraction: number, message?: string): void;
  /** A line in the job's log (the dashboard's job page): what the handler or the engine says along the way. */
  log?(message: string, level?: 'info' | 'warn' | 'error'): void;
}

export type JobResult = Record<string, unknown>;

export type AbortReason = 'cancelled' | 'shutdown' | 'lost';

const ABORT_MESSAGES: Record<AbortReason, string> = {
  cancelled: 'job was cancelled',
  shutdown: 'worker is shutting down',
  lost: 'another worker took the job over (this worker lost its lock)',
};

/** Thrown into a handler that must stop: cancelled, its worker is shutting down, or it lost the job. */
export class JobAbortedError extends Error {
  constructor(readonly reason: AbortReason) {
    super(ABORT_MESSAGES[reason]);
    this.name = 'JobAbortedError';
  }
}
