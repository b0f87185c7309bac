// The OpenAI-compatible request path on the API side: resolve the deployment, validate, admit (bounded queue),
// enqueue on `infer-<deployment>`, then relay the worker's Redis stream as SSE (or one JSON body). The worker
// tokenizes (it has the tokenizer and chat template loaded), so length errors come back as the stream's first event,
// before any header is sent, and still reach the client as a proper 400.
import { Inject, Injectable, Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { APP_CONFIG, type AppConfig } from '../config';
import type { DeploymentEntity } from '../db/entities/deployment.entity';
import { DeploymentService } from '../deployments/deployment.service';
import type { ServingMessage, ServingResponseFormat } from '../engine/engine.adapter';
import { InvalidInputError, NotFoundError, PlatformError, TooManyRequestsError, UnavailableError } from '../errors';
import { JobQueue } from '../queue/job-queue';
import { inferQueueName } from '../queue/jobs';
import { TokenStream } from '../streams/token-stream';
import { Admission } from './admission';
import { ChatChunker, CompletionChunker, ResponseCollector } from './openai-format';
import { toOpenAIErrorBody } from './openai-errors';
import { guideStart, type ReasoningParser } from './reasoning';
import { OPENAI_NAME, parseTools, type ToolMode } from './tool-calls';
import { SERVE_JOB, serveKeys, sessionQueueName, type ServeKind, type ServeRequest, type StreamEvent, type TokenizeSpec, type WorkerLiveness } from './protocol';
import { ServingEvents } from './serving-events';

/** The parts of an HTTP response this service uses (Express's, in the API). */
export interface HttpOut {
  readonly headersSent: boolean;
  readonly writableEnded: boolean;
  status(code: number): this;
  setHeader(name: string, value: string): unknown;
  flushHeaders(): void;
  write(chunk: string): boolean;
  end(chunk?: string): unknown;
  json(body: unknown): unknown;
  on(event: 'close', fn: () => void): unknown;
}

export interface SamplingFields {
  temperature?: number;
  top_p?: number;
  top_k?: number;
  /** vLLM / LMDeploy min_p: keep tokens whose probability is at least min_p x the most likely one's. */
  min_p?: number;
  seed?: number;
  stop?: string | string[];
  presence_penalty?: number;
  frequency_penalty?: number;
  repetition_penalty?: number;
  ignore_eos?: boolean;
  skip_special_tokens?: boolean;
}

/** vLLM's guided decoding extras (sent as extra_body by vLLM's clients), on chat and completions. */
export interface GuidedFields {
  guided_json?: unknown;
  guided_choice?: unknown;
  guided_grammar?: unknown;
  guided_regex?: unknown;
  /** OpenAI's: token id (as a string key) -> bias in [-100, 100] added to its logit. */
  logit_bias?: unknown;
  /** vLLM's min_tokens and LMDeploy's min_new_tokens: no stop token before this many. */
  min_tokens?: number;
  min_new_tokens?: number;
  /** vLLM's: token ids that end the output besides the model's own stop tokens. */
  stop_token_ids?: number[];
}

const MAX_LOGIT_BIAS = 1024;

/** logit_bias, min_tokens / min_new_tokens and stop_token_ids as the serve request carries them. */
export function parseTokenControls(body: GuidedFields, guided?: ServingResponseFormat): Pick<ServeRequest, 'logitBias' | 'minNewTokens' | 'stopTokenIds'> {
  const out: Pick<ServeRequest, 'logitBias' | 'minNewTokens' | 'stopTokenIds'> = {};
  const lb = body.logit_bias;
  if (lb !== undefined && lb !== null) {
    const param = 'logit_bias';
    if (typeof lb !== 'object' || Array.isArray(lb)) throw new InvalidInputError(`${param} must be an object of token id -> bias`, { param });
    const entries = Object.entries(lb as Record<string, unknown>);
    if (entries.length > MAX_LOGIT_BIAS) throw new InvalidInputError(`${param} takes at most ${MAX_LOGIT_BIAS} tokens, got ${entries.length}`, { param });
    const bias: Record<number, number> = {};
    for (const [k, v] of entries) {
      if (!/^\d+$/.test(k)) throw new InvalidInputError(`${param} keys must be token ids (non-negative integers), got ${JSON.stringify(k)}`, { param });
      if (typeof v !== 'number' || !Number.isFinite(v) || v < -100 || v > 100) throw new InvalidInputError(`${param}[${k}] must be a number from -100 to 100`, { param });
      if (v !== 0) bias[Number(k)] = v;
    }
    if (Object.keys(bias).length) out.logitBias = bias;
  }
  if (body.min_tokens !== undefined && body.min_new_tokens !== undefined && body.min_tokens !== body.min_new_tokens) {
    throw new InvalidInputError('min_tokens and min_new_tokens are the same setting: give one', { param: 'min_new_tokens' });
  }
  const min = body.min_tokens ?? body.min_new_tokens;
  if (min && guided) {
    throw new InvalidInputError('min_tokens cannot be combined with guided decoding (the grammar decides where the reply ends)', {
      param: body.min_tokens !== undefined ? 'min_tokens' : 'min_new_tokens',
    });
  }
  if (min) out.minNewTokens = min;
  const stopIds: unknown = body.stop_token_ids;
  if (stopIds !== undefined && stopIds !== null) {
    if (!Array.isArray(stopIds) || !stopIds.every((t) => Number.isInteger(t) && t >= 0)) {
      throw new InvalidInputError('stop_token_ids must be an array of token ids (non-negative integers)', { param: 'stop_token_ids' });
    }
    if (stopIds.length) out.stopTokenIds = stopIds as number[];
  }
  return out;
}

export interface ChatCompletionRequest extends SamplingFields, GuidedFields {
  /** vLLM's prompt_logprobs (not streamed): the prompt tokens' log-probs with the top-N. */
  prompt_logprobs?: number;
  model: string;
  messages: unknown[];
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
  max_tokens?: number;
  max_completion_tokens?: number;
  n?: number;
  logprobs?: boolean;
  top_logprobs?: number;
  response_format?: unknown;
  /** OpenAI's function tools, tool_choice and parallel_tool_calls (checked by parseTools). */
  tools?: unknown;
  tool_choice?: unknown;
  parallel_tool_calls?: unknown;
  /** vLLM's extra chat-template variables (e.g. Qwen3's {enable_thinking: false}). */
  chat_template_kwargs?: unknown;
  /** LMDeploy's switch for thinking models: chat_template_kwargs.enable_thinking. */
  enable_thinking?: unknown;
}

export interface CompletionRequest extends SamplingFields, GuidedFields {
  /** vLLM's prompt_logprobs (not streamed): the prompt tokens' log-probs with the top-N, per choice. */
  prompt_logprobs?: number;
  model: string;
  /** Text, texts, or token ids (one prompt as integers, or several as arrays of integers), as OpenAI takes them. */
  prompt: string | string[] | number[] | number[][];
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
  max_tokens?: number;
  n?: number;
  logprobs?: number;
  echo?: boolean;
  response_format?: unknown;
}

/** LMDeploy's /v1/chat/interactive body (GenerateRequest), plus `model` (several deployments) and `end`. */
export interface InteractiveRequest extends SamplingFields {
  model?: string;
  prompt: string;
  session_id?: number;
  interactive_mode?: boolean;
  stream?: boolean;
  request_output_len?: number;
  end?: boolean;
  /** LMDeploy's: stop the session's running request (its KV cache is dropped; the next turn re-sends the history). */
  cancel?: boolean;
}

/** vLLM's POST /tokenize body: `prompt`, or chat `messages` (chat template with the generation prompt). */
export interface TokenizeRequest {
  model?: string;
  prompt?: string;
  messages?: unknown;
  add_special_tokens?: boolean;
  /** messages: extra chat-template variables, as for chat completions. */
  chat_template_kwargs?: unknown;
}

/** Variables the chat template is always given (the conversation, tools, the generation prompt, BOS / EOS). */
const TEMPLATE_RESERVED = ['messages', 'tools', 'add_generation_prompt', 'bos_token', 'eos_token'];

/**
 * vLLM's chat_template_kwargs (an object of extra template variables) and LMDeploy's enable_thinking (a boolean for
 * chat_template_kwargs.enable_thinking; the object wins where both say it). Undefined when neither is given.
 */
export function parseTemplateKwargs(body: { chat_template_kwargs?: unknown; enable_thinking?: unknown }): Record<string, unknown> | undefined {
  const kw = body.chat_template_kwargs;
  if (kw !== undefined && (kw === null || typeof kw !== 'object' || Array.isArray(kw))) {
    throw new InvalidInputError('chat_template_kwargs must be an object of template variables, e.g. {"enable_thinking": false}', { param: 'chat_template_kwargs' });
  }
  const reserved = Object.keys(kw ?? {}).filter((k) => TEMPLATE_RESERVED.includes(k));
  if (reserved.length) {
    throw new InvalidInputError(`chat_template_kwargs cannot set ${reserved.join(', ')} (the request's own fields give ${TEMPLATE_RESERVED.join(', ')})`, { param: 'chat_template_kwargs' });
  }
  if (body.enable_thinking !== undefined && typeof body.enable_thinking !== 'boolean') {
    throw new InvalidInputError('enable_thinking must be a boolean', { param: 'enable_thinking' });
  }
  if (kw === undefined && body.enable_thinking === undefined) return undefined;
  return { ...(body.enable_thinking !== undefined ? { enable_thinking: body.enable_thinking } : {}), ...(kw as Record<string, unknown> | undefined) };
}

/** vLLM's POST /detokenize body. */
export interface DetokenizeRequest {
  model?: string;
  tokens: unknown;
}

/** LMDeploy's POST /v1/encode body (EncodeRequest), plus `model`. */
export interface EncodeRequest {
  model?: string;
  input: string | string[];
  do_preprocess?: boolean;
  add_bos?: boolean;
}

const OPENAI_COMPLETIONS_DEFAULT_MAX_TOKENS = 16;
const MAX_SESSION_ID = 999_999;
const MAX_STOP_SEQUENCES = 32;

@Injectable()
export class OpenAIService {
  private readonly logger = new Logger(OpenAIService.name);
  private readonly admission: Admission;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly deployments: DeploymentService,
    private readonly queue: JobQueue,
    private readonly tokens: TokenStream,
    private readonly events: ServingEvents,
  ) {
    // On the queues' connection: an acquire sent before a BullMQ add runs in Redis before it (serve()).
    this.admission = new Admission(queue.redis);
  }

  /** GET /v1/models */
  async models() {
    const all = await this.deployments.listRows();
    return {
      object: 'list' as const,
      data: all.map((d) => ({ id: d.name, object: 'model' as const, created: Math.floor(d.createdAt.getTime() / 1000), owned_by: 'lmfleet', root: d.versionId, parent: null })),
    };
  }

  async model(name: string) {
    const d = await this.deployments.resolve(name);
    if (!d) throw modelNotFound(name);
    return { id: d.name, object: 'model' as const, created: Math.floor(d.createdAt.getTime() / 1000), owned_by: 'lmfleet', root: d.versionId, parent: null };
  }

  /** POST /v1/chat/completions */
  async chat(body: ChatCompletionRequest, res: HttpOut): Promise<void> {
    const dep = await this.deployment(body.model, 'chat');
    const messages = parseMessages(body.messages);
    const n = body.n ?? 1;
    checkN(n, dep);
    if (body.top_logprobs !== undefined && !body.logprobs) throw new InvalidInputError('top_logprobs requires logprobs: true', { param: 'top_logprobs' });
    const guided = parseGuided(body);
    let responseFormat = guided?.format;
    const tools = parseTools(body.tools, body.tool_choice, body.parallel_tool_calls);
    const templateKwargs = parseTemplateKwargs(body);
    if (tools?.responseFormat) {
      if (guided) throw new InvalidInputError(`${guided.param} cannot be combined with tool_choice "required" or a named function`, { param: guided.param });
      responseFormat = tools.responseFormat;
    }
    // a reasoning deployment's format starts after the thinking, or for qwen3 at once if the reply does not think
    // (reasoning.ts guideStart)
    const start = responseFormat && dep.reasoningParser ? guideStart(dep.reasoningParser, templateKwargs) : undefined;
    const req = this.request(dep, 'chat', 'chatcmpl', body, {
      messages,
      n,
      ...parseTokenControls(body, responseFormat),
      ...(responseFormat ? { responseFormat } : {}),
      ...(guided && !tools?.responseFormat ? { responseFormatParam: guided.param } : {}),
      ...(tools ? { tools: tools.tools } : {}),
      ...(templateKwargs ? { templateKwargs } : {}),
      ...(start ? { guideAfter: start.after } : {}),
      ...(start?.opener ? { guideOpener: start.opener } : {}),
      maxTokens: body.max_completion_tokens ?? body.max_tokens,
      ...(body.logprobs ? { logprobs: body.top_logprobs ?? 0 } : {}),
      ...promptLogprobsOf(body, undefined),
    });
    // the <tool_call> tags are special tokens in some tokenizers: keep them in the text the parser reads
    if (tools?.mode === 'auto' && body.skip_special_tokens === undefined) req.skipSpecialTokens = false;
    const meta = { id: req.requestId, created: Math.floor(req.enqueuedAt / 1000), model: dep.name };
    const toolOpts = tools?.mode ? { toolMode: tools.mode, toolNames: tools.tools.map((t) => t.function.name) } : {};
    const reasoning = dep.reasoningParser ? { reasoning: dep.reasoningParser } : {};
    await this.serve(dep, req, res, {
      stream: body.stream === true,
      chunker: new ChatChunker(meta, { logprobs: req.logprobs, includeUsage: body.stream_options?.include_usage === true, ...toolOpts, ...reasoning }),
      body: (c) => c.chatCompletion(meta),
      ...toolOpts,
      ...reasoning,
    });
  }

  /** POST /v1/completions */
  async completion(body: CompletionRequest, res: HttpOut): Promise<void> {
    const dep = await this.deployment(body.model, 'completion');
    const prompt = parsePrompt(body.prompt);
    const count = prompt.texts?.length ?? prompt.ids!.length;
    const n = body.n ?? 1;
    checkN(n * count, dep);
    const maxTokens = body.max_tokens ?? OPENAI_COMPLETIONS_DEFAULT_MAX_TOKENS;
    if (maxTokens === 0 && !body.echo && body.prompt_logprobs === undefined)
      throw new InvalidInputError('max_tokens 0 generates nothing: it needs echo (the prompt back, with logprobs scored) or prompt_logprobs', { param: 'max_tokens' });
    const guided = parseGuided(body);
    const req = this.request(dep, 'completion', 'cmpl', body, {
      ...(prompt.texts ? { prompts: prompt.texts } : { promptIds: prompt.ids }),
      n,
      ...parseTokenControls(body, guided?.format),
      ...(guided ? { responseFormat: guided.format, responseFormatParam: guided.param } : {}),
      maxTokens,
      ...(body.logprobs !== undefined ? { logprobs: body.logprobs } : {}),
      // echo + logprobs (how lm-evaluation-harness scores a continuation): the prompt's tokens' log-probs lead
      ...(body.echo ? { echo: true } : {}),
      ...promptLogprobsOf(body, body.echo ? body.logprobs : undefined),
    });
    const meta = { id: req.requestId, created: Math.floor(req.enqueuedAt / 1000), model: dep.name };
    await this.serve(dep, req, res, {
      stream: body.stream === true,
      chunker: new CompletionChunker(meta, { logprobs: req.logprobs, includeUsage: body.stream_options?.include_usage === true }),
      body: (c) => c.completion(meta),
    });
  }

  /** POST /v1/chat/interactive (LMDeploy): session_id keeps the KV cache across turns on the worker holding it. */
  async interactive(body: InteractiveRequest, res: HttpOut): Promise<void> {
    const dep = await this.deployment(body.model, 'interactive');
    const interactiveMode = body.interactive_mode === true;
    const sessionId = body.session_id !== undefined && body.session_id !== -1 ? body.session_id : undefined;
    if (sessionId !== undefined && (!Number.isInteger(sessionId) || sessionId < 1 || sessionId > MAX_SESSION_ID)) {
      throw new InvalidInputError(`session_id must be an integer in [1, ${MAX_SESSION_ID}] (or -1), got ${sessionId}`, { param: 'session_id' });
    }
    if ((interactiveMode || body.end || body.cancel) && sessionId === undefined) throw new InvalidInputError('interactive_mode, end and cancel need a session_id', { param: 'session_id' });
    if (body.cancel) {
      const running = await this.tokens.redis.get(serveKeys.sessionRequest(this.config.queuePrefix, dep.name, sessionId!));
      if (running) await this.tokens.cancel(running);
      res.status(200).json({ text: '', tokens: 0, input_tokens: 0, history_tokens: 0, finish_reason: 'stop' });
      return;
    }
    if (!body.end && !body.prompt) throw new InvalidInputError('prompt must not be empty', { param: 'prompt' });
    const req = this.request(dep, 'interactive', 'interactive', { temperature: 0.8, top_p: 0.8, top_k: 40, ...body }, {
      prompts: [body.prompt ?? ''],
      n: 1,
      ...(body.request_output_len !== undefined ? { maxTokens: body.request_output_len } : {}),
      sessionId: sessionId ?? 1 + Math.floor(Math.random() * MAX_SESSION_ID),
      interactiveMode,
      ...(body.end ? { end: true } : {}),
    });
    let queue = inferQueueName(dep.name);
    let pinnedTo: string | undefined;
    if (sessionId !== undefined) {
      // Sticky: the session's KV cache lives on one worker; send its turns to that worker's own queue while it serves
      // (a draining or dead worker's turns start over on any worker).
      const r = this.tokens.redis;
      const holder = await r.get(serveKeys.session(this.config.queuePrefix, dep.name, sessionId));
      if (holder && (await r.get(serveKeys.workerAlive(this.config.queuePrefix, holder))) === ('serving' satisfies WorkerLiveness)) {
        queue = sessionQueueName(dep.name, holder);
        pinnedTo = holder;
      }
    }
    let start: Extract<StreamEvent, { t: 'start' }> | undefined;
    const line = (text: string, tokens: number, finish: string | null) => ({
      text,
      tokens,
      input_tokens: start?.promptTokens ?? 0,
      history_tokens: start?.historyTokens ?? 0,
      finish_reason: finish,
    });
    await this.serve(dep, req, res, {
      stream: body.stream === true,
      queue,
      pinnedTo,
      // LMDeploy streams newline-delimited JSON objects, one per delta, the last one carrying finish_reason.
      ndjson: true,
      observe: (ev) => {
        if (ev.t === 'start') start = ev;
      },
      chunker: {
        push: (ev) => {
          if (ev.t === 'delta' && ev.text) return [line(ev.text, ev.tokens, null)];
          if (ev.t === 'done') return [line('', ev.completionTokens, ev.finishReason === 'length' ? 'length' : 'stop')];
          return [];
        },
      },
      body: (c) => c.interactive(start?.promptTokens ?? 0, start?.historyTokens ?? 0),
    });
  }

  /** POST /tokenize (vLLM): {count, max_model_len, tokens}. */
  async tokenize(body: TokenizeRequest, res: HttpOut): Promise<void> {
    const dep = await this.deployment(body.model, 'tokenize');
    if ((body.prompt === undefined) === (body.messages === undefined)) throw new InvalidInputError('give either prompt or messages', { param: body.prompt === undefined ? 'prompt' : 'messages' });
    const kwargs = parseTemplateKwargs({ chat_template_kwargs: body.chat_template_kwargs });
    if (kwargs && body.messages === undefined) throw new InvalidInputError('chat_template_kwargs applies to messages only', { param: 'chat_template_kwargs' });
    const spec: TokenizeSpec =
      body.messages !== undefined
        ? { chats: [parseMessages(body.messages as unknown[])], ...(kwargs ? { templateKwargs: kwargs } : {}) }
        : { texts: [body.prompt!], addSpecialTokens: body.add_special_tokens ?? true };
    await this.runTokenizer(dep, spec, res, (t) => ({ count: t.ids[0].length, max_model_len: t.maxModelLen, tokens: t.ids[0] }));
  }

  /** POST /detokenize (vLLM): {prompt}. */
  async detokenize(body: DetokenizeRequest, res: HttpOut): Promise<void> {
    const dep = await this.deployment(body.model, 'tokenize');
    const tokens = body.tokens;
    if (!Array.isArray(tokens) || !tokens.every((t) => Number.isInteger(t) && t >= 0)) throw new InvalidInputError('tokens must be an array of token ids (integers >= 0)', { param: 'tokens' });
    await this.runTokenizer(dep, { decode: tokens as number[] }, res, (t) => ({ prompt: t.text ?? '' }));
  }

  /** POST /v1/encode (LMDeploy): {input_ids, length}, lists when `input` is a list. */
  async encode(body: EncodeRequest, res: HttpOut): Promise<void> {
    const dep = await this.deployment(body.model, 'tokenize');
    const one = typeof body.input === 'string';
    const texts = one ? [body.input as string] : (body.input as string[]);
    if (!texts.length) throw new InvalidInputError('input must not be an empty list', { param: 'input' });
    const spec: TokenizeSpec = body.do_preprocess ? { chats: texts.map((content) => [{ role: 'user', content }]) } : { texts, addSpecialTokens: body.add_bos ?? true };
    await this.runTokenizer(dep, spec, res, (t) => (one ? { input_ids: t.ids[0], length: t.ids[0].length } : { input_ids: t.ids, length: t.ids.map((x) => x.length) }));
  }

  /** Tokenization on a worker that holds the deployment (its tokenizer and chat template), as one JSON answer. */
  private async runTokenizer(dep: DeploymentEntity, spec: TokenizeSpec, res: HttpOut, answer: (t: Extract<StreamEvent, { t: 'tokens' }>) => object): Promise<void> {
    const req = this.request(dep, 'tokenize', 'tok', {}, { n: 1, tokenize: spec });
    let got: Extract<StreamEvent, { t: 'tokens' }> | undefined;
    await this.serve(dep, req, res, {
      stream: false,
      observe: (ev) => {
        if (ev.t === 'tokens') got = ev;
      },
      chunker: { push: () => [] },
      body: () => {
        if (!got) throw new UnavailableError(`request ${req.requestId}: the worker sent no tokens`);
        return answer(got);
      },
    });
  }

  private async deployment(model: string | undefined, kind: ServeKind): Promise<DeploymentEntity> {
    let dep: DeploymentEntity | null;
    if (model === undefined) {
      const all = await this.deployments.listRows();
      if (all.length !== 1) {
        this.events.emit({ type: 'rejected', deployment: null, kind, status: 400 });
        throw new InvalidInputError(`model is required when ${all.length} deployments are served`, { param: 'model' });
      }
      dep = all[0];
    } else {
      dep = await this.deployments.resolve(model);
      if (!dep) {
        this.events.emit({ type: 'rejected', deployment: null, kind, status: 404 });
        throw modelNotFound(model);
      }
    }
    return dep;
  }

  private request(dep: DeploymentEntity, kind: ServeKind, idPrefix: string, s: SamplingFields, rest: Partial<ServeRequest>): ServeRequest {
    const stop = s.stop === undefined ? undefined : typeof s.stop === 'string' ? [s.stop] : s.stop;
    // OpenAI allows 4; vLLM and LMDeploy set no limit, and lm-evaluation-harness's `until` lists can be longer
    if (stop && stop.length > MAX_STOP_SEQUENCES) throw new InvalidInputError(`stop takes at most ${MAX_STOP_SEQUENCES} sequences, got ${stop.length}`, { param: 'stop' });
    return {
      requestId: `${idPrefix}-${randomUUID().replace(/-/g, '')}`,
      deploymentId: dep.id,
      deploymentName: dep.name,
      kind,
      n: 1,
      sampling: {
        temperature: s.temperature ?? 1,
        ...(s.top_p !== undefined ? { topP: s.top_p } : {}),
        ...(s.top_k !== undefined && s.top_k > 0 ? { topK: s.top_k } : {}),
        ...(s.min_p ? { minP: s.min_p } : {}),
        ...(s.repetition_penalty !== undefined ? { repetitionPenalty: s.repetition_penalty } : {}),
        ...(s.presence_penalty ? { presencePenalty: s.presence_penalty } : {}),
        ...(s.frequency_penalty ? { frequencyPenalty: s.frequency_penalty } : {}),
        ...(s.seed !== undefined ? { seed: s.seed } : {}),
      },
      ...(stop?.length ? { stop: stop.filter((x) => x.length > 0) } : {}),
      ...(s.ignore_eos ? { ignoreEos: true } : {}),
      ...(s.skip_special_tokens !== undefined ? { skipSpecialTokens: s.skip_special_tokens } : {}),
      enqueuedAt: Date.now(),
      ...rest,
    };
  }

  /** Admit, enqueue, relay. Errors before the first byte are thrown (the exception filter answers them). */
  private async serve(
    dep: DeploymentEntity,
    req: ServeRequest,
    res: HttpOut,
    o: {
      stream: boolean;
      queue?: string;
      /** The worker whose own queue `queue` is: the request fails if that worker dies before it starts the request. */
      pinnedTo?: string;
      ndjson?: boolean;
      chunker: { push(ev: StreamEvent): object[] };
      body: (c: ResponseCollector) => object;
      /** chat with tools: how the collected reply is parsed into tool_calls, and the tools' names. */
      toolMode?: ToolMode;
      toolNames?: string[];
      /** chat on a deployment with a reasoning parser: the think block becomes reasoning_content. */
      reasoning?: ReasoningParser;
      /** Sees every event first. */
      observe?: (ev: StreamEvent) => void;
    },
  ): Promise<void> {
    // Without a worker the request would wait for SERVE_STREAM_TIMEOUT_MS: say so now (after validation: a bad
    // request is a 400 either way).
    if (!(await this.deployments.isServed(dep))) {
      this.events.emit({ type: 'rejected', deployment: dep.name, kind: req.kind, status: 503 });
      throw new UnavailableError(`no worker-infer has deployment ${dep.name} loaded (yet); workers report it within HEARTBEAT_INTERVAL_MS of loading it`);
    }
    const admitKey = serveKeys.admission(this.config.queuePrefix, dep.name);
    const queueName = o.queue ?? inferQueueName(dep.name);
    const enqueue = () => this.queue.queue(queueName).add(SERVE_JOB, req, { jobId: req.requestId, attempts: 1, removeOnComplete: true, removeOnFail: true });
    let added: Promise<unknown> | undefined;
    let admitted: boolean;
    if (this.admission.roomy(admitKey, dep.maxPending)) {
      // Far below the bound when last seen: admit and enqueue in one round trip instead of two. Both go out on one
      // connection, the admission first, so Redis has decided it before the job exists; if the bound was reached
      // meanwhile, the job is removed, and a worker that took it first finds it not admitted and stops it, unrecorded
      // (ServingHost). Near the bound (where 429s happen) the enqueue waits for the admission, so no job is made.
      const acquired = this.admission.acquire(admitKey, req.requestId, dep.maxPending, { ordered: true });
      added = enqueue();
      added.catch(() => undefined); // awaited below; a failure is the request's error
      const unqueue = () => added!.then(() => this.queue.remove(queueName, req.requestId)).catch(() => false);
      try {
        admitted = await acquired;
      } catch (err) {
        await unqueue();
        throw err;
      }
      if (!admitted) await unqueue();
    } else {
      admitted = await this.admission.acquire(admitKey, req.requestId, dep.maxPending);
    }
    if (!admitted) {
      this.events.emit({ type: 'rejected', deployment: dep.name, kind: req.kind, status: 429 });
      throw new TooManyRequestsError(`deployment ${dep.name} has ${dep.maxPending} requests in flight (its maxPending); retry later`, 1);
    }
    const started = Date.now();
    const controller = new AbortController();
    let finished = false;
    let status = 200;
    let outcome = 'error';
    let start: Extract<StreamEvent, { t: 'start' }> | undefined;
    let end: Extract<StreamEvent, { t: 'end' }> | undefined;
    let ttftMs: number | null = null;
    const lastAt = new Map<number, number>();
    res.on('close', () => {
      if (!finished && !res.writableEnded) controller.abort();
    });
    try {
      await (added ?? enqueue());
      this.events.emit({ type: 'admitted', deployment: dep.name, kind: req.kind, requestId: req.requestId });
      const collector = new ResponseCollector({
        logprobs: req.logprobs,
        ...(o.toolMode ? { toolMode: o.toolMode, toolNames: o.toolNames ?? [] } : {}),
        ...(o.reasoning ? { reasoning: o.reasoning } : {}),
        ...(req.promptLogprobsField !== undefined ? { promptLogprobs: true } : {}),
      });
      // Once a worker has started the request, a worker that dies (killed, out of memory, its host gone) lets its
      // liveness key expire within HEARTBEAT_TIMEOUT_MS: the client hears so then, not after SERVE_STREAM_TIMEOUT_MS.
      // The same for a request waiting in a worker's own queue (an interactive session's turn): no one else takes it.
      const alive = (workerId: string) => this.tokens.redis.exists(serveKeys.workerAlive(this.config.queuePrefix, workerId)).then((n) => n === 1);
      const events = this.tokens.read(req.requestId, {
        signal: controller.signal,
        idleTimeoutMs: this.config.serving.streamTimeoutMs,
        stillServed: () => {
          const worker = start?.workerId ?? o.pinnedTo;
          return worker ? alive(worker) : Promise.resolve(true);
        },
      });
      for await (const ev of events) {
        o.observe?.(ev);
        if (ev.t === 'start') {
          start = ev;
          if (o.stream) {
            // The headers go out now (the prompt fits), so the client parses them while the engine computes the first token.
            res.status(200);
            res.setHeader('Content-Type', o.ndjson ? 'application/x-ndjson' : 'text/event-stream; charset=utf-8');
            res.setHeader('Cache-Control', 'no-cache, no-transform');
            res.setHeader('Connection', 'keep-alive');
            res.setHeader('X-Accel-Buffering', 'no'); // nginx and friends: do not buffer the stream
            res.flushHeaders();
          }
          continue;
        }
        if (ev.t === 'error') {
          if (!res.headersSent) throw errorFromEvent(ev);
          status = ev.status;
          // Mid-stream failure: OpenAI clients raise on a data chunk carrying `error`.
          res.write(o.ndjson ? JSON.stringify(toOpenAIErrorBody({ statusCode: ev.status, error: '', message: ev.message })) + '\n' : `data: ${JSON.stringify(toOpenAIErrorBody({ statusCode: ev.status, error: '', message: ev.message }))}\n\n`);
          break;
        }
        // A delta's metrics are observed after its bytes are written (same tick: a scrape cannot come in between).
        let observe: (() => void) | undefined;
        if (ev.t === 'delta') {
          const now = Date.now();
          const firstToken = ttftMs === null && ev.tokens > 0;
          if (firstToken) ttftMs = now - started;
          const gapMs = now - (lastAt.get(ev.i) ?? started);
          const first = !lastAt.has(ev.i);
          lastAt.set(ev.i, now);
          observe = () => {
            if (firstToken) this.events.emit({ type: 'first_token', deployment: dep.name, kind: req.kind, requestId: req.requestId, ttftMs: ttftMs! });
            this.events.emit({ type: 'tokens', deployment: dep.name, kind: req.kind, requestId: req.requestId, tokens: ev.tokens, gapMs, first });
          };
        }
        if (ev.t === 'end') end = ev;
        if (o.stream) {
          // One write per event (the first delta of a chat is two chunks: role, then content): one packet, one wake-up.
          let text = '';
          for (const c of o.chunker.push(ev)) text += o.ndjson ? JSON.stringify(c) + '\n' : `data: ${JSON.stringify(c)}\n\n`;
          if (text) res.write(text);
        } else {
          collector.push(ev);
        }
        observe?.();
      }
      if (controller.signal.aborted) {
        outcome = 'cancelled';
        return;
      }
      if (o.stream) {
        if (!o.ndjson) res.write('data: [DONE]\n\n');
        res.end();
      } else {
        res.status(200).json(o.body(collector));
      }
      outcome = end ? 'ok' : 'error';
    } catch (err) {
      if (err instanceof PlatformError) status = err.status;
      else status = 500;
      if (res.headersSent) {
        // The stream started: nothing else can be sent but an error chunk.
        this.logger.warn(`request ${req.requestId}: ${(err as Error).message}`);
        if (!res.writableEnded) {
          const body = JSON.stringify(toOpenAIErrorBody({ statusCode: status, error: '', message: (err as Error).message }));
          res.write(o.ndjson ? body + '\n' : `data: ${body}\n\n`);
          res.end();
        }
        return;
      }
      if (!(err instanceof PlatformError)) throw new UnavailableError(`request ${req.requestId} failed: ${(err as Error).message}`);
      throw err;
    } finally {
      finished = true;
      // Observed first, synchronously: the client may already hold the whole response (metrics scraped right after).
      this.events.emit({
        type: 'finished',
        deployment: dep.name,
        kind: req.kind,
        requestId: req.requestId,
        status,
        outcome: controller.signal.aborted ? 'cancelled' : outcome,
        queuedMs: null,
        ttftMs,
        totalMs: Date.now() - started,
        promptTokens: end?.promptTokens ?? start?.promptTokens ?? 0,
        cachedTokens: end?.cachedTokens ?? 0,
        completionTokens: end?.completionTokens ?? 0,
        draftTokens: end?.draftTokens ?? 0,
        acceptedDraftTokens: end?.acceptedDraftTokens ?? 0,
      });
      if (!end && !(status >= 400 && status < 500)) {
        // Client gone, timeout or broken stream: stop the worker (or keep it from starting) and free the slot.
        await this.tokens.cancel(req.requestId).catch(() => undefined);
        await this.queue.remove(queueName, req.requestId).catch(() => false);
      }
      await this.admission.release(admitKey, req.requestId).catch(() => undefined);
      void this.tokens.remove(req.requestId).catch(() => undefined);
    }
  }
}

function modelNotFound(model: string): NotFoundError {
  const e = new NotFoundError('model', model);
  (e as { details?: unknown }).details = { param: 'model', code: 'model_not_found' };
  return e;
}

function checkN(total: number, dep: DeploymentEntity): void {
  if (!Number.isInteger(total) || total < 1 || total > dep.maxBatchSize) {
    throw new InvalidInputError(`n (times the number of prompts) must be in [1, ${dep.maxBatchSize}] (the deployment's maxBatchSize), got ${total}`, { param: 'n' });
  }
}

function errorFromEvent(ev: Extract<StreamEvent, { t: 'error' }>): PlatformError {
  const details = { ...(ev.param ? { param: ev.param } : {}), ...(ev.code ? { code: ev.code } : {}) };
  if (ev.status === 400) return new InvalidInputError(ev.message, details);
  if (ev.status === 503) return new UnavailableError(ev.message, details);
  const e = new UnavailableError(ev.message, details);
  return e;
}

/** OpenAI's response_format: {type: 'text'} (the default), {type: 'json_object'}, or {type: 'json_schema', json_schema:
 * {name, schema, strict?, description?}}; LMDeploy's {type: 'regex_schema', regex_schema: '...'} too. undefined for free text. The worker compiles the schema (a bad one is a 400
 * from there). */
export function parseResponseFormat(raw: unknown): ServingResponseFormat | undefined {
  const param = 'response_format';
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new InvalidInputError(`${param} must be an object`, { param });
  const { type, json_schema: js, regex_schema: rx } = raw as { type?: unknown; json_schema?: unknown; regex_schema?: unknown };
  if (type === 'text') return undefined;
  if (type === 'json_object') return { type: 'json_object' };
  if (type === 'regex_schema') {  // LMDeploy's: the whole reply matches the regular expression
    if (typeof rx !== 'string' || rx === '') throw new InvalidInputError(`${param}.regex_schema must be a regular expression (type regex_schema)`, { param: `${param}.regex_schema` });
    return { type: 'regex', pattern: rx };
  }
  if (type !== 'json_schema') throw new InvalidInputError(`${param}.type must be one of text, json_object, json_schema, regex_schema`, { param: `${param}.type` });
  if (!js || typeof js !== 'object' || Array.isArray(js)) {
    throw new InvalidInputError(`${param}.json_schema must be an object with the schema (type json_schema)`, { param: `${param}.json_schema` });
  }
  const { name, schema, strict } = js as { name?: unknown; schema?: unknown; strict?: unknown };
  if (name !== undefined && (typeof name !== 'string' || !OPENAI_NAME.test(name))) {
    throw new InvalidInputError(`${param}.json_schema.name must be 1-64 letters, digits, _ or -`, { param: `${param}.json_schema.name` });
  }
  if (!schema || typeof schema !== 'object' || Array.isArray(schema)) {
    throw new InvalidInputError(`${param}.json_schema.schema must be a JSON Schema object`, { param: `${param}.json_schema.schema` });
  }
  if (strict !== undefined && strict !== null && typeof strict !== 'boolean') {
    throw new InvalidInputError(`${param}.json_schema.strict must be a boolean`, { param: `${param}.json_schema.strict` });
  }
  return { type: 'json_schema', schema: schema as Record<string, unknown>, ...(typeof strict === 'boolean' ? { strict } : {}), ...(typeof name === 'string' ? { name } : {}) };
}

/**
 * The request's guided decoding, from OpenAI's response_format or one of vLLM's extras: guided_json (a JSON Schema,
 * an object or its JSON text), guided_choice (exactly one of the strings), guided_grammar (an EBNF grammar in
 * xgrammar's dialect, start rule `root`), guided_regex (the whole reply matches it). At most one of them. `param`: the
 * field it came from, which a 400 from the worker names. undefined: free text.
 */
export function parseGuided(body: GuidedFields & { response_format?: unknown }): { format: ServingResponseFormat; param: string } | undefined {
  const given = (['response_format', 'guided_json', 'guided_choice', 'guided_grammar', 'guided_regex'] as const).filter((k) => body[k] !== undefined && body[k] !== null);
  if (given.length > 1) {
    throw new InvalidInputError(`use one kind of guided decoding at a time: ${given.join(' and ')} were both given`, { param: given[1] });
  }
  const rf = parseResponseFormat(body.response_format);
  if (rf) return { format: rf, param: 'response_format' };
  if (body.guided_json !== undefined && body.guided_json !== null) {
    const param = 'guided_json';
    let schema = body.guided_json;
    if (typeof schema === 'string') {
      try {
        schema = JSON.parse(schema);
      } catch (e) {
        throw new InvalidInputError(`${param} is not valid JSON (${(e as Error).message})`, { param });
      }
    }
    if (!schema || typeof schema !== 'object' || Array.isArray(schema)) throw new InvalidInputError(`${param} must be a JSON Schema object (or its JSON text)`, { param });
    return { format: { type: 'json_schema', schema: schema as Record<string, unknown> }, param };
  }
  if (body.guided_choice !== undefined && body.guided_choice !== null) {
    const param = 'guided_choice';
    const c = body.guided_choice;
    if (!Array.isArray(c) || c.length === 0 || !c.every((x) => typeof x === 'string' && x.length > 0)) {
      throw new InvalidInputError(`${param} must be a non-empty array of non-empty strings`, { param });
    }
    return { format: { type: 'choice', choices: c as string[] }, param };
  }
  if (body.guided_grammar !== undefined && body.guided_grammar !== null) {
    const param = 'guided_grammar';
    if (typeof body.guided_grammar !== 'string' || body.guided_grammar.trim() === '') {
      throw new InvalidInputError(`${param} must be an EBNF grammar (a non-empty string whose start rule is root)`, { param });
    }
    return { format: { type: 'grammar', grammar: body.guided_grammar }, param };
  }
  if (body.guided_regex !== undefined && body.guided_regex !== null) {
    const param = 'guided_regex';
    if (typeof body.guided_regex !== 'string' || body.guided_regex === '') throw new InvalidInputError(`${param} must be a regular expression (a non-empty string)`, { param });
    return { format: { type: 'regex', pattern: body.guided_regex }, param };
  }
  return undefined;
}

/** The engine's prompt log-probs for an echo with logprobs (echoTopN) and for vLLM's prompt_logprobs (its own field). */
function promptLogprobsOf(body: { prompt_logprobs?: number; stream?: boolean }, echoTopN: number | undefined): Partial<ServeRequest> {
  const field = body.prompt_logprobs;
  if (field !== undefined && body.stream) throw new InvalidInputError('prompt_logprobs is not available with stream: true', { param: 'prompt_logprobs' });
  if (field === undefined && echoTopN === undefined) return {};
  return { promptLogprobs: Math.max(field ?? 0, echoTopN ?? 0), ...(field !== undefined ? { promptLogprobsField: field } : {}) };
}

/** A completion's prompt: texts, or token ids (OpenAI: an array of integers is one prompt, an array of such arrays several). */
export function parsePrompt(raw: unknown): { texts?: string[]; ids?: number[][] } {
  const isIds = (x: unknown): x is number[] => Array.isArray(x) && x.length > 0 && x.every((t) => Number.isInteger(t) && t >= 0);
  if (typeof raw === 'string') return { texts: [raw] };
  if (Array.isArray(raw) && raw.length > 0) {
    if (raw.every((x) => typeof x === 'string')) return { texts: raw as string[] };
    if (isIds(raw)) return { ids: [raw] };
    if (raw.every(isIds)) return { ids: raw as number[][] };
  }
  throw new InvalidInputError('prompt must be a string, a non-empty array of strings, an array of token ids (integers >= 0) or an array of such arrays', { param: 'prompt' });
}

/**
 * OpenAI chat messages -> the chat template's messages: string content (or text parts joined), plus an assistant's
 * tool_calls and reasoning_content (vLLM's newer `reasoning` too), and a tool message's tool_call_id / name.
 */
export function parseMessages(raw: unknown[]): ServingMessage[] {
  if (!Array.isArray(raw) || raw.length === 0) throw new InvalidInputError('messages must be a non-empty array', { param: 'messages' });
  return raw.map((m, i) => {
    const param = `messages[${i}]`;
    if (!m || typeof m !== 'object') throw new InvalidInputError(`${param} must be an object`, { param });
    const { role, content } = m as { role?: unknown; content?: unknown };
    if (typeof role !== 'string' || !['system', 'user', 'assistant', 'developer', 'tool'].includes(role)) {
      throw new InvalidInputError(`${param}.role must be one of system, user, assistant, developer, tool`, { param: `${param}.role` });
    }
    let text: string;
    if (typeof content === 'string') text = content;
    else if (content === null || content === undefined) text = '';
    else if (Array.isArray(content)) {
      text = content
        .map((part, j) => {
          const p = part as { type?: unknown; text?: unknown };
          if (p?.type !== 'text' || typeof p.text !== 'string') {
            throw new InvalidInputError(`${param}.content[${j}]: only text parts are supported`, { param: `${param}.content` });
          }
          return p.text;
        })
        .join('');
    } else throw new InvalidInputError(`${param}.content must be a string or an array of text parts`, { param: `${param}.content` });
    const out: ServingMessage = { role: role === 'developer' ? 'system' : role, content: text };
    const { tool_calls: calls, tool_call_id: callId, name } = m as { tool_calls?: unknown; tool_call_id?: unknown; name?: unknown };
    if (calls !== undefined && calls !== null) {
      if (role !== 'assistant') throw new InvalidInputError(`${param}.tool_calls: only assistant messages carry tool calls`, { param: `${param}.tool_calls` });
      if (!Array.isArray(calls)) throw new InvalidInputError(`${param}.tool_calls must be an array`, { param: `${param}.tool_calls` });
      out.tool_calls = calls.map((c, j) => {
        const fn = (c as { function?: { name?: unknown; arguments?: unknown } } | null)?.function;
        if (!fn || typeof fn.name !== 'string' || typeof fn.arguments !== 'string') {
          throw new InvalidInputError(`${param}.tool_calls[${j}] must be {id, type: "function", function: {name, arguments (a JSON string)}}`, { param: `${param}.tool_calls` });
        }
        const id = (c as { id?: unknown }).id;
        return { ...(typeof id === 'string' ? { id } : {}), type: 'function' as const, function: { name: fn.name, arguments: fn.arguments } };
      });
    }
    if (role === 'tool') {
      if (typeof callId !== 'string') throw new InvalidInputError(`${param}.tool_call_id must be the id of the call this message answers`, { param: `${param}.tool_call_id` });
      out.tool_call_id = callId;
    }
    if (typeof name === 'string' && role === 'tool') out.name = name;
    const { reasoning_content: rc, reasoning } = m as { reasoning_content?: unknown; reasoning?: unknown };
    const thought = typeof rc === 'string' ? rc : typeof reasoning === 'string' ? reasoning : undefined;
    if (role === 'assistant' && thought !== undefined) out.reasoning_content = thought;
    return out;
  });
}
