// Perplexity the way the shared reference measures it (and LMDeploy's eval ppl): tokenize the whole file without BOS,
// cut it into non-overlapping windows of `seqlen` tokens (the last partial window is dropped), take the mean token
// NLL of each window, and report ppl = exp(mean over windows of the window means).
import * as fs from 'node:fs';
import { InvalidArgumentError, ModelFormatError } from '../errors';
import { Engine } from '../generation/engine';
import { PretrainedModel } from '../generation/pretrained';
import type { LoadOptions } from '../generation/types';
import type { Tokenizer } from '../tokenizer/tokenizer';

export interface EvalPplOptions extends LoadOptions {
  datasetFile: string;
  seqlen: number;
  /** Evaluate only the first K windows. */
  maxWindows?: number;
  /** Called after each window: windows done, windows in all, and the running mean NLL / elapsed time. */
  onProgress?: (done: number, total: number, info: { meanNll: number; elapsedMs: number }) => void;
}

export interface EvalPplResult {
  ppl: number;
  /** Mean over windows of the per-window mean NLL (natural log). */
  meanNll: number;
  windows: number;
  seqlen: number;
  tokens: number;
  windowNlls: number[];
  elapsedMs: number;
  /** elapsedMs / 1000. */
  seconds: number;
  backend: string;
  /** The KV cache the scores were made with: 'float', or 'int8 online', 'int4 calibrated (<dir>)', ... */
  kvCache: string;
}

interface Scorer {
  tokenizer: Tokenizer;
  backend: string;
  spec: { maxPositionEmbeddings: number };
  kvQuant?: { quantPolicy: number; mode: string };
  scoreTokens(ids: ArrayLike<number>): Promise<Float32Array>;
}

/** Splits token ids into non-overlapping full windows. */
export function pplWindows(ids: ArrayLike<number>, seqlen: number, maxWindows?: number): Int32Array[] {
  const n = Math.floor(ids.length / seqlen);
  const count = maxWindows !== undefined ? Math.min(n, maxWindows) : n;
  const out: Int32Array[] = [];
  for (let w = 0; w < count; w++) out.push(Int32Array.from(Array.prototype.slice.call(ids, w * seqlen, (w + 1) * seqlen)));
  return out;
}

/** ppl from per-window mean NLLs. */
export function pplFromWindowNlls(windowNlls: readonly number[]): { ppl: number; meanNll: number } {
  const meanNll = windowNlls.reduce((a, b) => a + b, 0) / windowNlls.length;
  return { ppl: Math.exp(meanNll), meanNll };
}

export async function evalPpl(target: Engine | PretrainedModel | string, opts: EvalPplOptions): Promise<EvalPplResult> {
  if (!Number.isInteger(opts.seqlen) || opts.seqlen < 2) throw new InvalidArgumentError(`seqlen must be an integer >= 2, got ${opts.seqlen}`);
  if (opts.maxWindows !== undefined && !(opts.maxWindows >= 1)) throw new InvalidArgumentError(`maxWindows must be >= 1, got ${opts.maxWindows}`);
  let text: string;
  try {
    text = fs.readFileSync(opts.datasetFile, 'utf8');
  } catch (e) {
    throw new InvalidArgumentError(`cannot read dataset file ${opts.datasetFile}: ${(e as Error).message}`, { cause: e });
  }
  let owned: PretrainedModel | undefined;
  let scorer: Scorer;
  if (typeof target === 'string') {
    owned = await PretrainedModel.load(target, opts);
    scorer = owned;
  } else {
    scorer = target;
  }
  try {
    if (opts.seqlen > scorer.spec.maxPositionEmbeddings) {
      opts.log?.('warn', `seqlen ${opts.seqlen} exceeds the model's max_position_embeddings`);
    }
    const ids = scorer.tokenizer.encode(text, { addSpecialTokens: false });
    const windows = pplWindows(ids, opts.seqlen, opts.maxWindows);
    if (windows.length === 0) {
      throw new InvalidArgumentError(`dataset ${opts.datasetFile} has ${ids.length} tokens: fewer than one window of ${opts.seqlen}`);
    }
    const t0 = Date.now();
    const windowNlls: number[] = [];
    for (let w = 0; w < windows.length; w++) {
      const nll = await scorer.scoreTokens(windows[w]);
      if (nll.length !== opts.seqlen - 1) {
        throw new ModelFormatError('scoreTokens returned the wrong number of values', { expected: `${opts.seqlen - 1}`, found: `${nll.length}` });
      }
      let sum = 0;
      for (let i = 0; i < nll.length; i++) sum += nll[i];
      windowNlls.push(sum / nll.length);
      opts.onProgress?.(w + 1, windows.length, { meanNll: pplFromWindowNlls(windowNlls).meanNll, elapsedMs: Date.now() - t0 });
    }
    const { ppl, meanNll } = pplFromWindowNlls(windowNlls);
    const elapsedMs = Date.now() - t0;
    return {
      ppl, meanNll, windows: windows.length, seqlen: opts.seqlen, tokens: ids.length, windowNlls, elapsedMs, seconds: elapsedMs / 1000,
      backend: scorer.backend,
      kvCache: scorer.kvQuant?.quantPolicy ? `int${scorer.kvQuant.quantPolicy} ${scorer.kvQuant.mode}` : 'float',
    };
  } finally {
    owned?.dispose();
  }
}
