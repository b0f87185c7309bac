import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeTempDir } from './tmp-dir';
import { writeTinyModel } from './tiny-model';

describe('writeTinyModel', () => {
  it('is deterministic from the seed and differs across seeds', () => {
    const tmp = makeTempDir();
    try {
      const files = (d: string) => fs.readdirSync(d).sort().map((f) => [f, fs.readFileSync(path.join(d, f))] as const);
      writeTinyModel(path.join(tmp.dir, 'a'), { seed: 3 });
      writeTinyModel(path.join(tmp.dir, 'b'), { seed: 3 });
      writeTinyModel(path.join(tmp.dir, 'c'), { seed: 4 });
      const [a, b, c] = ['a', 'b', 'c'].map((d) => files(path.join(tmp.dir, d)));
      expect(a.map(([f]) => f)).toEqual(['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
      a.forEach(([f, buf], i) => expect(buf.equals(b[i][1])).toBe(true));
      expect(a[2][1].equals(c[2][1])).toBe(false);
    } finally {
      tmp.cleanup();
    }
  });
});
