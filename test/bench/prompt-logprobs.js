#!/usr/bin/env node
// Prompt log-probs (completions' echo + logprobs) through the engine on a backend, checked against the same backend's
// whole-sequence scoring (scoreTokens: -log p(next token)) and, with --compare cpu, against the CPU engine: 4 prompts
// of 40-700 tokens at once, maxPrefillTokens 64 so the prompts' logits come over many chunked-prefill steps (mixed
// with the other requests' steps), plus a max_new_tokens 0 request. Prints the worst differences; exits 1 when
// a log-prob is missing or differs by more than the bound (1e-3 on the same backend, 5e-2 CUDA vs CPU: f16 vs f32).
// Also prints the scoring rate (prompt tokens per second with their log-probs, top 1).
//   node test/bench/prompt-logprobs.js DIST_DIR MODEL_DIR [--backend cpu|cuda] [--compare cpu] [--chunk 64] [--tp N]
'use strict';
const path = require('node:path');
const [dist, dir, ...rest] = process.argv.slice(2);
if (!dist || !dir) {
  console.error('usage: node test/bench/prompt-logprobs.js DIST_DIR MODEL_DIR [--backend cpu|cuda] [--compare cpu]');
  process.exit(2);
}
const opt = (name, def) => (rest.includes(name) ? rest[rest.indexOf(name) + 1] : def);
const backend = opt('--backend', 'cpu');
const compare = opt('--compare', undefined);
const chunk = Number(opt('--chunk', 64));
const tp = Number(opt('--tp', 1));
const engine = require(path.resolve(dist, 'libs/engine/src/index.js'));

function prompts(vocab) {
  let s = 12345;
  const rnd = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32;
  return [40, 300, 700, 129].map((n) => Array.from({ length: n }, () => Math.floor(rnd() * vocab)));
}

async function run(be, tpN = 1) {
  const e = await engine.Engine.fromPretrained(dir, { backend: be, maxBatchSize: 8, sessionLen: 1024, maxPrefillTokens: chunk, ...(tpN > 1 ? { tp: tpN } : {}), log: () => {} });
  const ps = prompts(e.spec.vocabSize);
  const one = async (ids, maxNewTokens) => {
    let lps;
    for await (const o of e.createInstance().streamInfer({ inputIds: ids, maxNewTokens, promptLogprobs: 1, stopIds: [], sampling: { temperature: 0 } })) {
      if (o.promptLogprobs) lps = o.promptLogprobs;
    }
    return lps;
  };
  await one(ps[0], 1); // warm-up
  const t0 = process.hrtime.bigint();
  const got = await Promise.all(ps.map((ids, i) => one(ids, i === 1 ? 0 : 4)));
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`${be}${tpN > 1 ? ` tp ${tpN}` : ''}: ${ps.reduce((a, p) => a + p.length, 0)} prompt tokens scored in ${secs.toFixed(3)} s (vocab ${e.spec.vocabSize}, chunks of ${chunk})`);
  const nll = [];
  for (const ids of ps) nll.push(Array.from(await e.scoreTokens(ids)));
  await e.dispose();
  return { ps, got, nll };
}

(async () => {
  const a = await run(backend, tp);
  let worst = 0;
  let missing = 0;
  let badRank = 0;
  a.got.forEach((lps, i) => {
    if (!lps || lps.length !== a.ps[i].length - 1) return missing++;
    lps.forEach((lp, k) => {
      if (lp.tokenId !== a.ps[i][k + 1]) missing++;
      // rank 1 exactly when the token is the top alternative (no exact ties among random logits)
      if (!(lp.rank >= 1) || (lp.rank === 1) !== (lp.top[0].tokenId === lp.tokenId)) badRank++;
      worst = Math.max(worst, Math.abs(lp.logprob + a.nll[i][k]));
    });
  });
  console.log(`${backend}: prompts ${a.ps.map((p) => p.length).join(',')} tokens; prompt log-probs missing or mislabelled: ${missing}; ranks inconsistent with the top token: ${badRank}; worst |logprob - (-nll)| ${worst.toExponential(2)} (bound 1e-3)`);
  let ok = missing === 0 && badRank === 0 && worst <= 1e-3;
  if (compare) {
    const b = await run(compare);
    let worstX = 0;
    a.got.forEach((lps, i) => lps?.forEach((lp, k) => (worstX = Math.max(worstX, Math.abs(lp.logprob - (b.got[i]?.[k]?.logprob ?? Infinity))))));
    console.log(`${backend}${tp > 1 ? ` tp ${tp}` : ''} vs ${compare}: worst |logprob difference| ${worstX.toExponential(2)} (bound 5e-2)`);
    ok = ok && worstX <= 5e-2;
  }
  if (!ok) process.exitCode = 1;
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
