// evalPpl: the windowing arithmetic over a fake scorer, and THE correctness check of the engine on the real CPU
// backend: the shared tiny Qwen2's fp16 perplexity must match the PyTorch reference within 1%.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createFakeNative } from '../testing/fake-native';
import { sharedModelDir } from '../testing/shared-model';
import { makeTempDir } from '../testing/tmp-dir';
import { writeTinyModel } from '../testing/tiny-model';
import { Tokenizer } from '../tokenizer/tokenizer';
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
});
