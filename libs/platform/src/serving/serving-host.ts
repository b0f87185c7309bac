// worker-infer's serving side: keeps the deployments in Postgres loaded (one engine each, with the deployment's
// options), consumes each deployment's queue with BullMQ concurrency = the engine's batch slots, runs every request
// inside the engine's continuous batch, and streams its tokens to the request's Redis stream.
import { Inject, Injectable, Logger } from '@nestjs/common';
import type { Job } from 'bullmq';
import { APP_CONFIG, type AppConfig } from '../config';
import type { DeploymentEntity } from '../db/entities/deployment.entity';
import type { LoadedDeployment } from '../db/entities/worker.entity';
import { ENGINE_ADAPTER, isEngineInputError, type EngineAdapter, type ServingChat, type ServingEngine, type ServingOutput } from '../engine/engine.adapter';
import { InvalidInputError, PlatformError, UnavailableError } from '../errors';
import { inferQueueName } from '../queue/jobs';
import { DeploymentRepository } from '../repositories/deployment.repository';
import { RequestTimingRepository } from '../repositories/request-timing.repository';
import { noteShutdownPhase } from '../shutdown';
import { TokenStream } from '../streams/token-stream';
import type { QueueHost } from '../worker/job-runner';
import { serveKeys, sessionQueueName, type FinishReason, type PromptLogprob, type WorkerLiveness, type ServeRequest, type StreamEvent, type StreamLogprob } from './protocol';

const SESSION_TTL_S = 3600;
/** A deployment that failed to load is tried again after this long. */
const RETRY_FAILED_MS = 30_000;

interface Hosted {
  dep: DeploymentEntity;
  state: 'loading' | 'ready' | 'failed';
  error?: string;
  failedAt?: number;
  engine?: ServingEngine;
  active: number;
  /** Interactive sessions whose KV cache this worker holds. */
  chats: Map<number, ServingChat>;
  queues: string[];
}

interface Running {
  controller: AbortController;
}

@Injectable()
export class ServingHost {
  private readonly logger = new Logger(ServingHost.name);
  private readonly hosted = new Map<string, Hosted>();
  private readonly running = new Map<string, Running>();
  private host?: QueueHost;
  private workerId = '';
  private aliveTimer?: NodeJS.Timeout;
  private timers: NodeJS.Timeout[] = [];
  private syncing?: Promise<void>;
  private stopping = false;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(ENGINE_ADAPTER) private readonly adapter: EngineAdapter,
    private readonly deployments: DeploymentRepository,
    private readonly timings: RequestTimingRepository,
    private readonly tokens: TokenStream,
  ) {}

  /** JobRunner calls this once the worker is registered. */
  async start(host: QueueHost, workerId: string): Promise<void> {
    this.host = host;
    this.workerId = workerId;
    await this.tokens.onCancel((id) => this.running.get(id)?.controller.abort('cancelled'));
    await this.markAlive();
    await this.sync();
    const poll = this.config.serving.deploymentPollMs;
    this.timers.push(setInterval(() => void this.sync(), poll));
    this.aliveTimer = setInterval(() => void this.markAlive(), this.config.worker.heartbeatIntervalMs);
  }

  /**
   * Shutdown: stop polling; requests still running after the grace period are cancelled. The liveness key stays
   * fresh until the end (the API ends a request whose worker's key expired), and goes when the engines do.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const t of this.timers) clearInterval(t);
    await this.markAlive();
    const t = setTimeout(() => {
      for (const r of this.running.values()) r.controller.abort('shutdown');
    }, this.config.worker.shutdownGraceMs);
    t.unref();
    noteShutdownPhase('waiting for a deployment sync (load / unload) to end');
    await this.syncing;
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.aliveTimer);
    noteShutdownPhase('disposing the engines');
    const all = [...this.hosted.values()];
    this.hosted.clear();
    await Promise.allSettled(all.map((h) => h.engine?.dispose()));
    if (this.workerId) await this.tokens.redis.del(serveKeys.workerAlive(this.config.queuePrefix, this.workerId)).catch(() => undefined);
  }

  /** What the heartbeat reports. */
  loaded(): LoadedDeployment[] {
    return [...this.hosted.values()].map((h) => {
      let engine: LoadedDeployment['engine'];
      try {
        if (h.engine) {
          const s = h.engine.stats();
          engine = {
            running: s.running,
            waiting: s.waiting,
            blocksTotal: s.blocksTotal,
            blocksFree: s.blocksFree,
            ...(s.blocksCached ? { blocksCached: s.blocksCached } : {}),
            ...(h.dep.speculative ? { specDraftTokens: s.specDraftTokens ?? 0, specAcceptedTokens: s.specAcceptedTokens ?? 0 } : {}),
          };
        }
      } catch {
        engine = undefined;
      }
      return {
        deploymentId: h.dep.id,
        versionId: h.dep.versionId,
        name: h.dep.name,
        state: h.state,
        ...(h.error ? { error: h.error } : {}),
        activeRequests: h.active,
        maxBatchSize: h.engine?.maxBatchSize ?? h.dep.maxBatchSize,
        ...(h.engine
          ? { sessionLen: h.engine.sessionLen, tp: h.engine.devices.length, devices: h.engine.devices, kvCache: h.engine.kvCache }
          : {}),
        ...(engine ? { engine } : {}),
      };
    });
  }

  /** Brings the hosted deployments in line with the table. */
  sync(): Promise<void> {
    if (this.syncing || this.stopping) return this.syncing ?? Promise.resolve();
    this.syncing = this.syncOnce()
      .catch((err) => this.logger.warn(`deployment sync: ${(err as Error).message}`))
      .finally(() => (this.syncing = undefined));
    return this.syncing;
  }

  private async syncOnce(): Promise<void> {
    const rows = await this.deployments.list();
    const want = new Map(rows.map((d) => [d.name, d]));
    for (const [name, h] of this.hosted) {
      const row = want.get(name);
      // Gone, replaced, or failed a while ago (a missing file may have come back): unload, and load again below.
      if (!row || row.id !== h.dep.id || (h.state === 'failed' && Date.now() - (h.failedAt ?? 0) > RETRY_FAILED_MS)) await this.unload(h);
    }
    for (const dep of rows) {
      if (this.stopping) return;
      if (this.hosted.has(dep.name)) continue;
      await this.load(dep);
    }
  }

  private async load(dep: DeploymentEntity): Promise<void> {
    const h: Hosted = { dep, state: 'loading', active: 0, chats: new Map(), queues: [] };
    this.hosted.set(dep.name, h);
    const version = await this.deployments.versionOf(dep);
    try {
      if (!version) throw new InvalidInputError(`version ${dep.versionId} no longer exists`);
      h.engine = await this.adapter.loadServing(version.path, {
        backend: this.config.worker.engineBackend,
        maxBatchSize: dep.maxBatchSize,
        ...(dep.sessionLen !== null ? { sessionLen: dep.sessionLen } : {}),
        ...(dep.cacheMaxEntryCount !== null ? { cacheMaxEntryCount: dep.cacheMaxEntryCount } : {}),
        kvPolicy: dep.kvPolicy,
        ...(dep.tp > 1 ? { tp: dep.tp } : {}),
        ...(dep.enablePrefixCaching ? { enablePrefixCaching: true } : {}),
        ...(dep.speculative ? { speculative: dep.speculative } : {}),
        ...(this.config.worker.engineThreads ? { threads: this.config.worker.engineThreads } : {}),
      });
    } catch (err) {
      h.state = 'failed';
      h.error = (err as Error).message;
      h.failedAt = Date.now();
      this.logger.error(`deployment ${dep.name}: loading ${version?.path ?? dep.versionId} failed: ${h.error}`);
      return;
    }
    if (this.hosted.get(dep.name) !== h) {
      await h.engine.dispose(); // deleted while loading
      return;
    }
    h.state = 'ready';
    const concurrency = h.engine.maxBatchSize;
    h.queues = [inferQueueName(dep.name), sessionQueueName(dep.name, this.workerId)];
    for (const q of h.queues) this.host!.addQueue(q, { concurrency, direct: (job) => this.handle(job) });
    this.logger.log(`deployment ${dep.name} ready (version ${dep.versionId}, ${concurrency} batch slots, session length ${h.engine.sessionLen})`);
  }

  private async unload(h: Hosted): Promise<void> {
    this.hosted.delete(h.dep.name);
    this.logger.log(`deployment ${h.dep.name} removed: draining ${h.active} request(s)`);
    await Promise.all(h.queues.map((q) => this.host!.removeQueue(q)));
    for (const c of h.chats.values()) c.end();
    await h.engine?.dispose();
  }

  /** The liveness key: `serving`, or `draining` once shutdown began (the API then pins no new session turn here). */
  private async markAlive(): Promise<void> {
    const ttl = Math.max(2, Math.ceil((this.config.worker.heartbeatTimeoutMs || 3 * this.config.worker.heartbeatIntervalMs) / 1000));
    const state: WorkerLiveness = this.stopping ? 'draining' : 'serving';
    await this.tokens.redis.set(serveKeys.workerAlive(this.config.queuePrefix, this.workerId), state, 'EX', ttl).catch(() => undefined);
  }

  /** One serving request (a BullMQ job on the deployment's queue). */
  async handle(job: Job): Promise<void> {
    const r = job.data as ServeRequest;
    const started = Date.now();
    const h = this.hosted.get(r.deploymentName);
    // Events go out without waiting for each XADD (TokenStream.publish keeps them in order and writes a tick's worth
    // together); the last event of a request waits for all of them and reports a failure of any. A token that does
    // not decode to text on its own (the first token of a reply often is one) waits for the next event and shares its
    // stream entry: the client has nothing to show from it, and so the API wakes once and sends one packet for both.
    // `start`, errors and the first text of a reply are written at once (`now`): the API is waiting for them.
    let publishFailed: unknown;
    let held: StreamEvent[] = [];
    const emit = (ev: StreamEvent, now = ev.t === 'start' || ev.t === 'error'): Promise<void> => {
      if (ev.t === 'delta' && !ev.text && !ev.logprobs?.length) {
        held.push(ev);
        return Promise.resolve();
      }
      const batch = held.length ? [...held, ev] : ev;
      held = [];
      const p = this.tokens.publish(r.requestId, batch, { flush: now }).catch((e) => {
        publishFailed ??= e;
      });
      if (ev.t !== 'end' && ev.t !== 'error') return Promise.resolve();
      return p.then(() => {
        if (publishFailed) throw publishFailed;
      });
    };
    if (!h || h.state !== 'ready' || !h.engine || h.dep.id !== r.deploymentId) {
      await emit({ t: 'error', status: 503, message: `deployment ${r.deploymentName} is not loaded on this worker` });
      return;
    }
    // A job re-delivered after its first worker died (BullMQ counts every start): the client has seen part of a
    // response. Do not run it twice.
    if (job.attemptsStarted > 1) {
      await emit({ t: 'error', status: 503, message: 'the worker serving this request stopped; retry it' });
      return;
    }
    const controller = new AbortController();
    this.running.set(r.requestId, { controller });
    // Cancelled while it waited (the flag) or from now on (pub/sub), or never admitted (the API enqueued it beside its
    // admission and then found the bound reached; it has answered 429): checked alongside tokenization, not before it.
    const admitKey = serveKeys.admission(this.config.queuePrefix, r.deploymentName);
    // (On the stream's connection, ahead of the request's events: see TokenStream.startCheck.)
    const checked = this.tokens
      .startCheck(r.requestId, admitKey)
      .then(({ cancelled, admitted }) => {
        if (cancelled) controller.abort('cancelled');
        else if (!admitted) controller.abort('not admitted');
        return cancelled || admitted;
      })
      .catch(() => true);
    h.active++;
    let timing = timingParts(r, 0, undefined, 'error', started);
    try {
      timing =
        r.kind === 'interactive'
          ? await this.runInteractive(h, h.engine, r, controller.signal, emit)
          : r.kind === 'tokenize'
            ? await this.runTokenize(h.engine, r, emit)
            : await this.runRequest(h, h.engine, r, controller.signal, emit);
    } catch (err) {
      const status = err instanceof PlatformError ? err.status : isEngineInputError(err) ? 400 : 500;
      const details = (err instanceof PlatformError ? err.details : undefined) as { param?: string; code?: string } | undefined;
      if (status >= 500) this.logger.error(`request ${r.requestId}: ${(err as Error).stack ?? err}`);
      timing.error = (err as Error).message;
      timing.finishReason = 'error';
      await emit({ t: 'error', status, message: (err as Error).message, ...(details?.param ? { param: details.param } : {}), ...(details?.code ? { code: details.code } : {}) }).catch(() => undefined);
    } finally {
      this.running.delete(r.requestId);
      h.active--;
    }
    timing.totalMs = Date.now() - r.enqueuedAt;
    // A request the API refused (429) was never a request: no timings row (also when it ended before the check did);
    // nor is tokenization (it generates nothing).
    void checked.then((admitted) => (admitted && r.kind !== 'tokenize' ? this.record(r, h, timing) : undefined));
  }

  private async runRequest(h: Hosted, engine: ServingEngine, r: ServeRequest, signal: AbortSignal, emit: (ev: StreamEvent, now?: boolean) => Promise<void>): Promise<TimingParts> {
    const chat = r.kind === 'chat';
    const prompts = chat ? [engine.encodeChat(r.messages ?? [], r.tools, r.templateKwargs)] : r.promptIds ?? (r.prompts ?? []).map((p) => engine.encodeText(p));
    for (const ids of r.promptIds ?? []) assertInVocab(engine, ids, 'prompt');
    const longest = Math.max(...prompts.map((p) => p.length));
    const maxTokens = checkLength(engine.sessionLen, longest, r.maxTokens, chat ? 'messages' : 'prompt');
    const promptTokens = prompts.reduce((a, p) => a + p.length, 0);
    assertInVocab(engine, r.stopTokenIds ?? [], 'stop_token_ids');
    assertInVocab(engine, Object.keys(r.logitBias ?? {}).map(Number), 'logit_bias');
    if (r.responseFormat) {
      try {
        await engine.prepareResponseFormat(r.responseFormat); // before 'start': a schema it cannot use is still a 400
      } catch (err) {
        if (isEngineInputError(err)) throw new InvalidInputError((err as Error).message, { param: r.responseFormatParam ?? 'response_format' });
        throw err;
      }
    }
    await emit({ t: 'start', promptTokens, workerId: this.workerId });
    const stopIds = [...(r.ignoreEos ? [] : engine.stopIds(chat)), ...(r.stopTokenIds ?? [])];
    const t = timingParts(r, promptTokens, h);
    const finishes: FinishReason[] = [];
    // Per prompt: the most of it any of its n choices found in the prefix cache (promptTokens counts each prompt once).
    const cached = prompts.map(() => 0);
    await Promise.all(
      prompts.flatMap((inputIds, p) =>
        Array.from({ length: r.n }, async (_, k) => {
          const index = p * r.n + k;
          // max_tokens 0 (echo): the prompt is only scored (promptLogprobs) or only echoed (nothing to run)
          const outputs = maxTokens === 0 && r.promptLogprobs === undefined ? echoOnly(inputIds.length) : engine.stream({
            inputIds,
            maxNewTokens: maxTokens,
            ...(r.promptLogprobs !== undefined ? { promptLogprobs: r.promptLogprobs } : {}),
            stopIds,
            ...(r.stop?.length ? { stopWords: r.stop } : {}),
            sampling: { ...r.sampling, ...(r.sampling.seed !== undefined ? { seed: r.sampling.seed + k } : {}) },
            ...(r.logprobs !== undefined ? { logprobs: r.logprobs } : {}),
            ...(r.skipSpecialTokens !== undefined ? { skipSpecialTokens: r.skipSpecialTokens } : {}),
            ...(r.responseFormat ? { responseFormat: r.responseFormat } : {}),
            ...(r.guideAfter ? { guideAfter: r.guideAfter } : {}),
            ...(r.guideAfter && r.guideOpener ? { guideOpener: r.guideOpener } : {}),
            ...(r.logitBias ? { logitBias: r.logitBias } : {}),
            ...(r.minNewTokens ? { minNewTokens: r.minNewTokens } : {}),
            signal,
          });
          const prefix = r.echo ? (r.prompts ? r.prompts[p] : engine.decode(inputIds)) : '';
          const done = await this.relay(engine, outputs, index, prefix, t, r, emit, signal, inputIds);
          finishes[index] = done.finish;
          cached[p] = Math.max(cached[p], done.cachedTokens);
        }),
      ),
    );
    t.finishReason = worstFinish(finishes);
    assertNotShutDown(signal);
    const cachedTokens = cached.reduce((a, c) => a + c, 0);
    t.cachedTokens = cachedTokens;
    await emit({ t: 'end', promptTokens, completionTokens: t.completionTokens, ...(h.dep.enablePrefixCaching ? { cachedTokens } : {}), ...draftsOf(t) });
    return t;
  }

  /** vLLM's /tokenize and /detokenize, LMDeploy's /v1/encode: the deployment's own tokenizer and chat template. */
  private async runTokenize(engine: ServingEngine, r: ServeRequest, emit: (ev: StreamEvent, now?: boolean) => Promise<void>): Promise<TimingParts> {
    const spec = r.tokenize ?? {};
    let ids: number[][] = [];
    let text: string | undefined;
    if (spec.decode) {
      assertInVocab(engine, spec.decode, 'tokens');
      text = engine.decode(spec.decode);
    } else {
      ids = spec.chats ? spec.chats.map((m) => engine.encodeChat(m, undefined, spec.templateKwargs)) : (spec.texts ?? []).map((t) => engine.tokenize(t, spec.addSpecialTokens ?? true));
    }
    const promptTokens = spec.decode ? spec.decode.length : ids.reduce((a, x) => a + x.length, 0);
    await emit({ t: 'start', promptTokens, workerId: this.workerId });
    await emit({ t: 'tokens', ids, ...(text !== undefined ? { text } : {}), maxModelLen: engine.sessionLen });
    await emit({ t: 'end', promptTokens, completionTokens: 0 });
    return timingParts(r, promptTokens);
  }

  private async runInteractive(h: Hosted, engine: ServingEngine, r: ServeRequest, signal: AbortSignal, emit: (ev: StreamEvent, now?: boolean) => Promise<void>): Promise<TimingParts> {
    const t = timingParts(r, 0, h);
    const sid = r.sessionId!;
    const key = serveKeys.session(this.config.queuePrefix, r.deploymentName, sid);
    const prompt = r.prompts?.[0] ?? '';
    const existing = h.chats.get(sid);
    if (r.end || !r.interactiveMode) {
      // LMDeploy: interactive_mode false ends the session (this request runs stateless); `end` just closes it.
      existing?.end();
      h.chats.delete(sid);
      await this.tokens.redis.del(key).catch(() => undefined);
      if (r.end && !prompt) {
        await emit({ t: 'start', promptTokens: 0, workerId: this.workerId, historyTokens: 0 });
        await emit({ t: 'done', i: 0, finishReason: 'stop', completionTokens: 0 });
        await emit({ t: 'end', promptTokens: 0, completionTokens: 0, historyTokens: 0 });
        return t;
      }
      return this.runRequest(h, engine, { ...r, kind: 'chat', messages: r.messages ?? [{ role: 'user', content: prompt }], n: 1 }, signal, emit);
    }
    const chat = existing ?? engine.createChat(sid);
    h.chats.set(sid, chat);
    const running = serveKeys.sessionRequest(this.config.queuePrefix, r.deploymentName, sid);
    await Promise.all([this.tokens.redis.set(key, this.workerId, 'EX', SESSION_TTL_S), this.tokens.redis.set(running, r.requestId, 'EX', SESSION_TTL_S)]);
    try {
      return await this.runTurn(chat, engine, r, signal, emit, t);
    } finally {
      await this.tokens.redis.del(running).catch(() => undefined);
    }
  }

  private async runTurn(chat: ServingChat, engine: ServingEngine, r: ServeRequest, signal: AbortSignal, emit: (ev: StreamEvent, now?: boolean) => Promise<void>, t: TimingParts): Promise<TimingParts> {
    const prompt = r.prompts?.[0] ?? '';
    const history = chat.historyTokens();
    // Unset request_output_len: a bounded default, so the kept history plus the new turn still fit (a budget of
    // "everything the session has left" would make the session start over on every turn).
    const maxTokens = r.maxTokens ?? Math.max(1, Math.min(512, Math.floor(engine.sessionLen / 4)));
    const outputs = chat.send(prompt, {
      maxNewTokens: maxTokens,
      ...(r.ignoreEos ? { ignoreEos: true } : {}),
      ...(r.stop?.length ? { stopWords: r.stop } : {}),
      sampling: r.sampling,
      ...(r.logprobs !== undefined ? { logprobs: r.logprobs } : {}),
      ...(r.skipSpecialTokens !== undefined ? { skipSpecialTokens: r.skipSpecialTokens } : {}),
      signal,
    });
    // The session decides what to send (only the new part of the conversation) when the first output is asked for.
    const it = outputs[Symbol.asyncIterator]();
    let first: IteratorResult<ServingOutput>;
    try {
      first = await it.next();
    } catch (err) {
      if (isEngineInputError(err)) throw new InvalidInputError((err as Error).message, { param: 'request_output_len', code: 'context_length_exceeded' });
      throw err;
    }
    t.promptTokens = chat.lastInputTokens;
    await emit({ t: 'start', promptTokens: chat.lastInputTokens, workerId: this.workerId, historyTokens: history });
    const rest = (async function* () {
      if (!first.done) yield first.value;
      for (;;) {
        const n = await it.next();
        if (n.done) return;
        yield n.value;
      }
    })();
    t.finishReason = (await this.relay(engine, rest, 0, '', t, r, emit, signal)).finish;
    assertNotShutDown(signal);
    await emit({ t: 'end', promptTokens: t.promptTokens, completionTokens: t.completionTokens, historyTokens: chat.historyTokens(), ...draftsOf(t) });
    return t;
  }

  /** Engine outputs -> delta events; returns the finish reason. */
  private async relay(
    engine: ServingEngine,
    outputs: AsyncIterable<ServingOutput>,
    index: number,
    prefix: string,
    t: TimingParts,
    r: ServeRequest,
    emit: (ev: StreamEvent, now?: boolean) => Promise<void>,
    signal: AbortSignal,
    /** The prompt's ids, to label its log-probs when the engine sends them (echo with logprobs). */
    promptIds?: number[],
  ): Promise<{ finish: FinishReason; cachedTokens: number }> {
    let finish: FinishReason = 'length';
    let completion = 0;
    let cachedTokens = 0;
    let pending = prefix;
    let flushedFirst = false;
    for await (const out of outputs) {
      if (out.tokenIds.length && t.ttftMs === null) t.ttftMs = Date.now() - r.enqueuedAt;
      completion += out.tokenIds.length;
      const text = pending + out.text;
      pending = '';
      let lps = out.logprobs?.map((lp) => toStreamLogprob(engine, lp)) ?? [];
      let promptLps: Array<PromptLogprob | null> | undefined;
      if (out.promptLogprobs && promptIds?.length) {
        if (r.echo && r.logprobs !== undefined) {
          // the prompt's first token has no log-prob (OpenAI: null), the others come from the engine
          const first = engine.tokenText(promptIds[0]);
          lps = [{ token: first, logprob: null, bytes: [...Buffer.from(first, 'utf8')], top: [] }, ...out.promptLogprobs.map((lp) => toStreamLogprob(engine, lp)), ...lps];
        }
        if (r.promptLogprobsField !== undefined) {
          const n = r.promptLogprobsField;
          promptLps = [
            null,
            ...out.promptLogprobs.map((lp) => ({
              tokenId: lp.tokenId,
              token: engine.tokenText(lp.tokenId),
              logprob: lp.logprob,
              rank: lp.rank ?? 0,
              top: lp.top.slice(0, n).map((a) => ({ tokenId: a.tokenId, token: engine.tokenText(a.tokenId), logprob: a.logprob })),
            })),
          ];
        }
      }
      if (text || out.tokenIds.length || lps.length || promptLps) {
        const ev: StreamEvent = { t: 'delta', i: index, text, tokens: out.tokenIds.length };
        if (lps.length) ev.logprobs = lps;
        if (promptLps) ev.promptLogprobs = promptLps;
        // The first text leaves at once, even when more outputs are already queued behind it.
        const first = !flushedFirst && !!(text || ev.logprobs?.length);
        if (first) flushedFirst = true;
        await emit(ev, first);
      }
      if (out.finishReason) {
        finish = out.finishReason;
        if (out.usage) {
          completion = out.usage.completionTokens;
          cachedTokens = out.usage.cachedTokens ?? 0;
          // every choice drafts on its own: a request's drafts are the sum over its choices
          if (t.draftTokens !== null) t.draftTokens += out.usage.draftTokens ?? 0;
          if (t.acceptedDraftTokens !== null) t.acceptedDraftTokens += out.usage.acceptedDraftTokens ?? 0;
        }
      }
    }
    t.completionTokens += completion;
    assertNotShutDown(signal);
    await emit({ t: 'done', i: index, finishReason: finish, completionTokens: completion });
    return { finish, cachedTokens };
  }

  private async record(r: ServeRequest, h: Hosted, t: TimingParts): Promise<void> {
    try {
      await this.timings.record({
        requestId: r.requestId,
        deploymentId: h.dep.id,
        deploymentName: h.dep.name,
        kind: r.kind,
        workerId: this.workerId,
        ...t,
      });
    } catch (err) {
      this.logger.warn(`request ${r.requestId}: recording timings failed: ${(err as Error).message}`);
    }
  }
}

/** A request's timings as its handling starts (queued since it was enqueued; the rest filled in as it runs). */
function timingParts(r: ServeRequest, promptTokens: number, h?: Hosted, finishReason = 'stop', now = Date.now()): TimingParts {
  const drafts = h?.dep.speculative ? 0 : null;
  return { queuedMs: now - r.enqueuedAt, ttftMs: null, totalMs: 0, promptTokens, completionTokens: 0, cachedTokens: 0, draftTokens: drafts, acceptedDraftTokens: drafts, finishReason, error: null };
}

/** The `end` event's speculative counts (deployments that speculate only). */
function draftsOf(t: TimingParts): { draftTokens?: number; acceptedDraftTokens?: number } {
  return t.draftTokens === null ? {} : { draftTokens: t.draftTokens, acceptedDraftTokens: t.acceptedDraftTokens ?? 0 };
}

interface TimingParts {
  queuedMs: number;
  ttftMs: number | null;
  totalMs: number;
  promptTokens: number;
  completionTokens: number;
  /** Of promptTokens, taken from the prefix cache. */
  cachedTokens: number;
  /** Speculative decoding's draft tokens verified and accepted, over the request's choices (null: the deployment does not speculate). */
  draftTokens: number | null;
  acceptedDraftTokens: number | null;
  finishReason: string;
  error: string | null;
}

/** max_tokens (or what the session leaves) for a prompt; a 400 with the numbers when it cannot fit. */
export function checkLength(sessionLen: number, promptTokens: number, maxTokens: number | undefined, promptParam: string): number {
  if (maxTokens === undefined) {
    const left = sessionLen - promptTokens;
    if (left < 1) {
      throw new InvalidInputError(`the prompt has ${promptTokens} tokens; this deployment's session length is ${sessionLen}, which leaves no room for a completion`, {
        param: promptParam,
        code: 'context_length_exceeded',
      });
    }
    return left;
  }
  if (promptTokens + maxTokens > sessionLen) {
    throw new InvalidInputError(
      `prompt of ${promptTokens} tokens + max_tokens ${maxTokens} = ${promptTokens + maxTokens} exceeds this deployment's session length ${sessionLen}`,
      { param: 'max_tokens', code: 'context_length_exceeded' },
    );
  }
  return maxTokens;
}

/** A request cut short because the worker is shutting down, or found not admitted, ends in an error (503), not in a normal finish. */
function assertNotShutDown(signal: AbortSignal): void {
  if (signal.aborted && signal.reason === 'shutdown') throw new UnavailableError('worker-infer shut down during the request; retry it');
  if (signal.aborted && signal.reason === 'not admitted') throw new UnavailableError('the request holds no admission slot (refused, or waited past its expiry); retry it');
}

/** A 400 naming `param` when one of `ids` is not a token id of the model (the API checked only their form). */
function assertInVocab(engine: ServingEngine, ids: readonly number[], param: string): void {
  const bad = ids.find((t) => !Number.isInteger(t) || t < 0 || t >= engine.vocabSize);
  if (bad !== undefined) throw new InvalidInputError(`${param}: token id ${bad} is outside the vocabulary [0, ${engine.vocabSize})`, { param });
}

/** The engine's outputs for an echo with max_tokens 0 and no logprobs: nothing to compute, the prompt is the reply. */
async function* echoOnly(promptTokens: number): AsyncIterable<ServingOutput> {
  yield {
    tokenIds: [],
    text: '',
    finishReason: 'length',
    usage: { promptTokens, completionTokens: 0, totalTokens: promptTokens, cachedTokens: 0, queuedMs: 0, firstTokenMs: 0, totalMs: 0 },
  };
}

function worstFinish(all: FinishReason[]): FinishReason {
  if (all.includes('cancelled')) return 'cancelled';
  if (all.includes('length')) return 'length';
  return 'stop';
}

function toStreamLogprob(engine: ServingEngine, lp: { tokenId: number; logprob: number; top: Array<{ tokenId: number; logprob: number }> }): StreamLogprob {
  const token = engine.tokenText(lp.tokenId);
  return {
    token,
    logprob: lp.logprob,
    bytes: [...Buffer.from(token, 'utf8')],
    top: lp.top.map((a) => {
      const tok = engine.tokenText(a.tokenId);
      return { token: tok, logprob: a.logprob, bytes: [...Buffer.from(tok, 'utf8')] };
    }),
  };
}
