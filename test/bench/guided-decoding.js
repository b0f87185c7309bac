#!/usr/bin/env node
// What guided decoding (response_format) costs on the engine: ms per token of greedy requests with a JSON schema
// (an array of six short strings) and without, alone and in one batch (8 requests: 4 + 4, then 8 of one kind). Each
// guided token makes one round trip to the grammar worker thread (xgrammar), which computes the next allowed set.
// Runs the compiled engine (dist/, `npm run build:ts`); cpu backend unless --backend cuda.
//   node test/bench/guided-decoding.js DIST_DIR MODEL_DIR [--backend cpu|cuda] [--new 64] [--logprobs N] [--temperature T]
// (a byte-level tiny tokenizer needs --new 160: the schema's JSON is ~110 characters). --logprobs N: guided requests
// also ask for log-probs (each guided token must then come with a finite one); --temperature T: every request samples
// (seeded) instead of greedy, so guided rows take the sampler's masked draw rather than the masked arg-max.
'use strict';
const path = require('node:path');
const [dist, dir, ...rest] = process.argv.slice(2);
if (!dist || !dir) {
  console.error('usage: node test/bench/guided-decoding.js DIST_DIR MODEL_DIR [--backend cpu|cuda] [--new 64]');
  process.exit(2);
}
const opt = { backend: 'cpu', new: 64, logprobs: '', temperature: '0' };
for (let i = 0; i + 1 < rest.length; i += 2) opt[rest[i].replace(/^--/, '')] = rest[i + 1];
const { backend } = opt;
const engine = require(path.resolve(dist, 'libs/engine/src/index.js'));
(async () => {
  const e = await engine.Engine.fromPretrained(dir, { backend, maxBatchSize: 8, sessionLen: 1024, log: () => {} });
  const schema = { type: 'object', properties: { items: { type: 'array', items: { type: 'string', maxLength: 12 }, minItems: 6, maxItems: 6 } }, required: ['items'] };
  const fits = [];
  const fitsSchema = (text) => {
    try {
      const v = JSON.parse(text);
      return Array.isArray(v.items) && v.items.length === 6 && v.items.every((x) => typeof x === 'string' && [...x].length <= 12);
    } catch {
      return false;
    }
  };
  const prompt = e.encodePrompt([{ role: 'user', content: 'List six Python modules as JSON.' }]);
  const wantLp = opt.logprobs !== '' ? Number(opt.logprobs) : undefined;
  let seed = 1;
  let badLogprobs = 0;
  const one = async (guided) => {
    let n = 0, first = 0, text = '', finish, lps = 0;
    const sampling = { temperature: Number(opt.temperature), seed: seed++ };
    const extra = guided ? { responseFormat: { type: 'json_schema', schema }, ...(wantLp !== undefined ? { logprobs: wantLp } : {}) } : {};
    for await (const o of e.createInstance().streamInfer({ inputIds: prompt, maxNewTokens: Number(opt.new), stopIds: guided ? e.defaultStopIds(true) : [], sampling, ...extra })) {
      if (o.tokenIds.length && !first) first = performance.now();
      n += o.tokenIds.length;
      text += o.text;
      finish = o.finishReason ?? finish;
      for (const lp of o.logprobs ?? []) {
        lps++;
        if (!Number.isFinite(lp.logprob) || lp.logprob > 0 || lp.top.length !== wantLp) badLogprobs++;
      }
    }
    if (guided && wantLp !== undefined && lps !== n) badLogprobs += Math.abs(n - lps);
    if (guided) {
      fits.push(finish === 'stop' && fitsSchema(text));
      if (!fits[fits.length - 1] && process.env.LMF_GUIDED_SHOW) console.log('does not fit:', finish, JSON.stringify(text));
    }
    return { n, msPerTok: (performance.now() - first) / Math.max(1, n - 1) };
  };
  await one(true); await one(false); // warm (compile)
  const med = (xs) => xs.sort((a, b) => a - b)[xs.length >> 1];
  const show = (label, rs) => console.log(label, rs.map((r) => r.n).join(','), 'tokens; ms/token median', med(rs.map((r) => r.msPerTok)).toFixed(2));
  show('free alone   ', [await one(false), await one(false), await one(false)]);
  show('guided alone ', [await one(true), await one(true), await one(true)]);
  const mixed = await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map((i) => one(i % 2 === 0)));
  show('mixed: free  ', mixed.filter((_, i) => i % 2 === 1));
  show('mixed: guided', mixed.filter((_, i) => i % 2 === 0));
  show('8 guided     ', await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map(() => one(true))));
  show('8 free       ', await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map(() => one(false))));
  console.log(`guided outputs that parse, fit the schema and end with stop: ${fits.filter(Boolean).length} of ${fits.length}` +
    ` (temperature ${opt.temperature}${wantLp !== undefined ? `; log-probs ${wantLp}: ${badLogprobs} missing or malformed` : ''})`);
  await e.dispose();
  if (!fits.every(Boolean) || badLogprobs > 0) process.exitCode = 1;
})().catch((err) => { console.error(err); process.exit(1); });
