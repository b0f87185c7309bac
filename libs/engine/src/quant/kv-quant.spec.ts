// KV-cache int8/int4 (quantPolicy 8/4) on the real CPU backend: logits stay close to the float cache's (int8 much
// closer than int4), greedy tokens of the transformers golden models are unchanged under int8, calibrated scales from
// `calibrate` load from a work dir or from a workspace made by `convert --quant-policy`, the paged cache holds more
// blocks for the same memory, and bad values are refused.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError, ModelFormatError } from '../errors';
import { Engine } from '../generation/engine';
import { PretrainedModel } from '../generation/pretrained';
import { nativeCpuOrReport } from '../testing/native-cpu';
import { REPO_ROOT } from '../testing/shared-model';
import { makeTempDir } from '../testing/tmp-dir';
import { writeTinyModel, writeTinyTokenizer } from '../testing/tiny-model';
import { convert } from '../workspace/convert';
import { calibrate } from './calibrate';
import { kvQparamsFromCalibration } from './kv-qparams';
import { nmse } from '../testing/nmse';

const native = nativeCpuOrReport('kv quant');
const GOLDEN = path.join(REPO_ROOT, 'test', 'fixtures', 'golden');


const CALIB_TEXT = Array.from({ length: 60 }, (_, i) =>
  `Paragraph ${i}: the quick brown fox jumps over the lazy dog, while the kernel schedules ${i * 7} threads and the cache holds ${i * 13} blocks.`,
).join('\n');

(native ? describe : describe.skip)('KV cache quantization (cpu)', () => {
  const tmp = makeTempDir('lmfleet-kvq-');
  afterAll(() => tmp.cleanup());
  const model = path.join(tmp.dir, 'tiny');
  const ids = Array.from({ length: 96 }, (_, i) => (i * 37 + 11) % 200 + 3);

  beforeAll(() => {
    writeTinyModel(model, { hiddenSize: 128, numHeads: 4, numKvHeads: 2, numLayers: 2, weightStd: 0.12 });
  });

  async function logits(dir: string, opts: { quantPolicy?: 0 | 4 | 8; kvCalibDir?: string } = {}) {
    const pm = await PretrainedModel.load(dir, { native, ...opts });
    try {
      return { logits: await pm.forward(ids), mode: pm.kvQuant.mode };
    } finally {
      pm.dispose();
    }
  }

  it('int8 stays close to the float cache\'s logits, int4 further away (online per-token scales)', async () => {
    const ref = (await logits(model)).logits;
    const i8 = await logits(model, { quantPolicy: 8 });
    const i4 = await logits(model, { quantPolicy: 4 });
    expect(i8.mode).toBe('online');
    const [e8, e4] = [nmse(ref, i8.logits), nmse(ref, i4.logits)];
    console.log(`tiny model logits vs the float KV cache: NMSE int8 ${e8.toExponential(2)}, int4 ${e4.toExponential(2)}`);
    expect(e8).toBeGreaterThan(0); // the cache really is quantized
    // measured: int8 2.4e-4, int4 5.2e-2 (a random model with large weights: errors are amplified)
    expect(e8).toBeLessThan(1e-3);
    expect(e4).toBeLessThan(1e-1);
    expect(e8 * 10).toBeLessThan(e4);
  });

  it.each(['llama3', 'qwen2-gqa', 'llama-hd64', 'qwen2-gqa-hd64', 'qwen2-hd128'])('golden %s: int8 KV keeps the 32 greedy tokens of transformers', async (name) => {
    const golden = JSON.parse(fs.readFileSync(path.join(GOLDEN, name, 'golden.json'), 'utf8')) as { prompt_ids: number[]; greedy_ids: number[]; vocab_size: number };
    const dir = path.join(tmp.dir, name);
    fs.mkdirSync(dir, { recursive: true });
    for (const f of fs.readdirSync(path.join(GOLDEN, name))) fs.copyFileSync(path.join(GOLDEN, name, f), path.join(dir, f));
    writeTinyTokenizer(dir, { arch: name.startsWith('llama') ? 'llama' : 'qwen2', vocabSize: golden.vocab_size });
    const engine = await Engine.fromPretrained(dir, { native, quantPolicy: 8, maxBatchSize: 2, sessionLen: 128 });
    try {
      const out: number[] = [];
      for await (const o of engine.createInstance().streamInfer({ inputIds: golden.prompt_ids, maxNewTokens: 32, stopIds: [], sampling: { temperature: 0 } })) {
        out.push(...o.tokenIds);
      }
      expect(out).toEqual(golden.greedy_ids);
    } finally {
      await engine.dispose();
    }
  });

  it('calibrated scales from calibrate: from the work dir, and recorded in a workspace by convert', async () => {
    const ds = path.join(tmp.dir, 'calib.txt');
    fs.writeFileSync(ds, CALIB_TEXT);
    const work = path.join(tmp.dir, 'calib');
    await calibrate(model, { dataset: ds, samples: 4, seqlen: 64, workDir: work, native });
    const q = kvQparamsFromCalibration(work, 8, { numLayers: 2, hiddenSize: 128, intermediateSize: 128, numKvHeads: 2 });
    expect(q.values.length).toBe(2 * 2 * 2 * 2);
    for (let i = 0; i < q.values.length; i += 2) expect(q.values[i]).toBeGreaterThan(0);
    const ref = (await logits(model)).logits;
    const cal = await logits(model, { quantPolicy: 8, kvCalibDir: work });
    expect(cal.mode).toBe(`calibrated (${work})`);
    console.log(`tiny model, int8 calibrated on 4 x 64 tokens: NMSE ${nmse(ref, cal.logits).toExponential(2)}`);
    // measured 3.1e-3: 4 x 64 calibration tokens of text, evaluated on other ids, so some K/V values clip
    expect(nmse(ref, cal.logits)).toBeLessThan(1e-2);

    const ws = path.join(tmp.dir, 'ws');
    const r = await convert('qwen2', model, { dstPath: ws, quantPolicy: 8, kvCalibDir: work });
    expect(r.manifest.kvCache.quantPolicy).toBe(8);
    expect(r.manifest.kvCache.qparams?.values.length).toBe(16);
    const fromWs = await logits(ws);
    expect(fromWs.mode).toBe(`calibrated (${path.resolve(work)}, from the workspace)`);
    expect(Array.from(fromWs.logits)).toEqual(Array.from(cal.logits));
    expect((await logits(ws, { quantPolicy: 0 })).mode).toBe('float'); // the option overrides the workspace
    expect((await logits(ws, { quantPolicy: 4 })).mode).toBe('online'); // params were made for int8: not reused

    // a calibration of another model is refused by name
    const other = path.join(tmp.dir, 'other');
    writeTinyModel(other, { hiddenSize: 64, numLayers: 1 });
    await expect(PretrainedModel.load(other, { native, quantPolicy: 8, kvCalibDir: work })).rejects.toThrow(ModelFormatError);
  });

  it('the same memory holds ~3x the blocks with int8 at head_dim 32 (rows of 32 B + 8 B of scale/zero vs 128 B)', async () => {
    const blocks = async (quantPolicy: 0 | 8) => {
      const pm = await PretrainedModel.load(model, { native, quantPolicy });
      const e = native!.createEngine(pm.model, { maxBatchSize: 4096, blockSize: 64, sessionLen: 65536, cacheMaxEntryCount: 2e-4 });
      try {
        return e.stats().blocksTotal;
      } finally {
        await e.dispose();
        pm.dispose();
      }
    };
    const [f, q] = [await blocks(0), await blocks(8)];
    console.log(`blocks for 2e-4 of free memory: float ${f}, int8 ${q} (${(q / f).toFixed(2)}x)`);
    expect(q / f).toBeGreaterThan(2.8);
    expect(q / f).toBeLessThan(3.6);
  });

  it('refuses bad policies and calibration without quantization', async () => {
    await expect(PretrainedModel.load(model, { native, quantPolicy: 3 as 8 })).rejects.toThrow(InvalidArgumentError);
    await expect(PretrainedModel.load(model, { native, kvCalibDir: tmp.dir })).rejects.toThrow(/needs quantPolicy 4 or 8/);
    await expect(convert('qwen2', model, { dstPath: path.join(tmp.dir, 'ws-bad'), quantPolicy: 2 as 4 })).rejects.toThrow(InvalidArgumentError);
    expect(fs.existsSync(path.join(tmp.dir, 'ws-bad'))).toBe(false);
    expect(() => native!.createModel({
      backend: 'cpu', dtype: 'f16', vocabSize: 8, hiddenSize: 8, intermediateSize: 8, numLayers: 1, numHeads: 2, numKvHeads: 1, headDim: 4,
      rmsNormEps: 1e-6, maxPositionEmbeddings: 16, rope: { type: 'default', theta: 1e4 }, tieWordEmbeddings: true, hiddenAct: 'silu', tensors: [],
      kvQuantPolicy: 8, kvQparams: new Float32Array(3),
    })).toThrow(/kvQparams must hold \[numLayers, 2, numKvHeads, 2\] = 4 values, got 3/);
  });
});
