import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidInputError, type EngineAdapter, type EvalPplOptions, type LoadedEngine, type ModelInfo } from '@lmfleet/platform';

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
  loads = 0;

  async inspectModel(dir: string): Promise<ModelInfo> {
    if (!fs.existsSync(path.join(dir, 'config.json'))) throw new InvalidInputError(`model at ${dir} cannot be read: config.json is missing`);
    return {
      architecture: 'Qwen2ForCausalLM',
      modelType: 'qwen2',
      dtype: 'bf16',
      numParams: 1234,
      sizeBytes: 5678,
      contextLength: 2048,
      quantization: null,
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

  async evalPpl(_dir: string, opts: EvalPplOptions) {
    this.evalCalls++;
    if (this.failEvals > 0) {
      this.failEvals--;
      throw new Error('transient engine failure');
    }
    const windows = opts.maxWindows ?? 4;
    for (let i = 1; i <= windows; i++) {
      await new Promise((r) => setTimeout(r, this.windowMs));
      opts.onProgress?.(i, windows);
    }
    return { ppl: 12.5, windows, tokens: windows * opts.seqlen, seconds: (windows * this.windowMs) / 1000 };
  }
}
