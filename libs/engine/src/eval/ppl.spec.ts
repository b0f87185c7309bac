// evalPpl: the windowing arithmetic over a fake scorer, and THE correctness check of the engine on the real CPU
// backend: the shared tiny Qwen2's fp16 perplexity must match the PyTorch reference within 1%.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createFakeNative } from '../testing/fake-native';
import { sharedModelDir } from '../testing/shared-model';
import { makeTempDir } from '../testing/tmp-dir';
import { writeTinyModel } from '../testing/tiny-model';
import { Tokenizer } from '../tokenizer/tokenizer';
import { decodeHalf } from '../io/half';
import { readSafetensorsDir, readTensorBytes, writeSafetensors, type WritableTensor } from '../io/safetensors';
import { quantizeLinear, toAwqGemm } from '../quant/pack';
import { evalPpl, pplFromWindowNlls, pplWindows } from './ppl';

describe('evalPpl arithmetic', () => {
  it('cuts non-overlapping full windows and drops the partial tail', () => {
    const w = pplWindows([1, 2, 3, 4, 5, 6, 7], 3);
    expect(w.map((x) => Array.from(x))).toEqual([[1, 2, 3], [4, 5, 6]]);
    expect(pplWindows([1, 2, 3, 4, 5, 6, 7], 3, 1)).toHaveLength(1);
    expect(pplFromWindowNlls([1, 3]).ppl).toBeCloseTo(Math.exp(2), 12);
  });

  it('averages per-window mean NLLs from scoreTokens (tokenized without BOS)', async () => {
    const tmp = makeTempDir();
    try {
      const info = writeTinyModel(path.join(tmp.dir, 'm'), { arch: 'llama' }); // llama: the tokenizer would add BOS
      const data = path.join(tmp.dir, 'data.txt');
      fs.writeFileSync(data, 'the quick brown fox jumps over the lazy dog. '.repeat(20));
      const fake = createFakeNative();
      const progress: number[] = [];
      const r = await evalPpl(info.dir, { datasetFile: data, seqlen: 64, native: fake.native, onProgress: (d, t) => progress.push(d / t) });
      const tok = Tokenizer.fromDir(info.dir);
      const ids = tok.encode(fs.readFileSync(data, 'utf8'), { addSpecialTokens: false });
      expect(ids[0]).not.toBe(info.bosId);
      const windows = Math.floor(ids.length / 64);
      const means: number[] = [];
      for (let w = 0; w < windows; w++) {
        let s = 0;
        for (let t = 1; t < 64; t++) s += (ids[w * 64 + t] % 5) / 2; // the fake's NLL of each next token
        means.push(s / 63);
      }
      expect(r.windows).toBe(windows);
      expect(r.tokens).toBe(ids.length);
      expect(r.ppl).toBeCloseTo(Math.exp(means.reduce((a, b) => a + b, 0) / windows), 5);
      expect(progress[progress.length - 1]).toBe(1);
      expect(fake.log.disposedModels).toBe(1);
      await expect(evalPpl(info.dir, { datasetFile: data, seqlen: 100000, native: fake.native })).rejects.toThrow(/fewer than one window/);
    } finally {
      tmp.cleanup();
    }
  });
});

describe('evalPpl on the shared model (real CPU backend)', () => {
  const dir = sharedModelDir('tiny-qwen2-pydocs');
  it('matches the fp16 reference perplexity within 1%', async () => {
    if (!dir) {
      console.log('not run: no shared model');
      return;
    }
    const reference = JSON.parse(fs.readFileSync(path.join(dir, 'reference.json'), 'utf8'));
    const r = await evalPpl(dir, { datasetFile: path.join(dir, 'eval.txt'), seqlen: 512, backend: 'cpu' });
    console.log(
      `ppl ${r.ppl.toFixed(4)} vs reference ${reference.ppl_float16.toFixed(4)} ` +
        `(${((r.ppl / reference.ppl_float16 - 1) * 100).toFixed(3)}%), ${r.windows} windows, ${r.seconds.toFixed(1)} s on ${r.backend}`,
    );
    expect(r.windows).toBe(116);
    expect(Math.abs(r.ppl / reference.ppl_float16 - 1)).toBeLessThan(0.01);
  }, 900_000);

  it('an AutoAWQ w4 g128 round-to-nearest checkpoint of it matches the RTN reference within 1%', async () => {
    if (!dir) {
      console.log('not run: no shared model');
      return;
    }
    const reference = JSON.parse(fs.readFileSync(path.join(dir, 'reference.json'), 'utf8'));
    const tmp = makeTempDir();
    try {
      const awqDir = writeRtnAwqCheckpoint(dir, path.join(tmp.dir, 'awq'), 128);
      const r = await evalPpl(awqDir, { datasetFile: path.join(dir, 'eval.txt'), seqlen: 512, backend: 'cpu' });
      console.log(
        `w4g128 RTN ppl ${r.ppl.toFixed(4)} vs reference ${reference.ppl_w4g128_rtn.toFixed(4)} ` +
          `(${((r.ppl / reference.ppl_w4g128_rtn - 1) * 100).toFixed(3)}%), ${r.seconds.toFixed(1)} s`,
      );
      expect(Math.abs(r.ppl / reference.ppl_w4g128_rtn - 1)).toBeLessThan(0.01);
    } finally {
      tmp.cleanup();
    }
  }, 900_000);
});

/** Round-to-nearest 4-bit AutoAWQ GEMM checkpoint of an fp16 model (every decoder linear; the rest copied). */
function writeRtnAwqCheckpoint(src: string, dst: string, groupSize: number): string {
  fs.mkdirSync(dst, { recursive: true });
  const idx = readSafetensorsDir(src);
  const tensors: WritableTensor[] = [];
  const u8 = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  for (const t of idx.tensors.values()) {
    const bytes = readTensorBytes(t);
    if (!/\.(q|k|v|o|gate|up|down)_proj\.weight$/.test(t.name)) {
      tensors.push({ name: t.name, dtype: t.dtype, shape: t.shape, data: bytes });
      continue;
    }
    const [out, inp] = t.shape;
    const g = toAwqGemm(quantizeLinear(decodeHalf(bytes, 'f16'), out, inp, 4, groupSize, { layer: t.name }));
    const base = t.name.replace(/\.weight$/, '');
    tensors.push({ name: `${base}.qweight`, dtype: 'I32', shape: [inp, out / 8], data: u8(g.qweight) });
    tensors.push({ name: `${base}.qzeros`, dtype: 'I32', shape: [inp / groupSize, out / 8], data: u8(g.qzeros) });
    tensors.push({ name: `${base}.scales`, dtype: 'F16', shape: [inp / groupSize, out], data: u8(g.scales) });
  }
  writeSafetensors(path.join(dst, 'model.safetensors'), tensors);
  const cfg = JSON.parse(fs.readFileSync(path.join(src, 'config.json'), 'utf8'));
  cfg.quantization_config = { quant_method: 'awq', bits: 4, group_size: groupSize, version: 'gemm', zero_point: true };
  fs.writeFileSync(path.join(dst, 'config.json'), JSON.stringify(cfg, null, 2));
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'chat_template.jinja']) {
    if (fs.existsSync(path.join(src, f))) fs.copyFileSync(path.join(src, f), path.join(dst, f));
  }
  return dst;
}
