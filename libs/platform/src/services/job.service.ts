import { Inject, Injectable, Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { APP_CONFIG, type AppConfig } from '../config';
import type { ArtifactEntity } from '../db/entities/artifact.entity';
import { FINISHED_STATUSES, type JobEntity, type JobStatus } from '../db/entities/job.entity';
import { ConflictError, InvalidInputError, NotFoundError, UnavailableError } from '../errors';
import { validateJobParams } from '../jobs/job-params';
import { bullJobId, inferQueueName, JobName, JOB_QUEUE, QueueName } from '../queue/jobs';
import { JobQueue } from '../queue/job-queue';
import { ArtifactRepository } from '../repositories/artifact.repository';
import { JobRepository, type JobFilter, type NewJob } from '../repositories/job.repository';
import { ModelRepository } from '../repositories/model.repository';
import { resolveUnderRoots } from './paths';
import { BUILTIN_CALIB_DATASETS, isBuiltinCalibDataset } from '../engine/engine.adapter';

/** Per-step params as received; each is validated as that step's params (CalibrateParams, ...). */
export interface QuantizePipelineInput {
  versionId: string;
  calibrate?: object;
  autoAwq?: object;
  convert?: object;
  eval?: object;
}

@Injectable()
export class JobService {
  private readonly logger = new Logger(JobService.name);

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly jobs: JobRepository,
    private readonly models: ModelRepository,
    private readonly artifacts: ArtifactRepository,
    private readonly queue: JobQueue,
  ) {}

  /** Validates, records and enqueues one job. */
  async create(type: JobName, rawParams: unknown): Promise<JobEntity> {
    const params = validateJobParams(type, rawParams) as unknown as Record<string, unknown>;
    const versionId = typeof params.versionId === 'string' ? params.versionId : undefined;
    if (!versionId) throw new InvalidInputError('params.versionId: is required for a standalone job', [{ field: 'params.versionId', errors: ['is required'] }]);
    await this.requireVersion(versionId);
    await this.checkFiles(params, 'params');
    const id = randomUUID();
    const queueName = JOB_QUEUE[type] === 'infer' ? inferQueueName(String(params.deploymentId ?? 'default')) : QueueName.Quant;
    const [job] = await this.jobs.createMany([{ id, type, params, queueName, bullJobId: bullJobId(type, id), versionId }]);
    await this.enqueueOrFail([job], () => this.queue.enqueue(job));
    return job;
  }

  /** calibrate → auto_awq → convert → eval as one BullMQ flow (eval the root, calibrate the deepest child). */
  async createQuantizePipeline(input: QuantizePipelineInput): Promise<{ flowId: string; jobs: JobEntity[] }> {
    await this.requireVersion(input.versionId);
    const steps: Array<[JobName, string, Record<string, unknown>]> = [
      [JobName.Calibrate, 'calibrate', { ...validateJobParams(JobName.Calibrate, { ...(input.calibrate ?? {}), versionId: input.versionId }, 'calibrate') }],
      [JobName.AutoAwq, 'autoAwq', { ...validateJobParams(JobName.AutoAwq, input.autoAwq ?? {}, 'autoAwq') }],
      [JobName.Convert, 'convert', { ...validateJobParams(JobName.Convert, input.convert ?? {}, 'convert') }],
      [JobName.Eval, 'eval', { ...validateJobParams(JobName.Eval, input.eval, 'eval') }],
    ];
    for (const [, field, params] of steps) await this.checkFiles(params, field);
    const flowId = randomUUID();
    const ids = steps.map(() => randomUUID());
    // Each step's BullMQ parent is the step after it.
    const rows: NewJob[] = steps.map(([type, , params], i) => ({
      id: ids[i],
      type,
      params,
      queueName: QueueName.Quant,
      bullJobId: bullJobId(type, ids[i]),
      versionId: i === 0 ? input.versionId : null,
      parentJobId: i + 1 < ids.length ? ids[i + 1] : null,
      flowId,
    }));
    const jobs = await this.jobs.createMany(rows);
    await this.enqueueOrFail(jobs, () => this.queue.addQuantizeFlow({ calibrate: ids[0], autoAwq: ids[1], convert: ids[2], eval: ids[3] }));
    return { flowId, jobs };
  }

  list(filter: JobFilter) {
    return this.jobs.list(filter).then(([items, total]) => ({ items, total, limit: filter.limit, offset: filter.offset }));
  }

  async get(id: string): Promise<JobEntity> {
    const job = await this.jobs.get(id);
    if (!job) throw new NotFoundError('job', id);
    return job;
  }

  /**
   * Cancels a job that has not finished (and, in a flow, every unfinished step of the flow: the later steps
   * could never run). Jobs waiting in Redis are removed; a running one stops at its next progress report.
   */
  async cancel(id: string): Promise<JobEntity> {
    const job = await this.get(id);
    if (FINISHED_STATUSES.includes(job.status)) throw new ConflictError(`job ${id} is already ${job.status}`, { status: job.status });
    const group = job.flowId ? await this.jobs.listFlow(job.flowId) : [job];
    const changed = await this.jobs.finishUnfinished(
      group.map((j) => j.id),
      { status: 'cancelled', finishedAt: new Date(), error: 'cancelled by request' },
    );
    if (!changed.includes(id)) {
      const now = await this.get(id);
      throw new ConflictError(`job ${id} is already ${now.status}`, { status: now.status });
    }
    // The root of a flow owns its children in Redis: removing it removes the waiting steps too.
    const root = group.find((j) => !j.parentJobId) ?? job;
    await this.queue.remove(root.queueName, root.bullJobId).catch((err) => this.logger.warn(`remove ${root.bullJobId}: ${err}`));
    if (root.id !== job.id) await this.queue.remove(job.queueName, job.bullJobId).catch(() => undefined);
    return this.get(id);
  }

  async artifactsOf(jobId: string): Promise<ArtifactEntity[]> {
    await this.get(jobId);
    return this.artifacts.listByJob(jobId);
  }

  /**
   * After Redis lost its data: re-enqueues every standalone job Postgres says is unfinished. Idempotent
   * (bullJobId is deterministic, so a job still in Redis is not added twice). Flow steps are not re-created;
   * they are reported so the pipeline can be resubmitted.
   */
  async reenqueueUnfinished(): Promise<{ reenqueued: string[]; flowJobsSkipped: string[] }> {
    const jobs = await this.jobs.unfinished();
    const reenqueued: string[] = [];
    for (const j of jobs.filter((j) => !j.flowId)) {
      if (await this.queue.exists(j.queueName, bullJobId(j.type, j.id))) continue;
      await this.jobs.updateUnfinished(j.id, { status: 'queued', workerId: null });
      await this.queue.enqueue(j);
      reenqueued.push(j.id);
    }
    return { reenqueued, flowJobsSkipped: jobs.filter((j) => j.flowId).map((j) => j.id) };
  }

  private async requireVersion(id: string): Promise<void> {
    if (!(await this.models.findVersion(id))) throw new NotFoundError('version', id);
  }

  /** File params (datasets, KV calibration dirs) must be under MODEL_ROOTS too; stored as real paths. Built-in calibration names stay names. */
  private async checkFiles(params: Record<string, unknown>, prefix: string): Promise<void> {
    for (const key of ['datasetFile', 'calibDataset']) {
      if (key === 'calibDataset' && typeof params[key] === 'string' && !(params[key] as string).includes('/')) {
        const name = params[key] as string;
        if (isBuiltinCalibDataset(name)) continue;
        const field = `${prefix}.${key}`;
        const reason = `unknown built-in calibration dataset "${name}" (built-in: ${BUILTIN_CALIB_DATASETS.map((d) => d.name).join(', ')}); or give an absolute file path`;
        throw new InvalidInputError(`${field}: ${reason}`, { field, reason });
      }
      if (typeof params[key] === 'string') {
        params[key] = await resolveUnderRoots(params[key] as string, this.config.modelRoots, 'file', `${prefix}.${key}`);
      }
    }
    // Calibrated KV scales: a `lite calibrate` work dir under MODEL_ROOTS, or a calibrate job that has finished.
    if (typeof params.kvCalibDir === 'string') {
      params.kvCalibDir = await resolveUnderRoots(params.kvCalibDir, this.config.modelRoots, 'directory', `${prefix}.kvCalibDir`);
    }
    if (typeof params.kvCalibJobId === 'string') {
      const field = `${prefix}.kvCalibJobId`;
      const calib = await this.jobs.get(params.kvCalibJobId);
      const reason = !calib
        ? `no job ${params.kvCalibJobId}`
        : calib.type !== JobName.Calibrate
          ? `job ${calib.id} is a ${calib.type} job, not calibrate`
          : calib.status !== 'completed' || typeof calib.result?.calibrationDir !== 'string'
            ? `calibrate job ${calib.id} is ${calib.status}, not completed`
            : null;
      if (reason) throw new InvalidInputError(`${field}: ${reason}`, { field, reason });
    }
  }

  private async enqueueOrFail(jobs: JobEntity[], enqueue: () => Promise<void>): Promise<void> {
    try {
      await enqueue();
    } catch (err) {
      const message = `could not enqueue: ${(err as Error).message}`;
      await this.jobs.finishUnfinished(jobs.map((j) => j.id), { status: 'failed' as JobStatus, error: message, finishedAt: new Date() });
      throw new UnavailableError(message);
    }
  }
}
