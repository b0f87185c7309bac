import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../config';
import type { JobEntity } from '../db/entities/job.entity';
import type { ModelVersionEntity } from '../db/entities/model-version.entity';
import { ENGINE_ADAPTER, type EngineAdapter } from '../engine/engine.adapter';
import { InvalidInputError } from '../errors';
import { validateJobParams } from '../jobs/job-params';
import { JobName } from '../queue/jobs';
import { ArtifactRepository } from '../repositories/artifact.repository';
import { JobRepository } from '../repositories/job.repository';
import { MetricRepository } from '../repositories/metric.repository';
import { ModelRepository } from '../repositories/model.repository';
import { ArtifactStore } from '../storage/artifact-store';
import { NotAvailableError, type JobContext, type JobResult } from './job-context';
import { OnJob } from './on-job.decorator';

const DEFAULT_EVAL_SEQLEN = 2048;

/** The quantize pipeline's steps (LMDeploy lite: calibrate, auto_awq, convert) and eval. */
@Injectable()
export class QuantJobsService {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(ENGINE_ADAPTER) private readonly engine: EngineAdapter,
    private readonly models: ModelRepository,
    private readonly jobs: JobRepository,
    private readonly metrics: MetricRepository,
    private readonly artifacts: ArtifactRepository,
    private readonly store: ArtifactStore,
  ) {}

  @OnJob(JobName.Calibrate)
  async calibrate(_ctx: JobContext): Promise<JobResult> {
    throw new NotAvailableError('calibrate');
  }

  @OnJob(JobName.AutoAwq)
  async autoAwq(_ctx: JobContext): Promise<JobResult> {
    throw new NotAvailableError('auto_awq');
  }

  @OnJob(JobName.Convert)
  async convert(_ctx: JobContext): Promise<JobResult> {
    throw new NotAvailableError('convert');
  }

  /** Perplexity of a version on a text file: `ppl` metric on the version, a JSON report artifact. */
  @OnJob(JobName.Eval)
  async eval(ctx: JobContext): Promise<JobResult> {
    const p = validateJobParams(JobName.Eval, ctx.job.params);
    const version = await this.inputVersion(ctx.job, p.versionId);
    const seqlen = p.seqlen ?? DEFAULT_EVAL_SEQLEN;
    ctx.progress(0);
    const r = await this.engine.evalPpl(version.path, {
      datasetFile: p.datasetFile,
      seqlen,
      maxWindows: p.maxWindows,
      backend: this.config.worker.engineBackend,
      onProgress: (done, total) => ctx.progress(total > 0 ? done / total : 0),
    });
    if (!Number.isFinite(r.ppl)) throw new Error(`evalPpl returned a non-finite perplexity (${r.ppl})`);

    const jobId = ctx.job.id;
    const stored = await this.store.write(
      `jobs/${jobId}/eval.json`,
      JSON.stringify({ versionId: version.id, datasetFile: p.datasetFile, seqlen, maxWindows: p.maxWindows ?? null, ...r }, null, 2) + '\n',
    );
    const artifact = await this.artifacts.upsert({
      jobId,
      versionId: version.id,
      kind: 'eval_report',
      name: 'eval.json',
      ...stored,
      metadata: { seqlen, windows: r.windows },
    });
    for (const [name, value, unit] of [
      ['ppl', r.ppl, null],
      ['eval_tokens', r.tokens, 'tokens'],
      ['eval_seconds', r.seconds, 's'],
    ] as const) {
      await this.metrics.upsertForJob({ jobId, versionId: version.id, name, value, unit });
    }
    await this.models.mergeVersionMetrics(version.id, { ppl: r.ppl });
    return { versionId: version.id, ppl: r.ppl, windows: r.windows, tokens: r.tokens, seconds: r.seconds, artifactId: artifact.id };
  }

  /** A standalone job names its version; a pipeline step evaluates what the previous step produced. */
  private async inputVersion(job: JobEntity, versionId?: string): Promise<ModelVersionEntity> {
    let id = versionId ?? job.versionId ?? undefined;
    if (!id) {
      const [prev] = await this.jobs.children(job.id);
      const produced = prev?.result?.versionId;
      if (typeof produced !== 'string') throw new InvalidInputError(`${job.type} job ${job.id} has no input version`);
      id = produced;
    }
    const v = await this.models.findVersion(id);
    if (!v) throw new InvalidInputError(`version ${id} does not exist`);
    return v;
  }
}
