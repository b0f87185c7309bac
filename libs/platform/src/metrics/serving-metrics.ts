// Prometheus metrics of the API (prom-client), exported on GET /metrics. One registry per app instance (tests
// build several apps in one process). Where each number comes from:
// - HTTP requests by method, route template and status, and their duration: an express middleware
//   (http-metrics.middleware.ts) ahead of the body parser, so 413/400 from the parser and 401 from the guard count.
// - Serving (tokens in/out, time to first token, inter-token latency, outcomes): ServingEvents, emitted by the
//   OpenAI routes as the client sees it (API received the request -> token written to the response).
// - Queue depth and admitted requests per deployment: BullMQ and the admission set in Redis, read at scrape time.
// - Batch occupancy and KV-cache usage: what each worker-infer reports in its heartbeat (the `workers` row's
//   loaded_deployments, every HEARTBEAT_INTERVAL_MS), read at scrape time from the live (online) workers.
import { Inject, Injectable, Logger, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { APP_CONFIG, type AppConfig } from '../config';
import type { LoadedDeployment } from '../db/entities/worker.entity';
import { inferQueueName } from '../queue/jobs';
import { JobQueue } from '../queue/job-queue';
import { DeploymentRepository } from '../repositories/deployment.repository';
import { WorkerRepository } from '../repositories/worker.repository';
import { Admission } from '../serving/admission';
import { serveKeys } from '../serving/protocol';
import { ServingEvents, type ServingEvent } from '../serving/serving-events';
import { TokenStream } from '../streams/token-stream';

const QUEUE_STATES = ['waiting', 'prioritized', 'active', 'delayed'] as const;

/** Route label for requests answered before routing (body parser: 413, malformed JSON). */
export const ROUTE_BEFORE_ROUTING = '(before routing)';
/** Route label for paths that match no route (404). */
export const ROUTE_UNMATCHED = '(unmatched)';

@Injectable()
export class ServingMetrics implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(ServingMetrics.name);
  readonly registry = new Registry();
  private readonly admission: Admission;
  private unsubscribe?: () => void;
  private readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  private readonly httpSeconds: Histogram<'method' | 'route'>;
  private readonly servingRequests: Counter<'deployment' | 'kind' | 'outcome' | 'status'>;
  private readonly promptTokens: Counter<'deployment'>;
  private readonly cachedPromptTokens: Counter<'deployment'>;
  private readonly completionTokens: Counter<'deployment'>;
  private readonly specDraftTokens: Counter<'deployment'>;
  private readonly specAcceptedTokens: Counter<'deployment'>;
  private readonly ttft: Histogram<'deployment'>;
  private readonly itl: Histogram<'deployment'>;
  private readonly e2e: Histogram<'deployment'>;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly events: ServingEvents,
    private readonly queues: JobQueue,
    private readonly deployments: DeploymentRepository,
    private readonly workers: WorkerRepository,
    tokens: TokenStream,
  ) {
    this.admission = new Admission(tokens.redis);
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'lmfleet_api_' });
    this.httpRequests = new Counter({ name: 'lmfleet_http_requests_total', help: 'HTTP requests by method, route template and status', labelNames: ['method', 'route', 'status'], registers });
    this.httpSeconds = new Histogram({
      name: 'lmfleet_http_request_duration_seconds',
      help: 'HTTP request duration, until the response ended (whole streams included)',
      labelNames: ['method', 'route'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300],
      registers,
    });
    this.servingRequests = new Counter({
      name: 'lmfleet_serving_requests_total',
      help: 'Serving requests by deployment, kind (chat, completion, interactive, tokenize), outcome (ok, cancelled, error, rejected) and HTTP status',
      labelNames: ['deployment', 'kind', 'outcome', 'status'],
      registers,
    });
    this.promptTokens = new Counter({ name: 'lmfleet_prompt_tokens_total', help: 'Prompt tokens of finished generation requests', labelNames: ['deployment'], registers });
    this.cachedPromptTokens = new Counter({
      name: 'lmfleet_prompt_tokens_cached_total',
      help: 'Of lmfleet_prompt_tokens_total, tokens whose KV came from the prefix cache (deployments with enablePrefixCaching)',
      labelNames: ['deployment'],
      registers,
    });
    this.completionTokens = new Counter({ name: 'lmfleet_completion_tokens_total', help: 'Tokens generated for finished generation requests', labelNames: ['deployment'], registers });
    this.specDraftTokens = new Counter({
      name: 'lmfleet_spec_draft_tokens_total',
      help: 'Speculative decoding: draft tokens verified for finished generation requests (deployments with speculative)',
      labelNames: ['deployment'],
      registers,
    });
    this.specAcceptedTokens = new Counter({
      name: 'lmfleet_spec_accepted_tokens_total',
      help: 'Of lmfleet_spec_draft_tokens_total, drafts the model accepted (acceptance rate: this over the drafts)',
      labelNames: ['deployment'],
      registers,
    });
    this.ttft = new Histogram({
      name: 'lmfleet_time_to_first_token_seconds',
      help: 'From the API receiving a generation request to its first token relayed to the client',
      labelNames: ['deployment'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.itl = new Histogram({
      name: 'lmfleet_inter_token_latency_seconds',
      help: 'Between consecutive tokens relayed to the client (a delta of k tokens after a gap g counts k tokens of g/k)',
      labelNames: ['deployment'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56],
      registers,
    });
    this.e2e = new Histogram({
      name: 'lmfleet_request_duration_seconds',
      help: 'Generation requests from arrival to the last byte',
      labelNames: ['deployment'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers,
    });

    const self = this;
    new Gauge({
      name: 'lmfleet_queue_depth',
      help: 'Requests in a deployment\'s BullMQ queue by state (read at scrape time)',
      labelNames: ['deployment', 'state'],
      registers,
      async collect() {
        this.reset();
        for (const [deployment, counts] of await self.queueDepths()) {
          for (const state of QUEUE_STATES) this.set({ deployment, state }, counts[state] ?? 0);
        }
      },
    });
    new Gauge({
      name: 'lmfleet_requests_in_flight',
      help: 'Requests admitted by the API and not finished (queued + running), per deployment; 429 at lmfleet_requests_in_flight_limit',
      labelNames: ['deployment'],
      registers,
      async collect() {
        this.reset();
        for (const [deployment, n] of await self.inFlight()) this.set({ deployment }, n);
      },
    });
    new Gauge({
      name: 'lmfleet_requests_in_flight_limit',
      help: 'A deployment\'s bound on admitted requests (maxPending)',
      labelNames: ['deployment'],
      registers,
      async collect() {
        this.reset();
        for (const d of await self.deployments.list().catch(() => [])) this.set({ deployment: d.name }, d.maxPending);
      },
    });
    const fromWorkers = (name: string, help: string, value: (d: LoadedDeployment) => number | undefined) =>
      new Gauge({
        name,
        help: `${help} (from worker-infer heartbeats)`,
        labelNames: ['worker', 'deployment'],
        registers,
        async collect() {
          this.reset();
          for (const [worker, d] of await self.workerDeployments()) {
            const v = value(d);
            if (v !== undefined && Number.isFinite(v)) this.set({ worker, deployment: d.name ?? d.deploymentId }, v);
          }
        },
      });
    fromWorkers('lmfleet_worker_active_requests', 'Requests a worker is running for a deployment', (d) => d.activeRequests);
    fromWorkers('lmfleet_batch_running', 'Sequences in the engine\'s running batch', (d) => d.engine?.running);
    fromWorkers('lmfleet_batch_waiting', 'Sequences the engine holds waiting for a batch slot or KV blocks', (d) => d.engine?.waiting);
    fromWorkers('lmfleet_batch_max_size', 'The engine\'s batch bound (max_batch_size)', (d) => d.maxBatchSize);
    fromWorkers('lmfleet_batch_occupancy_ratio', 'Running sequences / max batch size', (d) => (d.engine && d.maxBatchSize ? d.engine.running / d.maxBatchSize : undefined));
    fromWorkers('lmfleet_kv_cache_blocks_total', 'KV-cache blocks of the engine', (d) => d.engine?.blocksTotal);
    fromWorkers('lmfleet_kv_cache_usage_ratio', 'Used KV-cache blocks / total', (d) => (d.engine && d.engine.blocksTotal > 0 ? 1 - d.engine.blocksFree / d.engine.blocksTotal : undefined));
  }

  onModuleInit(): void {
    this.unsubscribe = this.events.subscribe((e) => this.onServing(e));
  }

  onModuleDestroy(): void {
    this.unsubscribe?.();
  }

  /** One finished HTTP request (the middleware calls this). */
  observeHttp(method: string, route: string, status: number, seconds: number): void {
    this.httpRequests.inc({ method, route, status: String(status) });
    this.httpSeconds.observe({ method, route }, seconds);
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  private onServing(e: ServingEvent): void {
    switch (e.type) {
      case 'rejected':
        this.servingRequests.inc({ deployment: e.deployment ?? '', kind: e.kind, outcome: 'rejected', status: String(e.status) });
        return;
      case 'first_token':
        this.ttft.observe({ deployment: e.deployment }, e.ttftMs / 1000);
        return;
      case 'tokens':
        // The first delta of a choice is the time to first token, not an inter-token gap.
        if (e.first || e.tokens <= 0) return;
        for (let k = 0; k < e.tokens; k++) this.itl.observe({ deployment: e.deployment }, e.gapMs / e.tokens / 1000);
        return;
      case 'finished': {
        const labels = { deployment: e.deployment };
        this.servingRequests.inc({ ...labels, kind: e.kind, outcome: e.outcome, status: String(e.status) });
        if (e.kind === 'tokenize') return; // no prompt is processed and nothing generated: not in the token counters or latencies
        if (e.promptTokens > 0) this.promptTokens.inc(labels, e.promptTokens);
        if (e.cachedTokens > 0) this.cachedPromptTokens.inc(labels, e.cachedTokens);
        if (e.completionTokens > 0) this.completionTokens.inc(labels, e.completionTokens);
        if (e.draftTokens > 0) this.specDraftTokens.inc(labels, e.draftTokens);
        if (e.acceptedDraftTokens > 0) this.specAcceptedTokens.inc(labels, e.acceptedDraftTokens);
        this.e2e.observe(labels, e.totalMs / 1000);
        return;
      }
    }
  }

  private async queueDepths(): Promise<Array<[string, Record<string, number>]>> {
    const deps = await this.deployments.list().catch(() => []);
    const out = await Promise.all(
      deps.map(async (d): Promise<[string, Record<string, number>] | undefined> => {
        try {
          return [d.name, await this.queues.queue(inferQueueName(d.name)).getJobCounts(...QUEUE_STATES)];
        } catch (err) {
          this.logger.debug(`queue depth of ${d.name}: ${(err as Error).message}`);
          return undefined; // Redis down: no sample rather than a failed scrape
        }
      }),
    );
    return out.filter((x): x is [string, Record<string, number>] => !!x);
  }

  private async inFlight(): Promise<Array<[string, number]>> {
    const deps = await this.deployments.list().catch(() => []);
    const out = await Promise.all(
      deps.map(async (d): Promise<[string, number] | undefined> => {
        try {
          return [d.name, await this.admission.count(serveKeys.admission(this.config.queuePrefix, d.name))];
        } catch {
          return undefined;
        }
      }),
    );
    return out.filter((x): x is [string, number] => !!x);
  }

  private async workerDeployments(): Promise<Array<[string, LoadedDeployment]>> {
    const live = await this.workers.list('online').catch(() => []);
    return live.flatMap((w) => (w.loadedDeployments ?? []).filter((d) => d.state === undefined || d.state === 'ready').map((d): [string, LoadedDeployment] => [w.name, d]));
  }
}
