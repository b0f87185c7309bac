#!/usr/bin/env node
// Tensor-parallel parity through the addon (plain JS: the device machine has Node but no TypeScript runner): the
// same model at tp 1 and tp N on the same backend, compared on
//   - the logits of a full forward of a random prompt (max |diff| against the fp16 tolerance 2e-2 + 2e-2 |x|: the
//     cuda decoder computes in f16, and the all-reduce sums the ranks' partial products in another order), and
//   - greedy tokens for --steps steps of --prompts random prompts run as one batch (the engine's continuous batch),
//     with the top-2 log-prob margin of tp 1 wherever the tokens first differ (a difference at a near-tie, margin
//     below --tie, is f16 noise; above it, a bug);
//   - with --same-env VAR=V: tp N once more with that variable set (a path that must give the same bits, e.g.
//     LMFLEET_TP_LL=0): the forward logits, the greedy tokens and their top-2 log-probs must be identical.
//   node test/bench/tp-parity.js ADDON.node MODEL_DIR --tp 2 [--devices 0,1] [--backend cuda] [--steps 64] [--prompts 4] [--tie 0.02]
//     [--same-env VAR=V]
// Prints one table row per case and TP_PARITY_JSON last; exit 1 when the parity fails.
'use strict';
const path = require('node:path');
const { modelConfig, greedyTop2 } = require('./engine-bench');

const [addonPath, modelDir, ...rest] = process.argv.slice(2);
const opt = { tp: 2, steps: 64, prompts: 4, tie: 0.02, backend: 'cuda' };
for (let i = 0; i + 1 < rest.length; i += 2) opt[rest[i].replace(/^--/, '')] = rest[i + 1];
const steps = Number(opt.steps), nPrompts = Number(opt.prompts), tie = Number(opt.tie);

async function main() {
  const addon = require(path.resolve(addonPath));
  const info = addon.backendInfo();
  if (!info.available) throw new Error(`backend unavailable: ${info.reason}`);
  const tp = Number(opt.tp);
  const base = await run(addon, 1);
  const par = await run(addon, tp);
  let maxDiff = 0, maxAbs = 0, worst = 0;
  for (let i = 0; i < base.logits.length; i++) {
    const d = Math.abs(base.logits[i] - par.logits[i]);
    maxDiff = Math.max(maxDiff, d);
    maxAbs = Math.max(maxAbs, Math.abs(base.logits[i]));
    worst = Math.max(worst, d / (2e-2 + 2e-2 * Math.abs(base.logits[i])));
  }
  let same = 0, bad = 0;
  const divergences = [];
  base.gen.forEach((g, i) => {
    const p = par.gen[i].tokens;
    const k = g.tokens.findIndex((t, j) => t !== p[j]);
    if (k < 0 && p.length === g.tokens.length) same++;
    else {
      const top = g.tops[k];
      const margin = top ? (top.length > 1 ? top[0][1] - top[1][1] : Infinity) : NaN;
      divergences.push({ prompt: i, step: k, margin });
      if (!(margin < tie)) bad++;
    }
  });
  // --same-env VAR=V: tp N again with VAR=V; every logit, token and top-2 log-prob must be the same bits
  let sameEnv = null;
  if (opt['same-env']) {
    const spec = String(opt['same-env']), eq = spec.indexOf('=');
    const name = spec.slice(0, eq), value = spec.slice(eq + 1);
    const before = process.env[name];
    process.env[name] = value;
    const alt = await run(addon, tp);
    if (before === undefined) delete process.env[name];
    else process.env[name] = before;
    const logitsSame = alt.logits.length === par.logits.length && alt.logits.every((v, i) => Object.is(v, par.logits[i]));
    const genSame = alt.gen.every((g, i) => JSON.stringify(g.tokens) === JSON.stringify(par.gen[i].tokens) &&
      JSON.stringify(g.tops) === JSON.stringify(par.gen[i].tops));
    // where they part: the first (prompt, step) whose token or top-2 differs, and the largest top-2 log-prob gap
    let first = null, topGap = 0;
    alt.gen.forEach((g, i) => {
      const o = par.gen[i];
      for (let j = 0; j < Math.max(g.tokens.length, o.tokens.length); j++) {
        const ta = g.tops[j] ?? [], tb = o.tops[j] ?? [];
        ta.forEach((t, q) => { if (tb[q] && t[0] === tb[q][0]) topGap = Math.max(topGap, Math.abs(t[1] - tb[q][1])); });
        if (!first && (g.tokens[j] !== o.tokens[j] || JSON.stringify(ta) !== JSON.stringify(tb)))
          first = { prompt: i, step: j, token: g.tokens[j] !== o.tokens[j] };
      }
    });
    sameEnv = { env: opt['same-env'], logitsSame, genSame, first, topGap, ok: logitsSame && genSame };
  }
  const ok = worst <= 1 && bad === 0 && (!sameEnv || sameEnv.ok);
  console.log(`| model | tp | devices | logits max abs diff | max abs logit | greedy ${steps} steps same | divergences (step, tp1 top-2 margin) | parity |`);
  console.log(`| --- | --- | --- | --- | --- | --- | --- | --- |`);
  console.log(`| ${path.basename(modelDir)} | 1 vs ${tp} | ${opt.devices ?? 'default'} | ${maxDiff.toExponential(2)} | ${maxAbs.toFixed(2)} | ${same}/${nPrompts} | ` +
    `${divergences.map((d) => `p${d.prompt}@${d.step} (${d.margin.toFixed(3)})`).join(' ') || '-'} | ${ok ? 'PASS' : 'FAIL'} |`);
  if (sameEnv)
    console.log(`tp ${tp} with ${sameEnv.env} vs without: forward logits ${sameEnv.logitsSame ? 'identical' : 'DIFFER'}, ` +
      `greedy tokens and top-2 log-probs of ${nPrompts} prompts x ${steps} steps ${sameEnv.genSame ? 'identical' : 'DIFFER'}` +
      (sameEnv.first ? ` (first: prompt ${sameEnv.first.prompt} step ${sameEnv.first.step}, ${sameEnv.first.token ? 'token' : 'top-2 only'}; ` +
        `largest top-2 log-prob gap ${sameEnv.topGap.toExponential(2)})` : ''));
  console.log('TP_PARITY_JSON ' + JSON.stringify({ model: path.basename(modelDir), tp, devices: opt.devices ?? null, maxDiff, maxAbs, worst, same, prompts: nPrompts, divergences, ok,
    sameEnv, loadS: { tp1: base.loadS, tpN: par.loadS } }));
  if (!ok) process.exit(1);
}

// One run at `tp`. Both runs must see the same random prompts: engine-bench's randIds keeps one LCG, so each run
// takes a fresh copy of the module (seed restarted).
async function run(addon, tp) {
  delete require.cache[require.resolve('./engine-bench')];
  const rand = require('./engine-bench').randIds;
  const config = modelConfig(modelDir, { backend: opt.backend, tp, devices: tp > 1 ? opt.devices : undefined });
  const t0 = Date.now();
  const model = addon.createModel(config);
  await model.load();
  const loadS = (Date.now() - t0) / 1e3;
  const V = config.vocabSize;
  const logits = await model.forward(rand(48, V));
  const prompts = Array.from({ length: nPrompts }, (_, i) => rand(8 + 5 * i, V));
  const gen = await greedyTop2(addon, model, prompts, steps);
  model.dispose();
  return { logits, gen, loadS };
}

main().catch((e) => {
  console.error(`tp-parity failed: ${e.stack || e}`);
  process.exit(1);
});
