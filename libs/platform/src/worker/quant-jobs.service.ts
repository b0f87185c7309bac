import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../config';
import type { JobEntity } from '../db/entities/job.entity';
import type { ArtifactKind } from '../db/entities/artifact.entity';
import type { ModelVersionEntity } from '../db/entities/model-version.entity';
import { ENGINE_ADAPTER, type EngineAdapter, type WorkspaceKvCache } from '../engine/engine.adapter';
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

/** Window length of an eval job that names none (also read by the dashboard to compute scored tokens/s). */
export const DEFAULT_EVAL_SEQLEN = 2048;

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
    const t0 = Date.now();
    const r = await this.engine.calibrate(version.path, {
      dataset: p.calibDataset,
      samples: p.calibSamples,
      seqlen: p.calibSeqlen,
      workDir: await this.store.emptyDir(rel),
      backend: this.config.worker.engineBackend,
      onProgress: (f, message) => ctx.progress(f, message),
      log: (level, message) => level !== 'debug' && ctx.log?.(message, level),
    });
    const seconds = (Date.now() - t0) / 1000;
    const files = await this.recordDir(ctx.job.id, version.id, 'calibration', rel);
    await this.metrics.upsertForJob({ jobId: ctx.job.id, versionId: version.id, name: 'calib_tokens', value: r.tokens, unit: 'tokens' });
    await this.metrics.upsertForJob({ jobId: ctx.job.id, versionId: version.id, name: 'calibrate_seconds', value: seconds, unit: 's' });
    // versionId: the version calibrated, which auto_awq (the next step) quantizes.
    return { versionId: version.id, calibrationDir: rel, samples: r.samples, seqlen: r.seqlen, tokens: r.tokens, seconds, artifacts: files };
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
      onProgress: (f, message) => ctx.progress(f, message),
      log: (level, message) => level !== 'debug' && ctx.log?.(message, level),
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
    await this.recordStepMetrics(ctx.job.id, version, out, 'auto_awq_seconds', r.seconds);
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
    const kvCalibDir = await this.kvCalibDir(p);
    const r = await this.engine.convert(model.modelType, version.path, {
      modelFormat: version.format === 'autoawq' ? 'awq' : 'hf',
      ...(p.quantPolicy !== undefined ? { quantPolicy: p.quantPolicy } : {}),
      ...(kvCalibDir ? { kvCalibDir } : {}),
      dstPath: await this.store.emptyDir(rel),
      onProgress: (f, message) => ctx.progress(f, message),
      log: (level, message) => level !== 'debug' && ctx.log?.(message, level),
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
      // The KV cache the workspace is served with (deployments with kvPolicy auto use it).
      info: { ...version.info, convertedFrom: version.id, kvCache: this.kvRecord(r.kvCache, p) },
    });
    const files = await this.recordDir(ctx.job.id, out.id, 'workspace', rel, described);
    await this.recordStepMetrics(ctx.job.id, version, out, 'convert_seconds', r.seconds);
    return { versionId: out.id, inputVersionId: version.id, seconds: r.seconds, kvCache: this.kvRecord(r.kvCache, p), artifacts: files };
  }

  /**
   * Perplexity of a version on a text file: `ppl` metric on the version, a JSON report artifact. For a derived version
   * (quantized or converted) also the before/after view on it: the unquantized base's perplexity on the same text and
   * settings (`ppl_before`, reused from an earlier eval or measured here), `ppl_ratio`, sizes (`size_bytes`,
   * `size_bytes_before`, `size_ratio`) and, in a pipeline, the time its quantize steps took (`quantize_seconds`).
   */
  @OnJob(JobName.Eval)
  async eval(ctx: JobContext): Promise<JobResult> {
    const p = validateJobParams(JobName.Eval, ctx.job.params);
    const version = await this.inputVersion(ctx.job, p.versionId);
    const seqlen = p.seqlen ?? DEFAULT_EVAL_SEQLEN;
    const derived = version.format !== 'hf' || !!version.quantization;
    const base = derived && p.compareToBase !== false ? await this.baseVersionOf(version) : undefined;
    ctx.progress(0);
    const kvCalibDir = await this.kvCalibDir(p);
    const run = (dir: string, from: number, to: number) =>
      this.engine.evalPpl(dir, {
        datasetFile: p.datasetFile,
        seqlen,
        maxWindows: p.maxWindows,
        ...(p.quantPolicy !== undefined ? { quantPolicy: p.quantPolicy } : {}),
        ...(kvCalibDir ? { kvCalibDir } : {}),
        backend: this.config.worker.engineBackend,
        onProgress: (done, total) => ctx.progress(from + (to - from) * (total > 0 ? done / total : 0)),
        log: (level, message) => level !== 'debug' && ctx.log?.(message, level),
      });
    let baseline: { versionId: string; ppl: number; measured: boolean } | undefined;
    if (base) {
      const settings = {
        datasetFile: p.datasetFile,
        seqlen,
        defaultSeqlen: DEFAULT_EVAL_SEQLEN,
        maxWindows: p.maxWindows ?? null,
        quantPolicy: p.quantPolicy ?? null,
        kvCalibDir: p.kvCalibDir ?? null,
        kvCalibJobId: p.kvCalibJobId ?? null,
      };
      const known = await this.jobs.findEvalPpl(base.id, settings);
      if (known !== undefined) {
        baseline = { versionId: base.id, ppl: known, measured: false };
      } else {
        const rb = await run(base.path, 0, 0.5);
        if (!Number.isFinite(rb.ppl)) throw new Error(`evalPpl returned a non-finite perplexity (${rb.ppl}) for base version ${base.id}`);
        baseline = { versionId: base.id, ppl: rb.ppl, measured: true };
      }
    }
    const r = await run(version.path, baseline?.measured ? 0.5 : 0, 1);
    if (!Number.isFinite(r.ppl)) throw new Error(`evalPpl returned a non-finite perplexity (${r.ppl})`);

    const jobId = ctx.job.id;
    const stored = await this.store.write(
      `jobs/${jobId}/eval.json`,
      JSON.stringify({ versionId: version.id, datasetFile: p.datasetFile, seqlen, maxWindows: p.maxWindows ?? null, ...kvParams(p), ...r, baseline: baseline ?? null }, null, 2) + '\n',
    );
    const artifact = await this.artifacts.upsert({
      jobId,
      versionId: version.id,
      kind: 'eval_report',
      name: 'eval.json',
      ...stored,
      metadata: { seqlen, windows: r.windows },
    });
    // Measured with a quantized KV cache: its own metric names (ppl_kv_int8, ...), beside the fp16-cache ppl.
    const kv = p.quantPolicy ? `_kv_int${p.quantPolicy}` : '';
    const onVersion: Array<[string, number, string | null]> = [[`ppl${kv}`, r.ppl, null]];
    if (baseline && base) {
      onVersion.push(
        [`ppl_before${kv}`, baseline.ppl, null],
        [`ppl_ratio${kv}`, r.ppl / baseline.ppl, null],
        ['size_bytes', Number(version.sizeBytes), 'bytes'],
        ['size_bytes_before', Number(base.sizeBytes), 'bytes'],
        ['size_ratio', Number(version.sizeBytes) / Number(base.sizeBytes), null],
      );
    }
    const quantizeSeconds = ctx.job.flowId ? await this.flowStepSeconds(ctx.job.flowId) : undefined;
    if (quantizeSeconds !== undefined) onVersion.push(['quantize_seconds', quantizeSeconds, 's']);
    for (const [name, value, unit] of [...onVersion, ['eval_tokens', r.tokens, 'tokens'], ['eval_seconds', r.seconds, 's']] as const) {
      if (Number.isFinite(value)) await this.metrics.upsertForJob({ jobId, versionId: version.id, name, value, unit });
    }
    await this.models.mergeVersionMetrics(version.id, Object.fromEntries(onVersion.filter(([, v]) => Number.isFinite(v)).map(([n, v]) => [n, v])));
    if (baseline?.measured) await this.models.mergeVersionMetrics(baseline.versionId, { [`ppl${kv}`]: baseline.ppl });
    return {
      versionId: version.id, ppl: r.ppl, windows: r.windows, tokens: r.tokens, seconds: r.seconds, artifactId: artifact.id,
      ...kvParams(p), ...(r.kvCache ? { kvCache: r.kvCache } : {}),
      ...(baseline ? { baseline, pplRatio: r.ppl / baseline.ppl } : {}),
    };
  }

  /** The directory of calibrated KV scales a job names: its own path, or the calibration of a completed calibrate job. */
  private async kvCalibDir(p: { kvCalibDir?: string; kvCalibJobId?: string }): Promise<string | undefined> {
    if (p.kvCalibDir) return p.kvCalibDir;
    if (!p.kvCalibJobId) return undefined;
    const calib = await this.jobs.get(p.kvCalibJobId);
    const rel = calib?.type === JobName.Calibrate && calib.status === 'completed' ? calib.result?.calibrationDir : undefined;
    if (typeof rel !== 'string') throw new InvalidInputError(`kvCalibJobId ${p.kvCalibJobId} is not a completed calibrate job`);
    return this.store.resolve(rel);
  }

  /** What a workspace version records about its KV cache: the engine's manifest, and where its scales came from. */
  private kvRecord(kv: WorkspaceKvCache | undefined, p: { quantPolicy?: number; kvCalibDir?: string; kvCalibJobId?: string }) {
    return {
      quantPolicy: kv?.quantPolicy ?? p.quantPolicy ?? 0,
      calibrated: kv?.calibrated ?? false,
      ...(p.kvCalibJobId ? { calibJobId: p.kvCalibJobId } : {}),
      ...(p.kvCalibDir ? { calibDir: p.kvCalibDir } : {}),
    };
  }

  /** size and time of a step that made `out` from `input`, as metrics of the job on `out` and merged into its metrics. */
  private async recordStepMetrics(jobId: string, input: ModelVersionEntity, out: ModelVersionEntity, secondsName: string, seconds: number): Promise<void> {
    const rows: Array<[string, number, string | null]> = [
      [secondsName, seconds, 's'],
      ['size_bytes', Number(out.sizeBytes), 'bytes'],
      ['size_bytes_before', Number(input.sizeBytes), 'bytes'],
      ['size_ratio', Number(out.sizeBytes) / Number(input.sizeBytes), null],
    ];
    const ok = rows.filter(([, v]) => Number.isFinite(v));
    for (const [name, value, unit] of ok) await this.metrics.upsertForJob({ jobId, versionId: out.id, name, value, unit });
    await this.models.mergeVersionMetrics(out.id, Object.fromEntries(ok.map(([n, v]) => [n, v])));
  }

  /** Seconds the completed calibrate / auto_awq / convert steps of a flow took (their results' `seconds`). */
  private async flowStepSeconds(flowId: string): Promise<number | undefined> {
    const steps = (await this.jobs.listFlow(flowId)).filter((j) => j.type !== JobName.Eval && j.status === 'completed');
    const secs = steps.map((j) => j.result?.seconds).filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
    return secs.length ? secs.reduce((a, b) => a + b, 0) : undefined;
  }

  /** The nearest ancestor that is an unquantized Hugging Face checkpoint (what a derived version is compared with). */
  private async baseVersionOf(v: ModelVersionEntity): Promise<ModelVersionEntity | undefined> {
    let cur = v;
    for (let depth = 0; cur.parentVersionId && depth < 64; depth++) {
      const parent = await this.models.findVersion(cur.parentVersionId);
      if (!parent) return undefined;
      if (parent.format === 'hf' && !parent.quantization) return parent;
      cur = parent;
    }
    return undefined;
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

/** A job's KV-cache params as its result and report record them (only those it was given). */
function kvParams(p: { quantPolicy?: number; kvCalibDir?: string; kvCalibJobId?: string }) {
  return {
    ...(p.quantPolicy !== undefined ? { quantPolicy: p.quantPolicy } : {}),
    ...(p.kvCalibDir !== undefined ? { kvCalibDir: p.kvCalibDir } : {}),
    ...(p.kvCalibJobId !== undefined ? { kvCalibJobId: p.kvCalibJobId } : {}),
  };
}
