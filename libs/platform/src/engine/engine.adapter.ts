// The only file in libs/platform that knows the engine's API. When @lmfleet/engine changes, only this file
// follows. The engine is loaded lazily: the API process only ever calls inspectModel (pure TS: config.json
// and safetensors headers), so it never loads the native addon; workers load the rest when a job needs it.
import { Injectable, Logger } from '@nestjs/common';
// Types only (erased at build): the adapter's shapes follow the engine's, so an engine change fails tsc here.
import type * as Engine from '@lmfleet/engine';
import type * as Inspect from '@lmfleet/engine/inspect';
import { InvalidInputError, UnavailableError } from '../errors';
import { runEngineCall } from './engine-process';

/** The engine's built-in calibration sets (pure data, no addon): the platform validates dataset names with them. */
export { BUILTIN_CALIB_DATASETS, isBuiltinCalibDataset } from '@lmfleet/engine/quant/datasets';

/** What registration records (inspectModel without its support verdict, which the adapter turns into a 400). */
export type ModelInfo = Omit<Engine.ModelInspection, 'dir' | 'arch' | 'supported' | 'supportedArchitectures'>;

export type GenConfig = Pick<Engine.GenerationConfig, 'maxNewTokens' | 'temperature' | 'topP' | 'topK' | 'minP' | 'seed'>;

export type Generation = Pick<Engine.GenerateResult, 'text'> & Partial<Omit<Engine.GenerateResult, 'text'>>;

export interface LoadedEngine {
  generate(prompts: string[], genConfig: GenConfig): Promise<Generation[]>;
  dispose(): Promise<void> | void;
}

/** The engine's log lines of one call, besides the process log (a job's log shows them). */
type LogHook = { log?: (level: 'debug' | 'info' | 'warn' | 'error', message: string) => void };

export type EvalPplOptions = Pick<Engine.EvalPplOptions, 'datasetFile' | 'seqlen' | 'maxWindows' | 'quantPolicy' | 'kvCalibDir'> & {
  onProgress?: (done: number, total: number) => void;
} & LogHook;

export type EvalPplResult = Pick<Engine.EvalPplResult, 'ppl' | 'windows' | 'tokens' | 'seconds'> & Partial<Pick<Engine.EvalPplResult, 'kvCache'>>;

type QuantProgress = { onProgress?: (fraction: number, message: string) => void } & LogHook;

export type CalibrateOptions = Pick<Engine.CalibrateOptions, 'dataset' | 'samples' | 'seqlen' | 'workDir'> & QuantProgress;
export type CalibrateResult = Pick<Engine.CalibManifest, 'samples' | 'seqlen' | 'tokens'>;

export type AutoAwqOptions = Pick<
  Engine.AutoAwqOptions,
  'wBits' | 'wGroupSize' | 'workDir' | 'dstDir' | 'searchScale' | 'searchClip' | 'calibDataset' | 'calibSamples' | 'calibSeqlen'
> &
  QuantProgress;
export type AutoAwqResult = Pick<Engine.AutoAwqResult, 'dstDir' | 'wBits' | 'wGroupSize' | 'searchScale' | 'searchClip' | 'seconds'>;

export type ConvertOptions = Pick<Engine.ConvertOptions, 'modelFormat' | 'groupSize' | 'dstPath' | 'quantPolicy' | 'kvCalibDir'> & QuantProgress;
/** The KV cache a workspace records: its policy, and whether (from where) it has calibrated scales. */
export interface WorkspaceKvCache {
  quantPolicy: 0 | 4 | 8;
  calibrated: boolean;
  calibSource?: string;
}
export type ConvertResult = Pick<Engine.ConvertResult, 'dstPath' | 'seconds'> & { kvCache?: WorkspaceKvCache };

export interface EngineLoadOptions {
  backend: 'auto' | 'cpu' | 'cuda';
}

/** A deployment's engine options (LMDeploy's TurbomindEngineConfig names, camelCased). */
export interface ServingLoadOptions extends EngineLoadOptions {
  maxBatchSize?: number;
  sessionLen?: number;
  cacheMaxEntryCount?: number;
  /** KV-cache storage; 'auto': what a workspace recorded (convert --quant-policy), else fp16. */
  kvPolicy?: 'auto' | 'fp16' | 'int8' | 'int4';
  /** LMDeploy's --tp: ranks (GPUs of this host) the model is sharded over. */
  tp?: number;
  /** cpu backend: worker threads (unset or 0: one per core). */
  threads?: number;
  /** LMDeploy's --enable-prefix-caching. */
  enablePrefixCaching?: boolean;
  /** Speculative decoding (n-gram drafts); absent: off. */
  speculative?: ServingSpeculative;
}

/**
 * A deployment's speculative decoding (the engine's SpeculativeConfig): {method: 'ngram', numDraftTokens 1-15,
 * promptLookupMax 1-64 (default 4), promptLookupMin 1..max (default 1)}. The output is plain decoding's; only speed changes.
 */
export type ServingSpeculative = Engine.SpeculativeConfig;

const SPECULATIVE_FIELDS: readonly string[] = ['method', 'numDraftTokens', 'promptLookupMax', 'promptLookupMin'];

/**
 * Why `sp` is not a speculative setting the engine takes (a readable sentence), or undefined when it is. The rules are
 * the engine's own (speculativeOptions), so the API refuses exactly what a worker's engine would; besides them, a field
 * the engine would ignore is refused, as the DTOs refuse unknown fields. Loads only the engine's inspect module, as
 * inspectModel does.
 */
export function speculativeProblem(sp: unknown): string | undefined {
  if (sp !== null && typeof sp === 'object' && !Array.isArray(sp)) {
    const unknown = Object.keys(sp).filter((k) => !SPECULATIVE_FIELDS.includes(k));
    if (unknown.length) return `speculative: unknown field ${unknown.map((k) => JSON.stringify(k)).join(', ')} (fields: ${SPECULATIVE_FIELDS.join(', ')})`;
  }
  try {
    loadEngine('inspect').speculativeOptions(sp as ServingSpeculative);
    return undefined;
  } catch (err) {
    if (isEngineInputError(err)) return (err as Error).message;
    throw err;
  }
}

export type ServingSampling = Pick<Engine.SamplingParams, 'temperature' | 'topP' | 'topK' | 'minP' | 'repetitionPenalty' | 'presencePenalty' | 'frequencyPenalty' | 'seed'>;

export type ServingMessage = Engine.ChatMessage;
/** OpenAI's function tool, as the chat template gets it. */
export type ServingTool = Engine.ToolSpec;

/** OpenAI's response_format as the engine takes it (json_schema: the schema itself, and strict). */
export type ServingResponseFormat = Engine.ResponseFormat;

export interface ServingStreamParams {
  inputIds: number[];
  maxNewTokens: number;
  stopIds: number[];
  stopWords?: string[];
  sampling?: ServingSampling;
  /** Top-N alternatives per token (0: the sampled token's log-prob only; unset: none). */
  logprobs?: number;
  /** The prompt tokens' log-probs (top-N), on the first output; maxNewTokens may then be 0. */
  promptLogprobs?: number;
  skipSpecialTokens?: boolean;
  signal?: AbortSignal;
  responseFormat?: ServingResponseFormat;
  /** responseFormat only once the output contains this text (a reasoning model's '</think>'). */
  guideAfter?: string;
  /** With guideAfter: the text that opens the thinking when the reply may skip it ('<think>', qwen3). */
  guideOpener?: string;
  logitBias?: Record<number, number>;
  minNewTokens?: number;
}

export type ServingOutput = Pick<Engine.StreamOutput, 'tokenIds' | 'text' | 'logprobs' | 'promptLogprobs' | 'finishReason' | 'usage'>;

/** A multi-turn session that keeps its KV cache between turns (LMDeploy's interactive mode). */
export interface ServingChat {
  send(content: string, gen: Omit<ServingStreamParams, 'inputIds' | 'stopIds' | 'maxNewTokens'> & { maxNewTokens: number; ignoreEos?: boolean }): AsyncIterable<ServingOutput>;
  /** Tokens the last turn sent to the engine (the part of the conversation not already cached). */
  readonly lastInputTokens: number;
  /** Tokens the session's KV cache holds. */
  historyTokens(): number;
  end(): void;
}

/** What worker-infer needs from a loaded engine to serve OpenAI requests. */
export interface ServingEngine {
  readonly sessionLen: number;
  /** The model's vocabulary size: token ids a request names (logit_bias, stop_token_ids) must be below it. */
  readonly vocabSize: number;
  readonly maxBatchSize: number;
  /** Tensor parallelism: the device of every rank ('cuda:0', ...; 'cpu' for cpu ranks). */
  readonly devices: string[];
  /** The KV cache it runs with: 'float', or 'int8 online', 'int4 calibrated (<dir>)', ... (a workspace's own with kvPolicy auto). */
  readonly kvCache: string;
  /** Chat messages through the model's chat template, with the generation prompt (and OpenAI's tools, if given;
   *  templateKwargs: extra template variables, vLLM's chat_template_kwargs). */
  encodeChat(messages: ServingMessage[], tools?: ServingTool[], templateKwargs?: Record<string, unknown>): number[];
  /** A plain prompt (with the tokenizer's BOS). */
  encodeText(text: string): number[];
  /** Text as the tokenizer encodes it, with or without its special tokens (BOS): /tokenize, /v1/encode. */
  tokenize(text: string, addSpecialTokens: boolean): number[];
  /** Token ids back to text, special tokens kept (/detokenize). */
  decode(ids: number[]): string;
  /** eos ids, plus the template's end-of-turn token for chat prompts. */
  stopIds(chat: boolean): number[];
  /** One token's text (special tokens included), for logprobs. */
  tokenText(id: number): string;
  stream(p: ServingStreamParams): AsyncIterable<ServingOutput>;
  /** Compiles a response_format's grammar (cached for the request that follows): rejects a schema it cannot use. */
  prepareResponseFormat(format: ServingResponseFormat): Promise<void>;
  /** A chat session with a caller-chosen id in [1, 999999]. */
  createChat(sessionId: number): ServingChat;
  /** specDraftTokens / specAcceptedTokens: speculative decoding's drafts verified and accepted since the engine started. */
  stats(): { running: number; waiting: number; blocksTotal: number; blocksFree: number; blocksCached?: number; specDraftTokens?: number; specAcceptedTokens?: number };
  dispose(): Promise<void>;
}

/** DI token; tests bind a fake. */
export const ENGINE_ADAPTER = Symbol('ENGINE_ADAPTER');

export interface EngineAdapter {
  inspectModel(dir: string): Promise<ModelInfo>;
  load(dir: string, opts: EngineLoadOptions): Promise<LoadedEngine>;
  /** An engine for serving (worker-infer's deployments): streaming, tokenization, sessions. */
  loadServing(dir: string, opts: ServingLoadOptions): Promise<ServingEngine>;
  evalPpl(dir: string, opts: EvalPplOptions & EngineLoadOptions): Promise<EvalPplResult>;
  /** LMDeploy lite's steps: statistics into opts.workDir; an AutoAWQ directory; the engine workspace. */
  calibrate(dir: string, opts: CalibrateOptions & EngineLoadOptions): Promise<CalibrateResult>;
  autoAwq(dir: string, opts: AutoAwqOptions & EngineLoadOptions): Promise<AutoAwqResult>;
  convert(modelName: string, dir: string, opts: ConvertOptions): Promise<ConvertResult>;
}

type EngineModule = typeof Engine;
type InspectModule = typeof Inspect;

type Log = (level: 'debug' | 'info' | 'warn' | 'error', message: string) => void;
const engineLogger = new Logger('engine');
const log: Log = (level, message) => (level === 'error' ? engineLogger.error(message) : level === 'warn' ? engineLogger.warn(message) : level === 'info' ? engineLogger.log(message) : engineLogger.debug(message));
/** The process log, plus a call's own hook when it has one. */
const tee = (extra?: Log): Log =>
  extra
    ? (level, message) => {
        log(level, message);
        extra(level, message);
      }
    : log;

/** Engine error codes (libs/engine/src/errors.ts) that mean "your input is wrong", not "try again". */
const INPUT_ERROR_CODES = new Set<Engine.EngineErrorCode>(['E_MODEL_FORMAT', 'E_UNSUPPORTED_ARCHITECTURE', 'E_QUANT_CONFIG', 'E_INVALID_ARGUMENT']);
const INPUT_ERROR_NAMES = new Set(['ModelFormatError', 'UnsupportedArchitectureError', 'QuantConfigError']);

export function isEngineInputError(err: unknown): boolean {
  const e = err as { code?: unknown; name?: unknown };
  return (typeof e?.code === 'string' && INPUT_ERROR_CODES.has(e.code as Engine.EngineErrorCode)) || (typeof e?.name === 'string' && INPUT_ERROR_NAMES.has(e.name));
}

/**
 * Loads the engine at run time. `inspect`: only its inspect module (config.json, safetensors headers,
 * tokenizer files), so the API never loads the generation code or the addon. `full`: the whole engine.
 */
function loadEngine(): EngineModule;
function loadEngine(part: 'inspect'): InspectModule;
function loadEngine(part: 'inspect' | 'full' = 'full'): EngineModule | InspectModule {
  try {
    /* eslint-disable @typescript-eslint/no-require-imports */
    return part === 'inspect' ? (require('@lmfleet/engine/inspect') as InspectModule) : (require('@lmfleet/engine') as EngineModule);
    /* eslint-enable @typescript-eslint/no-require-imports */
  } catch (err) {
    throw new UnavailableError(`the engine (@lmfleet/engine) could not be loaded: ${(err as Error).message}`);
  }
}

@Injectable()
export class LmfleetEngineAdapter implements EngineAdapter {
  async inspectModel(dir: string): Promise<ModelInfo> {
    let info: Engine.ModelInspection;
    try {
      info = loadEngine('inspect').inspectModel(dir);
    } catch (err) {
      if (isEngineInputError(err)) throw new InvalidInputError(`model at ${dir} cannot be read: ${(err as Error).message}`);
      throw err;
    }
    const { dir: _dir, arch: _arch, supported, supportedArchitectures, ...model } = info;
    if (!supported) {
      throw new InvalidInputError(`architecture ${info.architecture} is not supported (supported: ${supportedArchitectures.join(', ')})`);
    }
    return model;
  }

  async load(dir: string, opts: EngineLoadOptions): Promise<LoadedEngine> {
    const engine = await loadEngine().Engine.fromPretrained(dir, { backend: opts.backend, log });
    return {
      generate: (prompts, genConfig) => engine.generate(prompts, genConfig),
      dispose: () => engine.dispose(),
    };
  }

  async loadServing(dir: string, opts: ServingLoadOptions): Promise<ServingEngine> {
    const quantPolicy = ({ fp16: 0, int8: 8, int4: 4 } as const)[opts.kvPolicy as 'fp16' | 'int8' | 'int4'];
    const engine = await inputErrorsAs400(() =>
      loadEngine().Engine.fromPretrained(dir, {
        backend: opts.backend,
        log,
        ...(opts.maxBatchSize !== undefined ? { maxBatchSize: opts.maxBatchSize } : {}),
        ...(opts.sessionLen !== undefined ? { sessionLen: opts.sessionLen } : {}),
        ...(opts.cacheMaxEntryCount !== undefined ? { cacheMaxEntryCount: opts.cacheMaxEntryCount } : {}),
        ...(quantPolicy !== undefined ? { quantPolicy } : {}),
        ...(opts.tp !== undefined && opts.tp !== 1 ? { tp: opts.tp } : {}),
        ...(opts.threads ? { threads: opts.threads } : {}),
        ...(opts.enablePrefixCaching ? { enablePrefixCaching: true } : {}),
        ...(opts.speculative ? { speculative: opts.speculative } : {}),
      }),
    );
    const tokenTexts = new Map<number, string>();
    const kv = engine.kvQuant;
    return {
      sessionLen: engine.sessionLen,
      vocabSize: engine.spec.vocabSize,
      maxBatchSize: engine.maxBatchSize,
      devices: engine.devices,
      kvCache: kv.quantPolicy ? `int${kv.quantPolicy} ${kv.mode}` : 'float',
      encodeChat: (messages, tools, templateKwargs) => engine.encodePrompt(messages, { ...(tools ? { tools } : {}), ...(templateKwargs ? { templateKwargs } : {}) }),
      encodeText: (text) => engine.encodePrompt(text),
      tokenize: (text, addSpecialTokens) => engine.tokenizer.encode(text, { addSpecialTokens }),
      decode: (ids) => engine.tokenizer.decode(ids, { skipSpecialTokens: false }),
      stopIds: (chat) => engine.defaultStopIds(chat),
      tokenText: (id) => {
        let t = tokenTexts.get(id);
        if (t === undefined) {
          t = engine.tokenizer.decode([id], { skipSpecialTokens: false });
          if (tokenTexts.size < 200_000) tokenTexts.set(id, t);
        }
        return t;
      },
      stream: (p) => engine.createInstance().streamInfer(p),
      prepareResponseFormat: (format) => engine.prepareResponseFormat(format),
      createChat: (sessionId) => {
        const chat = engine.createChat({ sessionId });
        return {
          send: (content, gen) =>
            chat.send(content, {
              ...gen.sampling,
              maxNewTokens: gen.maxNewTokens,
              stopWords: gen.stopWords,
              logprobs: gen.logprobs,
              signal: gen.signal,
              skipSpecialTokens: gen.skipSpecialTokens,
              ignoreEos: gen.ignoreEos,
            }),
          get lastInputTokens() {
            return chat.lastInputTokens;
          },
          historyTokens: () => engine.sessionLength(sessionId),
          end: () => chat.end(),
        };
      },
      stats: () => engine.stats(),
      dispose: () => engine.dispose(),
    };
  }

  // The long calls run in a child process (engine-process.ts): the engine tokenizes and searches in JS, and
  // the worker's event loop must keep renewing its BullMQ lock and heartbeating meanwhile.
  evalPpl(dir: string, { onProgress, log: callLog, ...opts }: EvalPplOptions & EngineLoadOptions): Promise<EvalPplResult> {
    return inputErrorsAs400(() => runEngineCall<EvalPplResult>('evalPpl', [dir, opts], { onProgress, log: tee(callLog) }));
  }

  calibrate(dir: string, { onProgress, log: callLog, ...opts }: CalibrateOptions & EngineLoadOptions): Promise<CalibrateResult> {
    return inputErrorsAs400(async () => (await runEngineCall<{ manifest: CalibrateResult }>('calibrate', [dir, opts], { onProgress, log: tee(callLog) })).manifest);
  }

  autoAwq(dir: string, { onProgress, log: callLog, ...opts }: AutoAwqOptions & EngineLoadOptions): Promise<AutoAwqResult> {
    return inputErrorsAs400(() => runEngineCall<AutoAwqResult>('autoAwq', [dir, opts], { onProgress, log: tee(callLog) }));
  }

  convert(modelName: string, dir: string, { onProgress, log: callLog, ...opts }: ConvertOptions): Promise<ConvertResult> {
    return inputErrorsAs400(async () => {
      const r = await runEngineCall<Engine.ConvertResult>('convert', [modelName, dir, opts], { onProgress, log: tee(callLog) });
      const kv = r.manifest?.kvCache;
      return {
        dstPath: r.dstPath,
        seconds: r.seconds,
        ...(kv ? { kvCache: { quantPolicy: kv.quantPolicy ?? 0, calibrated: !!kv.qparams, ...(kv.qparams ? { calibSource: kv.qparams.source } : {}) } } : {}),
      };
    });
  }
}

/** Engine errors that mean "bad input" become InvalidInputError (400 in the API, no retry in workers). */
async function inputErrorsAs400<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (isEngineInputError(err)) throw new InvalidInputError((err as Error).message);
    throw err;
  }
}
