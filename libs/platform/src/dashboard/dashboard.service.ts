import { Injectable } from '@nestjs/common';
import { DataSource, In } from 'typeorm';
import type { ArtifactEntity } from '../db/entities/artifact.entity';
import { FINISHED_STATUSES, JobEntity } from '../db/entities/job.entity';
import type { ModelEntity } from '../db/entities/model.entity';
import type { ModelVersionEntity } from '../db/entities/model-version.entity';
import { WorkerEntity } from '../db/entities/worker.entity';
import { ConflictError, InvalidInputError, NotFoundError } from '../errors';
import { JobLog, type JobLogLine } from '../events/job-log';
import { JobName } from '../queue/jobs';
import { ArtifactRepository } from '../repositories/artifact.repository';
import { JobRepository } from '../repositories/job.repository';
import { ModelRepository } from '../repositories/model.repository';
import { JobService } from '../services/job.service';
import { ArtifactStore } from '../storage/artifact-store';
import { DEFAULT_EVAL_SEQLEN } from '../worker/quant-jobs.service';
import { readF32Tensors, summarizeCalibStats, type CalibStatsSummary } from './calib-stats';
import { buildTree, type TreeNode } from './lineage-tree';

export interface MetricValue {
  value: number;
  unit: string | null;
  jobId: string | null;
  at: string;
}

export interface JobSummary {
  id: string;
  type: string;
  status: string;
  progress: number;
  startedAt: Date | null;
  finishedAt: Date | null;
  durationMs: number | null;
}

export interface TreeNodeView extends TreeNode {
  /** derived.tokensPerSecond: tokens scored per second by the latest eval of this version (windows × seqlen / seconds). */
  /** derived.serving: figures of the requests its deployments served (request_timings), null if none. */
  version?: ModelVersionEntity & { measurements: Record<string, MetricValue>; derived: { tokensPerSecond: number | null; serving: ServingFigures | null } };
  calibration?: { samples: number | null; seqlen: number | null; tokens: number | null; dataset: string | null };
  job?: JobSummary | null;
}

export interface JobDetail {
  job: JobEntity;
  worker: { id: string; name: string; host: string } | null;
  /** Lifecycle lines from the row's timestamps, merged in time order with the worker's log lines. */
  log: JobLogLine[];
  artifacts: ArtifactEntity[];
  /** Every step of its pipeline, in execution order (empty for a standalone job). */
  flow: JobSummary[];
  timings: { queuedMs: number | null; runMs: number | null; totalMs: number | null };
}

export const CALIB_STATS_FILE = 'calib_stats.safetensors';

/** What the deployments of one version served (all of request_timings). */
export interface ServingFigures {
  requests: number;
  ttftMsP50: number | null;
  decodeTokensPerSecondP50: number | null;
}

/** Serving figures of one deployment over a recent window, from `request_timings` (one row per finished request). */
export interface DeploymentStats {
  deploymentName: string;
  requests: number;
  errors: number;
  ttftMsP50: number | null;
  ttftMsP95: number | null;
  totalMsP50: number | null;
  /** completion tokens per second after the first token, median over requests */
  decodeTokensPerSecondP50: number | null;
  promptTokens: number;
  /** Of promptTokens, taken from the prefix cache. */
  cachedPromptTokens: number;
  completionTokens: number;
  lastAt: string | null;
}

function summary(j: JobEntity): JobSummary {
  const start = j.startedAt ? new Date(j.startedAt).getTime() : null;
  const end = j.finishedAt ? new Date(j.finishedAt).getTime() : null;
  return {
    id: j.id,
    type: j.type,
    status: j.status,
    progress: j.progress,
    startedAt: j.startedAt,
    finishedAt: j.finishedAt,
    durationMs: start !== null && end !== null ? Math.max(0, end - start) : null,
  };
}

/** Steps of a flow in execution order: the deepest child (no child pointing at it) first. */
export function flowOrder<T extends { id: string; parentJobId: string | null }>(steps: T[]): T[] {
  const byParent = new Map(steps.filter((s) => s.parentJobId).map((s) => [s.parentJobId!, s]));
  const hasChild = new Set(byParent.keys());
  const out: T[] = [];
  let cur = steps.find((s) => !hasChild.has(s.id));
  const seen = new Set<string>();
  while (cur && !seen.has(cur.id)) {
    out.push(cur);
    seen.add(cur.id);
    cur = steps.find((s) => s.id === cur!.parentJobId);
  }
  return out.length === steps.length ? out : steps;
}

/** What the dashboard reads beyond the REST resources: the lineage tree, job detail, retry, calibration. */
@Injectable()
export class DashboardService {
  constructor(
    private readonly ds: DataSource,
    private readonly models: ModelRepository,
    private readonly jobs: JobRepository,
    private readonly artifacts: ArtifactRepository,
    private readonly store: ArtifactStore,
    private readonly jobService: JobService,
    private readonly jobLog: JobLog,
  ) {}

  /** A model's versions and calibrations as a tree, each with its metrics and the job that made it. */
  async tree(modelId: string): Promise<{ model: ModelEntity; nodes: TreeNodeView[] }> {
    const model = await this.models.findModel(modelId);
    if (!model) throw new NotFoundError('model', modelId);
    const versions = await this.models.listVersions(modelId);
    const ids = versions.map((v) => v.id);
    const jobRepo = this.ds.getRepository(JobEntity);
    const makers = versions.map((v) => v.createdByJobId).filter((x): x is string => !!x);
    const related = ids.length
      ? await jobRepo
          .createQueryBuilder('j')
          .where('j.id IN (:...makers)', { makers: makers.length ? makers : ['00000000-0000-0000-0000-000000000000'] })
          .orWhere(`j.type = 'calibrate' AND j.status = 'completed' AND j.result->>'versionId' IN (:...ids)`, { ids })
          .getMany()
      : [];
    const jobById = new Map(related.map((j) => [j.id, j]));
    const measurements = await this.latestMetrics(ids);
    // eval speed: the eval job's result says how many windows it scored in how many seconds (eval_tokens counts
    // the whole text's tokens, not the scored ones)
    const evalJobIds = [...measurements.values()].map((m) => m.eval_seconds?.jobId).filter((x): x is string => !!x);
    const evalJobs = new Map((evalJobIds.length ? await jobRepo.findBy({ id: In(evalJobIds) }) : []).map((j) => [j.id, j]));
    const scoredPerSecond = (jobId: string | null | undefined): number | null => {
      const j = jobId ? evalJobs.get(jobId) : undefined;
      const r = (j?.result ?? {}) as Record<string, unknown>;
      const seqlen = typeof j?.params?.seqlen === 'number' ? (j.params.seqlen as number) : DEFAULT_EVAL_SEQLEN;
      return typeof r.windows === 'number' && typeof r.seconds === 'number' && r.seconds > 0 ? (r.windows * seqlen) / r.seconds : null;
    };
    const versionById = new Map(versions.map((v) => [v.id, v]));
    const serving = await this.servingByVersion(ids);
    const nodes = buildTree(versions, related).map((n): TreeNodeView => {
      const job = n.jobId ? jobById.get(n.jobId) : undefined;
      if (n.kind === 'calibration') {
        const r = (job?.result ?? {}) as Record<string, unknown>;
        const num = (x: unknown) => (typeof x === 'number' ? x : null);
        return {
          ...n,
          job: job ? summary(job) : null,
          calibration: { samples: num(r.samples), seqlen: num(r.seqlen), tokens: num(r.tokens), dataset: typeof job?.params?.calibDataset === 'string' ? (job.params.calibDataset as string) : null },
        };
      }
      const v = versionById.get(n.id)!;
      const m = measurements.get(v.id) ?? {};
      return { ...n, job: job ? summary(job) : null, version: { ...v, measurements: m, derived: { tokensPerSecond: scoredPerSecond(m.eval_seconds?.jobId), serving: serving.get(v.id) ?? null } } };
    });
    return { model, nodes };
  }

  /** Per version: requests its deployments served, TTFT p50 and decode tokens/s p50. */
  private async servingByVersion(versionIds: string[]): Promise<Map<string, ServingFigures>> {
    if (!versionIds.length) return new Map();
    const rows: Array<{ version_id: string; requests: number; ttft_p50: number | null; decode_p50: number | null }> = await this.ds.query(
      `SELECT d.version_id, count(*)::int AS requests,
              percentile_cont(0.5) WITHIN GROUP (ORDER BY t.ttft_ms) AS ttft_p50,
              percentile_cont(0.5) WITHIN GROUP (ORDER BY CASE WHEN t.completion_tokens > 1 AND t.total_ms > t.ttft_ms
                THEN (t.completion_tokens - 1) / ((t.total_ms - t.ttft_ms) / 1000.0) END) AS decode_p50
         FROM request_timings t JOIN deployments d ON d.id = t.deployment_id
        WHERE d.version_id = ANY($1::uuid[]) AND t.error IS NULL
        GROUP BY d.version_id`,
      [versionIds],
    );
    const n = (x: unknown) => (x === null || x === undefined ? null : Number(x));
    return new Map(rows.map((r) => [r.version_id, { requests: Number(r.requests), ttftMsP50: n(r.ttft_p50), decodeTokensPerSecondP50: n(r.decode_p50) }]));
  }

  /** The latest value of each metric of each version (the metrics table keeps every measurement). */
  private async latestMetrics(versionIds: string[]): Promise<Map<string, Record<string, MetricValue>>> {
    const out = new Map<string, Record<string, MetricValue>>();
    if (!versionIds.length) return out;
    const rows: Array<{ version_id: string; name: string; value: number; unit: string | null; job_id: string | null; created_at: Date }> = await this.ds.query(
      `SELECT DISTINCT ON (version_id, name) version_id, name, value, unit, job_id, created_at
         FROM metrics WHERE version_id = ANY($1::uuid[]) ORDER BY version_id, name, created_at DESC`,
      [versionIds],
    );
    for (const r of rows) {
      if (!out.has(r.version_id)) out.set(r.version_id, {});
      out.get(r.version_id)![r.name] = { value: Number(r.value), unit: r.unit, jobId: r.job_id, at: new Date(r.created_at).toISOString() };
    }
    return out;
  }

  async jobDetail(id: string): Promise<JobDetail> {
    const job = await this.jobs.get(id);
    if (!job) throw new NotFoundError('job', id);
    const [lines, artifacts, flowRows, worker] = await Promise.all([
      this.jobLog.read(id).catch((): JobLogLine[] => [{ at: new Date().toISOString(), level: 'warn', message: 'job log unavailable (Redis unreachable)', source: 'api' }]),
      this.artifacts.listByJob(id),
      job.flowId ? this.jobs.listFlow(job.flowId) : Promise.resolve([] as JobEntity[]),
      job.workerId ? this.ds.getRepository(WorkerEntity).findOneBy({ id: job.workerId }) : Promise.resolve(null),
    ]);
    const life: JobLogLine[] = [{ at: new Date(job.createdAt).toISOString(), level: 'info', message: `queued on ${job.queueName}`, source: 'api' }];
    if (job.finishedAt && job.status === 'cancelled') life.push({ at: new Date(job.finishedAt).toISOString(), level: 'warn', message: job.error ?? 'cancelled', source: 'api' });
    if (job.finishedAt && job.status === 'failed' && !lines.some((l) => l.level === 'error')) {
      life.push({ at: new Date(job.finishedAt).toISOString(), level: 'error', message: `failed: ${job.error ?? ''}`, source: 'api' });
    }
    const log = [...life, ...lines].sort((a, b) => a.at.localeCompare(b.at));
    const t = (d: Date | null) => (d ? new Date(d).getTime() : null);
    const created = t(job.createdAt)!;
    const started = t(job.startedAt);
    const finished = t(job.finishedAt);
    return {
      job,
      worker: worker ? { id: worker.id, name: worker.name, host: worker.host } : null,
      log,
      artifacts,
      flow: flowOrder(flowRows).map(summary),
      timings: {
        queuedMs: started !== null ? started - created : null,
        runMs: started !== null && finished !== null ? finished - started : null,
        totalMs: finished !== null ? finished - created : null,
      },
    };
  }

  /**
   * Runs a failed or cancelled job again as a new job with the same parameters (its row and log stay as
   * they were). A pipeline step re-runs its whole pipeline: the steps after it read what the steps before
   * it produced.
   */
  async retry(id: string): Promise<{ retriedFrom: string; jobs: JobEntity[]; flowId: string | null }> {
    const job = await this.jobs.get(id);
    if (!job) throw new NotFoundError('job', id);
    if (!(['failed', 'cancelled'] as string[]).includes(job.status)) {
      throw new ConflictError(`job ${id} is ${job.status}: only failed or cancelled jobs can be retried`, { status: job.status });
    }
    let created: { jobs: JobEntity[]; flowId: string | null };
    if (job.flowId) {
      const steps = flowOrder(await this.jobs.listFlow(job.flowId));
      const byType = new Map(steps.map((s) => [s.type, s.params as Record<string, unknown>]));
      const calibrate = { ...(byType.get(JobName.Calibrate) ?? {}) };
      const versionId = calibrate.versionId;
      delete calibrate.versionId;
      if (typeof versionId !== 'string') throw new InvalidInputError(`pipeline ${job.flowId} has no calibrate step with a versionId to start from`);
      const r = await this.jobService.createQuantizePipeline({
        versionId,
        calibrate,
        autoAwq: byType.get(JobName.AutoAwq) ?? {},
        convert: byType.get(JobName.Convert) ?? {},
        eval: byType.get(JobName.Eval),
      });
      created = { jobs: r.jobs, flowId: r.flowId };
    } else {
      created = { jobs: [await this.jobService.create(job.type, job.params)], flowId: null };
    }
    await this.jobLog.append(id, 'api', `retried as ${created.flowId ? `pipeline ${created.flowId}` : `job ${created.jobs[0].id}`}`);
    for (const j of created.jobs) await this.jobLog.append(j.id, 'api', `retry of ${job.type} job ${id}`);
    return { retriedFrom: id, ...created };
  }

  /** Per-layer activation and K/V ranges of a calibrate job (or of the calibration an auto_awq job used). */
  async calibration(jobId: string): Promise<CalibStatsSummary & { jobId: string }> {
    const job = await this.jobs.get(jobId);
    if (!job) throw new NotFoundError('job', jobId);
    let calib: JobEntity | undefined = job;
    if (job.type === JobName.AutoAwq) calib = (await this.jobs.children(job.id)).find((c) => c.type === JobName.Calibrate) ?? job;
    else if (job.type !== JobName.Calibrate) throw new InvalidInputError(`job ${jobId} is ${job.type}: calibration statistics belong to calibrate (or auto_awq) jobs`);
    const files = await this.artifacts.listByJob(calib.id);
    const stats = files.find((a) => a.name === CALIB_STATS_FILE || a.path.endsWith(`/${CALIB_STATS_FILE}`));
    if (!stats) {
      if (!FINISHED_STATUSES.includes(calib.status)) throw new ConflictError(`calibrate job ${calib.id} is ${calib.status}: its statistics appear when it completes`, { status: calib.status });
      throw new NotFoundError(`${CALIB_STATS_FILE} of calibrate job`, calib.id);
    }
    const { tensors, metadata } = await readF32Tensors(this.store.resolve(stats.path));
    return { jobId: calib.id, ...summarizeCalibStats(tensors, metadata) };
  }

  /** Per deployment: requests, errors, TTFT and decode speed percentiles over the last `minutes`. */
  async deploymentStats(minutes = 60): Promise<{ windowMinutes: number; deployments: DeploymentStats[] }> {
    const rows: Array<Record<string, string | number | Date | null>> = await this.ds.query(
      `SELECT deployment_name,
              count(*)::int AS requests,
              count(*) FILTER (WHERE error IS NOT NULL)::int AS errors,
              percentile_cont(0.5) WITHIN GROUP (ORDER BY ttft_ms) AS ttft_p50,
              percentile_cont(0.95) WITHIN GROUP (ORDER BY ttft_ms) AS ttft_p95,
              percentile_cont(0.5) WITHIN GROUP (ORDER BY total_ms) AS total_p50,
              percentile_cont(0.5) WITHIN GROUP (ORDER BY CASE WHEN completion_tokens > 1 AND total_ms > ttft_ms
                THEN (completion_tokens - 1) / ((total_ms - ttft_ms) / 1000.0) END) AS decode_p50,
              coalesce(sum(prompt_tokens), 0)::bigint AS prompt_tokens,
              coalesce(sum(cached_tokens), 0)::bigint AS cached_tokens,
              coalesce(sum(completion_tokens), 0)::bigint AS completion_tokens,
              max(created_at) AS last_at
         FROM request_timings WHERE created_at > now() - make_interval(mins => $1)
        GROUP BY deployment_name ORDER BY deployment_name`,
      [minutes],
    );
    const n = (x: unknown) => (x === null || x === undefined ? null : Number(x));
    return {
      windowMinutes: minutes,
      deployments: rows.map((r) => ({
        deploymentName: String(r.deployment_name),
        requests: Number(r.requests),
        errors: Number(r.errors),
        ttftMsP50: n(r.ttft_p50),
        ttftMsP95: n(r.ttft_p95),
        totalMsP50: n(r.total_p50),
        decodeTokensPerSecondP50: n(r.decode_p50),
        promptTokens: Number(r.prompt_tokens),
        cachedPromptTokens: Number(r.cached_tokens),
        completionTokens: Number(r.completion_tokens),
        lastAt: r.last_at ? new Date(r.last_at as Date).toISOString() : null,
      })),
    };
  }

  /** Worker names by id (the jobs list shows names, not uuids). */
  async workerNames(ids: string[]): Promise<Record<string, string>> {
    if (!ids.length) return {};
    const rows = await this.ds.getRepository(WorkerEntity).findBy({ id: In(ids) });
    return Object.fromEntries(rows.map((w) => [w.id, w.name]));
  }
}
