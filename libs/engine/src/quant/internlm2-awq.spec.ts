// auto_awq on InternLM2 (q/k/v packed in attention.wqkv): the scale search works on the split q/k/v (input norm →
// q/k/v, and v → o where v and o have the same shape), the checkpoint is written in InternLM2's own names with wqkv
// packed back in its per-KV-group row order (AutoAWQ GEMM layout), and it loads back (directly and via a workspace)
// and runs. Round-to-nearest output is compared exactly with quantizing the split q/k/v independently.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PretrainedModel } from '../generation/pretrained';
import { decodeHalf, f16BitsToF32, f32ToF16Bits } from '../io/half';
import { readSafetensorsDir, readTensorBytes } from '../io/safetensors';
import { nativeCpuOrReport } from '../testing/native-cpu';
import { canonicalWeights as canonical } from '../testing/canonical-weights';
import { makeTempDir } from '../testing/tmp-dir';
import { writeTinyModel } from '../testing/tiny-model';
import { convert } from '../workspace/convert';
import { readCalibText } from './datasets';
import { autoAwq } from './awq';
import { dequantizeLinear, fromAwqGemm, quantizeLinear } from './pack';
import { nmse } from '../testing/nmse';

const native = nativeCpuOrReport('internlm2 auto_awq');
const roundF16 = (x: number): number => f16BitsToF32(f32ToF16Bits(x));



(native ? describe : describe.skip)('auto_awq on InternLM2 (packed wqkv)', () => {
  const tmp = makeTempDir('lmfleet-internlm2-awq-');
  afterAll(() => tmp.cleanup());
  const text = path.join(tmp.dir, 'calib.txt');
  const ids = [5, 9, 77, 120, 33, 2, 250, 101, 17, 64];

  beforeAll(() => fs.writeFileSync(text, readCalibText('cmake-docs').slice(0, 20_000)));

  it('AWQ (scale + clip, v → o searched) writes wqkv in InternLM2 names; it loads, runs close to fp16, and converts', async () => {
    const src = path.join(tmp.dir, 'mha');
    writeTinyModel(src, { arch: 'internlm2', hiddenSize: 64, intermediateSize: 128, numHeads: 4, numKvHeads: 4, numLayers: 2, bias: true, seed: 11 });
    const work = path.join(tmp.dir, 'mha-awq');
    const res = await autoAwq(src, { workDir: work, wGroupSize: 32, calibDataset: text, calibSamples: 4, calibSeqlen: 64, native: native! });
    expect(Object.keys(res.layers[0].alphas)).toEqual(['input_norm→qkv', 'v→o', 'post_norm→gate,up', 'up→down']);
    expect(res.layers[0].alphas['v→o']).toBeDefined();

    const cfg = JSON.parse(fs.readFileSync(path.join(work, 'config.json'), 'utf8'));
    expect(cfg.architectures).toEqual(['InternLM2ForCausalLM']);
    expect(cfg.quantization_config).toMatchObject({ quant_method: 'awq', bits: 4, group_size: 32, zero_point: true, version: 'gemm' });
    const names = [...readSafetensorsDir(work).tensors.keys()];
    const idx = readSafetensorsDir(work).tensors;
    expect(idx.get('model.layers.0.attention.wqkv.qweight')).toMatchObject({ dtype: 'I32', shape: [64, 192 / 8] });
    expect(idx.get('model.layers.0.attention.wqkv.qzeros')).toMatchObject({ dtype: 'I32', shape: [2, 192 / 8] });
    expect(idx.get('model.layers.0.attention.wqkv.scales')).toMatchObject({ dtype: 'F16', shape: [2, 192] });
    expect(idx.get('model.layers.0.attention.wqkv.bias')).toMatchObject({ dtype: 'F16', shape: [192] });
    expect(idx.get('model.layers.1.feed_forward.w2.qweight')).toMatchObject({ shape: [128, 64 / 8] });
    expect(idx.get('model.layers.1.attention.wo.bias')).toMatchObject({ dtype: 'F16', shape: [64] });
    expect(names.filter((n) => /_proj|\.weight$/.test(n) && /wqkv|wo|w1|w2|w3/.test(n))).toEqual([]); // no fp linears left
    expect(names).toContain('output.weight');

    const q = await PretrainedModel.load(work, { native: native!, backend: 'cpu' });
    const f = await PretrainedModel.load(src, { native: native!, backend: 'cpu' });
    let lq: Float32Array;
    try {
      lq = await q.forward(ids);
      expect(nmse(await f.forward(ids), lq)).toBeLessThan(0.15); // 4-bit g32 on random weights: a sanity bound
    } finally {
      q.dispose();
      f.dispose();
    }
    // the AWQ checkpoint converts to a workspace that gives the same logits
    const ws = path.join(tmp.dir, 'mha-ws');
    await convert('internlm2', work, { modelFormat: 'awq', dstPath: ws });
    const w = await PretrainedModel.load(ws, { native: native!, backend: 'cpu' });
    try {
      expect(Array.from(await w.forward(ids))).toEqual(Array.from(lq));
    } finally {
      w.dispose();
    }
  }, 180_000);

  it('round-to-nearest under GQA: v → o is skipped, and each split q/k/v equals quantizing it alone (exact pack round trip)', async () => {
    const src = path.join(tmp.dir, 'gqa');
    writeTinyModel(src, { arch: 'internlm2', hiddenSize: 64, intermediateSize: 128, numHeads: 4, numKvHeads: 2, numLayers: 2, seed: 12 });
    const rtn = path.join(tmp.dir, 'gqa-rtn');
    await autoAwq(src, { workDir: rtn, wGroupSize: 32, searchScale: false, searchClip: false, native: native! });
    const fp = canonical(src);
    const back = canonical(rtn);
    for (let i = 0; i < 2; i++) {
      for (const [l, out, inp] of [['q', 64, 64], ['k', 32, 64], ['v', 32, 64], ['o', 64, 64], ['down', 64, 128]] as const) {
        const name = `layers.${i}.${l}.weight`;
        const expected = dequantizeLinear(quantizeLinear(fp.get(name)!, out, inp, 4, 32)).map(roundF16); // the loader stores fp16
        expect({ name, maxDiff: Math.max(...back.get(name)!.map((v, j) => Math.abs(v - expected[j]))) }).toEqual({ name, maxDiff: 0 });
      }
    }
    // independent of the split/pack code: the packed wqkv, dequantized whole, is the source's wqkv.weight quantized
    // whole (quantization is per output row, so packing must keep each row's codes with its scale and zero)
    const srcIdx = readSafetensorsDir(src).tensors;
    const outIdx = readSafetensorsDir(rtn).tensors;
    const rows = (4 + 2 * 2) * 16;
    for (let i = 0; i < 2; i++) {
      const p = `model.layers.${i}.attention.wqkv`;
      const i32 = (n: string) => new Int32Array(readTensorBytes(outIdx.get(n)!).slice().buffer);
      const whole = dequantizeLinear(fromAwqGemm({
        qweight: i32(`${p}.qweight`), qzeros: i32(`${p}.qzeros`), scales: new Uint16Array(readTensorBytes(outIdx.get(`${p}.scales`)!).slice().buffer),
      }, rows, 64, 32));
      const expected = dequantizeLinear(quantizeLinear(decodeHalf(readTensorBytes(srcIdx.get(`${p}.weight`)!), 'f16'), rows, 64, 4, 32));
      expect(Array.from(whole)).toEqual(Array.from(expected));
    }
    const awq = path.join(tmp.dir, 'gqa-awq');
    const res = await autoAwq(src, { workDir: awq, wGroupSize: 32, calibDataset: text, calibSamples: 2, calibSeqlen: 64, native: native! });
    expect(res.layers[0].alphas['v→o']).toBeUndefined();
    expect(res.layers[0].alphas['input_norm→qkv']).toBeDefined();
    const m = await PretrainedModel.load(awq, { native: native!, backend: 'cpu' });
    try {
      const logits = await m.forward(ids);
      expect(logits.every(Number.isFinite)).toBe(true);
    } finally {
      m.dispose();
    }
    expect(readTensorBytes(readSafetensorsDir(awq).tensors.get('model.layers.0.attention.wqkv.qweight')!).byteLength).toBe(64 * 128 / 8 * 4);
  }, 180_000);
});
