#!/usr/bin/env node
// On the GPU machine: the AWQ session's attention paths against each other on one layer of a (7B-shaped) model: the
// f32 attention op (LMFLEET_AWQ_F32_ATTENTION=1) and attention_fast (cuda: q/k/v in f16 through the decoder's
// tensor-core prefill kernel). Layer output and the scale-search losses of the q/k/v group must agree closely (f16
// rounding of q/k/v only); prints both and the time of each.
//   node test/bench/awq-session-parity.js DIST_DIR MODEL_DIR [--backend cuda] [--seqs 2] [--seqlen 2048] [--group 128]
'use strict';
const path = require('node:path');

const [dist, modelDir, ...rest] = process.argv.slice(2);
const opt = { backend: 'cuda', seqs: 2, seqlen: 2048, group: 128 };
for (let i = 0; i + 1 < rest.length; i += 2) opt[rest[i].replace(/^--/, '')] = rest[i + 1];
const { BlockForward } = require(path.resolve(dist, 'libs/engine/src/quant/block-forward.js'));
const { createLayerSession, layerTensors, tapMean } = require(path.resolve(dist, 'libs/engine/src/quant/awq-session.js'));
const { scaleCandidates } = require(path.resolve(dist, 'libs/engine/src/quant/awq.js'));
const { loadNative } = require(path.resolve(dist, 'libs/native/src/index.js'));

function rel(a, b) {
  let m = 0, s = 0, e2 = 0, r2 = 0;
  for (let i = 0; i < a.length; i++) {
    m = Math.max(m, Math.abs(a[i] - b[i]));
    s = Math.max(s, Math.abs(b[i]));
    e2 += (a[i] - b[i]) ** 2;
    r2 += b[i] ** 2;
  }
  return { maxRel: m / s, rmsRel: Math.sqrt(e2 / r2) };
}

async function main() {
  const native = loadNative({ backend: opt.backend });
  const { fwd } = BlockForward.fromDir(native, modelDir);
  const S = Number(opt.seqs), L = Number(opt.seqlen);
  const ids = Int32Array.from({ length: S * L }, (_, i) => (i * 7919 + 13) % fwd.spec.vocabSize);
  const x = await fwd.embed(ids);
  const out = {};
  for (const mode of ['f32', 'fast']) {
    process.env.LMFLEET_AWQ_F32_ATTENTION = mode === 'f32' ? '1' : '0';
    const sess = createLayerSession(fwd);
    await sess.setInput(x, Int32Array.from({ length: S }, () => L));
    await sess.setTensors(layerTensors(fwd, 0));
    let t = Date.now();
    const st = await sess.run({ stats: true, taps: true });
    const runMs = Date.now() - t;
    t = Date.now();
    const losses = await sess.scaleLosses(0, scaleCandidates(tapMean(st.attnIn), 20), { seqs: 1, groupSize: Number(opt.group) });
    const lossMs = Date.now() - t;
    await sess.run({ advance: true });
    out[mode] = { y: await sess.input(), losses, runMs, lossMs };
    sess.dispose();
  }
  const d = rel(out.fast.y, out.f32.y);
  const l = rel(out.fast.losses, out.f32.losses);
  const argmin = (v) => v.indexOf(Math.min(...v));
  console.log(`AWQ_PARITY_JSON ${JSON.stringify({ layerOut: d, losses: l, argminF32: argmin(Array.from(out.f32.losses)), argminFast: argmin(Array.from(out.fast.losses)),
    f32: { runMs: out.f32.runMs, lossMs: out.f32.lossMs }, fast: { runMs: out.fast.runMs, lossMs: out.fast.lossMs } })}`);
  console.log(`| attention | layer run (${S}x${L}, taps + stats) ms | 20 q/k/v candidates ms | best alpha |`);
  console.log('| --- | --- | --- | --- |');
  for (const m of ['f32', 'fast']) console.log(`| ${m} | ${out[m].runMs} | ${out[m].lossMs} | ${argmin(Array.from(out[m].losses)) / 20} |`);
  console.log(`layer output fast vs f32: max rel ${d.maxRel.toExponential(2)}, rms rel ${d.rmsRel.toExponential(2)}; losses: max rel ${l.maxRel.toExponential(2)}`);
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
