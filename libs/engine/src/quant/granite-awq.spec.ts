// auto_awq on Granite. The engine folds Granite's scalars into the canonical tensors as they load (embedding x
// embedding_multiplier, o/down x residual_multiplier, lm_head / logits_scaling); AWQ searches and quantizes those folded
// tensors, and the writer divides the folds back out, so the checkpoint is a plain Granite one that every reader
// applying the scalars at run time (transformers, our loader) reads as the model AWQ quantized. Checked here:
//  - the written directory's logits equal those of the in-memory quantized model itself, written with every tensor
//    as it is in memory (folded) under a config whose folded scalars are 1: "the folded path";
//  - the tensors AWQ leaves alone come back byte for byte (embedding, lm_head, o biases); a tied head is written once;
//  - RTN and AWQ move it from fp16 as they move its Llama twin (its folded tensors as a Llama checkpoint: the same
//    function when the attention multiplier is 1/sqrt(head_dim)).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { evalPpl } from '../eval/ppl';
import { decodeHalf, encodeHalf } from '../io/half';
import { readSafetensorsDir, readTensorBytes, writeSafetensors, type WritableTensor } from '../io/safetensors';
import { LLAMA_STYLE_NAMES } from '../models/common';
import { loadModelSpec, loadModelWeights, type LoadedModelSpec } from '../models/load';
import type { TensorSource } from '../native';
import { cpuLogits, nativeCpuOrReport } from '../testing/native-cpu';
import { makeTempDir } from '../testing/tmp-dir';
import { rng, writeTinyModel } from '../testing/tiny-model';
import { autoAwq, type AutoAwqOptions } from './awq';
import { readSourceF32 } from './block-forward';
import { readCalibText } from './datasets';
import { toAwqGemm, type QuantizedLinear } from './pack';
import { clearAutoAwqWrites, lastAutoAwqWrite } from '../testing/awq-writes';
import { nmse } from '../testing/nmse';

jest.mock('./autoawq', () => jest.requireActual('../testing/awq-writes').recordingAutoawq(jest.requireActual('./autoawq')));

const native = nativeCpuOrReport('granite auto_awq');

const SCALARS = { embedding_multiplier: 12, residual_multiplier: 0.22, logits_scaling: 8, attention_multiplier: 0.015 };
const SHAPE = { hiddenSize: 64, numHeads: 4, numKvHeads: 4, numLayers: 2, intermediateSize: 128 } as const; // MHA: v → o is searched too
const IDS = Int32Array.from({ length: 48 }, (_, i) => (i * 37 + 11) % 250);

interface TinyGranite {
  tie: boolean;
  /** q/k/v/o biases (attention_bias) */
  bias: boolean;
  seed: number;
  /** config scalars (default SCALARS) */
  scalars?: Partial<typeof SCALARS>;
  /** the random embedding table times this (a trained Granite's embedding is small: embedding_multiplier scales it up) */
  embedScale?: number;
}

/** A tiny Granite: Llama weights (with q/k/v/o biases when `bias`) under Granite's config and scalars. */
function writeTinyGranite(dir: string, o: TinyGranite): string {
  writeTinyModel(dir, { arch: 'llama', ...SHAPE, seed: o.seed, tieWordEmbeddings: o.tie });
  const cfgPath = path.join(dir, 'config.json');
  const cfg = JSON.parse(fs.readFileSync(cfgPath, 'utf8'));
  const idx = readSafetensorsDir(dir);
  const tensors: WritableTensor[] = [...idx.tensors.values()].map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: readTensorBytes(t) }));
  if (o.embedScale !== undefined) {
    const e = tensors.find((t) => t.name === 'model.embed_tokens.weight')!;
    e.data = encodeHalf(decodeHalf(e.data, 'f16').map((v) => v * o.embedScale!), 'f16');
  }
  const r = rng(o.seed + 1000);
  for (let i = 0; o.bias && i < SHAPE.numLayers; i++) {
    for (const p of ['q', 'k', 'v', 'o']) {
      const v = Float32Array.from({ length: SHAPE.hiddenSize }, () => (r() - 0.5) * 0.2);
      tensors.push({ name: `model.layers.${i}.self_attn.${p}_proj.bias`, dtype: 'F16', shape: [SHAPE.hiddenSize], data: encodeHalf(v, 'f16') });
    }
  }
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
  fs.writeFileSync(cfgPath, JSON.stringify({
    ...cfg, architectures: ['GraniteForCausalLM'], model_type: 'granite', attention_bias: o.bias, ...SCALARS, ...o.scalars,
  }));
  expect(loadModelSpec(dir).arch.key).toBe('granite');
  return dir;
}

/** The Llama twin of a Granite whose attention multiplier is 1/sqrt(head_dim): its canonical tensors as the engine
 *  loads them (scalars folded in, an lm_head of its own) as a Llama checkpoint, the same function up to the f16
 *  rounding of the folded weights. */
function writeLlamaTwin(graniteDir: string, dir: string): string {
  const loaded = loadModelSpec(graniteDir);
  expect(loaded.spec.rope.attentionScale).toBe(1 / Math.sqrt(loaded.spec.headDim));
  const tensors: WritableTensor[] = loadModelWeights(loaded).tensors.map((t) => (
    { name: hfNameOf(t.name), dtype: 'F16', shape: [...t.shape], data: encodeHalf(readSourceF32(t), 'f16') }
  ));
  fs.mkdirSync(dir);
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(graniteDir, f), path.join(dir, f));
  const { embedding_multiplier: _e, residual_multiplier: _r, logits_scaling: _l, attention_multiplier: _a, ...cfg } = loaded.config as Record<string, unknown>;
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, architectures: ['LlamaForCausalLM'], model_type: 'llama', tie_word_embeddings: false }));
  expect(loadModelSpec(dir).arch.key).toBe('llama');
  return dir;
}

function hfNameOf(canonical: string): string {
  const m = /^layers\.(\d+)\.(.+)$/.exec(canonical);
  const name = m
    ? (LLAMA_STYLE_NAMES.layer as Record<string, string>)[m[2]]?.replace('{i}', m[1])
    : (LLAMA_STYLE_NAMES.global as Record<string, string>)[canonical];
  if (!name) throw new Error(`no HF name for ${canonical}`);
  return name;
}

/**
 * The in-memory quantized model as it is (every tensor folded, the quantized linears' codes and scales untouched),
 * written under a Granite config whose folded scalars are 1 (the attention multiplier is not folded: it stays) and
 * with its own lm_head: loading it runs exactly the tensors auto_awq quantized, nothing divided, nothing folded again.
 */
function writeFoldedPath(dir: string, loaded: LoadedModelSpec, sources: TensorSource[], weights: Map<string, Float32Array>, quantized: Map<string, QuantizedLinear>, groupSize: number): void {
  const tensors: WritableTensor[] = [];
  for (const s of sources) {
    const hf = hfNameOf(s.name);
    const m = /^(layers\.\d+\.(q|k|v|o|gate|up|down))\.weight$/.exec(s.name);
    if (!m) {
      tensors.push({ name: hf, dtype: 'F16', shape: [...s.shape], data: encodeHalf(weights.get(s.name)!, 'f16') });
      continue;
    }
    const ql = quantized.get(m[1])!;
    const t = toAwqGemm(ql);
    const prefix = hf.replace(/\.weight$/, '');
    tensors.push({ name: `${prefix}.qweight`, dtype: 'I32', shape: [ql.in, ql.out / 8], data: new Uint8Array(t.qweight.buffer, t.qweight.byteOffset, t.qweight.byteLength) });
    tensors.push({ name: `${prefix}.qzeros`, dtype: 'I32', shape: [ql.in / groupSize, ql.out / 8], data: new Uint8Array(t.qzeros.buffer, t.qzeros.byteOffset, t.qzeros.byteLength) });
    tensors.push({ name: `${prefix}.scales`, dtype: 'F16', shape: [ql.in / groupSize, ql.out], data: new Uint8Array(t.scales.buffer, t.scales.byteOffset, t.scales.byteLength) });
  }
  fs.mkdirSync(dir);
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(loaded.dir, f), path.join(dir, f));
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({
    ...loaded.config, embedding_multiplier: 1, residual_multiplier: 1, logits_scaling: 1, tie_word_embeddings: false,
    quantization_config: { quant_method: 'awq', bits: 4, group_size: groupSize, zero_point: true, version: 'gemm' },
  }));
}


function maxAbs(a: Float32Array): number {
  let m = 0;
  for (const v of a) m = Math.max(m, Math.abs(v));
  return m;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

(native ? describe : describe.skip)('auto_awq on Granite (scalars folded at load, divided back out when written)', () => {
  const tmp = makeTempDir('lmfleet-granite-awq-');
  afterAll(() => tmp.cleanup());
  const calib = path.join(tmp.dir, 'calib.txt');
  beforeAll(() => fs.writeFileSync(calib, readCalibText('cmake-docs').slice(0, 20_000)));
  const base = (work: string): AutoAwqOptions => ({ workDir: work, wGroupSize: 32, calibDataset: calib, calibSamples: 4, calibSeqlen: 64, native: native! });

  it.each([
    ['untied, q/k/v/o biases, native session', { tie: false, bias: true, seed: 31 }, true],
    ['tied, native session', { tie: true, bias: false, seed: 32 }, true],
    ['untied, TypeScript path', { tie: false, bias: true, seed: 33 }, false],
  ] as const)('%s: the written checkpoint means what the in-memory quantized model meant', async (name, o, session) => {
    const key = `${o.tie ? 'tied' : 'untied'}-${o.seed}`;
    const dir = writeTinyGranite(path.join(tmp.dir, key), o);
    const work = path.join(tmp.dir, `${key}-awq`);
    clearAutoAwqWrites();
    const res = await autoAwq(dir, { ...base(work), session });
    expect(res.layers[0].alphas['v→o']).toBeDefined();
    const [loaded, sources, weights, quantized, wopts] = lastAutoAwqWrite();
    expect(wopts.dstDir).toBe(work);

    // the folded path: the in-memory tensors as they are
    const folded = path.join(tmp.dir, `${key}-folded`);
    writeFoldedPath(folded, loaded, sources, weights, quantized, 32);
    const want = await cpuLogits(native!, folded, IDS);
    const got = await cpuLogits(native!, work, IDS);
    const diff = maxAbsDiff(got, want);
    console.log(`granite auto_awq ${name}: written vs folded path: max |dlogit| ${diff.toExponential(2)} (max |logit| ${maxAbs(want).toFixed(2)}), nmse ${nmse(want, got).toExponential(2)}`);
    expect(diff).toBeLessThan(2e-3 * maxAbs(want));

    // a plain Granite checkpoint: the source's config (scalars, tying) plus quantization_config
    const cfg = JSON.parse(fs.readFileSync(path.join(work, 'config.json'), 'utf8'));
    expect(cfg).toMatchObject({ architectures: ['GraniteForCausalLM'], tie_word_embeddings: o.tie, ...SCALARS, quantization_config: { quant_method: 'awq', group_size: 32 } });
    // what AWQ leaves alone comes back byte for byte, folds divided out (a tied head: written once, as the embedding)
    const src = readSafetensorsDir(dir).tensors;
    const out = readSafetensorsDir(work).tensors;
    const same = ['model.embed_tokens.weight', ...(o.tie ? [] : ['lm_head.weight']), ...(o.bias ? ['model.layers.0.self_attn.o_proj.bias', 'model.layers.1.self_attn.o_proj.bias'] : [])];
    for (const n of same) expect({ n, same: Buffer.from(readTensorBytes(out.get(n)!)).equals(Buffer.from(readTensorBytes(src.get(n)!))) }).toEqual({ n, same: true });
    expect(out.has('lm_head.weight')).toBe(!o.tie);
    expect([...out.keys()].filter((n) => n.endsWith('_proj.weight'))).toEqual([]);
  }, 180_000);

  it('a sane quantization: RTN and AWQ move its logits and perplexity from fp16 as they move its Llama twin\'s', async () => {
    // attention_multiplier 1/sqrt(head_dim) (0.25) makes the Llama twin exist; the embedding is drawn small (/ 12, as a
    // trained Granite's) so that the layers, which quantization changes, weigh in the residual stream as in Llama
    const dir = writeTinyGranite(path.join(tmp.dir, 'quality'), { tie: true, bias: false, seed: 41, scalars: { attention_multiplier: 0.25 }, embedScale: 1 / 12 });
    const llamaDir = writeLlamaTwin(dir, path.join(tmp.dir, 'quality-llama'));
    const evalText = path.join(tmp.dir, 'eval.txt');
    fs.writeFileSync(evalText, readCalibText('cmake-docs').slice(20_000, 40_000));
    const ppl = async (d: string) => (await evalPpl(d, { datasetFile: evalText, seqlen: 128, maxWindows: 8, native: native!, backend: 'cpu' })).ppl;
    const r: Record<string, { nmse: number; ppl: number }> = {};
    for (const [model, src] of [['granite', dir], ['llama twin', llamaDir]] as const) {
      const fp16 = await cpuLogits(native!, src, IDS);
      r[`${model} fp16`] = { nmse: 0, ppl: await ppl(src) };
      for (const mode of ['rtn', 'awq'] as const) {
        const work = path.join(tmp.dir, `quality-${model.replace(' ', '-')}-${mode}`);
        await autoAwq(src, { ...base(work), searchScale: mode === 'awq', searchClip: mode === 'awq' });
        r[`${model} ${mode}`] = { nmse: nmse(fp16, await cpuLogits(native!, work, IDS)), ppl: await ppl(work) };
      }
    }
    console.log(`granite auto_awq quality (W4 g32; logits nmse vs fp16 over ${IDS.length} tokens, ppl over 8 x 128 tokens):\n` +
      Object.entries(r).map(([k, v]) => `  ${k}: nmse ${v.nmse.toExponential(2)}, ppl ${v.ppl.toFixed(3)}`).join('\n'));
    // the fp16 pair is one function
    expect(Math.abs(r['granite fp16'].ppl / r['llama twin fp16'].ppl - 1)).toBeLessThan(1e-3);
    for (const mode of ['rtn', 'awq']) {
      const [g, l] = [r[`granite ${mode}`], r[`llama twin ${mode}`]];
      expect(g.nmse / l.nmse).toBeGreaterThan(0.8);
      expect(g.nmse / l.nmse).toBeLessThan(1.25);
      expect(Math.abs(g.ppl / l.ppl - 1)).toBeLessThan(0.01);
    }
  }, 300_000);
});
