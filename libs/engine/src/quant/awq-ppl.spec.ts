// AWQ quality on the shared tiny Qwen2 models (../shared/models beside the repository): round-to-nearest W4 g128 vs
// AWQ (scale + clip search) perplexity on eval.txt, 512-token windows. To bound the spec's runtime on 2 cores,
// calibration takes the first 4 windows (what the searches use), and fp16, RTN and AWQ are evaluated on the same fixed
// subset (the first EVAL_WINDOWS windows). Measured here through the native AWQ session (the default): fp16 207.06,
// RTN 230.71, AWQ 225.19; -outliers RTN 249.24, AWQ 234.83 (25-140 s per model on the shared 2-core box, by its load);
// the TypeScript path (session: false) gives AWQ 224.47 / 233.87. Full 116-window numbers (AWQ calibrated on 32 windows, searchSamples 16):
// tiny-qwen2-pydocs fp16 216.40, RTN 237.14, AWQ scale-only 240.24, AWQ scale+clip 231.32; -outliers RTN 256.26,
// scale-only 243.92, scale+clip 235.84 (llm-awq's own: 230.36 / 236.56, in reference.json); with the CLI defaults
// (searchSamples 8) scale+clip gives 232.93 on tiny-qwen2-pydocs.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { evalPpl } from '../eval/ppl';
import { nativeCpuOrReport } from '../testing/native-cpu';
import { sharedModelDir } from '../testing/shared-model';
import { makeTempDir } from '../testing/tmp-dir';
import { autoAwq } from './awq';
import { calibrate } from './calibrate';

const EVAL_WINDOWS = 16;
const SEQLEN = 512;
const native = nativeCpuOrReport('awq ppl');
const models = ['tiny-qwen2-pydocs', 'tiny-qwen2-pydocs-outliers'].map((name) => ({ name, dir: sharedModelDir(name) }));
const present = models.filter((m) => m.dir);
if (present.length === 0) console.log('awq ppl: not run: no shared model');

(native && present.length ? describe : describe.skip)('AWQ vs round-to-nearest perplexity on the shared tiny models', () => {
  const tmp = makeTempDir('lmfleet-awq-ppl-');
  afterAll(() => tmp.cleanup());

  it.each(present.map((m) => [m.name, m.dir!] as const))('%s: AWQ (scale + clip) is strictly below RTN W4 g128', async (name, dir) => {
    const t0 = Date.now();
    const dataset = path.join(dir, 'eval.txt');
    const ref = JSON.parse(fs.readFileSync(path.join(dir, 'reference.json'), 'utf8'));
    const calibDir = path.join(tmp.dir, `${name}-calib`);
    await calibrate(dir, { dataset, samples: 4, seqlen: SEQLEN, workDir: calibDir, native: native! });
    const results: Record<string, number> = {};
    for (const mode of ['rtn', 'awq'] as const) {
      const work = path.join(tmp.dir, `${name}-${mode}`);
      fs.mkdirSync(work);
      for (const f of fs.readdirSync(calibDir)) fs.copyFileSync(path.join(calibDir, f), path.join(work, f));
      await autoAwq(dir, { workDir: work, wBits: 4, wGroupSize: 128, searchScale: mode === 'awq', searchClip: mode === 'awq', searchSamples: 4, native: native! });
      const r = await evalPpl(work, { datasetFile: dataset, seqlen: SEQLEN, maxWindows: EVAL_WINDOWS, native: native!, backend: 'cpu' });
      expect(r.windows).toBe(EVAL_WINDOWS);
      results[mode] = r.ppl;
    }
    const fp16 = await evalPpl(dir, { datasetFile: dataset, seqlen: SEQLEN, maxWindows: EVAL_WINDOWS, native: native!, backend: 'cpu' });
    console.log(
      `awq ppl ${name} (first ${EVAL_WINDOWS} windows of ${SEQLEN}): fp16 ${fp16.ppl.toFixed(2)}, RTN ${results.rtn.toFixed(2)}, ` +
        `AWQ ${results.awq.toFixed(2)} (full-eval references: fp16 ${ref.ppl_float16.toFixed(2)}, RTN ${ref.ppl_w4g128_rtn.toFixed(2)}, ` +
        `llm-awq ${ref.awq_reference.ppl_scale_and_clip_search.toFixed(2)}), ${((Date.now() - t0) / 1000).toFixed(0)} s`,
    );
    expect(results.awq).toBeLessThan(results.rtn);
    expect(results.rtn).toBeGreaterThan(fp16.ppl);
    // with salient channels (the case AWQ exists for) it recovers a good part of what RTN loses: at least a quarter
    // here (36% measured with this 4-window calibration; 51% with the full setting, as llm-awq's 50%)
    if (name.endsWith('-outliers')) expect(results.awq - fp16.ppl).toBeLessThan(0.75 * (results.rtn - fp16.ppl));
  }, 900_000);
});
