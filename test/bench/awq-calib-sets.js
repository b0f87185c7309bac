#!/usr/bin/env node
// Does the calibration text matter? AWQ W4 g128 (scale + clip search) on a shared tiny model, calibrated on its own
// eval.txt windows (in-domain, what the AWQ reference in reference.json did) and on the built-in `cmake-docs` set
// (out-of-domain: CMake's docs, disjoint from eval.txt), against round-to-nearest and fp16, all evaluated on the first
// EVAL windows of eval.txt (512 tokens). Uses the compiled engine (npm run build:ts). Prints a table.
//   node test/bench/awq-calib-sets.js [DIST=dist] [MODEL=../shared/models/tiny-qwen2-pydocs] [--samples 8] [--eval 16]
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const args = process.argv.slice(2);
const flag = (n, d) => (args.includes(`--${n}`) ? Number(args[args.indexOf(`--${n}`) + 1]) : d);
const pos = args.filter((a, i) => !a.startsWith('--') && !(i > 0 && args[i - 1].startsWith('--')));
const dist = path.resolve(pos[0] ?? 'dist');
const model = path.resolve(pos[1] ?? path.join(__dirname, '..', '..', '..', 'shared', 'models', 'tiny-qwen2-pydocs'));
const samples = flag('samples', 8);
const evalWindows = flag('eval', 16);
const engine = require(path.join(dist, 'libs/engine/src/index.js'));
const { loadNative } = require(path.join(dist, 'libs/native/src/index.js'));

async function main() {
  const native = loadNative({ backend: 'cpu' });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lmfleet-calib-sets-'));
  const evalTxt = path.join(model, 'eval.txt');
  const ppl = async (dir) => (await engine.evalPpl(dir, { datasetFile: evalTxt, seqlen: 512, maxWindows: evalWindows, native, backend: 'cpu' })).ppl;
  const rows = [['fp16', '-', (await ppl(model)).toFixed(2), '-']];
  const quantize = async (name, dataset, search) => {
    const work = path.join(tmp, name);
    const t0 = Date.now();
    if (dataset) await engine.calibrate(model, { dataset, samples, seqlen: 512, workDir: work, native });
    await engine.autoAwq(model, { workDir: work, wGroupSize: 128, searchScale: search, searchClip: search, searchSamples: samples, native });
    return [((Date.now() - t0) / 1000).toFixed(0), (await ppl(work)).toFixed(2)];
  };
  const [rtnS, rtn] = await quantize('rtn', undefined, false);
  rows.push(['W4 g128 round-to-nearest', '-', rtn, rtnS]);
  for (const [label, ds] of [['eval.txt (first windows, in-domain)', evalTxt], ['cmake-docs (built-in, disjoint)', 'cmake-docs']]) {
    const [s, p] = await quantize(ds === evalTxt ? 'awq-eval' : 'awq-cmake', ds, true);
    rows.push(['W4 g128 AWQ scale + clip', `${label}, ${samples} x 512`, p, s]);
  }
  fs.rmSync(tmp, { recursive: true, force: true });
  console.log(`${path.basename(model)}: perplexity on the first ${evalWindows} windows of 512 tokens of eval.txt`);
  console.log('| weights | calibration | ppl | seconds |');
  console.log('| --- | --- | --- | --- |');
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
