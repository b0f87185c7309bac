// calibrate and auto_awq on mixture-of-experts checkpoints (Mixtral, Qwen3-MoE), through the TypeScript layer path
// (the native layer session runs dense layers only). The scaling groups are AutoAWQ's for an MoE block: post_norm →
// every expert's gate and up (the router, which reads the same input, has its columns scaled alike and stays fp16) and
// per expert up → down on its own tokens; clipping per expert on the tokens routed to it. The checkpoint is AutoAWQ
// GEMM in the model's own names with the router fp16 and named in modules_to_not_convert; it loads, runs and converts.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PretrainedModel } from '../generation/pretrained';
import { decodeHalf, encodeHalf, f16BitsToF32, f32ToF16Bits } from '../io/half';
import { readSafetensorsDir, readTensorBytes, writeSafetensors, type WritableTensor } from '../io/safetensors';
import { nativeCpuOrReport } from '../testing/native-cpu';
import { canonicalWeights as canonical } from '../testing/canonical-weights';
import { makeTempDir } from '../testing/tmp-dir';
import { writeTinyModel } from '../testing/tiny-model';
import { nmse } from '../testing/nmse';
import { convert } from '../workspace/convert';
import { readCalibText } from './datasets';
import { autoAwq } from './awq';
import { calibrate, loadCalibration } from './calibrate';
import { dequantizeLinear, quantizeLinear } from './pack';

const native = nativeCpuOrReport('mixture-of-experts auto_awq');
const roundF16 = (x: number): number => f16BitsToF32(f32ToF16Bits(x));


/** Multiplies the listed channels of every post-attention norm by `k`: a few salient input channels of the experts
 *  (the case AWQ's scaling exists for). */
function plantSalientChannels(dir: string, channels: number[], k: number): void {
  const file = path.join(dir, 'model.safetensors');
  const out: WritableTensor[] = [];
  for (const [name, t] of readSafetensorsDir(dir).tensors) {
    let data = readTensorBytes(t);
    if (/post_attention_layernorm\.weight$/.test(name)) {
      const v = decodeHalf(data, 'f16');
      for (const c of channels) v[c] *= k;
      data = encodeHalf(v, 'f16');
    }
    out.push({ name, dtype: t.dtype as WritableTensor['dtype'], shape: [...t.shape], data });
  }
  fs.rmSync(file);
  writeSafetensors(file, out);
}

async function logitsOf(dir: string, ids: number[]): Promise<Float32Array> {
  const m = await PretrainedModel.load(dir, { native: native!, backend: 'cpu' });
  try {
    return await m.forward(ids);
  } finally {
    m.dispose();
  }
}

(native ? describe : describe.skip)('calibrate and auto_awq on mixture-of-experts models', () => {
  const tmp = makeTempDir('lmfleet-moe-awq-');
  afterAll(() => tmp.cleanup());
  const text = path.join(tmp.dir, 'calib.txt');
  const ids = [5, 9, 77, 120, 33, 2, 250, 101, 17, 64, 40, 41];
  beforeAll(() => fs.writeFileSync(text, readCalibText('cmake-docs').slice(0, 20_000)));

  it('Mixtral: calibrate records the router and every expert; AWQ writes the experts W4 and the router fp16 in Mixtral names; it loads, runs close to fp16 and converts', async () => {
    const src = path.join(tmp.dir, 'mixtral');
    writeTinyModel(src, { arch: 'mixtral', hiddenSize: 64, intermediateSize: 128, numHeads: 4, numKvHeads: 2, numLayers: 2, numExperts: 4, numExpertsPerTok: 2, seed: 5 });
    const work = path.join(tmp.dir, 'mixtral-awq');
    await calibrate(src, { dataset: text, samples: 4, seqlen: 64, workDir: work, native: native! });
    const calib = loadCalibration(work);
    expect(calib.manifest).toMatchObject({ numExperts: 4, moeIntermediateSize: 128 });
    expect(calib.inputs.get('layers.0.router')!.absmax.length).toBe(64);
    expect(calib.inputs.get('layers.1.experts.3.down')!.absmax.length).toBe(128);
    expect(calib.inputs.has('layers.0.gate')).toBe(false);
    // the router's input is the experts' gate / up input: all tokens reach it
    expect(Math.max(...calib.inputs.get('layers.0.router')!.absmax)).toBeGreaterThan(0);

    const res = await autoAwq(src, { workDir: work, wGroupSize: 32, native: native! });
    expect(Object.keys(res.layers[0].alphas)).toEqual(['input_norm→qkv', 'v→o', 'post_norm→experts', 'experts.0.up→down', 'experts.1.up→down', 'experts.2.up→down', 'experts.3.up→down']);
    expect(res.layers[0].alphas['v→o']).toBeUndefined();  // GQA
    expect(res.layers[1].alphas['post_norm→experts']).toBeDefined();
    for (const r of res.layers) for (const v of Object.values(r.lossRatio)) expect(v).toBeLessThanOrEqual(1);

    const cfg = JSON.parse(fs.readFileSync(path.join(work, 'config.json'), 'utf8'));
    expect(cfg.quantization_config).toMatchObject({ quant_method: 'awq', bits: 4, group_size: 32, version: 'gemm', modules_to_not_convert: ['block_sparse_moe.gate'] });
    const idx = readSafetensorsDir(work).tensors;
    expect(idx.get('model.layers.1.block_sparse_moe.experts.3.w2.qweight')).toMatchObject({ dtype: 'I32', shape: [128, 64 / 8] });
    expect(idx.get('model.layers.0.block_sparse_moe.experts.0.w1.scales')).toMatchObject({ dtype: 'F16', shape: [2, 128] });
    expect(idx.get('model.layers.0.block_sparse_moe.gate.weight')).toMatchObject({ dtype: 'F16', shape: [4, 64] });
    expect([...idx.keys()].filter((n) => /experts\.\d+\.w\d\.weight$|_proj\.weight$/.test(n))).toEqual([]);  // no fp linears left

    const lf = await logitsOf(src, ids);
    const lq = await logitsOf(work, ids);
    expect(nmse(lf, lq)).toBeLessThan(0.15);  // 4-bit g32 on random weights: a sanity bound
    const ws = path.join(tmp.dir, 'mixtral-ws');
    await convert('mixtral', work, { modelFormat: 'awq', dstPath: ws });
    expect(Array.from(await logitsOf(ws, ids))).toEqual(Array.from(lq));
  }, 240_000);

  it('Qwen3-MoE with a dense layer: round-to-nearest quantizes every expert and dense linear on its own; the router is written unchanged', async () => {
    const src = path.join(tmp.dir, 'qwen3moe');
    writeTinyModel(src, { arch: 'qwen3_moe', hiddenSize: 64, intermediateSize: 128, numHeads: 4, numKvHeads: 2, numLayers: 2, numExperts: 4, numExpertsPerTok: 2, moeIntermediateSize: 64, mlpOnlyLayers: [1], seed: 6 });
    const rtn = path.join(tmp.dir, 'qwen3moe-rtn');
    await autoAwq(src, { workDir: rtn, wGroupSize: 32, searchScale: false, searchClip: false, native: native! });
    const cfg = JSON.parse(fs.readFileSync(path.join(rtn, 'config.json'), 'utf8'));
    expect(cfg.quantization_config.modules_to_not_convert).toEqual(['mlp.gate']);
    const fp = canonical(src);
    const back = canonical(rtn);
    const linears: Array<[string, number, number]> = [['layers.0.q', 64, 64], ['layers.0.o', 64, 64], ['layers.1.gate', 128, 64], ['layers.1.down', 64, 128]];
    for (let e = 0; e < 4; e++) linears.push([`layers.0.experts.${e}.gate`, 64, 64], [`layers.0.experts.${e}.up`, 64, 64], [`layers.0.experts.${e}.down`, 64, 64]);
    for (const [l, out, inp] of linears) {
      const name = `${l}.weight`;
      const expected = dequantizeLinear(quantizeLinear(fp.get(name)!, out, inp, 4, 32)).map(roundF16);  // the loader stores fp16
      expect({ name, maxDiff: Math.max(...back.get(name)!.map((v, j) => Math.abs(v - expected[j]))) }).toEqual({ name, maxDiff: 0 });
    }
    expect(Array.from(back.get('layers.0.router.weight')!)).toEqual(Array.from(fp.get('layers.0.router.weight')!));
    expect(readSafetensorsDir(rtn).tensors.get('model.layers.0.mlp.gate.weight')).toMatchObject({ dtype: 'F16', shape: [4, 64] });
    expect((await logitsOf(rtn, ids)).every(Number.isFinite)).toBe(true);
  }, 120_000);

  it('with a few salient input channels shared by the experts, AWQ is never worse than round-to-nearest and better on average (three seeds)', async () => {
    // random tiny models give noisy logit errors (a dense Llama twin shows the same spread), so: 200 tokens, three
    // seeds, each AWQ error at most 1% above its RTN twin's and the mean clearly below
    const evalIds = Array.from({ length: 200 }, (_, i) => (i * 37 + 5) % 250);
    const errs: Array<{ awq: number; rtn: number }> = [];
    for (const seed of [12, 13, 14]) {
      const src = path.join(tmp.dir, `salient-${seed}`);
      writeTinyModel(src, { arch: 'mixtral', hiddenSize: 64, intermediateSize: 128, numHeads: 4, numKvHeads: 4, numLayers: 2, numExperts: 4, numExpertsPerTok: 2, seed });
      plantSalientChannels(src, [3, 17, 40], 12);
      const work = path.join(tmp.dir, `salient-${seed}-awq`);
      await calibrate(src, { dataset: text, samples: 4, seqlen: 64, workDir: work, native: native! });
      const res = await autoAwq(src, { workDir: work, wGroupSize: 32, native: native! });
      expect(res.layers[0].alphas['post_norm→experts']).toBeGreaterThan(0);
      const rtn = path.join(tmp.dir, `salient-${seed}-rtn`);
      await autoAwq(src, { workDir: rtn, wGroupSize: 32, searchScale: false, searchClip: false, native: native! });
      const lf = await logitsOf(src, evalIds);
      errs.push({ awq: nmse(lf, await logitsOf(work, evalIds)), rtn: nmse(lf, await logitsOf(rtn, evalIds)) });
    }
    for (const e of errs) expect(e.awq).toBeLessThanOrEqual(e.rtn * 1.01);
    const mean = (k: 'awq' | 'rtn') => errs.reduce((a, e) => a + e[k], 0) / errs.length;
    expect(mean('awq')).toBeLessThan(0.9 * mean('rtn'));
  }, 240_000);

  it('asking for the native layer session on a mixture of experts is refused with the reason', async () => {
    const src = path.join(tmp.dir, 'mixtral');
    await expect(autoAwq(src, { workDir: path.join(tmp.dir, 'refused'), wGroupSize: 32, calibDataset: text, calibSamples: 2, calibSeqlen: 32, session: true, native: native! }))
      .rejects.toThrow(/is a mixture of experts: auto_awq runs its layers in TypeScript/);
    await expect(calibrate(src, { dataset: text, samples: 2, seqlen: 32, workDir: path.join(tmp.dir, 'refused2'), session: true, native: native! }))
      .rejects.toThrow(/is a mixture of experts: calibrate runs its layers in TypeScript/);
    expect(fs.existsSync(path.join(tmp.dir, 'refused2'))).toBe(false);
  });
});
