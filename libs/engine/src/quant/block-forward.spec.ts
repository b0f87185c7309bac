// The TS layer-by-layer forward must reproduce the native decoder's logits (and transformers' golden logits); its Gemma
// layers (1, 2, 3), an f64 reference of transformers' models read off the checkpoint's own tensors (testing/gemma-reference.ts).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ModelSpec } from '../models/spec';
import { gemmaReference } from '../testing/gemma-reference';
import { nativeCpuOrReport } from '../testing/native-cpu';
import { maxAbsDiff } from '../testing/nmse';
import { GOLDEN_DIR, goldenCases } from '../testing/golden';
import { makeTempDir } from '../testing/tmp-dir';
import { writeTinyModel, writeTinyTokenizer, type TinyModelOptions } from '../testing/tiny-model';
import { PretrainedModel } from '../generation/pretrained';
import { BlockForward } from './block-forward';

const GOLDEN = GOLDEN_DIR;
const native = nativeCpuOrReport('block forward');
// (mixtral and qwen3-moe among them: the experts' routing in TypeScript, BlockForward.moeBlock)
const cases = goldenCases('all');

(native ? describe : describe.skip)('BlockForward', () => {
  const tmp = makeTempDir('lmfleet-bf-');
  afterAll(() => tmp.cleanup());

  it.each(cases)('matches model.forward() and the golden logits on %s', async (name) => {
    const golden = JSON.parse(fs.readFileSync(path.join(GOLDEN, name, 'golden.json'), 'utf8'));
    const dir = path.join(tmp.dir, name);
    fs.mkdirSync(dir);
    for (const f of ['config.json', 'model.safetensors']) fs.symlinkSync(path.join(GOLDEN, name, f), path.join(dir, f));
    writeTinyTokenizer(dir, { arch: name.startsWith('llama') ? 'llama' : 'qwen2', vocabSize: golden.vocab_size });
    const ids = Int32Array.from(golden.prompt_ids as number[]);
    const { fwd } = BlockForward.fromDir(native!, dir);
    const ours = await fwd.forward(ids);
    const model = await PretrainedModel.load(dir, { native: native!, backend: 'cpu' });
    try {
      const ref = await model.forward(ids);
      expect(ours.length).toBe(ref.length);
      expect(maxAbsDiff(ours, ref)).toBeLessThan(2e-3);
      expect(maxAbsDiff(ours, (golden.logits as number[][]).flat())).toBeLessThan(2e-2);
    } finally {
      model.dispose();
    }
    // two sequences batched (one shorter) give each sequence's own logits
    const a = ids.subarray(0, 7);
    const both = await fwd.forward(Int32Array.from([...ids, ...a]), [ids.length, a.length]);
    const V = golden.vocab_size as number;
    expect(maxAbsDiff(both.subarray(0, ids.length * V), ours)).toBeLessThan(1e-4);
    expect(maxAbsDiff(both.subarray(ids.length * V), ours.subarray(0, a.length * V))).toBeLessThan(1e-4);
  });
});

type Teeth = [string, (spec: ModelSpec) => void];
const GEMMA: Array<[string, TinyModelOptions, Teeth[]]> = [
  // 3 layers, pattern 2: layers 0 and 2 slide over 4 positions with theta 1e4; layer 1 attends globally, theta 1e6 / linear 2
  ['Gemma 3: (1 + w) and sandwich norms, q / k norms, gelu_tanh, local / global rope, window, scale',
    { arch: 'gemma3', hiddenSize: 64, numHeads: 4, numKvHeads: 2, numLayers: 3, intermediateSize: 128, seed: 31 },
    [['the global rope on the sliding layers too', (s) => { s.ropeLocal = { ...s.rope }; }]]],
  // layer 0 slides over 4 positions, layer 1 is global; attention scores capped at 0.5, final logits at 1.5
  ['Gemma 2: sandwich norms, one rope, alternating windows, scale, attention and final logit soft-capping',
    { arch: 'gemma2', hiddenSize: 64, numHeads: 4, numKvHeads: 2, numLayers: 2, intermediateSize: 128, seed: 32 },
    [['no attention soft-capping', (s) => { delete s.attnLogitSoftcap; }], ['no final soft-capping', (s) => { delete s.finalLogitSoftcap; }]]],
  // MQA with head_dim 32 over hidden 64 (q 128 wide), as gemma-2b's 8 heads of 256 over 2048
  ['Gemma 1: (1 + w) norms without sandwich norms, gelu_tanh, head_dim past hidden / heads, MQA, scale 1/sqrt(head_dim)',
    { arch: 'gemma', hiddenSize: 64, numHeads: 4, numKvHeads: 1, headDim: 32, numLayers: 2, intermediateSize: 128, seed: 33 },
    [['silu in place of gelu_tanh', (s) => { s.hiddenAct = 'silu'; }]]],
  // gemma-2b / 7b's configs as released: hidden_act "gelu", the exact (erf) GELU in transformers
  ['Gemma 1 with hidden_act "gelu": the exact GELU',
    { arch: 'gemma', hiddenSize: 64, numHeads: 4, numKvHeads: 1, headDim: 32, numLayers: 2, intermediateSize: 128, seed: 34, gemmaHiddenAct: 'gelu' },
    [['the tanh approximation in place of the exact GELU', (s) => { s.hiddenAct = 'gelu_tanh'; }]]],
];

(native ? describe : describe.skip)('BlockForward on Gemma 1 / 2 / 3', () => {
  const tmp = makeTempDir('lmfleet-bf-gemma-');
  afterAll(() => tmp.cleanup());

  it.each(GEMMA)('matches an f64 reference of transformers\' model (testing/gemma-reference.ts), %s', async (_, opts, teeth) => {
    const dir = path.join(tmp.dir, opts.arch!);
    writeTinyModel(dir, opts);
    const ids = Int32Array.from({ length: 16 }, (_, i) => (i * 41 + 7) % 250);
    const { fwd } = BlockForward.fromDir(native!, dir);
    const ref = gemmaReference(dir, ids);
    const scale = Math.max(...ref.map(Math.abs));
    const base = maxAbsDiff(await fwd.forward(ids), ref) / scale;
    expect(base).toBeLessThan(1e-4);
    // the check has teeth at this size: each of these changes is off by 20 times the forward's own error or more
    const spec = { ...fwd.spec };
    for (const [what, change] of teeth) {
      change(fwd.spec);
      const err = maxAbsDiff(await fwd.forward(ids), ref) / scale;
      expect({ what, far: err > 20 * base, base, err }).toMatchObject({ what, far: true });
      Object.assign(fwd.spec, spec);
    }
  });
});
