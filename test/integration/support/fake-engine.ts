import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  InvalidInputError,
  type AutoAwqOptions,
  type CalibrateOptions,
  type ConvertOptions,
  type EngineAdapter,
  type EvalPplOptions,
  type LoadedEngine,
  type ModelInfo,
  type ServingEngine,
} from '@lmfleet/platform';

/**
 * Stands in for @lmfleet/engine in integration tests (the e2e suite runs the real one). Deterministic, and
 * every knob a test needs: transient failures, slow windows.
 */
export class FakeEngine implements EngineAdapter {
  /** evalPpl throws this many times before succeeding. */
  failEvals = 0;
  /** Milliseconds per eval window. */
  windowMs = 5;
  evalCalls = 0;
  /** convert throws a bad-input error. */
  failConvert = false;
  loads = 0;
  /** The options of the last evalPpl / convert call (KV-cache flags reach the engine). */
  lastEval?: EvalPplOptions;
  lastConvert?: ConvertOptions;

  async inspectModel(dir: string): Promise<ModelInfo> {
    if (!fs.existsSync(path.join(dir, 'config.json'))) throw new InvalidInputError(`model at ${dir} cannot be read: config.json is missing`);
    const quantization = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')).quantization_config ?? null;
    return {
      architecture: 'Qwen2ForCausalLM',
      modelType: 'qwen2',
      dtype: quantization ? 'float16' : 'bf16',
      numParams: 1234,
      sizeBytes: 5678,
      contextLength: 2048,
      quantization,
      hasTokenizer: true,
      hasChatTemplate: true,
    };
  }

  async load(_dir: string): Promise<LoadedEngine> {
    this.loads++;
    return {
      generate: async (prompts) => prompts.map((p) => ({ text: `echo: ${p}`, finishReason: 'length' })),
      dispose: () => undefined,
    };
  }

  async loadServing(): Promise<ServingEngine> {
    throw new Error('the fake engine does not serve: serving tests run the real engine on a tiny model');
  }

  /** 12.5 on an unquantized model; 13 on a derived one (AWQ config or workspace), so before/after differ. */
  async evalPpl(dir: string, opts: EvalPplOptions) {
    this.evalCalls++;
    this.lastEval = opts;
    if (this.failEvals > 0) {
      this.failEvals--;
      throw new Error('transient engine failure');
    }
    const windows = opts.maxWindows ?? 4;
    for (let i = 1; i <= windows; i++) {
      await new Promise((r) => setTimeout(r, this.windowMs));
      opts.onProgress?.(i, windows);
    }
    const cfg = path.join(dir, 'config.json');
    const derived = fs.existsSync(path.join(dir, 'lmfleet.json')) || (fs.existsSync(cfg) && 'quantization_config' in JSON.parse(fs.readFileSync(cfg, 'utf8')));
    // A quantized KV cache costs a little perplexity, as the real one does.
    const kvCache = opts.quantPolicy ? `int${opts.quantPolicy} ${opts.kvCalibDir ? 'calibrated' : 'online'}` : 'float';
    return { ppl: (derived ? 13 : 12.5) + (opts.quantPolicy ? 0.25 : 0), windows, tokens: windows * opts.seqlen, seconds: (windows * this.windowMs) / 1000, kvCache };
  }

  async calibrate(_dir: string, opts: CalibrateOptions) {
    const samples = opts.samples ?? 128;
    const seqlen = opts.seqlen ?? 2048;
    opts.onProgress?.(0.5, 'half');
    fs.writeFileSync(path.join(opts.workDir, 'calib_manifest.json'), JSON.stringify({ samples, seqlen }));
    fs.writeFileSync(path.join(opts.workDir, 'calib_stats.safetensors'), Buffer.alloc(64, 1));
    opts.onProgress?.(1, 'done');
    return { samples, seqlen, tokens: samples * seqlen };
  }

  async autoAwq(_dir: string, opts: AutoAwqOptions) {
    if (!fs.existsSync(path.join(opts.workDir, 'calib_manifest.json'))) {
      if (!opts.calibDataset) throw new Error('no calibration');
      await this.calibrate(_dir, { dataset: opts.calibDataset, workDir: opts.workDir, samples: opts.calibSamples, seqlen: opts.calibSeqlen });
    }
    const wGroupSize = opts.wGroupSize ?? 128;
    const dst = opts.dstDir!;
    fs.writeFileSync(path.join(dst, 'config.json'), JSON.stringify({ model_type: 'qwen2', quantization_config: { bits: 4, group_size: wGroupSize, quant_method: 'awq' } }));
    fs.writeFileSync(path.join(dst, 'model.safetensors'), Buffer.alloc(128, 2));
    opts.onProgress?.(1, 'done');
    return { dstDir: dst, wBits: 4 as const, wGroupSize, searchScale: opts.searchScale ?? true, searchClip: opts.searchClip ?? true, seconds: 0.01 };
  }

  async convert(_name: string, _dir: string, opts: ConvertOptions) {
    this.lastConvert = opts;
    if (this.failConvert) throw new InvalidInputError('bad checkpoint');
    if (opts.kvCalibDir && !fs.existsSync(path.join(opts.kvCalibDir, 'calib_stats.safetensors'))) throw new InvalidInputError(`no calib_stats.safetensors in ${opts.kvCalibDir}`);
    fs.writeFileSync(path.join(opts.dstPath, 'lmfleet.json'), JSON.stringify({ format: opts.modelFormat }));
    fs.writeFileSync(path.join(opts.dstPath, 'weights.bin'), Buffer.alloc(256, 3));
    opts.onProgress?.(1, 'done');
    return { dstPath: opts.dstPath, seconds: 0.01, kvCache: { quantPolicy: opts.quantPolicy ?? 0, calibrated: !!opts.kvCalibDir } };
  }
}
