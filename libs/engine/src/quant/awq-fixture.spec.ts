// Round trip against AutoAWQ-layout checkpoints made independently of this code base: test/fixtures/awq/*, written
// by make_awq_fixture.py (numpy quantization and packing from AutoAWQ's documented format; reference logits from
// transformers on the dequantized fp16 weights, made on the GPU machine). Our loader must give the reference logits
// (directly and through a workspace), and our unpack + repack must reproduce the fixture's packed tensors bit for bit.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PretrainedModel } from '../generation/pretrained';
import { readSafetensorsDir, readTensorBytes } from '../io/safetensors';
import { nativeCpuOrReport } from '../testing/native-cpu';
import { REPO_ROOT } from '../testing/shared-model';
import { makeTempDir } from '../testing/tmp-dir';
import { writeTinyModel, writeTinyTokenizer, type TinyModelOptions } from '../testing/tiny-model';
import { convert } from '../workspace/convert';
import { autoAwq } from './awq';
import { fromAwqGemm, toAwqGemm } from './pack';

const FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures', 'awq');
const CASES = ['qwen2-gqa-g64', 'internlm2-g32'];
const native = nativeCpuOrReport('awq fixture');

interface Golden {
  case: string;
  group_size: number;
  prompt_ids: number[];
  vocab_size: number;
  fp16_max_abs_logit_shift: number;
  logits: number[][];
}

function maxAbsErr(got: Float32Array, want: number[][]): number {
  const V = want[0].length;
  let m = 0;
  want.forEach((row, t) => row.forEach((v, j) => (m = Math.max(m, Math.abs(got[t * V + j] - v)))));
  return m;
}

/** ours-*: our auto_awq's output (round-to-nearest: deterministic), read independently to make golden.json. */
const OURS: Record<string, { model: TinyModelOptions; group: number }> = {
  'ours-qwen2-g32': { model: { arch: 'qwen2', hiddenSize: 64, intermediateSize: 128, numHeads: 4, numKvHeads: 2, numLayers: 2, seed: 21 }, group: 32 },
  'ours-internlm2-g64': { model: { arch: 'internlm2', hiddenSize: 128, intermediateSize: 256, numHeads: 4, numKvHeads: 2, numLayers: 2, seed: 22, bias: true }, group: 64 },
};

describe('independently made AutoAWQ checkpoints (test/fixtures/awq)', () => {
  const tmp = makeTempDir('lmfleet-awq-fixture-');
  afterAll(() => tmp.cleanup());

  // The other direction: what our writer produces is read by an independent reader (make_awq_fixture.py --read-ours:
  // numpy unpacking from AutoAWQ's documented layout, transformers' Qwen2 / Llama with InternLM2's wqkv split per KV
  // group) and its logits are the golden; our writer must still produce those bytes, and our loader those logits.
  (native ? it.each(Object.keys(OURS)) : it.skip.each(Object.keys(OURS)))('%s: our auto_awq writes it byte for byte, and an independent reader gives our logits', async (c) => {
    const { model, group } = OURS[c];
    const src = path.join(tmp.dir, `${c}-src`);
    writeTinyModel(src, model);
    const out = path.join(tmp.dir, `${c}-out`);
    await autoAwq(src, { workDir: path.join(tmp.dir, `${c}-work`), dstDir: out, wGroupSize: group, searchScale: false, searchClip: false, native: native! });
    const want = readSafetensorsDir(path.join(FIXTURES, c)).tensors;
    const got = readSafetensorsDir(out).tensors;
    expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
    for (const [name, t] of want) {
      const g = got.get(name)!;
      expect({ name, dtype: g.dtype, shape: g.shape }).toEqual({ name, dtype: t.dtype, shape: t.shape });
      expect({ name, same: Buffer.from(readTensorBytes(g)).equals(Buffer.from(readTensorBytes(t))) }).toEqual({ name, same: true });
    }
    const { dir, golden } = modelDir(c);
    const m = await PretrainedModel.load(dir, { native: native!, backend: 'cpu' });
    try {
      const err = maxAbsErr(await m.forward(golden.prompt_ids), golden.logits);
      console.log(`awq fixture ${c} (our writer, independent reader): max |logit - reference| ${err.toExponential(2)}`);
      expect(err).toBeLessThan(2e-3);
    } finally {
      m.dispose();
    }
  }, 60_000);

  /** The fixture as a loadable directory: its files plus a tiny tokenizer (the tests feed token ids). */
  const modelDir = (c: string): { dir: string; golden: Golden } => {
    const dir = path.join(tmp.dir, c);
    if (!fs.existsSync(dir)) {
      fs.mkdirSync(dir);
      for (const f of ['config.json', 'model.safetensors']) fs.symlinkSync(path.join(FIXTURES, c, f), path.join(dir, f));
    }
    const golden = JSON.parse(fs.readFileSync(path.join(FIXTURES, c, 'golden.json'), 'utf8')) as Golden;
    if (!fs.existsSync(path.join(dir, 'tokenizer.json'))) writeTinyTokenizer(dir, { arch: 'qwen2', vocabSize: golden.vocab_size });
    return { dir, golden };
  };

  it.each(CASES)('%s: unpacking then repacking reproduces every qweight/qzeros/scales bit for bit', (c) => {
    const idx = readSafetensorsDir(path.join(FIXTURES, c)).tensors;
    const { golden } = modelDir(c);
    let linears = 0;
    for (const name of idx.keys()) {
      if (!name.endsWith('.qweight')) continue;
      const p = name.slice(0, -'.qweight'.length);
      const bytes = (n: string) => readTensorBytes(idx.get(n)!);
      const [inp, words] = idx.get(name)!.shape;
      const t = {
        qweight: new Int32Array(bytes(`${p}.qweight`).slice().buffer),
        qzeros: new Int32Array(bytes(`${p}.qzeros`).slice().buffer),
        scales: new Uint16Array(bytes(`${p}.scales`).slice().buffer),
      };
      const back = toAwqGemm(fromAwqGemm(t, words * 8, inp, golden.group_size, p));
      expect(Buffer.from(back.qweight.buffer).equals(Buffer.from(t.qweight.buffer))).toBe(true);
      expect(Buffer.from(back.qzeros.buffer).equals(Buffer.from(t.qzeros.buffer))).toBe(true);
      expect(Buffer.from(back.scales.buffer).equals(Buffer.from(t.scales.buffer))).toBe(true);
      linears++;
    }
    expect(linears).toBe(c.startsWith('internlm2') ? 10 : 14); // wqkv packed: 5 linears per layer, else 7
  });

  (native ? it.each(CASES) : it.skip.each(CASES))('%s: loads and matches transformers on the dequantized fp16 weights, also as a workspace', async (c) => {
    const { dir, golden } = modelDir(c);
    const m = await PretrainedModel.load(dir, { native: native!, backend: 'cpu' });
    let direct: Float32Array;
    try {
      direct = await m.forward(golden.prompt_ids);
    } finally {
      m.dispose();
    }
    const err = maxAbsErr(direct, golden.logits);
    console.log(`awq fixture ${c}: max |logit - reference| ${err.toExponential(2)} (quantization itself moved them by up to ${golden.fp16_max_abs_logit_shift})`);
    expect(err).toBeLessThan(2e-3);
    expect(golden.fp16_max_abs_logit_shift).toBeGreaterThan(100 * 2e-3); // the bound tells the right weights from fp16 ones

    const ws = path.join(tmp.dir, `${c}-ws`);
    await convert(c.split('-')[0], dir, { modelFormat: 'awq', dstPath: ws });
    const w = await PretrainedModel.load(ws, { native: native!, backend: 'cpu' });
    try {
      expect(Array.from(await w.forward(golden.prompt_ids))).toEqual(Array.from(direct));
    } finally {
      w.dispose();
    }
  }, 60_000);
});
