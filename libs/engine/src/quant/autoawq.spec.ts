// AutoAWQ checkpoints: one made here by a tiny hand-written packer that follows AutoAWQ's documented GEMM layout
// (independent of pack.ts) must load in the engine and give the logits of its dequantized fp16 twin; our own
// auto_awq output must load too; bad input gives clear errors and leaves nothing behind.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ModelFormatError, QuantConfigError } from '../errors';
import { PretrainedModel } from '../generation/pretrained';
import { f16BitsToF32, f32ToF16Bits } from '../io/half';
import { readSafetensorsDir, readSafetensorsHeader, readTensorBytes, writeSafetensors, type WritableTensor } from '../io/safetensors';
import { nativeCpuOrReport } from '../testing/native-cpu';
import { makeTempDir } from '../testing/tmp-dir';
import { writeTinyModel } from '../testing/tiny-model';
import { autoAwq } from './awq';
import { calibrate } from './calibrate';

const native = nativeCpuOrReport('autoawq');

/** AutoAWQ GEMM, written from its documentation: word (r, c) holds column 8c + [0,2,4,6,1,3,5,7][j] in bits 4j..4j+3. */
function handPack(codes: number[][]): Int32Array {
  const order = [0, 2, 4, 6, 1, 3, 5, 7];
  const rows = codes.length;
  const cols = codes[0].length;
  const out = new Int32Array(rows * (cols / 8));
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols / 8; c++) {
      let word = 0;
      for (let j = 0; j < 8; j++) word |= codes[r][8 * c + order[j]] << (4 * j);
      out[r * (cols / 8) + c] = word;
    }
  }
  return out;
}

const f16 = (x: number) => f16BitsToF32(f32ToF16Bits(x));
const bytesOf = (a: Int32Array | Uint16Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Makes (awqDir, fp16Dir) holding the same function from a tiny fp16 model. */
function handMadeAwq(root: string, group: number): { awqDir: string; refDir: string } {
  const src = path.join(root, 'src');
  writeTinyModel(src, { arch: 'qwen2', hiddenSize: 64, intermediateSize: 128, numHeads: 4, numKvHeads: 2, numLayers: 2, seed: 5 });
  const idx = readSafetensorsDir(src);
  const awq: WritableTensor[] = [];
  const ref: WritableTensor[] = [];
  for (const t of idx.tensors.values()) {
    const data = readTensorBytes(t);
    if (!/_proj\.weight$/.test(t.name)) {
      awq.push({ name: t.name, dtype: t.dtype, shape: t.shape, data });
      ref.push({ name: t.name, dtype: t.dtype, shape: t.shape, data });
      continue;
    }
    const [out, inp] = t.shape;
    const u16 = new Uint16Array(data.slice().buffer);
    const W = (o: number, i: number) => f16BitsToF32(u16[o * inp + i]);
    const groups = inp / group;
    const q: number[][] = Array.from({ length: inp }, () => new Array(out).fill(0)); // [in][out]
    const z: number[][] = Array.from({ length: groups }, () => new Array(out).fill(0));
    const s = new Uint16Array(groups * out);
    const deq = new Uint16Array(out * inp);
    for (let o = 0; o < out; o++) {
      for (let g = 0; g < groups; g++) {
        let lo = Infinity;
        let hi = -Infinity;
        for (let k = 0; k < group; k++) {
          lo = Math.min(lo, W(o, g * group + k));
          hi = Math.max(hi, W(o, g * group + k));
        }
        const scale = f16((hi - lo) / 15);
        const zero = Math.max(0, Math.min(15, Math.round(-lo / scale)));
        z[g][o] = zero;
        s[g * out + o] = f32ToF16Bits(scale);
        for (let k = 0; k < group; k++) {
          const i = g * group + k;
          q[i][o] = Math.max(0, Math.min(15, Math.round(W(o, i) / scale) + zero));
          deq[o * inp + i] = f32ToF16Bits((q[i][o] - zero) * scale);
        }
      }
    }
    const prefix = t.name.replace(/\.weight$/, '');
    awq.push({ name: `${prefix}.qweight`, dtype: 'I32', shape: [inp, out / 8], data: bytesOf(handPack(q)) });
    awq.push({ name: `${prefix}.qzeros`, dtype: 'I32', shape: [groups, out / 8], data: bytesOf(handPack(z)) });
    awq.push({ name: `${prefix}.scales`, dtype: 'F16', shape: [groups, out], data: bytesOf(s) });
    ref.push({ name: t.name, dtype: 'F16', shape: [out, inp], data: bytesOf(deq) });
  }
  const cfg = JSON.parse(fs.readFileSync(path.join(src, 'config.json'), 'utf8'));
  const awqDir = path.join(root, 'awq');
  const refDir = path.join(root, 'ref');
  for (const [dir, tensors, config] of [
    [awqDir, awq, { ...cfg, quantization_config: { quant_method: 'awq', bits: 4, group_size: group, zero_point: true, version: 'gemm' } }],
    [refDir, ref, cfg],
  ] as const) {
    fs.mkdirSync(dir);
    writeSafetensors(path.join(dir, 'model.safetensors'), tensors as WritableTensor[]);
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(src, f), path.join(dir, f));
  }
  return { awqDir, refDir };
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const CALIB_TEXT = Array.from({ length: 60 }, (_, i) =>
  `Paragraph ${i}: the quick brown fox jumps over the lazy dog, while the kernel schedules ${i * 7} threads and the cache holds ${i * 13} blocks.`,
).join('\n');

(native ? describe : describe.skip)('AutoAWQ checkpoints in the engine', () => {
  const tmp = makeTempDir('lmfleet-awq-');
  afterAll(() => tmp.cleanup());

  it('a hand-packed AutoAWQ GEMM checkpoint gives the logits of its dequantized fp16 twin', async () => {
    const { awqDir, refDir } = handMadeAwq(path.join(tmp.dir), 32);
    const ids = [3, 17, 42, 99, 180, 7, 64, 250, 11, 5];
    const a = await PretrainedModel.load(awqDir, { native: native!, backend: 'cpu' });
    const r = await PretrainedModel.load(refDir, { native: native!, backend: 'cpu' });
    try {
      expect(maxAbsDiff(await a.forward(ids), await r.forward(ids))).toBeLessThan(1e-5);
    } finally {
      a.dispose();
      r.dispose();
    }
  }, 60_000);

  it('auto_awq (scale + clip search) writes an AutoAWQ directory the engine loads, close to fp16', async () => {
    const src = path.join(tmp.dir, 'awq-src');
    writeTinyModel(src, { arch: 'qwen2', hiddenSize: 64, intermediateSize: 128, numHeads: 4, numKvHeads: 4, numLayers: 2, seed: 9 });
    const ds = path.join(tmp.dir, 'calib.txt');
    fs.writeFileSync(ds, CALIB_TEXT);
    const work = path.join(tmp.dir, 'awq-work');
    const fractions: number[] = [];
    const res = await autoAwq(src, {
      workDir: work, wGroupSize: 32, calibDataset: ds, calibSamples: 4, calibSeqlen: 64, native: native!,
      onProgress: (f) => fractions.push(f),
    });
    expect(fractions[fractions.length - 1]).toBe(1);
    expect(res.layers).toHaveLength(2);
    expect(res.layers[0].alphas['v→o']).toBeDefined(); // MHA: v → o is searched
    const cfg = JSON.parse(fs.readFileSync(path.join(work, 'config.json'), 'utf8'));
    expect(cfg.quantization_config).toEqual({ quant_method: 'awq', bits: 4, group_size: 32, zero_point: true, version: 'gemm', modules_to_not_convert: null });
    const idx = readSafetensorsDir(work);
    expect(idx.tensors.get('model.layers.0.mlp.down_proj.qweight')!.shape).toEqual([128, 8]);
    expect(idx.tensors.get('model.layers.0.mlp.down_proj.qzeros')!.shape).toEqual([4, 8]);
    expect(idx.tensors.get('model.layers.0.mlp.down_proj.scales')).toMatchObject({ dtype: 'F16', shape: [4, 64] });
    expect(idx.tensors.has('model.layers.0.mlp.down_proj.weight')).toBe(false);
    expect(fs.existsSync(path.join(work, 'tokenizer.json'))).toBe(true);
    const ids = [5, 9, 77, 120, 33, 2, 250, 101];
    const q = await PretrainedModel.load(work, { native: native!, backend: 'cpu' });
    const f = await PretrainedModel.load(src, { native: native!, backend: 'cpu' });
    try {
      const lq = await q.forward(ids);
      const lf = await f.forward(ids);
      let num = 0;
      let den = 0;
      for (let i = 0; i < lq.length; i++) {
        num += (lq[i] - lf[i]) ** 2;
        den += lf[i] ** 2;
      }
      expect(num / den).toBeLessThan(0.15); // 4-bit g32 on random weights: a sanity bound, the ppl spec measures quality
    } finally {
      q.dispose();
      f.dispose();
    }
  }, 120_000);

  describe('bad input', () => {
    jest.setTimeout(60_000);
    const ds = () => {
      const p = path.join(tmp.dir, 'calib-bad.txt');
      fs.writeFileSync(p, CALIB_TEXT);
      return p;
    };

    it('a group size that does not divide a width names the layer and widths; nothing is written', async () => {
      const src = path.join(tmp.dir, 'w96');
      writeTinyModel(src, { hiddenSize: 96, intermediateSize: 128, numHeads: 4, numKvHeads: 2, numLayers: 1 });
      const work = path.join(tmp.dir, 'w96-work');
      await expect(autoAwq(src, { workDir: work, wGroupSize: 64, calibDataset: ds(), native: native! })).rejects.toThrow(
        /in_features 96 is not a multiple of the group size 64 \(weight \[\d+, 96\]\)/,
      );
      expect(fs.existsSync(work)).toBe(false);
    });

    it('bits other than 4 (auto_awq) or 4/8 (quantizer) are refused before any work', async () => {
      const src = path.join(tmp.dir, 'bits');
      writeTinyModel(src, { numLayers: 1 });
      const work = path.join(tmp.dir, 'bits-work');
      await expect(autoAwq(src, { workDir: work, wBits: 3, calibDataset: ds(), native: native! })).rejects.toThrow(/unsupported weight bits 3/);
      await expect(autoAwq(src, { workDir: work, wBits: 8, wGroupSize: 32, calibDataset: ds(), native: native! })).rejects.toThrow(QuantConfigError);
      expect(fs.existsSync(work)).toBe(false);
    });

    it('a corrupt statistics file is reported by name and no checkpoint is written', async () => {
      const src = path.join(tmp.dir, 'corrupt');
      writeTinyModel(src, { numLayers: 1 });
      const work = path.join(tmp.dir, 'corrupt-work');
      await calibrate(src, { dataset: ds(), samples: 2, seqlen: 32, workDir: work, native: native! });
      const before = fs.readdirSync(work).sort();
      expect(before).toEqual(['calib_inputs.safetensors', 'calib_manifest.json', 'calib_stats.safetensors']);
      const stats = path.join(work, 'calib_stats.safetensors');
      fs.truncateSync(stats, fs.statSync(stats).size - 100);
      await expect(autoAwq(src, { workDir: work, wGroupSize: 32, native: native! })).rejects.toThrow(ModelFormatError);
      await expect(autoAwq(src, { workDir: work, wGroupSize: 32, native: native! })).rejects.toThrow(/calib_stats\.safetensors/);
      expect(fs.readdirSync(work).sort()).toEqual(before);
    });

    it('statistics holding NaN, made for another model, or with an unreadable manifest are refused by name; nothing is written', async () => {
      const src = path.join(tmp.dir, 'stats-src');
      writeTinyModel(src, { numLayers: 1 });
      const work = path.join(tmp.dir, 'stats-work');
      await calibrate(src, { dataset: ds(), samples: 2, seqlen: 32, workDir: work, native: native! });
      const before = fs.readdirSync(work).sort();
      const stats = path.join(work, 'calib_stats.safetensors');
      const pristine = fs.readFileSync(stats);
      // a NaN in one statistic
      const t = readSafetensorsHeader(stats).tensors.find((x) => x.name === 'layers.0.gate.absmean')!;
      const fd = fs.openSync(stats, 'r+');
      fs.writeSync(fd, Buffer.from(new Float32Array([NaN]).buffer), 0, 4, t.offset + 4);
      fs.closeSync(fd);
      await expect(autoAwq(src, { workDir: work, wGroupSize: 32, native: native! })).rejects.toThrow(
        /calibration tensor holds NaN.*calib_stats\.safetensors.*layers\.0\.gate\.absmean/,
      );
      fs.writeFileSync(stats, pristine);
      // the calibration of another model (other widths)
      const other = path.join(tmp.dir, 'stats-other');
      writeTinyModel(other, { numLayers: 1, hiddenSize: 96, numHeads: 3, numKvHeads: 1, intermediateSize: 192 });
      await expect(autoAwq(other, { workDir: work, wGroupSize: 32, native: native! })).rejects.toThrow(/calibration was made for a different model/);
      // a manifest that is not JSON
      fs.writeFileSync(path.join(work, 'calib_manifest.json'), '{"format": "lmfleet-calib-v1", ');
      await expect(autoAwq(src, { workDir: work, wGroupSize: 32, native: native! })).rejects.toThrow(/invalid JSON.*calib_manifest\.json/);
      expect(fs.readdirSync(work).sort()).toEqual(before);
    });

    it('a model directory without weights is refused and workDir is not created', async () => {
      const src = path.join(tmp.dir, 'noweights');
      writeTinyModel(src, { numLayers: 1 });
      fs.rmSync(path.join(src, 'model.safetensors'));
      const work = path.join(tmp.dir, 'noweights-work');
      await expect(calibrate(src, { dataset: ds(), samples: 2, seqlen: 32, workDir: work, native: native! })).rejects.toThrow(/no safetensors weights found/);
      await expect(autoAwq(src, { workDir: work, calibDataset: ds(), native: native! })).rejects.toThrow(ModelFormatError);
      expect(fs.existsSync(work)).toBe(false);
    });

    it('an unknown dataset name and a missing file are clear errors', async () => {
      const src = path.join(tmp.dir, 'ds');
      writeTinyModel(src, { numLayers: 1 });
      await expect(calibrate(src, { dataset: 'ptb', workDir: path.join(tmp.dir, 'ds-w'), native: native! })).rejects.toThrow(/unknown calibration dataset "ptb".*built-in datasets: cmake-docs/);
      await expect(calibrate(src, { dataset: '/nope/x.txt', workDir: path.join(tmp.dir, 'ds-w'), native: native! })).rejects.toThrow(/not found/);
      expect(fs.existsSync(path.join(tmp.dir, 'ds-w'))).toBe(false);
    });
  });
});
