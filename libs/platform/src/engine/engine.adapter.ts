// The only file in libs/platform that knows the engine's API. When @lmfleet/engine changes, only this file
// follows. The engine is loaded lazily: the API process only ever calls inspectModel (pure TS: config.json
// and safetensors headers), so it never loads the native addon; workers load the rest when a job needs it.
import { Injectable, Logger } from '@nestjs/common';
import { InvalidInputError, UnavailableError } from '../errors';

export interface ModelInfo {
  architecture: string;
  modelType: string;
  dtype: string;
  numParams: number;
  sizeBytes: number;
  contextLength: number | null;
  quantization: Record<string, unknown> | null;
  hasTokenizer: boolean;
  hasChatTemplate: boolean;
}

export interface GenConfig {
  maxNewTokens?: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  seed?: number;
}

export interface Generation {
  text: string;
  [k: string]: unknown;
}

export interface LoadedEngine {
  generate(prompts: string[], genConfig: GenConfig): Promise<Generation[]>;
  dispose(): Promise<void> | void;
}

export interface EvalPplOptions {
  datasetFile: string;
  seqlen: number;
  maxWindows?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface EvalPplResult {
  ppl: number;
  windows: number;
  tokens: number;
  seconds: number;
}

export interface EngineLoadOptions {
  backend: 'auto' | 'cpu' | 'cuda';
}

/** DI token; tests bind a fake. */
export const ENGINE_ADAPTER = Symbol('ENGINE_ADAPTER');

export interface EngineAdapter {
  inspectModel(dir: string): Promise<ModelInfo>;
  load(dir: string, opts: EngineLoadOptions): Promise<LoadedEngine>;
  evalPpl(dir: string, opts: EvalPplOptions & EngineLoadOptions): Promise<EvalPplResult>;
}

// The engine module's shape as we use it (structural, so a missing export is a clear runtime error).
interface Inspection extends Omit<ModelInfo, 'contextLength'> {
  contextLength: number | null;
  supported?: boolean;
  supportedArchitectures?: string[];
}
interface EngineModule {
  inspectModel?: (dir: string) => Inspection | Promise<Inspection>;
  Engine?: { fromPretrained(dir: string, opts: Record<string, unknown>): Promise<EngineInstance> };
  evalPpl?: (engineOrDir: unknown, opts: Record<string, unknown>) => Promise<EvalPplResult>;
}
interface EngineInstance {
  generate(prompts: string[], genConfig: Record<string, unknown>): Promise<unknown>;
  dispose?(): unknown;
}

type Log = (level: 'debug' | 'info' | 'warn' | 'error', message: string) => void;
const engineLogger = new Logger('engine');
const log: Log = (level, message) => (level === 'error' ? engineLogger.error(message) : level === 'warn' ? engineLogger.warn(message) : level === 'info' ? engineLogger.log(message) : engineLogger.debug(message));

/** Engine error codes (libs/engine/src/errors.ts) that mean "your input is wrong", not "try again". */
const INPUT_ERROR_CODES = new Set(['E_MODEL_FORMAT', 'E_UNSUPPORTED_ARCHITECTURE', 'E_QUANT_CONFIG', 'E_INVALID_ARGUMENT']);
const INPUT_ERROR_NAMES = new Set(['ModelFormatError', 'UnsupportedArchitectureError', 'QuantConfigError']);

export function isEngineInputError(err: unknown): boolean {
  const e = err as { code?: unknown; name?: unknown };
  return (typeof e?.code === 'string' && INPUT_ERROR_CODES.has(e.code)) || (typeof e?.name === 'string' && INPUT_ERROR_NAMES.has(e.name));
}

/**
 * `inspect`: only the engine's inspect module (config.json, safetensors headers, tokenizer files), so the
 * API never loads the generation code or the addon. `full`: the whole engine (workers).
 */
function loadEngineModule(part: 'inspect' | 'full' = 'full'): EngineModule {
  try {
    /* eslint-disable @typescript-eslint/no-require-imports */
    return (part === 'inspect' ? require('@lmfleet/engine/inspect') : require('@lmfleet/engine')) as EngineModule;
    /* eslint-enable @typescript-eslint/no-require-imports */
  } catch (err) {
    throw new UnavailableError(`the engine (@lmfleet/engine) could not be loaded: ${(err as Error).message}`);
  }
}

function need<K extends keyof EngineModule>(mod: EngineModule, key: K): NonNullable<EngineModule[K]> {
  const v = mod[key];
  if (!v) throw new UnavailableError(`@lmfleet/engine does not export ${String(key)} in this build`);
  return v as NonNullable<EngineModule[K]>;
}

function asGenerations(out: unknown): Generation[] {
  const items = Array.isArray(out) ? out : [out];
  return items.map((o) => (typeof o === 'string' ? { text: o } : { ...(o as object), text: String((o as { text?: unknown }).text ?? '') }));
}

@Injectable()
export class LmfleetEngineAdapter implements EngineAdapter {
  async inspectModel(dir: string): Promise<ModelInfo> {
    const inspect = need(loadEngineModule('inspect'), 'inspectModel');
    let info: Inspection;
    try {
      info = await inspect(dir);
    } catch (err) {
      if (isEngineInputError(err)) throw new InvalidInputError(`model at ${dir} cannot be read: ${(err as Error).message}`);
      throw err;
    }
    if (info.supported === false) {
      throw new InvalidInputError(`architecture ${info.architecture} is not supported (supported: ${(info.supportedArchitectures ?? []).join(', ')})`);
    }
    return {
      architecture: info.architecture,
      modelType: info.modelType,
      dtype: info.dtype,
      numParams: info.numParams,
      sizeBytes: info.sizeBytes,
      contextLength: info.contextLength,
      quantization: info.quantization,
      hasTokenizer: info.hasTokenizer,
      hasChatTemplate: info.hasChatTemplate,
    };
  }

  async load(dir: string, opts: EngineLoadOptions): Promise<LoadedEngine> {
    const Engine = need(loadEngineModule(), 'Engine');
    const engine = await Engine.fromPretrained(dir, { backend: opts.backend, log });
    return {
      generate: async (prompts, genConfig) => asGenerations(await engine.generate(prompts, { ...genConfig })),
      dispose: async () => {
        await engine.dispose?.();
      },
    };
  }

  async evalPpl(dir: string, opts: EvalPplOptions & EngineLoadOptions): Promise<EvalPplResult> {
    const evalPpl = need(loadEngineModule(), 'evalPpl');
    const { backend, ...rest } = opts;
    try {
      return await evalPpl(dir, { ...rest, backend, log });
    } catch (err) {
      if (isEngineInputError(err)) throw new InvalidInputError((err as Error).message);
      throw err;
    }
  }
}
