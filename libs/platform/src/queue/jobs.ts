// Queues and jobs, declared once (immich's enum.ts + types.ts idea). Everything that enqueues, processes or
// names a BullMQ job goes through this file.
import type { FlowJob, JobsOptions } from 'bullmq';

export enum QueueName {
  Quant = 'quant',
}

/** The queue of one inference deployment. BullMQ refuses ':' in queue names, hence '-'. */
export function inferQueueName(deploymentId: string): string {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(deploymentId)) {
    throw new Error(`invalid deployment id "${deploymentId}": use [A-Za-z0-9_-]{1,64}`);
  }
  return `infer-${deploymentId}`;
}

/** LMDeploy's step names; the same strings as `jobs.type` and the CLI. */
export enum JobName {
  Calibrate = 'calibrate',
  AutoAwq = 'auto_awq',
  Convert = 'convert',
  Eval = 'eval',
  Infer = 'infer',
}

export const JOB_NAMES: readonly JobName[] = Object.values(JobName);

/** Which kind of queue carries each job; a missing entry does not compile. */
export const JOB_QUEUE: Record<JobName, 'quant' | 'infer'> = {
  [JobName.Calibrate]: 'quant',
  [JobName.AutoAwq]: 'quant',
  [JobName.Convert]: 'quant',
  [JobName.Eval]: 'quant',
  [JobName.Infer]: 'infer',
};

export const QUANT_JOBS: readonly JobName[] = JOB_NAMES.filter((n) => JOB_QUEUE[n] === 'quant');
export const INFER_JOBS: readonly JobName[] = JOB_NAMES.filter((n) => JOB_QUEUE[n] === 'infer');

/** Payloads carry database ids only: the job row holds params, the worker reads everything else by id. */
export interface JobPayload {
  jobId: string;
}
export type JobItem = { [N in JobName]: { name: N; data: JobPayload } }[JobName];

/** Deterministic, colon-free BullMQ job id: re-enqueueing the same DB job can never duplicate it. */
export function bullJobId(name: JobName, dbId: string): string {
  if (!/^[0-9a-fA-F-]{1,64}$/.test(dbId)) throw new Error(`invalid job db id "${dbId}"`);
  return `${name}-${dbId.toLowerCase()}`;
}

/** Inverse of bullJobId, for logs and tests. */
export function parseBullJobId(id: string): { name: JobName; dbId: string } | null {
  for (const name of JOB_NAMES) {
    const prefix = `${name}-`;
    if (id.startsWith(prefix) && /^[0-9a-f-]+$/.test(id.slice(prefix.length))) {
      return { name, dbId: id.slice(prefix.length) };
    }
  }
  return null;
}

export interface RetryPolicy {
  attempts: number;
  backoffMs: number;
}

export function jobOptions(name: JobName, dbId: string, retry: RetryPolicy): JobsOptions {
  return {
    jobId: bullJobId(name, dbId),
    attempts: retry.attempts,
    backoff: { type: 'exponential', delay: retry.backoffMs },
    // Postgres keeps the history; Redis only carries work in flight.
    removeOnComplete: { count: 1000 },
    removeOnFail: { count: 1000 },
  };
}

/** The four rows of a quantize pipeline, in execution order. */
export interface QuantizeFlowJobs {
  calibrate: string;
  autoAwq: string;
  convert: string;
  eval: string;
}

/**
 * The quantize pipeline as one BullMQ flow: a chain is a nested tree whose root runs last, so eval is the
 * root and calibrate the deepest child. A failing step fails its parents (failParentOnFailure).
 */
export function buildQuantizeFlow(ids: QuantizeFlowJobs, retry: RetryPolicy): FlowJob {
  const steps: Array<[JobName, string]> = [
    [JobName.Eval, ids.eval],
    [JobName.Convert, ids.convert],
    [JobName.AutoAwq, ids.autoAwq],
    [JobName.Calibrate, ids.calibrate],
  ];
  let node: FlowJob | undefined;
  for (let i = steps.length - 1; i >= 0; i--) {
    const [name, dbId] = steps[i];
    const isChild = i > 0;
    const current: FlowJob = {
      name,
      queueName: QueueName.Quant,
      data: { jobId: dbId } satisfies JobPayload,
      opts: { ...jobOptions(name, dbId, retry), ...(isChild ? { failParentOnFailure: true } : {}) },
      ...(node ? { children: [node] } : {}),
    };
    node = current;
  }
  return node!;
}
