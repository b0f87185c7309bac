#!/usr/bin/env node
// vLLM's guided_choice, guided_grammar and guided_regex at the engine level (responseFormat {type: 'choice'},
// {type: 'grammar'}, {type: 'regex'}): 8 sampled requests of each at once (temperature 0.8, seeds 1-8) on a model
// directory; each output must be one of the choices / match the grammar or pattern and end with stop. Then min-p 1
// (only the most likely token left): 8 hot sampled requests at once must give the greedy tokens. Exits 1 otherwise.
// Runs the compiled engine (dist/).
//   node test/bench/guided-formats.js DIST_DIR MODEL_DIR [--backend cpu|cuda]
'use strict';
const path = require('node:path');
const [dist, dir, ...rest] = process.argv.slice(2);
if (!dist || !dir) {
  console.error('usage: node test/bench/guided-formats.js DIST_DIR MODEL_DIR [--backend cpu|cuda]');
  process.exit(2);
}
const backend = rest[0] === '--backend' ? rest[1] : 'cpu';
const engine = require(path.resolve(dist, 'libs/engine/src/index.js'));
(async () => {
  const e = await engine.Engine.fromPretrained(dir, { backend, maxBatchSize: 8, sessionLen: 1024, log: () => {} });
  const prompt = e.encodePrompt([{ role: 'user', content: 'Answer.' }]);
  const choices = ['yes', 'no', 'naïve "quoted"\tline'];
  // bounded lines: a weak model at temperature 0.8 would otherwise write letters until max tokens
  const grammar = 'root ::= line line\nline ::= [a-z] [a-z]? [a-z]? [a-z]? "\\n"';
  let ok = 0;
  let n = 0;
  const run = async (format, fits, seed) => {
    let text = '';
    let finish;
    for await (const o of e.createInstance().streamInfer({ inputIds: prompt, maxNewTokens: 64, stopIds: e.defaultStopIds(true), sampling: { temperature: 0.8, seed }, responseFormat: format })) {
      text += o.text;
      finish = o.finishReason ?? finish;
    }
    n++;
    if (finish === 'stop' && fits(text)) ok++;
    else console.log('does not fit:', format.type, finish, JSON.stringify(text));
  };
  const seeds = [1, 2, 3, 4, 5, 6, 7, 8];
  await Promise.all(seeds.map((s) => run({ type: 'choice', choices }, (t) => choices.includes(t), s)));
  await Promise.all(seeds.map((s) => run({ type: 'grammar', grammar }, (t) => /^[a-z]{1,4}\n[a-z]{1,4}\n$/.test(t), s)));
  await Promise.all(seeds.map((s) => run({ type: 'regex', pattern: '(yes|no), [a-z]{1,5}\\.' }, (t) => /^(yes|no), [a-z]{1,5}\.$/.test(t), s)));
  console.log(`choice, grammar and regex outputs that fit and end with stop: ${ok} of ${n} (${backend})`);
  // min-p 1 at temperature 1.5 keeps only the arg-max: the sampler's min-p path must give the greedy tokens
  const tokens = async (sampling) => {
    const ids = [];
    for await (const o of e.createInstance().streamInfer({ inputIds: prompt, maxNewTokens: 24, ignoreEos: true, sampling })) ids.push(...(o.tokenIds ?? []));
    return ids.join(',');
  };
  const greedy = await tokens({ temperature: 0 });
  const hot = await Promise.all(seeds.map((seed) => tokens({ temperature: 1.5, topP: 0.99, minP: 1, seed })));
  const same = hot.filter((t) => t === greedy).length;
  console.log(`min-p 1 at temperature 1.5, same tokens as greedy: ${same} of ${hot.length} (${backend})`);
  await e.dispose();
  if (ok !== n || same !== hot.length || !greedy) process.exitCode = 1;
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
