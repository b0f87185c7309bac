// The generation API, mirroring TurboMind's Python API: Engine.fromPretrained → engine.createInstance() →
// instance.streamInfer(...). One NativeEngine (one batch thread, one KV cache) per Engine; its events for every
// request arrive on one callback, and a demultiplexer routes them by request id to the stream that owns the id.
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import type { ChatMessage } from '../chat-template/chat-template';
import type { ToolSpec } from '../chat-template/tools';
import { DisposedError, EngineError, InvalidArgumentError, fromNativeError, toEngineError } from '../errors';
import type { NativeEngine, NativeEvent, NativeLogprob, NativeRequest } from '../native';
import { tokenizerJsonFromSentencePiece, type Tokenizer } from '../tokenizer/tokenizer';
import { AsyncQueue } from './async-queue';
import { ChatSession, type ChatSessionOptions } from './chat-session';
import { GrammarService, type GuideHandle, type ResponseFormat } from './grammar';
import { PretrainedModel } from './pretrained';
import { speculativeOptions } from './speculative';
import { StopWordMatcher } from './stop-words';
import type {
  EngineConfig, FinishReason, GenerateResult, GenerationConfig, Prompt, SpeculativeConfig, StreamInferParams, StreamOutput, TokenLogprob, Usage,
} from './types';

interface PendingSubmit {
  req: NativeRequest;
  queue: AsyncQueue<NativeEvent>;
  submitted: boolean;
  cancel: boolean; // aborted before it was submitted
  failed: boolean; // refused by the native engine
}

/** End-of-turn tokens of common chat formats: generation stops on them for chat prompts when the template uses them. */
const END_OF_TURN_TOKENS = ['<|im_end|>', '<|eot_id|>', '<|end|>', '<eoa>', '<|endoftext|>'];

const KV_BUDGET_BYTES_CPU = 4 * 1024 ** 3;
const CPU_DEFAULT_SESSION_LEN = 4096;

export class Engine {
  readonly sessionLen: number;
  readonly maxBatchSize: number;
  readonly blockSize: number;
  /** Speculative decoding's settings, when on (EngineConfig.speculative). */
  readonly speculative?: SpeculativeConfig;
  private readonly routes = new Map<number, AsyncQueue<NativeEvent>>();
  /** Tokens held by each live session (inputs + outputs of its finished turns), for sessionLen checks. */
  private readonly sessionTokens = new Map<number, number>();
  private readonly activeSessions = new Set<number>();
  /** Requests made in one tick go to the batch thread in one submit (flushSubmits), so they start in the same step. */
  private pendingSubmits: PendingSubmit[] = [];
  /** Guided requests' grammar matchers, by request id (responseFormat). */
  private readonly guides = new Map<number, GuideHandle>();
  private grammar?: GrammarService;
  /** A tokenizer.model-only model's tokenizer.json for the grammar workers, written at first use, removed at dispose. */
  private grammarTokenizerFile?: string;
  private nextRequestId = 1;
  private nextSessionId = 1_000_000;
  private disposed = false;
  private disposing?: Promise<void>;

  private constructor(
    readonly pretrained: PretrainedModel,
    private readonly nativeEngine: NativeEngine,
    cfg: { sessionLen: number; maxBatchSize: number; blockSize: number; speculative?: SpeculativeConfig },
  ) {
    this.sessionLen = cfg.sessionLen;
    if (cfg.speculative) this.speculative = cfg.speculative;
    this.maxBatchSize = cfg.maxBatchSize;
    this.blockSize = cfg.blockSize;
    nativeEngine.start((ev) => this.route(ev));
  }

  static async fromPretrained(dir: string, config: EngineConfig = {}): Promise<Engine> {
    const specOpts = speculativeOptions(config.speculative); // a bad setting fails before the weights load
    const pretrained = await PretrainedModel.load(dir, config);
    try {
      const spec = pretrained.spec;
      const backend = pretrained.backend;
      // On cpu a 128k-context default would size a host KV cache of tens of GB: default to at most 4096 there.
      const allowed = spec.maxPositionEmbeddings;
      const sessionLen = config.sessionLen ?? (backend === 'cpu' ? Math.min(allowed, CPU_DEFAULT_SESSION_LEN) : allowed);
      if (config.sessionLen === undefined && sessionLen < spec.maxPositionEmbeddings) {
        pretrained.log('info', `sessionLen ${sessionLen} (cpu default; the model allows ${allowed}: pass sessionLen to change)`);
      }
      if (!(sessionLen > 0)) throw new InvalidArgumentError(`sessionLen must be positive, got ${sessionLen}`);
      const maxBatchSize = config.maxBatchSize ?? (backend === 'cpu' ? 8 : 64);
      const blockSize = config.blockSize ?? 64;
      let numBlocks = config.numBlocks;
      let cacheMaxEntryCount = config.cacheMaxEntryCount;
      if (numBlocks === undefined && cacheMaxEntryCount === undefined) {
        if (backend === 'cpu') {
          // Enough for every batch slot to hold a full session, within a host-memory budget.
          // f32 rows, or int8/int4 rows plus a (scale, zero) pair per KV head (quantPolicy 8/4)
          const qp = pretrained.kvQuant.quantPolicy;
          const rowBytes = qp ? (spec.headDim * qp) / 8 + 8 : spec.headDim * 4;
          const bytesPerToken = spec.numLayers * 2 * spec.numKvHeads * rowBytes;
          const want = maxBatchSize * Math.ceil(sessionLen / blockSize);
          const cap = Math.max(Math.ceil(sessionLen / blockSize), Math.floor(KV_BUDGET_BYTES_CPU / (bytesPerToken * blockSize)));
          numBlocks = Math.min(want, cap);
        } else {
          cacheMaxEntryCount = 0.8;
        }
      }
      let nativeEngine: NativeEngine;
      try {
        nativeEngine = pretrained.native.createEngine(pretrained.model, {
          maxBatchSize,
          blockSize,
          sessionLen,
          ...(numBlocks !== undefined ? { numBlocks } : {}),
          ...(cacheMaxEntryCount !== undefined ? { cacheMaxEntryCount } : {}),
          ...(config.maxPrefillTokens !== undefined ? { maxPrefillTokens: config.maxPrefillTokens } : {}),
          ...(config.enablePrefixCaching ? { enablePrefixCaching: true } : {}),
          ...specOpts,
        });
      } catch (e) {
        throw toEngineError(e);
      }
      return new Engine(pretrained, nativeEngine, { sessionLen, maxBatchSize, blockSize, ...(config.speculative ? { speculative: config.speculative } : {}) });
    } catch (e) {
      pretrained.dispose();
      throw e;
    }
  }

  get tokenizer(): Tokenizer {
    return this.pretrained.tokenizer;
  }

  get chatTemplate() {
    return this.pretrained.chatTemplate;
  }

  get spec() {
    return this.pretrained.spec;
  }

  get backend() {
    return this.pretrained.backend;
  }

  /** Tensor parallelism: one device per rank ('cuda:0', 'cuda:1', ...; 'cpu' ranks are threads). Length = tp. */
  get devices(): string[] {
    return this.pretrained.devices;
  }

  /** The KV cache quantization the engine runs with (quantPolicy, and online or calibrated scales). */
  get kvQuant() {
    return this.pretrained.kvQuant;
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  stats() {
    this.assertAlive();
    return this.nativeEngine.stats();
  }

  /** Per-position next-token NLL (see NativeModel.scoreTokens). */
  scoreTokens(ids: ArrayLike<number>): Promise<Float32Array> {
    this.assertAlive();
    return this.pretrained.scoreTokens(ids);
  }

  createInstance(): EngineInstance {
    this.assertAlive();
    return new EngineInstance(this);
  }

  /** A fresh session id (ids ≥ 1,000,000; callers choosing their own should stay below). */
  allocateSessionId(): number {
    return this.nextSessionId++;
  }

  /** A multi-turn chat that keeps the KV cache between turns. */
  createChat(opts: ChatSessionOptions = {}): ChatSession {
    this.assertAlive();
    return new ChatSession(this, opts);
  }

  /** Drops a session's KV cache. */
  endSession(sessionId: number): void {
    if (this.disposed) return;
    this.sessionTokens.delete(sessionId);
    this.nativeEngine.endSession(sessionId);
  }

  /** Tokens a session holds (0 when unknown / ended). */
  sessionLength(sessionId: number): number {
    return this.sessionTokens.get(sessionId) ?? 0;
  }

  /** Stop ids for a prompt: eos ids, plus the template's end-of-turn token for chat prompts. */
  defaultStopIds(chat: boolean): number[] {
    const ids = new Set(this.tokenizer.special.eosIds);
    if (chat) {
      for (const t of END_OF_TURN_TOKENS) {
        const id = this.tokenizer.tokenToId(t);
        if (id !== undefined && this.chatTemplate.source.includes(t)) ids.add(id);
      }
    }
    return [...ids];
  }

  /**
   * Prompt → token ids: plain strings get the tokenizer's BOS; chat messages go through the chat template (with
   * OpenAI's `tools`, if given: see ChatTemplate.render, and extra template variables such as Qwen3's
   * `enable_thinking`: vLLM's chat_template_kwargs).
   */
  encodePrompt(prompt: Prompt, opts: { tools?: readonly ToolSpec[]; templateKwargs?: Record<string, unknown> } = {}): number[] {
    if (typeof prompt === 'string') return this.tokenizer.encode(prompt, { addSpecialTokens: true });
    const text = this.chatTemplate.render(prompt as ChatMessage[], {
      addGenerationPrompt: true,
      ...(opts.tools ? { tools: opts.tools } : {}),
      ...(opts.templateKwargs ? { extra: opts.templateKwargs } : {}),
    });
    return this.tokenizer.encode(text, { addSpecialTokens: false });
  }

  /** Runs several prompts concurrently (they share the batch) and collects their outputs. */
  async generate(prompts: Prompt[], gen: GenerationConfig = {}): Promise<GenerateResult[]> {
    this.assertAlive();
    const instance = this.createInstance();
    return Promise.all(
      prompts.map(async (prompt) => {
        const chat = typeof prompt !== 'string';
        const inputIds = this.encodePrompt(prompt);
        const stopIds = [...(gen.ignoreEos ? [] : this.defaultStopIds(chat)), ...(gen.stopIds ?? [])];
        const result: GenerateResult = { text: '', tokenIds: [], finishReason: 'length', usage: emptyUsage(inputIds.length) };
        for await (const out of instance.streamInfer({
          inputIds,
          maxNewTokens: gen.maxNewTokens ?? 256,
          stopIds,
          stopWords: gen.stopWords,
          sampling: pickSampling(gen),
          logprobs: gen.logprobs,
          signal: gen.signal,
          skipSpecialTokens: gen.skipSpecialTokens,
        })) {
          result.text += out.text;
          result.tokenIds.push(...out.tokenIds);
          if (out.logprobs) (result.logprobs ??= []).push(...out.logprobs);
          if (out.finishReason) result.finishReason = out.finishReason;
          if (out.usage) result.usage = out.usage;
        }
        return result;
      }),
    );
  }

  /** Stops the batch thread (cancelling running requests), frees the KV cache and the weights. Idempotent. */
  dispose(): Promise<void> {
    if (this.disposing) return this.disposing;
    this.disposed = true;
    for (const q of this.routes.values()) q.fail(new DisposedError('engine'));
    this.routes.clear();
    for (const g of this.guides.values()) g.close();
    this.guides.clear();
    this.disposing = (async () => {
      try {
        await this.nativeEngine.dispose();
      } finally {
        this.pretrained.dispose();
        await this.grammar?.dispose().catch(() => undefined);
        if (this.grammarTokenizerFile) fs.rmSync(this.grammarTokenizerFile, { force: true });
      }
    })();
    return this.disposing;
  }

  /** @internal The streaming core used by EngineInstance. */
  async *runStream(p: StreamInferParams): AsyncGenerator<StreamOutput> {
    this.assertAlive();
    const inputIds = Int32Array.from(p.inputIds);
    this.validate(p, inputIds);
    const stopWords = new StopWordMatcher(p.stopWords ?? []);
    const detok = this.tokenizer.createDetokenizer({ skipSpecialTokens: p.skipSpecialTokens ?? true });
    const stopIds = p.stopIds ?? this.tokenizer.special.eosIds;
    // Guided: the grammar's first allowed set goes with the request; route() hands each token to the matcher and the
    // next set to the native engine, which holds the request until it comes.
    let guide = p.responseFormat && p.responseFormat.type !== 'text' ? await this.openGuide(p.responseFormat, stopIds) : undefined;
    if (guide && p.guideAfter) guide = new DeferredGuide(guide, p.guideAfter, Math.ceil(this.spec.vocabSize / 32), (ids) => this.tokenizer.decode(ids, { skipSpecialTokens: false }), p.guideOpener ? DeferredGuide.openerIds(this.tokenizer, p.guideOpener, this.spec.vocabSize) : undefined);
    if (this.disposed) {
      guide?.close();
      throw new DisposedError('engine');
    }
    if (p.signal?.aborted) {
      guide?.close();
      yield { tokenIds: [], text: '', finishReason: 'cancelled', usage: emptyUsage(inputIds.length) };
      return;
    }
    const id = this.nextRequestId++;
    const queue = new AsyncQueue<NativeEvent>();
    this.routes.set(id, queue);
    const req: NativeRequest = {
      id,
      inputIds,
      maxNewTokens: p.maxNewTokens,
      stopIds,
    };
    if (guide) {
      req.allowedTokens = guide.mask;
      this.guides.set(id, guide);
    }
    if (p.sessionId !== undefined) req.sessionId = p.sessionId;
    if (p.sampling) req.sampling = { ...p.sampling };
    if (p.logprobs !== undefined) req.logprobs = p.logprobs; // 0: the sampled token's log-prob only
    if (p.promptLogprobs !== undefined) req.promptLogprobs = p.promptLogprobs;
    // prompt log-probs score token k + 1 from position k's logits
    const promptLps = (lps: NativeLogprob[] | undefined) => (lps ? toLogprobs(Array.from(inputIds).slice(1, lps.length + 1), lps) : undefined);
    if (p.logitBias) req.logitBias = Object.entries(p.logitBias).map(([t, v]) => [Number(t), v]);
    if (p.minNewTokens) req.minNewTokens = p.minNewTokens;
    let finished = false;
    let stoppedByWord: string | undefined;
    let aborted = false;
    const pending = this.submitSoon(req, queue);
    const cancel = () => {
      if (pending.submitted) this.nativeEngine.cancel(id);
      else pending.cancel = true; // cancelled as soon as it is submitted (flushSubmits)
    };
    const onAbort = () => {
      aborted = true;
      if (!finished) cancel();
    };
    p.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      if (p.sessionId !== undefined) this.activeSessions.add(p.sessionId);
      for await (const ev of queue) {
        if (ev.type === 'tokens') {
          if (stoppedByWord !== undefined) continue;
          const r = stopWords.push(detok.push(ev.tokens));
          if (r.matched !== undefined) {
            stoppedByWord = r.matched;
            this.nativeEngine.cancel(id);
          }
          const out: StreamOutput = { tokenIds: ev.tokens, text: r.text };
          if (ev.logprobs) out.logprobs = toLogprobs(ev.tokens, ev.logprobs);
          if (ev.promptLogprobs) out.promptLogprobs = promptLps(ev.promptLogprobs);
          yield out;
        } else if (ev.type === 'done') {
          finished = true;
          const text = stoppedByWord !== undefined ? '' : stopWords.push(detok.flush()).text + stopWords.flush();
          const finishReason: FinishReason = stoppedByWord !== undefined ? 'stop' : aborted ? 'cancelled' : ev.finishReason;
          if (p.sessionId !== undefined) {
            // Native code keeps a session's tokens (prompt + every generated token) after 'stop'/'length', and drops
            // the whole session when a request is cancelled (abort, stop word).
            if (ev.finishReason === 'cancelled') this.sessionTokens.delete(p.sessionId);
            else this.sessionTokens.set(p.sessionId, this.sessionLength(p.sessionId) + ev.promptTokens + ev.completionTokens);
          }
          yield {
            tokenIds: [],
            text,
            ...(ev.promptLogprobs ? { promptLogprobs: promptLps(ev.promptLogprobs) } : {}),
            finishReason,
            ...(stoppedByWord !== undefined ? { stopWord: stoppedByWord } : {}),
            usage: {
              promptTokens: ev.promptTokens,
              completionTokens: ev.completionTokens,
              totalTokens: ev.promptTokens + ev.completionTokens,
              cachedTokens: ev.cachedTokens ?? 0,
              ...(this.speculative ? { draftTokens: ev.draftTokens ?? 0, acceptedDraftTokens: ev.acceptedTokens ?? 0 } : {}),
              queuedMs: ev.queuedMs,
              firstTokenMs: ev.firstTokenMs,
              totalMs: ev.totalMs,
            },
          };
          return;
        } else {
          finished = true;
          if (p.sessionId !== undefined) this.sessionTokens.delete(p.sessionId); // native drops a failed request's session
          throw fromNativeError(ev.code, ev.message);
        }
      }
      // The queue closed without a 'done' event: the engine was disposed under us.
      throw new DisposedError('engine');
    } finally {
      p.signal?.removeEventListener('abort', onAbort);
      this.routes.delete(id);
      this.guides.get(id)?.close();
      this.guides.delete(id);
      if (p.sessionId !== undefined) this.activeSessions.delete(p.sessionId);
      if (!finished && !this.disposed && !pending.failed) cancel(); // the consumer stopped iterating early
    }
  }

  private submitSoon(req: NativeRequest, queue: AsyncQueue<NativeEvent>): PendingSubmit {
    const entry: PendingSubmit = { req, queue, submitted: false, cancel: false, failed: false };
    this.pendingSubmits.push(entry);
    if (this.pendingSubmits.length === 1) queueMicrotask(() => this.flushSubmits());
    return entry;
  }

  /** One native submit for every request made since the last flush; when it refuses them (one bad request refuses
   * all), each alone, so every stream gets its own answer. */
  private flushSubmits(): void {
    const batch = this.pendingSubmits;
    this.pendingSubmits = [];
    const refuse = (e: PendingSubmit, err: unknown) => {
      e.failed = true;
      e.queue.fail(err);
    };
    if (this.disposed) {
      for (const e of batch) refuse(e, new DisposedError('engine'));
      return;
    }
    try {
      this.nativeEngine.submit(batch.length === 1 ? batch[0].req : batch.map((e) => e.req));
      for (const e of batch) e.submitted = true;
    } catch (err) {
      if (batch.length === 1) refuse(batch[0], toEngineError(err));
      else
        for (const e of batch) {
          try {
            this.nativeEngine.submit(e.req);
            e.submitted = true;
          } catch (err1) {
            refuse(e, toEngineError(err1));
          }
        }
    }
    for (const e of batch) if (e.submitted && e.cancel) this.nativeEngine.cancel(e.req.id);
  }

  private validate(p: StreamInferParams, inputIds: Int32Array): void {
    if (inputIds.length === 0) throw new InvalidArgumentError('inputIds is empty');
    // 0 only to score a prompt (promptLogprobs): nothing is generated
    const minNew = p.promptLogprobs !== undefined ? 0 : 1;
    if (!Number.isInteger(p.maxNewTokens) || p.maxNewTokens < minNew) {
      throw new InvalidArgumentError(`maxNewTokens must be ${minNew ? 'a positive integer' : 'an integer >= 0'}, got ${p.maxNewTokens}`);
    }
    if (p.promptLogprobs !== undefined) {
      if (!Number.isInteger(p.promptLogprobs) || p.promptLogprobs < 0 || p.promptLogprobs > 20) throw new InvalidArgumentError(`promptLogprobs must be an integer in [0, 20], got ${p.promptLogprobs}`);
      if (p.sessionId !== undefined) throw new InvalidArgumentError('promptLogprobs cannot be combined with sessionId');
    }
    const vocab = this.spec.vocabSize;
    for (const t of inputIds) {
      if (t < 0 || t >= vocab) throw new InvalidArgumentError(`input token id ${t} is outside the vocabulary [0, ${vocab})`);
    }
    if (p.sessionId !== undefined) {
      if (!Number.isInteger(p.sessionId) || p.sessionId <= 0) {
        throw new InvalidArgumentError(`sessionId must be a positive integer, got ${p.sessionId}`);
      }
      if (this.activeSessions.has(p.sessionId)) {
        throw new InvalidArgumentError(`session ${p.sessionId} already has a request running`);
      }
    }
    if (p.logitBias !== undefined) {
      if (!p.logitBias || typeof p.logitBias !== 'object') throw new InvalidArgumentError('logitBias must be an object of token id -> value');
      for (const [t, v] of Object.entries(p.logitBias)) {
        const id = Number(t);
        if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new InvalidArgumentError(`logitBias token id ${t} is outside the vocabulary [0, ${vocab})`);
        if (typeof v !== 'number' || !Number.isFinite(v)) throw new InvalidArgumentError(`logitBias value for token ${t} must be a finite number`);
      }
    }
    if (p.minNewTokens !== undefined) {
      if (!Number.isInteger(p.minNewTokens) || p.minNewTokens < 0) throw new InvalidArgumentError(`minNewTokens must be an integer >= 0, got ${p.minNewTokens}`);
      if (p.minNewTokens > 0 && p.responseFormat && p.responseFormat.type !== 'text') {
        throw new InvalidArgumentError('minNewTokens cannot be combined with responseFormat (the grammar decides where the output ends)');
      }
    }
    const history = p.sessionId !== undefined ? this.sessionLength(p.sessionId) : 0;
    const total = history + inputIds.length + p.maxNewTokens;
    if (total > this.sessionLen) {
      throw new EngineError(
        `prompt of ${inputIds.length} tokens${history ? ` (after ${history} tokens already in session ${p.sessionId})` : ''} + ` +
          `maxNewTokens ${p.maxNewTokens} = ${total} exceeds sessionLen ${this.sessionLen}`,
        'E_INVALID_ARGUMENT',
      );
    }
  }

  private route(ev: NativeEvent): void {
    const q = this.routes.get(ev.id);
    if (!q) return; // a request whose consumer already left (cancelled / broke out of the loop)
    const guide = this.guides.get(ev.id);
    if (guide && ev.type === 'tokens') this.advanceGuide(ev.id, guide, ev.tokens, q);
    q.push(ev);
  }

  /** The matcher takes the request's new token; the native engine gets the set allowed next. A stop token ends the
   * request natively (it never comes here), so every token here leaves the grammar running. */
  private advanceGuide(id: number, guide: GuideHandle, tokens: number[], q: AsyncQueue<NativeEvent>): void {
    guide.accept(tokens).then(
      (mask) => {
        if (mask && this.guides.get(id) === guide && !this.disposed) this.nativeEngine.setAllowedTokens(id, mask);
      },
      (err: unknown) => {
        if (this.guides.get(id) !== guide || this.disposed) return;
        this.guides.delete(id);
        guide.close();
        this.nativeEngine.cancel(id);
        q.push({ type: 'error', id, code: 'E_INTERNAL', message: `response_format: ${(err as Error).message}` });
      },
    );
  }

  /** Compiles (and caches) a response format's grammar: a bad schema fails here, before any request runs. */
  async prepareResponseFormat(format: ResponseFormat): Promise<void> {
    if (format.type === 'text') return;
    (await this.openGuide(format, this.tokenizer.special.eosIds)).close();
  }

  private async openGuide(format: ResponseFormat, stopIds: number[]): Promise<GuideHandle> {
    this.assertAlive();
    if (!this.grammar) this.grammar = GrammarService.create(this.grammarTokenizerJson(), this.spec.vocabSize);
    if (stopIds.length === 0) throw new InvalidArgumentError('response_format needs a stop token to end the output (ignore_eos is set and no stop ids are given)');
    return this.grammar.open(format, stopIds); // InvalidArgumentError for a schema xgrammar cannot use
  }

  /** The tokenizer.json the grammar workers read: the model's own, or for a tokenizer.model-only model (Llama-2,
   * InternLM2) the one the Tokenizer converted it to, written to a temporary file (write, then rename). */
  private grammarTokenizerJson(): string {
    const dir = this.pretrained.loaded.dir;
    const own = path.join(dir, 'tokenizer.json');
    if (fs.existsSync(own)) return own;
    const sp = path.join(dir, 'tokenizer.model');
    if (!fs.existsSync(sp)) throw new InvalidArgumentError(`response_format needs the model's tokenizer.json or tokenizer.model (${dir} has neither)`);
    const file = path.join(os.tmpdir(), `lmfleet-grammar-tokenizer-${randomUUID()}.json`);
    fs.writeFileSync(`${file}.tmp`, JSON.stringify(tokenizerJsonFromSentencePiece(sp, this.tokenizer.config)));
    fs.renameSync(`${file}.tmp`, file);
    this.grammarTokenizerFile = file;
    return file;
  }

  private assertAlive(): void {
    if (this.disposed) throw new DisposedError('engine');
  }
}

/**
 * A guide that lets every token through until the output contains `marker` (a reasoning model's '</think>'), then
 * hands over to the response format's own guide. The request stays guided throughout (one mask per token), so the
 * switch needs nothing from the native engine.
 *
 * With `openerIds` (qwen3, whose reply may or may not open with <think>: Qwen3-Instruct-2507 and models that do not
 * think never write it), the first token either opens the think block or starts the formatted answer: the first mask
 * is the grammar's first mask plus the openers. An opener: free until the marker, as above; any other token: the
 * grammar from that token on. No opener in the vocabulary (an empty set): the grammar from the first token.
 */
export class DeferredGuide implements GuideHandle {
  readonly mask: Uint32Array;
  private readonly free: Uint32Array;
  /** first: nothing generated yet (opener mode only); thinking: free until the marker; active: the grammar's. */
  private state: 'first' | 'thinking' | 'active' = 'thinking';
  private tail = '';

  constructor(
    private readonly inner: GuideHandle,
    private readonly marker: string,
    maskWords: number,
    private readonly decode: (ids: number[]) => string,
    private readonly openerIds?: ReadonlySet<number>,
  ) {
    this.free = new Uint32Array(maskWords).fill(0xffffffff);
    this.mask = this.free;
    if (openerIds && openerIds.size === 0) {
      this.state = 'active';
      this.mask = inner.mask;
    } else if (openerIds) {
      this.state = 'first';
      this.mask = new Uint32Array(Math.max(maskWords, inner.mask.length));
      this.mask.set(inner.mask);
      for (const id of openerIds) if (id >> 5 < this.mask.length) this.mask[id >> 5] |= 1 << (id & 31);
    }
  }

  async accept(tokens: number[]): Promise<Uint32Array | null> {
    if (this.state === 'first' && tokens.length) this.state = this.openerIds!.has(tokens[0]) ? 'thinking' : 'active';
    if (this.state === 'active') return this.inner.accept(tokens);
    for (let i = 0; i < tokens.length; i++) {
      this.tail = (this.tail + this.decode([tokens[i]])).slice(-2 * this.marker.length);
      if (this.tail.includes(this.marker)) {
        this.state = 'active';
        const rest = tokens.slice(i + 1);
        return rest.length ? this.inner.accept(rest) : this.inner.mask;
      }
    }
    return this.state === 'first' ? this.mask : this.free;
  }

  close(): void {
    this.inner.close();
  }

  private static readonly openerCache = new WeakMap<object, Map<string, ReadonlySet<number>>>();

  /**
   * The ids of the tokens whose text, leading whitespace trimmed, is `opener` ('<think>': one added token in Qwen3's
   * vocabulary), computed once per tokenizer. The vocabularies we load (byte-level BPE, SentencePiece, WordPiece)
   * spell printable ASCII literally in a token's string, so only the tokens whose string contains the opener are
   * decoded (the whole vocabulary when the opener has other characters).
   */
  static openerIds(tokenizer: Pick<Tokenizer, 'vocabSize' | 'idToToken' | 'decode'>, opener: string, vocabSize = 0): ReadonlySet<number> {
    let byOpener = DeferredGuide.openerCache.get(tokenizer);
    if (!byOpener) DeferredGuide.openerCache.set(tokenizer, (byOpener = new Map()));
    let ids = byOpener.get(opener);
    if (ids) return ids;
    const literal = /^[\x21-\x7e]+$/.test(opener) ? opener : undefined;
    const found = new Set<number>();
    for (let id = 0, n = Math.max(tokenizer.vocabSize, vocabSize); id < n; id++) {
      if (literal !== undefined && !tokenizer.idToToken(id)?.includes(literal)) continue;
      if (tokenizer.decode([id], { skipSpecialTokens: false }).replace(/^\s+/, '') === opener) found.add(id);
    }
    ids = found;
    byOpener.set(opener, ids);
    return ids;
  }
}

/** A handle for issuing requests (TurboMind's model instance). Instances share their engine's batch. */
export class EngineInstance {
  constructor(readonly engine: Engine) {}

  /** Streams one request's tokens and text deltas; the last output has finishReason and usage. */
  streamInfer(params: StreamInferParams): AsyncGenerator<StreamOutput> {
    return this.engine.runStream(params);
  }

  endSession(sessionId: number): void {
    this.engine.endSession(sessionId);
  }
}

export function emptyUsage(promptTokens: number): Usage {
  return { promptTokens, completionTokens: 0, totalTokens: promptTokens, cachedTokens: 0, queuedMs: 0, firstTokenMs: 0, totalMs: 0 };
}

export function pickSampling(g: GenerationConfig) {
  const s: Record<string, number> = {};
  if (g.temperature !== undefined) s.temperature = g.temperature;
  if (g.topK !== undefined) s.topK = g.topK;
  if (g.topP !== undefined) s.topP = g.topP;
  if (g.minP !== undefined) s.minP = g.minP;
  if (g.repetitionPenalty !== undefined) s.repetitionPenalty = g.repetitionPenalty;
  if (g.presencePenalty !== undefined) s.presencePenalty = g.presencePenalty;
  if (g.frequencyPenalty !== undefined) s.frequencyPenalty = g.frequencyPenalty;
  if (g.seed !== undefined) s.seed = g.seed;
  return s;
}

function toLogprobs(tokens: number[], lps: NativeLogprob[]): TokenLogprob[] {
  return lps.map((lp, i) => ({
    tokenId: tokens[i],
    logprob: lp.logprob,
    top: lp.top.map(([tokenId, logprob]) => ({ tokenId, logprob })),
    ...(lp.rank !== undefined ? { rank: lp.rank } : {}),
  }));
}
