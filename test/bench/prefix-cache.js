#!/usr/bin/env node
// What prefix caching (EngineConfig.enablePrefixCaching, LMDeploy's --enable-prefix-caching) saves when requests share
// a long system prompt: REQUESTS requests, each the same SYSTEM-token prefix plus its own short question, sent one
// after another (a chat service's steady state), through two engines of the same model: without and with prefix
// caching. Prints each one's median time to first token, prefill tokens computed, and whether every request produced
// the same greedy tokens on both. Runs the compiled engine (dist/, `npm run build:ts`).
//   node test/bench/prefix-cache.js DIST_DIR MODEL_DIR [--backend cpu|cuda] [--requests 16] [--system 512]
//        [--question 16] [--new 16] [--block 64] [--chunk N]
// --chunk N prefills at most N tokens per step in both engines (maxPrefillTokens). With N = --system, the engine without
// caching computes each prompt's suffix in the same kernel shapes as the one that takes the prefix from its cache, so
// on CUDA the two must agree bit for bit; without it they differ by the rounding of other GEMM shapes.
// The model directory needs no tokenizer: a tiny byte-level one sized to its vocabulary is written into it when absent.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const [dist, modelDir, ...rest] = process.argv.slice(2);
if (!dist || !modelDir) {
  console.error('usage: node test/bench/prefix-cache.js DIST_DIR MODEL_DIR [--backend cpu] [--requests 16] [--system 512] [--question 16] [--new 16] [--block 64]');
  process.exit(2);
}
const opt = { backend: 'cpu', requests: 16, system: 512, question: 16, new: 16, block: 64, chunk: 0 };
for (let i = 0; i + 1 < rest.length; i += 2) opt[rest[i].replace(/^--/, '')] = rest[i + 1];
const engine = require(path.resolve(dist, 'libs/engine/src/index.js'));

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function run(prompts, caching) {
  const e = await engine.Engine.fromPretrained(modelDir, {
    backend: opt.backend,
    maxBatchSize: 4,
    sessionLen: Number(opt.system) + Number(opt.question) + Number(opt.new) + 8,
    blockSize: Number(opt.block),
    enablePrefixCaching: caching,
    ...(opt.chunk ? { maxPrefillTokens: Number(opt.chunk) } : {}),
    log: () => {},
  });
  try {
    const ttft = [], tokens = [], logprobs = [];
    let cached = 0, total = 0;
    for (const inputIds of prompts) {
      const t0 = performance.now();
      let first = 0;
      const out = [], lps = [];
      let usage;
      for await (const o of e.createInstance().streamInfer({ inputIds, maxNewTokens: Number(opt.new), stopIds: [], sampling: { temperature: 0 }, logprobs: 2 })) {
        if (o.tokenIds.length && !first) first = performance.now() - t0;
        out.push(...o.tokenIds);
        lps.push(...(o.logprobs ?? []));
        if (o.usage) usage = o.usage;
      }
      ttft.push(first);
      tokens.push(out);
      logprobs.push(lps);
      cached += usage.cachedTokens;
      total += usage.promptTokens;
    }
    return { ttft, tokens, logprobs, cached, total };
  } finally {
    await e.dispose();
  }
}

async function main() {
  const cfg = JSON.parse(fs.readFileSync(path.join(modelDir, 'config.json'), 'utf8'));
  if (!fs.existsSync(path.join(modelDir, 'tokenizer.json'))) engine.writeTinyTokenizer(modelDir, { arch: 'llama', vocabSize: cfg.vocab_size });
  const V = cfg.vocab_size;
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) % (V - 4)) + 4;
  const system = Array.from({ length: Number(opt.system) }, rand);
  const prompts = Array.from({ length: Number(opt.requests) }, () => [...system, ...Array.from({ length: Number(opt.question) }, rand)]);
  const off = await run(prompts, false);
  const on = await run(prompts, true);
  const same = off.tokens.every((t, i) => t.length === on.tokens[i].length && t.every((x, j) => x === on.tokens[i][j]));
  const sameLogprobs = same && off.logprobs.every((l, i) => l.every((x, j) => x.logprob === on.logprobs[i][j].logprob));
  // The first request fills the cache: the steady state is the others.
  const steady = (r) => median(r.ttft.slice(1));
  console.log(`prefix caching, ${opt.backend}, ${path.basename(path.resolve(modelDir))}: ${opt.requests} requests of ${opt.system} shared + ${opt.question} own prompt tokens, ${opt.new} new, block ${opt.block}${opt.chunk ? `, prefill chunks of ${opt.chunk}` : ''}`);
  console.log('| engine | TTFT median (requests 2..N) | TTFT request 1 | prompt tokens from the cache | same greedy tokens |');
  console.log('| --- | --- | --- | --- | --- |');
  console.log(`| without prefix caching | ${steady(off).toFixed(1)} ms | ${off.ttft[0].toFixed(1)} ms | ${off.cached} of ${off.total} | (reference) |`);
  console.log(`| with prefix caching | ${steady(on).toFixed(1)} ms | ${on.ttft[0].toFixed(1)} ms | ${on.cached} of ${on.total} | ${same ? 'yes' : 'NO'} |`);
  console.log(`TTFT ratio (steady state): ${(steady(off) / steady(on)).toFixed(2)}x`);
  if (same) console.log(`log-probs of the chosen tokens: ${sameLogprobs ? 'bit-identical' : 'not bit-identical'}`);
  if (!same) {
    // Where the tokens part, how close was the reference's choice? A computation that starts after cached blocks runs
    // other kernel shapes than one over the whole prompt (different rounding), so a near-tie may flip; a real fault
    // shows as log-probs apart well before the tokens part.
    let maxDiff = 0;
    const parts = [];
    off.tokens.forEach((t, i) => {
      const u = on.tokens[i];
      let j = 0;
      while (j < t.length && j < u.length && t[j] === u[j]) {
        maxDiff = Math.max(maxDiff, Math.abs(off.logprobs[i][j].logprob - on.logprobs[i][j].logprob));
        j++;
      }
      if (j < t.length) {
        const top = off.logprobs[i][j].top ?? [];
        const margin = top.length > 1 ? (top[0].logprob - top[1].logprob).toFixed(4) : '?';
        parts.push(`request ${i + 1} at step ${j} (reference top-2 margin ${margin})`);
      }
    });
    console.log(`tokens part in ${parts.length} of ${off.tokens.length} requests: ${parts.join('; ')}`);
    console.log(`largest |log-prob difference| of the chosen tokens before they part: ${maxDiff.toFixed(4)}`);
    process.exitCode = 1;
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
