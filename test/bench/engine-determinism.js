// Whether the engine gives the same bits run after run: the same random prompts through a fresh engine several times,
// greedy with top-2 log-probs, every prompt's step-0 top-2 also against log_softmax of model.forward(prompt) (the
// prompt alone, no batching). Prints where runs part and by how much.
//   node test/bench/engine-determinism.js ADDON.node MODEL_DIR [--backend cuda] [--prompts 8] [--steps 8] [--runs 3]
//        [--tp 1] [--devices 0]
'use strict';
const path = require('node:path');
const { modelConfig, randIds, greedyTop2 } = require('./engine-bench');

const [addonPath, modelDir, ...rest] = process.argv.slice(2);
const opt = { backend: 'cuda', prompts: 8, steps: 8, runs: 3, tp: 1 };
for (let i = 0; i + 1 < rest.length; i += 2) opt[rest[i].replace(/^--/, '')] = rest[i + 1];

async function main() {
  const addon = require(path.resolve(addonPath));
  const tp = Number(opt.tp);
  const config = modelConfig(modelDir, { backend: opt.backend, tp, devices: opt.devices ? String(opt.devices).split(',').map(Number) : undefined });
  const model = addon.createModel(config);
  await model.load();
  const V = config.vocabSize;
  const prompts = Array.from({ length: Number(opt.prompts) }, (_, i) => randIds(8 + 5 * i, V));
  // reference: each prompt alone through model.forward, log_softmax of its last row
  const ref = [];
  for (const p of prompts) {
    const lg = await model.forward(p);
    const row = lg.subarray(lg.length - V);
    let mx = -Infinity;
    for (const v of row) mx = Math.max(mx, v);
    let s = 0;
    for (const v of row) s += Math.exp(v - mx);
    const lse = mx + Math.log(s);
    ref.push((id) => row[id] - lse);
  }
  const runs = [];
  for (let r = 0; r < Number(opt.runs); r++) runs.push({ out: await greedyTop2(addon, model, prompts, Number(opt.steps)) });
  model.dispose();
  for (const [ri, run] of runs.entries()) {
    let worstRef = 0, worstRun0 = 0, tokDiff = 0;
    run.out.forEach((o, i) => {
      for (const [id, lp] of o.tops[0] ?? []) worstRef = Math.max(worstRef, Math.abs(lp - ref[i](id)));
      const b = runs[0].out[i];
      o.tokens.forEach((t, j) => { if (t !== b.tokens[j]) tokDiff++; });
      o.tops.forEach((tt, j) => tt.forEach(([id, lp], q) => {
        if (b.tops[j]?.[q]?.[0] === id) worstRun0 = Math.max(worstRun0, Math.abs(lp - b.tops[j][q][1]));
      }));
    });
    console.log(`run ${ri}: step-0 top-2 vs forward alone max |diff| ${worstRef.toExponential(2)}; ` +
      `vs run 0: top-2 max |diff| ${worstRun0.toExponential(2)}, ${tokDiff} tokens differ`);
  }
}

main().catch((e) => {
  console.error(`engine-determinism failed: ${e.stack || e}`);
  process.exit(1);
});
