// Tensor parallelism on the real CPU backend (ranks as threads): tiny random models sharded over 2 and 4 ranks give
// the same greedy tokens as tp 1 for 64 steps and logits within fp16 tolerance; Qwen2's q/k/v bias, InternLM2's
// packed wqkv, GQA with fewer KV heads than ranks (replicated), tied embeddings, mixtures of experts (Mixtral,
// Qwen3-MoE; AutoAWQ experts in models/moe.spec.ts) and W4A16 (AutoAWQ RTN) weights included; rank threads that poll between steps change nothing; widths that do not divide are refused with errors
// that name them.
import * as path from 'node:path';
import { autoAwq } from '../quant/awq';
import { nativeCpuOrReport } from '../testing/native-cpu';
import { makeTempDir } from '../testing/tmp-dir';
import { writeTinyModel, type TinyModelOptions } from '../testing/tiny-model';
import { Engine } from './engine';
import { PretrainedModel } from './pretrained';

const native = nativeCpuOrReport('tensor parallel');
const d = native ? describe : describe.skip;
const STEPS = 64;
const PROMPTS = ['the cat sat on', 'def read(path):', 'hello'];

/** A tiny model whose vocabulary divides by 8 (padded with extra special tokens). */
function tinyModel(dir: string, opts: TinyModelOptions): string {
  const { vocabSize } = writeTinyModel(dir, opts);
  if (vocabSize % 8) writeTinyModel(dir, { ...opts, vocabSize: Math.ceil(vocabSize / 8) * 8 });
  return dir;
}

interface Run {
  tokens: number[][];
  logits: Float32Array;
}

async function run(dir: string, tp: number, quantPolicy: 0 | 4 | 8 = 0): Promise<Run> {
  const engine = await Engine.fromPretrained(dir, { native: native!, backend: 'cpu', tp, threads: 2, maxBatchSize: 4, sessionLen: 256, quantPolicy });
  try {
    const results = await engine.generate(PROMPTS, { maxNewTokens: STEPS, temperature: 0, ignoreEos: true });
    const ids = engine.pretrained.tokenizer.encode(PROMPTS[0]);
    const logits = await engine.pretrained.forward(ids);
    return { tokens: results.map((r) => r.tokenIds), logits };
  } finally {
    await engine.dispose();
  }
}

/** max |a - b| / (fp16 tolerance at |a|): <= 1 means every logit is within 2e-3 + 2e-3 |a|. */
function fp16Excess(a: Float32Array, b: Float32Array): number {
  expect(b.length).toBe(a.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / (2e-3 + 2e-3 * Math.abs(a[i])));
  return worst;
}

d('tensor parallelism (cpu ranks)', () => {
  const tmp = makeTempDir('lmfleet-tp-');
  afterAll(() => tmp.cleanup());

  const cases: [string, TinyModelOptions][] = [
    ['llama GQA (4 q heads, 2 KV heads)', { arch: 'llama', numHeads: 4, numKvHeads: 2, seed: 3 }],
    ['qwen2 with q/k/v bias', { arch: 'qwen2', numHeads: 4, numKvHeads: 2, seed: 4 }],
    ['internlm2 packed wqkv with bias', { arch: 'internlm2', numHeads: 4, numKvHeads: 2, bias: true, seed: 5 }],
    ['llama MQA (1 KV head: replicated over the ranks), tied embeddings', { arch: 'llama', numHeads: 4, numKvHeads: 1, tieWordEmbeddings: true, seed: 6 }],
    ['qwen3 per-head q/k norms, q wider than hidden', { arch: 'qwen3', numHeads: 4, numKvHeads: 2, headDim: 32, seed: 13 }],
    // mixtures of experts: every expert split as the dense MLP is, the router replicated (all ranks route alike)
    ['mixtral, 4 experts, 2 per token', { arch: 'mixtral', numHeads: 4, numKvHeads: 2, numExperts: 4, numExpertsPerTok: 2, seed: 14 }],
    ['qwen3-moe, 4 experts, 2 per token, not renormalized', { arch: 'qwen3_moe', numHeads: 4, numKvHeads: 2, numExperts: 4, numExpertsPerTok: 2, normTopkProb: false, seed: 15 }],
  ];
  for (const [name, opts] of cases) {
    it(`${name}: tp 2 and 4 give tp 1's greedy tokens for ${STEPS} steps and its logits within fp16 tolerance`, async () => {
      const dir = tinyModel(path.join(tmp.dir, name.replace(/[^a-z0-9]+/gi, '-')), { hiddenSize: 64, intermediateSize: 128, numLayers: 2, ...opts });
      const base = await run(dir, 1);
      expect(base.tokens.every((t) => t.length === STEPS)).toBe(true);
      for (const tp of [2, 4]) {
        const r = await run(dir, tp);
        expect(r.tokens).toEqual(base.tokens);
        const excess = fp16Excess(base.logits, r.logits);
        expect(excess).toBeLessThanOrEqual(1);
        // the shards really ran: summing partial products in another order moves the last bits
        expect(excess).toBeGreaterThan(0);
      }
    }, 240_000);
  }

  it('int8 KV cache (quant_policy 8): each rank quantizes its own KV heads, as tp 1 does per head', async () => {
    const dir = tinyModel(path.join(tmp.dir, 'kv8'), { arch: 'qwen2', hiddenSize: 64, intermediateSize: 128, numHeads: 4, numKvHeads: 2, numLayers: 2, seed: 9 });
    const base = await run(dir, 1, 8);
    const r = await run(dir, 2, 8);
    expect(r.tokens).toEqual(base.tokens);
    expect(fp16Excess(base.logits, r.logits)).toBeLessThanOrEqual(1);
  }, 240_000);

  it('W4A16 (AutoAWQ RTN, group 32): tp 2 splits along whole groups with their scales and zeros; tp 4 is refused', async () => {
    const src = tinyModel(path.join(tmp.dir, 'w4-src'), { arch: 'qwen2', hiddenSize: 64, intermediateSize: 128, numHeads: 4, numKvHeads: 2, numLayers: 2, seed: 7 });
    const awq = path.join(tmp.dir, 'w4-awq');
    await autoAwq(src, { workDir: awq, wGroupSize: 32, searchScale: false, searchClip: false, native: native! });
    const base = await run(awq, 1);
    const r = await run(awq, 2);
    expect(r.tokens).toEqual(base.tokens);
    expect(fp16Excess(base.logits, r.logits)).toBeLessThanOrEqual(1);
    // tp 4: o_proj's input width per rank is 64 / 4 = 16, less than a group
    await expect(PretrainedModel.load(awq, { native: native!, backend: 'cpu', tp: 4 })).rejects.toThrow(
      /tp=4: W4A16 o_proj: each rank's input width 16 .* not a multiple of the group size 32/,
    );
  }, 240_000);

  it("prefix caching at tp 2: every rank reads the shared blocks from its own pool; tp 1's tokens", async () => {
    const dir = tinyModel(path.join(tmp.dir, 'prefix'), { arch: 'qwen2', hiddenSize: 64, intermediateSize: 128, numHeads: 4, numKvHeads: 2, numLayers: 2, seed: 10 });
    const shared = Array.from({ length: 40 }, (_, i) => 5 + ((i * 13) % 50));
    // The third resends the first with the start of its reply: its third block comes from the first's decode steps.
    const prompt = (i: number, out: Array<{ tokens: number[] }>) => (i === 0 ? [...shared, 1, 2] : i === 1 ? [...shared, 3, 4, 5] : [...shared, 1, 2, ...out[0].tokens.slice(0, 6), 9]);
    const greedy = async (tp: number, enablePrefixCaching: boolean) => {
      const engine = await Engine.fromPretrained(dir, { native: native!, backend: 'cpu', tp, threads: 2, maxBatchSize: 4, sessionLen: 256, blockSize: 16, enablePrefixCaching });
      try {
        const out: Array<{ tokens: number[]; cached: number }> = [];
        for (let i = 0; i < 3; i++) {
          const inputIds = prompt(i, out);
          let tokens: number[] = [];
          let cached = 0;
          for await (const o of engine.createInstance().streamInfer({ inputIds, maxNewTokens: 16, stopIds: [], sampling: { temperature: 0 } })) {
            tokens = [...tokens, ...o.tokenIds];
            cached = o.usage?.cachedTokens ?? cached;
          }
          out.push({ tokens, cached });
        }
        return out;
      } finally {
        await engine.dispose();
      }
    };
    const base = await greedy(1, false);
    const r = await greedy(2, true);
    expect(r.map((x) => x.tokens)).toEqual(base.map((x) => x.tokens));
    expect(r.map((x) => x.cached)).toEqual([0, 32, 48]); // 40 shared: 2 full blocks; the third also the first's third block
  }, 240_000);

  it("speculative decoding (ngram) at tp 2: the verification steps run on every rank; tp 1's plain tokens", async () => {
    const dir = tinyModel(path.join(tmp.dir, 'spec'), { arch: 'llama', numHeads: 4, numKvHeads: 2, seed: 14 });
    const base = [5, 9, 14, 3, 27, 8, 11];
    const inputIds = [...base, ...base, ...base.slice(0, 3)];
    const greedy = async (tp: number, speculative: boolean) => {
      const engine = await Engine.fromPretrained(dir, {
        native: native!, backend: 'cpu', tp, threads: 2, maxBatchSize: 4, sessionLen: 256,
        ...(speculative ? { speculative: { method: 'ngram' as const, numDraftTokens: 3 } } : {}),
      });
      try {
        const outs = [];
        for await (const o of engine.createInstance().streamInfer({ inputIds, maxNewTokens: 48, stopIds: [], sampling: { temperature: 0 } })) outs.push(o);
        return { tokens: outs.flatMap((o) => o.tokenIds), drafts: outs[outs.length - 1].usage?.draftTokens ?? 0 };
      } finally {
        await engine.dispose();
      }
    };
    const plain = await greedy(1, false);
    const spec = await greedy(2, true);
    expect(spec.tokens).toEqual(plain.tokens);
    expect(spec.drafts).toBeGreaterThan(0);
  }, 240_000);

  it("prompt log-probs at tp 2 and 4 (the ranks' vocabulary slices gathered): tp 1's within fp16 tolerance, the same top token", async () => {
    const dir = tinyModel(path.join(tmp.dir, 'plp'), { arch: 'qwen2', hiddenSize: 64, intermediateSize: 128, numHeads: 4, numKvHeads: 2, numLayers: 2, seed: 12 });
    const inputIds = Array.from({ length: 70 }, (_, i) => 3 + ((i * 29) % 200));
    const score = async (tp: number) => {
      const engine = await Engine.fromPretrained(dir, { native: native!, backend: 'cpu', tp, threads: 2, maxBatchSize: 4, sessionLen: 256, maxPrefillTokens: 32 });
      try {
        for await (const o of engine.createInstance().streamInfer({ inputIds, maxNewTokens: 0, promptLogprobs: 1, stopIds: [] })) if (o.promptLogprobs) return o.promptLogprobs;
        throw new Error('no prompt log-probs');
      } finally {
        await engine.dispose();
      }
    };
    const base = await score(1);
    expect(base.map((x) => x.tokenId)).toEqual(inputIds.slice(1));
    for (const tp of [2, 4]) {
      const got = await score(tp);
      expect(got.map((x) => x.tokenId)).toEqual(inputIds.slice(1));
      got.forEach((x, k) => expect(Math.abs(x.logprob - base[k].logprob)).toBeLessThanOrEqual(2e-3 + 2e-3 * Math.abs(base[k].logprob)));
      expect(got.map((x) => x.top[0].tokenId)).toEqual(base.map((x) => x.top[0].tokenId));
    }
  }, 240_000);

  it('refuses widths that do not divide, naming them', async () => {
    const dir = tinyModel(path.join(tmp.dir, 'odd'), { arch: 'llama', hiddenSize: 96, numHeads: 6, numKvHeads: 3, intermediateSize: 96, numLayers: 1, seed: 8 });
    const load = (tp: number) => PretrainedModel.load(dir, { native: native!, backend: 'cpu', tp });
    await expect(load(4)).rejects.toThrow(/tp=4: numHeads 6 does not divide by 4/);
    await expect(load(2)).rejects.toThrow(/tp=2: numKvHeads 3 neither divides by 2 nor divides it/);
    await expect(load(0)).rejects.toThrow(/tp must be/);
    // tp 3 divides heads 6, KV heads 3 and intermediate 96; a vocabulary of 8k + 4 does not
    const v = path.join(tmp.dir, 'odd-vocab');
    const { vocabSize } = writeTinyModel(v, { arch: 'llama', hiddenSize: 96, numHeads: 6, numKvHeads: 3, intermediateSize: 96, numLayers: 1 });
    const odd = vocabSize % 3 ? vocabSize : vocabSize + 1;
    writeTinyModel(v, { arch: 'llama', hiddenSize: 96, numHeads: 6, numKvHeads: 3, intermediateSize: 96, numLayers: 1, vocabSize: odd });
    await expect(PretrainedModel.load(v, { native: native!, backend: 'cpu', tp: 3 })).rejects.toThrow(
      new RegExp(`tp=3: vocabSize ${odd} does not divide by 3`),
    );
  }, 60_000);
});
