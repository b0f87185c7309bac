import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../config';
import type { JobEntity } from '../db/entities/job.entity';
import type { ArtifactKind } from '../db/entities/artifact.entity';
import type { ModelVersionEntity } from '../db/entities/model-version.entity';
import { ENGINE_ADAPTER, type EngineAdapter } from '../engine/engine.adapter';
import { InvalidInputError } from '../errors';
import { validateJobParams } from '../jobs/job-params';
import { JobName } from '../queue/jobs';
import { ArtifactRepository } from '../repositories/artifact.repository';
import { JobRepository } from '../repositories/job.repository';
import { MetricRepository } from '../repositories/metric.repository';
import { ModelRepository } from '../repositories/model.repository';
import { ArtifactStore, type StoredFile } from '../storage/artifact-store';
import type { JobContext, JobResult } from './job-context';
import { OnJob } from './on-job.decorator';

const DEFAULT_EVAL_SEQLEN = 2048;

/** The quantize pipeline's steps (LMDeploy lite: calibrate, auto_awq, convert) and eval, on the engine. */
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

  /** Activation statistics of a version on a text (LMDeploy `lite calibrate`), kept as artifacts. */
  @OnJob(JobName.Calibrate)
  async calibrate(ctx: JobContext): Promise<JobResult> {
    const p = validateJobParams(JobName.Calibrate, ctx.job.params);
    const version = await this.inputVersion(ctx.job, p.versionId);
    const rel = `jobs/${ctx.job.id}/calibration`;
    const r = await this.engine.calibrate(version.path, {
      dataset: p.calibDataset,
      samples: p.calibSamples,
      seqlen: p.calibSeqlen,
      workDir: await this.store.emptyDir(rel),
      backend: this.config.worker.engineBackend,
      onProgress: (f) => ctx.progress(f),
    });
    const files = await this.recordDir(ctx.job.id, version.id, 'calibration', rel);
    await this.metrics.upsertForJob({ jobId: ctx.job.id, versionId: version.id, name: 'calib_tokens', value: r.tokens, unit: 'tokens' });
    // versionId: the version calibrated, which auto_awq (the next step) quantizes.
    return { versionId: version.id, calibrationDir: rel, samples: r.samples, seqlen: r.seqlen, tokens: r.tokens, artifacts: files };
  }

  /** AWQ search + 4-bit packing into an AutoAWQ GEMM directory: a new version, child of its input. */
  @OnJob(JobName.AutoAwq)
  async autoAwq(ctx: JobContext): Promise<JobResult> {
    const p = validateJobParams(JobName.AutoAwq, ctx.job.params);
    const [calib] = await this.jobs.children(ctx.job.id);
    const calibrationDir = typeof calib?.result?.calibrationDir === 'string' ? (calib.result.calibrationDir as string) : undefined;
    if (!calibrationDir && !p.calibDataset) {
      throw new InvalidInputError('auto_awq needs a calibration: run it after calibrate in a pipeline, or give params.calibDataset');
    }
    const version = await this.inputVersion(ctx.job, p.versionId);
    if (version.format !== 'hf') throw new InvalidInputError(`auto_awq quantizes fp16/bf16 Hugging Face versions; ${version.id} is ${version.format}`);
    const workDir = calibrationDir ? this.store.resolve(calibrationDir) : await this.store.emptyDir(`jobs/${ctx.job.id}/calibration`);
    const rel = `jobs/${ctx.job.id}/awq`;
    const r = await this.engine.autoAwq(version.path, {
      wBits: p.wBits,
      wGroupSize: p.wGroupSize,
      searchScale: p.searchScale,
      searchClip: p.searchClip,
      calibDataset: p.calibDataset,
      calibSamples: p.calibSamples,
      calibSeqlen: p.calibSeqlen,
      workDir,
      dstDir: await this.store.emptyDir(rel),
      backend: this.config.worker.engineBackend,
      onProgress: (f) => ctx.progress(f),
    });
    const info = await this.engine.inspectModel(this.store.resolve(rel));
    const out = await this.models.upsertVersionForJob(ctx.job.id, version.modelId, {
      parentVersionId: version.id,
      createdByJobId: ctx.job.id,
      format: 'autoawq',
      dtype: info.dtype,
      quantization: info.quantization ?? { bits: r.wBits, group_size: r.wGroupSize, quant_method: 'awq' },
      path: this.store.resolve(rel),
      sizeBytes: info.sizeBytes,
      info: { ...info },
    });
    const files = await this.recordDir(ctx.job.id, out.id, 'autoawq', rel);
    await this.metrics.upsertForJob({ jobId: ctx.job.id, versionId: out.id, name: 'auto_awq_seconds', value: r.seconds, unit: 's' });
    return { versionId: out.id, inputVersionId: version.id, wBits: r.wBits, wGroupSize: r.wGroupSize, searchScale: r.searchScale, searchClip: r.searchClip, seconds: r.seconds, artifacts: files };
  }

  /** The engine workspace (LMDeploy `convert`): a new version, child of its input. */
  @OnJob(JobName.Convert)
  async convert(ctx: JobContext): Promise<JobResult> {
    const p = validateJobParams(JobName.Convert, ctx.job.params);
    const version = await this.inputVersion(ctx.job, p.versionId);
    if (version.format === 'workspace') throw new InvalidInputError(`version ${version.id} is already a workspace`);
    const model = await this.models.findModel(version.modelId);
    if (!model) throw new InvalidInputError(`model ${version.modelId} does not exist`);
    const rel = `jobs/${ctx.job.id}/workspace`;
    const r = await this.engine.convert(model.modelType, version.path, {
      modelFormat: version.format === 'autoawq' ? 'awq' : 'hf',
      dstPath: await this.store.emptyDir(rel),
      onProgress: (f) => ctx.progress(f),
    });
    const described = await this.store.describeDir(rel);
    const out = await this.models.upsertVersionForJob(ctx.job.id, version.modelId, {
      parentVersionId: version.id,
      createdByJobId: ctx.job.id,
      format: 'workspace',
      dtype: version.dtype,
      quantization: version.quantization,
      path: this.store.resolve(rel),
      sizeBytes: described.reduce((n, f) => n + f.bytes, 0),
      info: { ...version.info, convertedFrom: version.id },
    });
    const files = await this.recordDir(ctx.job.id, out.id, 'workspace', rel, described);
    return { versionId: out.id, inputVersionId: version.id, seconds: r.seconds, artifacts: files };
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

  /** Records every file the engine wrote under `rel` as an artifact of the job (upserts: re-runs replace). */
  private async recordDir(jobId: string, versionId: string, kind: ArtifactKind, rel: string, described?: Array<StoredFile & { name: string }>): Promise<number> {
    const files = described ?? (await this.store.describeDir(rel));
    for (const f of files) {
      await this.artifacts.upsert({ jobId, versionId, kind, name: f.name, path: f.path, bytes: f.bytes, sha256: f.sha256, metadata: {} });
    }
    return files.length;
  }

  /** A standalone job names its version; a pipeline step works on what the previous step produced. */
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
