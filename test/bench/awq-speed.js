#!/usr/bin/env node
// Speed of the quantization pipeline itself (LMDeploy lite: calibrate + auto_awq) on a random Llama-2-7B-shaped
// model with fewer layers: every layer has the same shape and both steps go layer by layer, so seconds per layer
// times 32 is the 7B estimate (plus the embedding, the same in any layer count). Runs the compiled engine
// (dist/, `npm run build:ts`) with the native backend given (cuda: runOp on the GPU; cpu: the CPU backend).
//   node test/bench/awq-speed.js DIST_DIR MODEL_DIR [--backend cuda] [--samples 16] [--seqlen 2048]
//        [--search-samples 8] [--group 128] [--work /tmp/awq-speed]
// The model directory needs no tokenizer: a tiny byte-level one sized to its vocabulary is written into it.
// Calibration text: the built-in `cmake-docs` set. Prints AWQ_SPEED_JSON and a table last.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const [dist, modelDir, ...rest] = process.argv.slice(2);
const opt = { backend: 'cuda', samples: 16, seqlen: 2048, 'search-samples': 8, group: 128, work: '/tmp/awq-speed' };
for (let i = 0; i + 1 < rest.length; i += 2) opt[rest[i].replace(/^--/, '')] = rest[i + 1];
const engine = require(path.resolve(dist, 'libs/engine/src/index.js'));
const { loadNative } = require(path.resolve(dist, 'libs/native/src/index.js'));

async function main() {
  const cfg = JSON.parse(fs.readFileSync(path.join(modelDir, 'config.json'), 'utf8'));
  if (!fs.existsSync(path.join(modelDir, 'tokenizer.json'))) engine.writeTinyTokenizer(modelDir, { arch: 'llama', vocabSize: cfg.vocab_size });
  const native = loadNative({ backend: opt.backend });
  fs.rmSync(opt.work, { recursive: true, force: true });
  const calibDir = path.join(opt.work, 'calib');
  const samples = Number(opt.samples), seqlen = Number(opt.seqlen);
  // setup (weights to f32, tokenizing the text) ends at a step's first progress report; the layer work follows
  let firstReport;
  const log = (what) => (f, m) => {
    if (firstReport === undefined) firstReport = Date.now();
    const line = `[${((Date.now() - t0) / 1000).toFixed(1)} s] ${what} ${(f * 100).toFixed(0)}% ${m}`;
    if (/layer|saved|written|using/.test(m)) console.error(line);
  };
  let t0 = Date.now();
  firstReport = undefined;
  await engine.calibrate(modelDir, { dataset: 'cmake-docs', samples, seqlen, workDir: calibDir, native, onProgress: log('calibrate') });
  const calibS = (Date.now() - t0) / 1000;
  const results = {
    backend: opt.backend, layers: cfg.num_hidden_layers, hidden: cfg.hidden_size, intermediate: cfg.intermediate_size, samples, seqlen,
    calibrateS: calibS, calibrateSetupS: (firstReport - t0) / 1000,
  };
  for (const mode of ['awq', 'rtn']) {
    const work = path.join(opt.work, mode);
    fs.mkdirSync(work, { recursive: true });
    for (const f of fs.readdirSync(calibDir)) fs.copyFileSync(path.join(calibDir, f), path.join(work, f));
    t0 = Date.now();
    firstReport = undefined;
    const r = await engine.autoAwq(modelDir, {
      workDir: work, wGroupSize: Number(opt.group), searchScale: mode === 'awq', searchClip: mode === 'awq',
      searchSamples: Number(opt['search-samples']), native, onProgress: log(`auto_awq(${mode})`),
    });
    results[`${mode}S`] = (Date.now() - t0) / 1000;
    results[`${mode}SetupS`] = (firstReport - t0) / 1000;
    results[`${mode}EngineS`] = r.seconds;
  }
  const L = results.layers;
  // per layer: the layer work (total minus setup) over the layers; 7B: 32 layers, calibration scaled to 128 x 2048
  const perLayer = (total, setup) => (total - setup) / L;
  const calibPerLayer = perLayer(results.calibrateS, results.calibrateSetupS) * (128 / samples) * (2048 / seqlen);
  const awqPerLayer = perLayer(results.awqS, results.awqSetupS);
  results.estimate7b = { calibrate128x2048LayersS: 32 * calibPerLayer, awqSearchLayersS: 32 * awqPerLayer, totalLayersS: 32 * (calibPerLayer + awqPerLayer) };
  console.log('AWQ_SPEED_JSON ' + JSON.stringify(results));
  const row = (a) => `| ${a.join(' | ')} |`;
  console.log(`backend ${opt.backend}; model ${L} layers, hidden ${results.hidden}, intermediate ${results.intermediate}`);
  console.log(row(['step', 'measured s', 'setup s', 'layer work s / layer', 'x32 layers (7B) s']));
  console.log(row(['---', '---', '---', '---', '---']));
  console.log(row([`calibrate ${samples}x${seqlen}`, results.calibrateS.toFixed(1), results.calibrateSetupS.toFixed(1), perLayer(results.calibrateS, results.calibrateSetupS).toFixed(2), (32 * perLayer(results.calibrateS, results.calibrateSetupS)).toFixed(0)]));
  console.log(row([`auto_awq scale+clip search (${opt['search-samples']} samples) + write`, results.awqS.toFixed(1), results.awqSetupS.toFixed(1), awqPerLayer.toFixed(2), (32 * awqPerLayer).toFixed(0)]));
  console.log(row(['round-to-nearest + write', results.rtnS.toFixed(1), results.rtnSetupS.toFixed(1), perLayer(results.rtnS, results.rtnSetupS).toFixed(2), (32 * perLayer(results.rtnS, results.rtnSetupS)).toFixed(0)]));
  console.log(`7B estimate (layer work only; setup = loading 6.7B weights to f32 + tokenizing comes on top): calibrate 128x2048 ${(32 * calibPerLayer).toFixed(0)} s + AWQ search ${(32 * awqPerLayer).toFixed(0)} s = ${(results.estimate7b.totalLayersS / 60).toFixed(1)} min (target < 15 min)`);
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
