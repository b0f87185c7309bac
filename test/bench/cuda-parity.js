#!/usr/bin/env node
// CUDA parity through the real addon and the compiled engine (plain JS: the GPU machine has Node but no TypeScript
// runner; `npm run build:ts` makes dist/). Run by libs/native/scripts/device-parity.sh.
//   1. every golden case of test/fixtures/golden (tiny random HF models + transformers' logits, make_golden.py):
//      PretrainedModel.load(dir, { backend: 'cuda' }).forward(prompt) vs the golden logits (max abs error), and
//      Engine.fromPretrained(dir, { backend: 'cuda' }) greedy 32 tokens vs transformers' generate; the same with the
//      int8 KV cache (quantPolicy 8): greedy tokens must stay identical (logit error reported, not bounded).
//   2. (with --ppl MODEL_DIR) eval ppl at --seqlen over MODEL_DIR/eval.txt on cuda with the fp16, int8 and int4 KV
//      cache, online, and calibrated from --kv-calib-dir when given.
// Prints PARITY_JSON last.
//   node test/bench/cuda-parity.js [--dist DIST] [--golden DIR] [--ppl MODEL_DIR] [--seqlen 512] [--kv-calib-dir DIR]
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const root = path.resolve(__dirname, '..', '..');
const dist = path.resolve(opt('dist', path.join(root, 'dist')));
const backend = opt('backend', 'cuda');
const goldenDir = path.resolve(opt('golden', path.join(root, 'test', 'fixtures', 'golden')));
const engine = require(path.join(dist, 'libs', 'engine', 'src', 'index.js'));
const { writeTinyTokenizer } = require(path.join(dist, 'libs', 'engine', 'src', 'testing', 'tiny-model.js'));
const log = (level, msg) => {
  if (level === 'warn' || level === 'error') console.log(`[${level}] ${msg}`);
};

async function goldenCase(name, quantPolicy) {
  const src = path.join(goldenDir, name);
  const golden = JSON.parse(fs.readFileSync(path.join(src, 'golden.json'), 'utf8'));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `golden-${name}-`));
  for (const f of fs.readdirSync(src)) if (f !== 'golden.json') fs.copyFileSync(path.join(src, f), path.join(dir, f));
  writeTinyTokenizer(dir, { arch: name.startsWith('llama') ? 'llama' : 'qwen2', vocabSize: golden.vocab_size });
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  const headDim = cfg.head_dim ?? cfg.hidden_size / cfg.num_attention_heads;
  const V = golden.vocab_size;
  const pm = await engine.PretrainedModel.load(dir, { backend, quantPolicy, log });
  let maxErr = 0;
  try {
    const logits = await pm.forward(golden.prompt_ids);
    golden.logits.forEach((row, t) => row.forEach((g, v) => (maxErr = Math.max(maxErr, Math.abs(logits[t * V + v] - g)))));
  } finally {
    pm.dispose();
  }
  const eng = await engine.Engine.fromPretrained(dir, { backend, quantPolicy, maxBatchSize: 2, sessionLen: 128, log });
  const ids = [];
  try {
    for await (const o of eng.createInstance().streamInfer({ inputIds: golden.prompt_ids, maxNewTokens: golden.greedy_ids.length, stopIds: [], sampling: { temperature: 0 } })) {
      ids.push(...o.tokenIds);
    }
  } finally {
    await eng.dispose();
  }
  fs.rmSync(dir, { recursive: true, force: true });
  const same = ids.length === golden.greedy_ids.length && ids.every((x, i) => x === golden.greedy_ids[i]);
  let firstDiff = ids.findIndex((x, i) => x !== golden.greedy_ids[i]);
  if (firstDiff < 0 && ids.length !== golden.greedy_ids.length) firstDiff = Math.min(ids.length, golden.greedy_ids.length);
  // fp16 tolerance: the f16 kernels vs transformers' f32 math on the same fp16 weights (the CPU spec's bound)
  const bound = Math.max(1e-2, golden.min_margin / 2);
  return { case: name, headDim, quantPolicy, maxErr, bound, minMargin: golden.min_margin, greedySame: same, firstDiff, ok: quantPolicy ? same : same && maxErr < bound };
}

async function main() {
  const info = require(path.join(dist, 'libs', 'native', 'src', 'index.js')).loadNative({ backend }).backendInfo();
  console.log(`${backend} backend: ${JSON.stringify(info)}`);
  const result = { golden: [], ppl: [] };
  const cases = fs.readdirSync(goldenDir).filter((d) => fs.existsSync(path.join(goldenDir, d, 'golden.json'))).sort();
  for (const name of cases) {
    for (const qp of [0, 8]) {
      try {
        const r = await goldenCase(name, qp);
        result.golden.push(r);
        console.log(`golden ${name} (head_dim ${r.headDim}) KV ${qp ? 'int' + qp : 'fp16'}: max |logit - golden| ${r.maxErr.toExponential(2)} ` +
          `(bound ${r.bound.toExponential(1)}), greedy 32 ${r.greedySame ? 'identical' : 'DIFFER at ' + r.firstDiff} -> ${r.ok ? 'PASS' : 'FAIL'}`);
      } catch (e) {
        result.golden.push({ case: name, quantPolicy: qp, ok: false, error: String(e && e.message) });
        console.log(`golden ${name} KV ${qp}: ERROR ${e && e.stack}`);
      }
    }
  }
  const pplDir = opt('ppl');
  if (pplDir) {
    const seqlen = Number(opt('seqlen', '512'));
    const calib = opt('kv-calib-dir');
    const runs = [[0, undefined], [8, undefined], [4, undefined]];
    if (calib) runs.push([8, calib], [4, calib]);
    for (const [qp, dir] of runs) {
      try {
        const r = await engine.evalPpl(pplDir, { datasetFile: path.join(pplDir, 'eval.txt'), seqlen, backend, quantPolicy: qp, kvCalibDir: dir, log });
        result.ppl.push({ quantPolicy: qp, kvCache: r.kvCache, ppl: r.ppl, windows: r.windows, seconds: r.seconds });
        console.log(`eval ppl ${backend} seqlen ${seqlen}: KV ${r.kvCache}: ppl ${r.ppl.toFixed(4)} over ${r.windows} windows, ${r.seconds.toFixed(1)} s`);
      } catch (e) {
        result.ppl.push({ quantPolicy: qp, error: String(e && e.message) });
        console.log(`eval ppl KV ${qp}: ERROR ${e && e.stack}`);
      }
    }
  }
  console.log('PARITY_JSON ' + JSON.stringify(result));
  process.exit(result.golden.every((g) => g.ok) ? 0 : 1);
}

main().catch((e) => {
  console.error(`cuda-parity failed: ${e.stack || e}`);
  process.exit(1);
});
