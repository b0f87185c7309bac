// Calibration datasets: the built-in set reads offline, unknown names list the available ones, user files (.txt,
// .jsonl, gzipped) read as documented, the built-in text shares nothing with the shared models' eval.txt, and
// calibrate runs on a tiny model with the built-in name.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { InvalidArgumentError } from '../errors';
import { nativeCpuOrReport } from '../testing/native-cpu';
import { sharedModelDir } from '../testing/shared-model';
import { makeTempDir } from '../testing/tmp-dir';
import { writeTinyModel } from '../testing/tiny-model';
import { calibrate, loadCalibration } from './calibrate';
import { BUILTIN_CALIB_DATASETS, calibDataDir, isBuiltinCalibDataset, readCalibText } from './datasets';

/** Distinct whitespace-separated word n-grams. */
function wordGrams(text: string, n: number): Set<string> {
  const w = text.split(/\s+/).filter(Boolean);
  const out = new Set<string>();
  for (let i = 0; i + n <= w.length; i++) out.add(w.slice(i, i + n).join(' '));
  return out;
}

describe('calibration datasets', () => {
  const tmp = makeTempDir('lmfleet-calib-ds-');
  afterAll(() => tmp.cleanup());

  it('cmake-docs is shipped, with its NOTICE, and reads offline as CMake documentation text', () => {
    expect(isBuiltinCalibDataset('cmake-docs')).toBe(true);
    expect(fs.existsSync(path.join(calibDataDir(), 'NOTICE'))).toBe(true);
    for (const d of BUILTIN_CALIB_DATASETS) expect(fs.readFileSync(path.join(calibDataDir(), 'NOTICE'), 'utf8')).toContain(d.file);
    const text = readCalibText('cmake-docs');
    expect(text.length).toBeGreaterThan(1_500_000);
    expect(text).toContain('cmake_minimum_required');
    expect(text).not.toContain('\uFFFD'); // valid UTF-8 throughout
  });

  it('unknown names list the built-in sets; LMDeploy hub names say they are not shipped; files must exist', () => {
    expect(() => readCalibText('wikitext3')).toThrow(InvalidArgumentError);
    expect(() => readCalibText('wikitext3')).toThrow(/unknown calibration dataset "wikitext3": built-in datasets: cmake-docs/);
    expect(() => readCalibText('ptb')).toThrow(/"ptb" is one of LMDeploy's hub datasets, which are not shipped.*built-in datasets: cmake-docs/);
    expect(() => readCalibText('/nope/x.txt')).toThrow(/calibration dataset file not found: \/nope\/x.txt/);
    expect(() => readCalibText(tmp.dir)).toThrow(/is a directory/);
  });

  it('user files: .txt as is, .jsonl "text" fields, gzipped either way; bad rows and bad gzip name the file', () => {
    const txt = path.join(tmp.dir, 'a.txt');
    fs.writeFileSync(txt, 'plain text');
    expect(readCalibText(txt)).toBe('plain text');
    const jsonl = path.join(tmp.dir, 'a.jsonl.gz');
    fs.writeFileSync(jsonl, zlib.gzipSync('{"text":"one"}\n\n{"text":"two"}\n'));
    expect(readCalibText(jsonl)).toBe('one\n\ntwo');
    const bad = path.join(tmp.dir, 'b.jsonl');
    fs.writeFileSync(bad, '{"text":"one"}\n{"txt":"two"}\n');
    expect(() => readCalibText(bad)).toThrow(/b\.jsonl:2: no string "text" field/);
    const badGz = path.join(tmp.dir, 'c.txt.gz');
    fs.writeFileSync(badGz, 'not gzip');
    expect(() => readCalibText(badGz)).toThrow(/c\.txt\.gz: not a valid gzip file/);
  });

  const evalModels = ['tiny-qwen2-pydocs', 'tiny-qwen2-pydocs-outliers'].map((n) => sharedModelDir(n)).filter((d): d is string => !!d);
  (evalModels.length ? it : it.skip)('cmake-docs shares no 8-gram and no line with the shared models\' eval.txt', () => {
    const calib = readCalibText('cmake-docs');
    const grams = wordGrams(calib, 8);
    const lines = new Set(calib.split('\n').map((l) => l.trim()).filter((l) => l.length >= 20));
    for (const dir of evalModels) {
      const ev = fs.readFileSync(path.join(dir, 'eval.txt'), 'utf8');
      const evGrams = wordGrams(ev, 8);
      let shared = 0;
      for (const g of evGrams) if (grams.has(g)) shared++;
      const evLines = ev.split('\n').map((l) => l.trim()).filter((l) => l.length >= 20);
      const sharedLines = evLines.filter((l) => lines.has(l)).length;
      console.log(`cmake-docs vs ${path.basename(dir)}/eval.txt: ${shared}/${evGrams.size} word 8-grams, ${sharedLines}/${evLines.length} lines (20+ chars) shared`);
      expect(shared / evGrams.size).toBeLessThan(0.001);
      expect(sharedLines / evLines.length).toBeLessThan(0.001);
    }
  });

  const native = nativeCpuOrReport('calibrate with a built-in dataset');
  (native ? it : it.skip)('calibrate takes the built-in name on a tiny model and records it in the manifest', async () => {
    const src = path.join(tmp.dir, 'model');
    writeTinyModel(src, { arch: 'qwen2', hiddenSize: 64, intermediateSize: 128, numHeads: 4, numKvHeads: 2, numLayers: 2, seed: 3 });
    const work = path.join(tmp.dir, 'work');
    const r = await calibrate(src, { dataset: 'cmake-docs', samples: 4, seqlen: 128, workDir: work, native: native! });
    expect(r.manifest).toMatchObject({ dataset: 'cmake-docs', samples: 4, seqlen: 128, tokens: 512 });
    const back = loadCalibration(work);
    expect(back.manifest.dataset).toBe('cmake-docs');
    expect(back.samples).toHaveLength(4);
    const s = back.inputs.get('layers.0.q')!;
    expect(s.absmax.every((v) => Number.isFinite(v) && v > 0)).toBe(true);
  }, 120_000);
});
