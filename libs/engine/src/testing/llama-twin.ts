// Spec helper (uses jest's expect; kept out of the build by tsconfig.build.json).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadModelSpec } from '../models/load';
import type { NativeModule } from '../native';
import { cpuLogits } from './native-cpu';
import { writeTinyModel, type TinyModelOptions } from './tiny-model';

/**
 * Writes the same random tiny weights twice under `<root>/llama` and `<root>/<name>` (Llama, and an architecture that
 * must compute the Llama function with these options) and checks what such specs check: the directory loads as
 * `archKey`, its weights are byte-identical to Llama's, and the CPU logits of 20 tokens are bit-identical.
 */
export async function expectLlamaTwin(
  native: NativeModule, root: string, name: string, archKey: string, opts: TinyModelOptions,
): Promise<{ llamaDir: string; dir: string }> {
  const llamaDir = path.join(root, `${name}-llama`);
  const dir = path.join(root, name);
  const { arch: _, slidingWindow: _w, noRopeLayers: _r, maxPositionEmbeddings: _m, ...shared } = opts;
  writeTinyModel(llamaDir, { ...shared, arch: 'llama' });
  writeTinyModel(dir, opts);
  expect(loadModelSpec(dir).arch.key).toBe(archKey);
  // the same random weights under both names (the writer draws them in the same order)
  expect(fs.readFileSync(path.join(dir, 'model.safetensors')).equals(fs.readFileSync(path.join(llamaDir, 'model.safetensors')))).toBe(true);
  const ids = Int32Array.from({ length: 20 }, (_, i) => (i * 13 + 7) % 200);
  expect(Array.from(await cpuLogits(native, dir, ids))).toEqual(Array.from(await cpuLogits(native, llamaDir, ids)));
  return { llamaDir, dir };
}
