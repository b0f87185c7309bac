import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../config';
import type { DeploymentEntity, KvPolicy } from '../db/entities/deployment.entity';
import type { LoadedDeployment } from '../db/entities/worker.entity';
import { speculativeProblem, type ServingSpeculative } from '../engine/engine.adapter';
import { ConflictError, InvalidInputError, NotFoundError, isUuid } from '../errors';
import { JobQueue } from '../queue/job-queue';
import { inferQueueName } from '../queue/jobs';
import { DeploymentRepository } from '../repositories/deployment.repository';
import { RequestTimingRepository } from '../repositories/request-timing.repository';
import type { RequestTimingEntity } from '../db/entities/request-timing.entity';
import type { ServeRequest } from '../serving/protocol';
import { REASONING_PARSER_NAMES, parseReasoningParser } from '../serving/reasoning';
import { TokenStream } from '../streams/token-stream';
import { ModelRepository } from '../repositories/model.repository';
import { WorkerRepository } from '../repositories/worker.repository';

export const DEPLOYMENT_NAME_RE = /^[A-Za-z0-9_-]{1,64}$/;
export const KV_POLICIES: readonly KvPolicy[] = ['auto', 'fp16', 'int8', 'int4'];
export const DEFAULT_MAX_BATCH_SIZE = 8;
/** Admitted requests (waiting + running) per batch slot when maxPending is not given. */
export const DEFAULT_PENDING_PER_SLOT = 4;

export interface CreateDeployment {
  name: string;
  versionId: string;
  kvPolicy?: KvPolicy;
  cacheMaxEntryCount?: number;
  maxBatchSize?: number;
  sessionLen?: number;
  maxPending?: number;
  /** LMDeploy's --tp (default 1). */
  tp?: number;
  /** LMDeploy's --enable-prefix-caching (default off). */
  enablePrefixCaching?: boolean;
  /** vLLM's / LMDeploy's --reasoning-parser (their names: qwen3, deepseek_r1, deepseek-r1, qwen-qwq); default none. */
  reasoningParser?: string | null;
  /** Speculative decoding with n-gram drafts ({method: 'ngram', numDraftTokens, promptLookupMax?, promptLookupMin?}); null / absent: off. */
  speculative?: ServingSpeculative | null;
}

export interface DeploymentView extends DeploymentEntity {
  /** Workers that report it (online), with their load state and counters. */
  workers: Array<{ workerId: string; workerName: string } & LoadedDeployment>;
}

/** How long the API trusts its copy of a deployment (the OpenAI routes resolve `model` on every request). */
const RESOLVE_CACHE_MS = 1000;

@Injectable()
export class DeploymentService {
  private readonly cache = new Map<string, { at: number; dep: DeploymentEntity | null }>();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly deployments: DeploymentRepository,
    private readonly models: ModelRepository,
    private readonly workers: WorkerRepository,
    private readonly queue: JobQueue,
    private readonly tokens: TokenStream,
    private readonly timings: RequestTimingRepository,
  ) {}

  /** A deployment's most recent finished requests (request_timings), newest first. */
  async requests(idOrName: string, page: { limit: number; offset: number }): Promise<RequestTimingEntity[]> {
    const name = isUuid(idOrName) ? (await this.get(idOrName)).name : idOrName;
    return this.timings.list({ deploymentName: name, ...page });
  }

  private served?: { at: number; ids: Set<string> };

  async create(input: CreateDeployment): Promise<DeploymentView> {
    if (!DEPLOYMENT_NAME_RE.test(input.name)) throw new InvalidInputError(`name "${input.name}" must match [A-Za-z0-9_-]{1,64}`, [{ field: 'name', errors: ['must match [A-Za-z0-9_-]{1,64}'] }]);
    if (!isUuid(input.versionId) || !(await this.models.findVersion(input.versionId))) throw new NotFoundError('version', input.versionId);
    if (await this.deployments.findByName(input.name)) throw new ConflictError(`a deployment named ${input.name} exists`);
    const maxBatchSize = input.maxBatchSize ?? DEFAULT_MAX_BATCH_SIZE;
    const maxPending = input.maxPending ?? maxBatchSize * DEFAULT_PENDING_PER_SLOT;
    if (maxPending < maxBatchSize) {
      throw new InvalidInputError(`maxPending ${maxPending} must be at least maxBatchSize ${maxBatchSize}`, [{ field: 'maxPending', errors: ['must be >= maxBatchSize'] }]);
    }
    let reasoningParser;
    try {
      reasoningParser = input.reasoningParser == null ? undefined : parseReasoningParser(input.reasoningParser);
    } catch (e) {
      throw new InvalidInputError((e as Error).message, [{ field: 'reasoningParser', errors: [`must be one of ${REASONING_PARSER_NAMES.join(', ')}`] }]);
    }
    const specProblem = input.speculative == null ? undefined : speculativeProblem(input.speculative);
    if (specProblem) throw new InvalidInputError(specProblem, [{ field: 'speculative', errors: [specProblem] }]);
    const dep = await this.deployments.create({
      name: input.name,
      versionId: input.versionId,
      kvPolicy: input.kvPolicy ?? 'auto',
      cacheMaxEntryCount: input.cacheMaxEntryCount ?? null,
      maxBatchSize,
      sessionLen: input.sessionLen ?? null,
      maxPending,
      tp: input.tp ?? 1,
      enablePrefixCaching: input.enablePrefixCaching ?? false,
      reasoningParser: reasoningParser ?? null,
      speculative: input.speculative ? { ...input.speculative } : null,
    });
    this.cache.delete(dep.name);
    this.rows = undefined;
    return { ...dep, workers: [] };
  }

  private rows?: { at: number; rows: Promise<DeploymentEntity[]> };

  /**
   * The deployments themselves (no worker state), cached for a second like `resolve`: what GET /v1/models and a
   * request without `model` read on every call.
   */
  listRows(): Promise<DeploymentEntity[]> {
    if (!this.rows || Date.now() - this.rows.at > RESOLVE_CACHE_MS) {
      const rows = this.deployments.list();
      this.rows = { at: Date.now(), rows };
      rows.catch(() => (this.rows = undefined));
    }
    return this.rows.rows;
  }

  async list(): Promise<DeploymentView[]> {
    const [rows, workers] = await Promise.all([this.deployments.list(), this.onlineWorkers()]);
    return rows.map((d) => this.view(d, workers));
  }

  /** By id or by name. */
  async get(idOrName: string): Promise<DeploymentView> {
    const dep = isUuid(idOrName) ? await this.deployments.get(idOrName) : await this.deployments.findByName(idOrName);
    if (!dep) throw new NotFoundError('deployment', idOrName);
    return this.view(dep, await this.onlineWorkers());
  }

  /** Workers finish what they run and stop; requests still waiting in its queue are answered 503 now. */
  async delete(idOrName: string): Promise<DeploymentView> {
    const dep = await this.get(idOrName);
    await this.deployments.delete(dep.id);
    this.cache.delete(dep.name);
    this.rows = undefined;
    const q = this.queue.queue(inferQueueName(dep.name));
    const waiting = await q.getJobs(['waiting', 'prioritized', 'delayed'], 0, 10_000).catch(() => []);
    for (const job of waiting) {
      const r = job?.data as ServeRequest | undefined;
      if (!job?.id || !r?.requestId) continue;
      if (await this.queue.remove(q.name, job.id)) {
        await this.tokens.publish(r.requestId, { t: 'error', status: 503, message: `deployment ${dep.name} was deleted` }).catch(() => undefined);
      }
    }
    return dep;
  }

  /** Whether some online worker-infer has the deployment loaded (or loading), from heartbeats. */
  async isServed(dep: DeploymentEntity): Promise<boolean> {
    // Only a positive answer is cached: a deployment that just became ready must not be refused for a second.
    if (!this.served || Date.now() - this.served.at > RESOLVE_CACHE_MS || !this.served.ids.has(dep.id)) {
      const ids = new Set<string>();
      for (const w of await this.onlineWorkers()) for (const l of w.loadedDeployments) if (l.state === 'ready' || l.state === 'loading') ids.add(l.deploymentId);
      this.served = { at: Date.now(), ids };
    }
    return this.served.ids.has(dep.id);
  }

  /** The deployment serving OpenAI `model` (null: none), cached for a second. */
  async resolve(name: string): Promise<DeploymentEntity | null> {
    const hit = this.cache.get(name);
    if (hit && Date.now() - hit.at < RESOLVE_CACHE_MS) return hit.dep;
    const dep = DEPLOYMENT_NAME_RE.test(name) ? await this.deployments.findByName(name) : null;
    this.cache.set(name, { at: Date.now(), dep });
    if (this.cache.size > 1000) this.cache.delete(this.cache.keys().next().value as string);
    return dep;
  }

  private async onlineWorkers() {
    const cutoff = Date.now() - this.config.worker.heartbeatTimeoutMs;
    return (await this.workers.list('online')).filter((w) => w.kind === 'infer' && w.lastHeartbeatAt.getTime() >= cutoff);
  }

  private view(d: DeploymentEntity, workers: Awaited<ReturnType<DeploymentService['onlineWorkers']>>): DeploymentView {
    return {
      ...d,
      workers: workers.flatMap((w) => w.loadedDeployments.filter((l) => l.deploymentId === d.id).map((l) => ({ workerId: w.id, workerName: w.name, ...l }))),
    };
  }
}
