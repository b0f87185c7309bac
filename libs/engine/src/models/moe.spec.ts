// MixtralForCausalLM and Qwen3MoeForCausalLM checkpoints on the CPU engine. The routing arithmetic is checked against
// a TS reference in libs/native/src/engine/moe.spec.ts; here: the HF names map to the right roles. A checkpoint whose
// experts all equal a dense model's MLP computes that dense model (the renormalized weights sum to 1), which only holds
// if w1 / w3 / w2 (Mixtral) and gate_proj / up_proj / down_proj (Qwen3-MoE) land as gate / up / down; then generation
// runs. (calibrate / auto_awq on experts: quant/moe-awq.spec.ts.)
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readSafetensorsDir, readTensorBytes, writeSafetensors, type WritableTensor } from '../io/safetensors';
import { cpuLogits, nativeCpuOrReport } from '../testing/native-cpu';
import { makeTempDir } from '../testing/tmp-dir';
import { writeTinyModel, type TinyModelOptions } from '../testing/tiny-model';
import { Engine } from '../generation/engine';
import { loadModelSpec } from './load';
import { convert } from '../workspace/convert';
import { decodeHalf, encodeHalf } from '../io/half';
import { dequantizeLinear, quantizeLinear, toAwqGemm } from '../quant/pack';

/** An AutoAWQ GEMM Mixtral (attention and experts W4 with `group`, the router fp16, as AutoAWQ writes them) made from
 *  the tiny model `opts` by round-to-nearest, and its dequantized fp16 twin, under `base`. */
function writeAwqMixtral(base: string, opts: TinyModelOptions, group: number): { awq: string; deq: string } {
  const src = writeTinyModel(path.join(base, 'awq-src'), { ...opts, arch: 'mixtral' });
  const tensors = readSafetensorsDir(src.dir).tensors;
  const awq: WritableTensor[] = [];
  const deq: WritableTensor[] = [];
  // AutoAWQ quantizes every decoder linear but the router (block_sparse_moe.gate)
  const quantized = /^model\.layers\.\d+\.(self_attn\.[qkvo]_proj|block_sparse_moe\.experts\.\d+\.w[123])\.weight$/;
  for (const [name, t] of tensors) {
    const bytes = readTensorBytes(t);
    if (!quantized.test(name)) {
      awq.push({ name, dtype: 'F16', shape: [...t.shape], data: bytes });
      deq.push({ name, dtype: 'F16', shape: [...t.shape], data: bytes });
      continue;
    }
    const [out, inp] = t.shape;
    const ql = quantizeLinear(decodeHalf(bytes, 'f16'), out, inp, 4, group, { layer: name });
    const g = toAwqGemm(ql);
    const pre = name.replace(/\.weight$/, '');
    awq.push({ name: `${pre}.qweight`, dtype: 'I32', shape: [inp, out / 8], data: new Uint8Array(g.qweight.buffer) });
    awq.push({ name: `${pre}.qzeros`, dtype: 'I32', shape: [inp / group, out / 8], data: new Uint8Array(g.qzeros.buffer) });
    awq.push({ name: `${pre}.scales`, dtype: 'F16', shape: [inp / group, out], data: new Uint8Array(g.scales.buffer) });
    deq.push({ name, dtype: 'F16', shape: [...t.shape], data: encodeHalf(dequantizeLinear(ql), 'f16') });
  }
  const write = (dir: string, ts: WritableTensor[], quant: boolean) => {
    fs.cpSync(src.dir, dir, { recursive: true });
    fs.rmSync(path.join(dir, 'model.safetensors'));
    writeSafetensors(path.join(dir, 'model.safetensors'), ts);
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    if (quant) cfg.quantization_config = { quant_method: 'awq', bits: 4, group_size: group, zero_point: true, version: 'gemm' };
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg));
  };
  write(path.join(base, 'awq'), awq, true);
  write(path.join(base, 'awq-deq'), deq, false);
  return { awq: path.join(base, 'awq'), deq: path.join(base, 'awq-deq') };
}

const native = nativeCpuOrReport('mixture of experts');
const d = native ? describe : describe.skip;

/** Rewrites `moeDir` with `denseDir`'s tensors: its experts as copies of the dense MLP of the same layer, every tensor
 *  both have (attention, norms, embeddings, a dense layer's MLP) the dense one's; only the routers stay the MoE's. */
function copyDenseMlpIntoExperts(denseDir: string, moeDir: string, expertName: (i: number, e: number, w: 'gate' | 'up' | 'down') => string) {
  const dense = readSafetensorsDir(denseDir).tensors;
  const moe = readSafetensorsDir(moeDir).tensors;
  const out: WritableTensor[] = [];
  for (const [name, t] of moe) {
    const m = /^model\.layers\.(\d+)\..*experts\.(\d+)\./.exec(name);
    let src = dense.get(name) ?? t;
    if (m) {
      const [i, e] = [Number(m[1]), Number(m[2])];
      const which = (['gate', 'up', 'down'] as const).find((w) => name === `${expertName(i, e, w)}.weight`)!;
      src = dense.get(`model.layers.${i}.mlp.${which}_proj.weight`)!;
    }
    out.push({ name, dtype: t.dtype as WritableTensor['dtype'], shape: [...t.shape], data: readTensorBytes(src) });
  }
  fs.rmSync(path.join(moeDir, 'model.safetensors'));
  writeSafetensors(path.join(moeDir, 'model.safetensors'), out);
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

d('mixture-of-experts checkpoints (cpu)', () => {
  const tmp = makeTempDir('lmfleet-moe-');
  afterAll(() => tmp.cleanup());
  const ids = Int32Array.from({ length: 16 }, (_, i) => (i * 11 + 5) % 200);
  const shared: TinyModelOptions = { seed: 21, hiddenSize: 64, intermediateSize: 96, numLayers: 2, numHeads: 4, numKvHeads: 2, numExperts: 4, numExpertsPerTok: 2 };

  it('Mixtral: experts equal to a Llama MLP compute that Llama (w1 = gate, w3 = up, w2 = down); generation runs', async () => {
    const llama = writeTinyModel(path.join(tmp.dir, 'llama'), { ...shared, arch: 'llama' });
    const mixtral = writeTinyModel(path.join(tmp.dir, 'mixtral'), { ...shared, arch: 'mixtral' });
    expect(loadModelSpec(mixtral.dir).spec).toMatchObject({ arch: 'mixtral', numExperts: 4, numExpertsPerTok: 2, moeIntermediateSize: 96 });
    copyDenseMlpIntoExperts(llama.dir, mixtral.dir, (i, e, w) => `model.layers.${i}.block_sparse_moe.experts.${e}.${{ gate: 'w1', up: 'w3', down: 'w2' }[w]}`);
    const a = await cpuLogits(native!, mixtral.dir, ids);
    const b = await cpuLogits(native!, llama.dir, ids);
    expect(maxAbsDiff(a, b)).toBeLessThan(1e-4);
    const engine = await Engine.fromPretrained(mixtral.dir, { native: native!, backend: 'cpu', maxBatchSize: 2, sessionLen: 128 });
    try {
      const [r] = await engine.generate(['the cat'], { maxNewTokens: 12, temperature: 0, ignoreEos: true });
      expect(r.tokenIds).toHaveLength(12);
    } finally {
      await engine.dispose();
    }
  });

  it('Qwen3-MoE: experts equal to a Qwen3 MLP compute that Qwen3 with norm_topk_prob; mlp_only_layers stay dense', async () => {
    const qwen3 = writeTinyModel(path.join(tmp.dir, 'qwen3'), { ...shared, arch: 'qwen3' });
    const moe = writeTinyModel(path.join(tmp.dir, 'qwen3moe'), { ...shared, arch: 'qwen3_moe', moeIntermediateSize: 96, mlpOnlyLayers: [1] });
    expect(loadModelSpec(moe.dir).spec).toMatchObject({ arch: 'qwen3_moe', numExperts: 4, numExpertsPerTok: 2, normTopkProb: true, denseLayers: [1] });
    copyDenseMlpIntoExperts(qwen3.dir, moe.dir, (i, e, w) => `model.layers.${i}.mlp.experts.${e}.${w}_proj`);
    // layer 1 is dense (mlp_only_layers): its MLP is read under the dense names, here Qwen3's own
    expect(readSafetensorsDir(moe.dir).tensors.has('model.layers.1.mlp.gate_proj.weight')).toBe(true);
    expect(readSafetensorsDir(moe.dir).tensors.has('model.layers.1.mlp.gate.weight')).toBe(false);
    expect(maxAbsDiff(await cpuLogits(native!, moe.dir, ids), await cpuLogits(native!, qwen3.dir, ids))).toBeLessThan(1e-4);
    // with norm_topk_prob false the chosen weights sum to less than 1: no longer Qwen3
    const cfgFile = path.join(moe.dir, 'config.json');
    fs.writeFileSync(cfgFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(cfgFile, 'utf8')), norm_topk_prob: false }));
    expect(maxAbsDiff(await cpuLogits(native!, moe.dir, ids), await cpuLogits(native!, qwen3.dir, ids))).toBeGreaterThan(1e-3);
  });

  it('convert writes a workspace of a mixture-of-experts model that generates the same tokens as the HF directory', async () => {
    const mixtral = writeTinyModel(path.join(tmp.dir, 'ws-src'), { ...shared, arch: 'mixtral' });
    const ws = path.join(tmp.dir, 'ws');
    await convert('mixtral', mixtral.dir, { dstPath: ws });
    const gen = async (dir: string) => {
      const e = await Engine.fromPretrained(dir, { native: native!, backend: 'cpu', maxBatchSize: 2, sessionLen: 128 });
      try {
        return (await e.generate(['hello'], { maxNewTokens: 10, temperature: 0, ignoreEos: true }))[0].tokenIds;
      } finally {
        await e.dispose();
      }
    };
    expect(await gen(ws)).toEqual(await gen(mixtral.dir));
  });

  it('an AutoAWQ Mixtral (attention and experts W4, router fp16) computes its dequantized fp16 twin', async () => {
    const group = 32;
    writeAwqMixtral(tmp.dir, shared, group);
    expect(loadModelSpec(path.join(tmp.dir, 'awq')).spec.quant).toMatchObject({ groupSize: group });
    const a = await cpuLogits(native!, path.join(tmp.dir, 'awq'), ids);
    const b = await cpuLogits(native!, path.join(tmp.dir, 'awq-deq'), ids);
    expect(maxAbsDiff(a, b)).toBeLessThan(2e-3);
  });

  it('an AutoAWQ Mixtral sharded over 2 cpu ranks (experts split along whole groups) gives tp 1\'s greedy tokens and logits', async () => {
    // expert width 128: 64 columns of down per rank, two groups of 32; vocabulary padded to divide by 2
    const base = path.join(tmp.dir, 'awq-tp');
    const { awq } = writeAwqMixtral(base, { ...shared, intermediateSize: 128, vocabSize: 256 }, 32);
    const run = async (tp: number) => {
      const e = await Engine.fromPretrained(awq, { native: native!, backend: 'cpu', tp, threads: 2, maxBatchSize: 2, sessionLen: 128 });
      try {
        const out = await e.generate(['the cat sat on', 'hello'], { maxNewTokens: 32, temperature: 0, ignoreEos: true });
        return { tokens: out.map((r) => r.tokenIds), logits: await e.pretrained.forward(ids) };
      } finally {
        await e.dispose();
      }
    };
    const one = await run(1);
    const two = await run(2);
    expect(two.tokens).toEqual(one.tokens);
    const diff = maxAbsDiff(one.logits, two.logits);
    expect(diff).toBeLessThan(2e-3);
    expect(diff).toBeGreaterThan(0);  // the shards really ran: partial sums in another order move the last bits
  }, 120_000);

});
