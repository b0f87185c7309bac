// The TS layer-by-layer forward must reproduce the native decoder's logits (and transformers' golden logits).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { nativeCpuOrReport } from '../testing/native-cpu';
import { GOLDEN_DIR, goldenCases } from '../testing/golden';
import { makeTempDir } from '../testing/tmp-dir';
import { writeTinyTokenizer } from '../testing/tiny-model';
import { PretrainedModel } from '../generation/pretrained';
import { BlockForward } from './block-forward';

const GOLDEN = GOLDEN_DIR;
const native = nativeCpuOrReport('block forward');
// (mixtral and qwen3-moe among them: the experts' routing in TypeScript, BlockForward.moeBlock)
const cases = goldenCases('all');

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

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
