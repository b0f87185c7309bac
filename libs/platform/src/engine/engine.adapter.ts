// The only file in libs/platform that knows the engine's API. When @lmfleet/engine changes, only this file
// follows. The engine is loaded lazily: the API process only ever calls inspectModel (pure TS: config.json
// and safetensors headers), so it never loads the native addon; workers load the rest when a job needs it.
import { Injectable, Logger } from '@nestjs/common';
// Types only (erased at build): the adapter's shapes follow the engine's, so an engine change fails tsc here.
import type * as Engine from '@lmfleet/engine';
import type * as Inspect from '@lmfleet/engine/inspect';
import { InvalidInputError, UnavailableError } from '../errors';
import { runEngineCall } from './engine-process';

/** What registration records (inspectModel without its support verdict, which the adapter turns into a 400). */
export type ModelInfo = Omit<Engine.ModelInspection, 'dir' | 'arch' | 'supported' | 'supportedArchitectures'>;

export type GenConfig = Pick<Engine.GenerationConfig, 'maxNewTokens' | 'temperature' | 'topP' | 'topK' | 'seed'>;

export type Generation = Pick<Engine.GenerateResult, 'text'> & Partial<Omit<Engine.GenerateResult, 'text'>>;

export interface LoadedEngine {
  generate(prompts: string[], genConfig: GenConfig): Promise<Generation[]>;
  dispose(): Promise<void> | void;
}

export type EvalPplOptions = Pick<Engine.EvalPplOptions, 'datasetFile' | 'seqlen' | 'maxWindows'> & {
  onProgress?: (done: number, total: number) => void;
};

export type EvalPplResult = Pick<Engine.EvalPplResult, 'ppl' | 'windows' | 'tokens' | 'seconds'>;

type QuantProgress = { onProgress?: (fraction: number, message: string) => void };

export type CalibrateOptions = Pick<Engine.CalibrateOptions, 'dataset' | 'samples' | 'seqlen' | 'workDir'> & QuantProgress;
export type CalibrateResult = Pick<Engine.CalibManifest, 'samples' | 'seqlen' | 'tokens'>;

export type AutoAwqOptions = Pick<
  Engine.AutoAwqOptions,
  'wBits' | 'wGroupSize' | 'workDir' | 'dstDir' | 'searchScale' | 'searchClip' | 'calibDataset' | 'calibSamples' | 'calibSeqlen'
> &
  QuantProgress;
export type AutoAwqResult = Pick<Engine.AutoAwqResult, 'dstDir' | 'wBits' | 'wGroupSize' | 'searchScale' | 'searchClip' | 'seconds'>;

export type ConvertOptions = Pick<Engine.ConvertOptions, 'modelFormat' | 'groupSize' | 'dstPath'> & QuantProgress;
export type ConvertResult = Pick<Engine.ConvertResult, 'dstPath' | 'seconds'>;

export interface EngineLoadOptions {
  backend: 'auto' | 'cpu' | 'cuda';
}

/** DI token; tests bind a fake. */
export const ENGINE_ADAPTER = Symbol('ENGINE_ADAPTER');

export interface EngineAdapter {
  inspectModel(dir: string): Promise<ModelInfo>;
  load(dir: string, opts: EngineLoadOptions): Promise<LoadedEngine>;
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

  // The long calls run in a child process (engine-process.ts): the engine tokenizes and searches in JS, and
  // the worker's event loop must keep renewing its BullMQ lock and heartbeating meanwhile.
  evalPpl(dir: string, { onProgress, ...opts }: EvalPplOptions & EngineLoadOptions): Promise<EvalPplResult> {
    return inputErrorsAs400(() => runEngineCall<EvalPplResult>('evalPpl', [dir, opts], { onProgress, log }));
  }

  calibrate(dir: string, { onProgress, ...opts }: CalibrateOptions & EngineLoadOptions): Promise<CalibrateResult> {
    return inputErrorsAs400(async () => (await runEngineCall<{ manifest: CalibrateResult }>('calibrate', [dir, opts], { onProgress, log })).manifest);
  }

  autoAwq(dir: string, { onProgress, ...opts }: AutoAwqOptions & EngineLoadOptions): Promise<AutoAwqResult> {
    return inputErrorsAs400(() => runEngineCall<AutoAwqResult>('autoAwq', [dir, opts], { onProgress, log }));
  }

  convert(modelName: string, dir: string, { onProgress, ...opts }: ConvertOptions): Promise<ConvertResult> {
    return inputErrorsAs400(() => runEngineCall<ConvertResult>('convert', [modelName, dir, opts], { onProgress, log }));
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
