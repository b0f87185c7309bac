#!/usr/bin/env node
// Speed of the quantization pipeline itself (LMDeploy lite: calibrate + auto_awq) on a random Llama-2-7B-shaped
// model with fewer layers: every layer has the same shape and both steps go layer by layer, so seconds per layer
// times 32 is the 7B estimate (plus the embedding, the same in any layer count). Runs the compiled engine
// (dist/, `npm run build:ts`) with the native backend given (cuda: runOp on the GPU; cpu: the CPU backend).
//   node test/bench/awq-speed.js DIST_DIR MODEL_DIR [--backend cuda] [--samples 16] [--seqlen 2048]
//        [--search-samples 8] [--group 128] [--work /tmp/awq-speed] [--modes awq,rtn] [--session 1]
// --session 0: the TypeScript path over BlockForward instead of the native AWQ session (calibrate and auto_awq).
// The model directory needs no tokenizer: a tiny byte-level one sized to its vocabulary is written into it.
// Calibration text: the built-in `cmake-docs` set. Prints AWQ_SPEED_JSON and a table last.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const [dist, modelDir, ...rest] = process.argv.slice(2);
const opt = { backend: 'cuda', samples: 16, seqlen: 2048, 'search-samples': 8, group: 128, work: '/tmp/awq-speed', modes: 'awq,rtn', session: '1' };
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
  // stage boundaries from the progress reports: setup ends at the first report, the layer work at the last
  // "layer" report; what follows is writing the output
  let firstReport;
  let lastLayer;
  const log = (what) => (f, m) => {
    if (firstReport === undefined) firstReport = Date.now();
    if (/layer \d+\/\d+/.test(m)) lastLayer = Date.now();
    const line = `[${((Date.now() - t0) / 1000).toFixed(1)} s] ${what} ${(f * 100).toFixed(0)}% ${m}`;
    if (/layer|saved|written|using/.test(m)) console.error(line);
  };
  let t0 = Date.now();
  firstReport = undefined;
  const session = opt.session !== '0';
  await engine.calibrate(modelDir, { dataset: 'cmake-docs', samples, seqlen, workDir: calibDir, native, session, onProgress: log('calibrate') });
  const calibS = (Date.now() - t0) / 1000;
  const results = {
    backend: opt.backend, layers: cfg.num_hidden_layers, hidden: cfg.hidden_size, intermediate: cfg.intermediate_size, samples, seqlen,
    calibrateS: calibS, calibrateSetupS: (firstReport - t0) / 1000, calibrateWriteS: calibS - (lastLayer - t0) / 1000,
    session,
  };
  const modes = String(opt.modes).split(',');
  for (const mode of modes) {
    const work = path.join(opt.work, mode);
    fs.mkdirSync(work, { recursive: true });
    for (const f of fs.readdirSync(calibDir)) fs.copyFileSync(path.join(calibDir, f), path.join(work, f));
    t0 = Date.now();
    firstReport = undefined;
    lastLayer = undefined;
    const r = await engine.autoAwq(modelDir, {
      workDir: work, wGroupSize: Number(opt.group), searchScale: mode === 'awq', searchClip: mode === 'awq',
      searchSamples: Number(opt['search-samples']), native, session, onProgress: log(`auto_awq(${mode})`),
    });
    results[`${mode}S`] = (Date.now() - t0) / 1000;
    results[`${mode}SetupS`] = (firstReport - t0) / 1000;
    results[`${mode}WriteS`] = results[`${mode}S`] - (lastLayer - t0) / 1000;
    results[`${mode}EngineS`] = r.seconds;
    if (mode === 'awq') results.awqLossRatio = r.layers.map((l) => l.lossRatio);
  }
  if (!modes.includes('rtn')) Object.assign(results, { rtnS: NaN, rtnSetupS: NaN, rtnWriteS: NaN });
  // weights in the model directory (setup reads them, the writer writes their quantized form): setup and write
  // scale with them, the layer work with the layer count
  const bytes = fs.readdirSync(modelDir).filter((f) => f.endsWith('.safetensors')).reduce((a, f) => a + fs.statSync(path.join(modelDir, f)).size, 0);
  results.modelBytes = bytes;
  const L = results.layers;
  // per layer: the layer work (total minus setup) over the layers; 7B: 32 layers, calibration scaled to 128 x 2048
  const perLayer = (total, setup, write = 0) => (total - setup - write) / L;
  const calibPerLayer = perLayer(results.calibrateS, results.calibrateSetupS, results.calibrateWriteS) * (128 / samples) * (2048 / seqlen);
  const awqPerLayer = perLayer(results.awqS, results.awqSetupS, results.awqWriteS);
  // the 7B's weights: 6.74 G parameters in fp16
  const scale7b = 13.48e9 / bytes;
  const fixed7b = scale7b * (results.calibrateSetupS + results.calibrateWriteS + results.awqSetupS + results.awqWriteS);
  results.estimate7b = {
    calibrate128x2048LayersS: 32 * calibPerLayer, awqSearchLayersS: 32 * awqPerLayer, totalLayersS: 32 * (calibPerLayer + awqPerLayer),
    setupAndWriteS: fixed7b, totalS: 32 * (calibPerLayer + awqPerLayer) + fixed7b,
  };
  console.log('AWQ_SPEED_JSON ' + JSON.stringify(results));
  const row = (a) => `| ${a.join(' | ')} |`;
  console.log(`backend ${opt.backend}; model ${L} layers, hidden ${results.hidden}, intermediate ${results.intermediate}`);
  console.log(row(['step', 'measured s', 'setup s', 'write s', 'layer work s / layer', 'x32 layers (7B) s']));
  console.log(row(['---', '---', '---', '---', '---', '---']));
  const line = (name, total, setup, write) => console.log(row([name, total.toFixed(1), setup.toFixed(1), write.toFixed(1), perLayer(total, setup, write).toFixed(2), (32 * perLayer(total, setup, write)).toFixed(0)]));
  line(`calibrate ${samples}x${seqlen}`, results.calibrateS, results.calibrateSetupS, results.calibrateWriteS);
  if (modes.includes('awq')) line(`auto_awq scale+clip search (${opt['search-samples']} samples)`, results.awqS, results.awqSetupS, results.awqWriteS);
  if (modes.includes('rtn')) line('round-to-nearest', results.rtnS, results.rtnSetupS, results.rtnWriteS);
  console.log(`7B estimate: layer work calibrate 128x2048 ${(32 * calibPerLayer).toFixed(0)} s + AWQ search ${(32 * awqPerLayer).toFixed(0)} s, ` +
    `setup + write scaled by weight bytes x${scale7b.toFixed(1)} ${fixed7b.toFixed(0)} s = ${(results.estimate7b.totalS / 60).toFixed(1)} min (target < 15 min)`);
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
