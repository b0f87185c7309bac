#!/usr/bin/env node
// What speculative decoding with n-gram drafts (EngineConfig.speculative, method 'ngram') does to decode speed: the
// same greedy requests through two engines of one model, plain and speculative, one request at a time (the latency
// case speculation is for). Prints per engine the median decode time per generated token (first token to last),
// tokens per step, the drafts' acceptance, and whether both engines gave the same tokens. Runs the compiled engine
// (dist/, `npm run build:ts`).
//   node test/bench/spec-decode.js DIST_DIR MODEL_DIR [--backend cpu|cuda] [--prompt FILE|repeat] [--prompt-tokens 256]
//        [--new 128] [--draft 4] [--lookup-max 4] [--lookup-min 1] [--requests 4] [--batch 1]
// --prompt FILE: each request's prompt is a different window of the file's tokens (a model's held-out text: what
// acceptance looks like on text the model knows); --prompt repeat: a random token run written twice, the second
// copy cut short (an edit / quote: the continuation is in the prompt). --batch N sends N requests at once.
// The model directory needs no tokenizer for --prompt repeat: a tiny byte-level one is written when absent.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const [dist, modelDir, ...rest] = process.argv.slice(2);
if (!dist || !modelDir) {
  console.error('usage: node test/bench/spec-decode.js DIST_DIR MODEL_DIR [--backend cpu|cuda] [--prompt FILE|repeat] [--new 128] [--draft 4]');
  process.exit(2);
}
const opt = { backend: 'cpu', prompt: 'repeat', 'prompt-tokens': 256, new: 128, draft: 4, 'lookup-max': 4, 'lookup-min': 1, requests: 4, batch: 1 };
for (let i = 0; i + 1 < rest.length; i += 2) opt[rest[i].replace(/^--/, '')] = rest[i + 1];
const engine = require(path.resolve(dist, 'libs/engine/src/index.js'));
const N = (k) => Number(opt[k]);

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function ensureTokenizer() {
  if (fs.existsSync(path.join(modelDir, 'tokenizer.json')) || fs.existsSync(path.join(modelDir, 'tokenizer.model'))) return;
  const cfg = JSON.parse(fs.readFileSync(path.join(modelDir, 'config.json'), 'utf8'));
  const { writeTinyTokenizer } = require(path.resolve(dist, 'libs/engine/src/testing/tiny-model.js'));
  writeTinyTokenizer(modelDir, { arch: 'llama', vocabSize: cfg.vocab_size });
}

async function run(prompts, speculative) {
  const e = await engine.Engine.fromPretrained(modelDir, {
    backend: opt.backend,
    maxBatchSize: Math.max(4, N('batch')),
    sessionLen: N('prompt-tokens') + N('new') + 16,
    ...(speculative ? { speculative: { method: 'ngram', numDraftTokens: N('draft'), promptLookupMax: N('lookup-max'), promptLookupMin: N('lookup-min') } } : {}),
    log: () => {},
  });
  try {
    const perTok = [], tokens = [];
    let steps = 0, generated = 0, drafted = 0, accepted = 0;
    // one warm-up request (graphs, GEMM plans), not counted
    for await (const _ of e.createInstance().streamInfer({ inputIds: prompts[0], maxNewTokens: 8, stopIds: [], sampling: { temperature: 0 } }));
    // timings from the native side (usage: first token and total ms), so the JavaScript layer's own cost per event
    // (detokenizing) is not counted; ms / step over a group's decode steps (its first step is the prefill)
    const perStep = [];
    for (let i = 0; i < prompts.length; i += N('batch')) {
      const group = prompts.slice(i, i + N('batch'));
      const s0 = e.stats().steps;
      let t0 = Infinity, t1 = 0;
      await Promise.all(group.map(async (inputIds) => {
        let usage;
        const out = [];
        for await (const o of e.createInstance().streamInfer({ inputIds, maxNewTokens: N('new'), stopIds: [], sampling: { temperature: 0 } })) {
          out.push(...o.tokenIds);
          if (o.usage) usage = o.usage;
        }
        perTok.push((usage.totalMs - usage.firstTokenMs) / Math.max(1, out.length - 1));
        t0 = Math.min(t0, usage.firstTokenMs);
        t1 = Math.max(t1, usage.totalMs);
        tokens.push(out);
        generated += out.length;
        drafted += usage.draftTokens ?? 0;
        accepted += usage.acceptedDraftTokens ?? 0;
      }));
      const ds = e.stats().steps - s0 - 1;
      steps += ds + 1;
      if (group.length === 1 && ds > 0) perStep.push((t1 - t0) / ds);
    }
    return { perTok: median(perTok), perStep: perStep.length ? median(perStep) : NaN, tokens, tokPerStep: generated / steps, drafted, accepted };
  } finally {
    await e.dispose();
  }
}

async function main() {
  ensureTokenizer();
  const cfg = JSON.parse(fs.readFileSync(path.join(modelDir, 'config.json'), 'utf8'));
  const V = cfg.vocab_size, P = N('prompt-tokens');
  const prompts = [];
  if (opt.prompt === 'repeat') {
    let x = 12345;
    const rnd = () => ((x = (x * 1103515245 + 12345) >>> 0) % (V - 10)) + 5;
    for (let r = 0; r < N('requests'); r++) {
      const run = Array.from({ length: Math.floor(P / 2) }, rnd);
      prompts.push([...run, ...run.slice(0, P - run.length)]);
    }
  } else {
    const tok = (await engine.Engine.fromPretrained(modelDir, { backend: 'cpu', log: () => {}, numBlocks: 4, maxBatchSize: 1, sessionLen: 64 }).then(async (e) => {
      const ids = e.tokenizer.encode(fs.readFileSync(opt.prompt, 'utf8'));
      await e.dispose();
      return ids;
    }));
    const stride = Math.max(1, Math.floor((tok.length - P) / N('requests')));
    for (let r = 0; r < N('requests'); r++) prompts.push(tok.slice(r * stride, r * stride + P));
  }
  const plain = await run(prompts, false);
  const spec = await run(prompts, true);
  const same = plain.tokens.every((t, i) => JSON.stringify(t) === JSON.stringify(spec.tokens[i]));
  console.log(`model ${path.basename(modelDir)} | backend ${opt.backend} | prompt ${opt.prompt === 'repeat' ? 'repeat' : path.basename(opt.prompt)} ${P} tokens | ${N('new')} new | ${prompts.length} requests, ${N('batch')} at a time | draft ${N('draft')}, lookup ${N('lookup-min')}-${N('lookup-max')}`);
  console.log('| engine | ms / token (median) | tokens / step | ms / decode step (batch 1) | drafts accepted | speedup |');
  console.log('| --- | --- | --- | --- | --- | --- |');
  console.log(`| plain | ${plain.perTok.toFixed(3)} | ${plain.tokPerStep.toFixed(2)} | ${plain.perStep.toFixed(3)} | - | 1.00x |`);
  console.log(`| ngram | ${spec.perTok.toFixed(3)} | ${spec.tokPerStep.toFixed(2)} | ${spec.perStep.toFixed(3)} | ${spec.accepted} / ${spec.drafted} (${((100 * spec.accepted) / Math.max(1, spec.drafted)).toFixed(0)}%) | ${(plain.perTok / spec.perTok).toFixed(2)}x |`);
  console.log(`same tokens: ${same ? 'yes' : 'NO'} (${plain.tokens.filter((t, i) => JSON.stringify(t) === JSON.stringify(spec.tokens[i])).length}/${plain.tokens.length} requests)`);
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
