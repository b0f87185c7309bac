#!/usr/bin/env node
// The engine benchmark through the addon (plain JS: the device machine has Node but no TypeScript runner):
// loads libs/native's CUDA build, creates a model from a Hugging Face directory (safetensors headers parsed
// here, as libs/engine does), and for each batch size starts an engine, submits B requests with random
// 128-token prompts and 128 greedy new tokens at once, and reads the native timings of the 'done' events:
// decode ms/step = (totalMs - firstTokenMs) / (completionTokens - 1), median over requests. Prefill: one
// 2048-token prompt with maxNewTokens 1, firstTokenMs - queuedMs. Prints ENGINE_JSON last (bench_table.py).
//   node test/bench/engine-bench.js ADDON.node MODEL_DIR [--batches 1,16,64] [--prompt 128] [--new 128] [--prefill 2048]
//        [--tp N] [--devices 0,1]   (tensor parallelism: the model sharded over N ranks, rank r on devices[r])
//     [--ab NAME=VALUE,...[;NAME=VALUE,...]] [--reps R]   (R timed runs per batch size, default 3)
// test/bench/tp-parity.js and engine-determinism.js reuse modelConfig / runEngine / randIds / greedyTop2 (module.exports).
// --ab: the same decode runs with those environment variables set (e.g. LMFLEET_PDL=gemv; the native side reads them
// at each graph capture), alternating with the default's within each rep on the same loaded model, reported as
// ADDON_JSON's "ab"; ';' separates several variants (all in "abs"). (Tuned GEMM plans, once made, stay with the model: an A/B of LMFLEET_GEMM_TUNE is not clean.)
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const [addonPath, modelDir, ...rest] = process.argv.slice(2);
const opt = { batches: '1,16,64', prompt: 128, new: 128, prefill: 2048 };
for (let i = 0; i + 1 < rest.length; i += 2) opt[rest[i].replace(/^--/, '')] = rest[i + 1];
const batches = String(opt.batches).split(',').map(Number);
const promptLen = Number(opt.prompt), newTokens = Number(opt.new), prefillLen = Number(opt.prefill);

const canon = [
  [/^model\.embed_tokens\.weight$/, 'embed_tokens.weight'],
  [/^lm_head\.weight$/, 'lm_head.weight'],
  [/^model\.norm\.weight$/, 'norm.weight'],
  [/^model\.layers\.(\d+)\.input_layernorm\.weight$/, 'layers.$1.input_norm.weight'],
  [/^model\.layers\.(\d+)\.post_attention_layernorm\.weight$/, 'layers.$1.post_norm.weight'],
  [/^model\.layers\.(\d+)\.self_attn\.(q|k)_norm\.weight$/, 'layers.$1.$2_norm.weight'],  // Qwen3
  [/^model\.layers\.(\d+)\.self_attn\.(q|k|v|o)_proj\.(weight|bias)$/, 'layers.$1.$2.$3'],
  [/^model\.layers\.(\d+)\.mlp\.(gate|up|down)_proj\.weight$/, 'layers.$1.$2.weight'],
  // AutoAWQ GEMM checkpoints (make_random_model.py --awq-group): the addon converts them to its W4A16 layout at load
  [/^model\.layers\.(\d+)\.self_attn\.(q|k|v|o)_proj\.(qweight|qzeros|scales)$/, 'layers.$1.$2.$3'],
  [/^model\.layers\.(\d+)\.mlp\.(gate|up|down)_proj\.(qweight|qzeros|scales)$/, 'layers.$1.$2.$3'],
  // Qwen3-MoE (make_random_model.py --arch qwen3_moe): the router and each expert's projections
  [/^model\.layers\.(\d+)\.mlp\.gate\.weight$/, 'layers.$1.router.weight'],
  [/^model\.layers\.(\d+)\.mlp\.experts\.(\d+)\.(gate|up|down)_proj\.(weight|qweight|qzeros|scales)$/, 'layers.$1.experts.$2.$3.$4'],
];
const dtypes = { F16: 'f16', BF16: 'bf16', F32: 'f32', I32: 'i32' };

function tensors(dir) {
  const out = [];
  for (const f of fs.readdirSync(dir).filter((n) => n.endsWith('.safetensors')).sort()) {
    const file = path.join(dir, f);
    const fd = fs.openSync(file, 'r');
    const len = Buffer.alloc(8);
    fs.readSync(fd, len, 0, 8, 0);
    const n = Number(len.readBigUInt64LE(0));
    const hdr = Buffer.alloc(n);
    fs.readSync(fd, hdr, 0, n, 8);
    fs.closeSync(fd);
    for (const [name, t] of Object.entries(JSON.parse(hdr.toString('utf8')))) {
      if (name === '__metadata__') continue;
      const rule = canon.find(([re]) => re.test(name));
      if (!rule) continue;
      out.push({ name: name.replace(rule[0], rule[1]), dtype: dtypes[t.dtype], shape: t.shape, file, offset: 8 + n + t.data_offsets[0] });
    }
  }
  return out;
}

function median(v) {
  const s = [...v].sort((a, b) => a - b);
  return s.length ? s[s.length >> 1] : NaN;
}

let seed = 12345;
function randIds(n, vocab) {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    a[i] = 3 + (seed % (vocab - 3));
  }
  return a;
}

// The NativeModelConfig of a Hugging Face directory (Llama layout, Qwen3 or Qwen3-MoE, or their AutoAWQ GEMM checkpoints).
// o.tp > 1: tensor parallelism over o.devices ('0,1'; default 0..tp-1).
function modelConfig(modelDir, o = {}) {
  const cfg = JSON.parse(fs.readFileSync(path.join(modelDir, 'config.json'), 'utf8'));
  const heads = cfg.num_attention_heads;
  const config = {
    backend: o.backend ?? 'cuda', device: 0, dtype: 'f16', vocabSize: cfg.vocab_size, hiddenSize: cfg.hidden_size,
    intermediateSize: cfg.intermediate_size, numLayers: cfg.num_hidden_layers, numHeads: heads,
    numKvHeads: cfg.num_key_value_heads ?? heads, headDim: cfg.head_dim ?? cfg.hidden_size / heads,
    rmsNormEps: cfg.rms_norm_eps ?? 1e-6, maxPositionEmbeddings: cfg.max_position_embeddings ?? 4096,
    rope: { type: 'default', theta: cfg.rope_theta ?? 10000 }, tieWordEmbeddings: !!cfg.tie_word_embeddings,
    hiddenAct: 'silu', tensors: tensors(modelDir),
  };
  const arch = (cfg.architectures ?? [])[0];
  if (arch === 'Qwen3ForCausalLM' || arch === 'Qwen3MoeForCausalLM') config.qkNorm = true;
  if (arch === 'Qwen3MoeForCausalLM') {  // every layer sparse (make_random_model.py writes no mlp_only_layers)
    Object.assign(config, {
      numExperts: cfg.num_experts, numExpertsPerTok: cfg.num_experts_per_tok, moeIntermediateSize: cfg.moe_intermediate_size,
      normTopkProb: cfg.norm_topk_prob ?? false,
    });
  }
  const qc = cfg.quantization_config;
  if (qc) config.quant = { method: 'awq', bits: 4, groupSize: qc.group_size };
  const tp = Number(o.tp ?? 1);
  if (tp > 1) {
    config.tp = tp;
    if (o.devices !== undefined) config.devices = String(o.devices).split(',').map(Number);
  }
  return config;
}

// Runs `reqs` on a fresh engine; resolves with the 'done' events.
function runEngine(addon, model, opts, reqs) {
  return new Promise((resolve, reject) => {
    const engine = addon.createEngine(model, opts);
    const done = [];
    const tokens = new Map();
    engine.start((events) => {  // the raw addon delivers events in batches (one array per engine step)
      for (const ev of Array.isArray(events) ? events : [events]) {
        if (ev.type === 'error') reject(new Error(`${ev.code}: ${ev.message}`));
        if (ev.type === 'tokens') tokens.set(ev.id, [...(tokens.get(ev.id) ?? []), ...ev.tokens]);
        if (ev.type === 'done') ev.tokens = tokens.get(ev.id) ?? [];
        if (ev.type === 'done') {
          done.push(ev);
          if (done.length === reqs.length) Promise.resolve(engine.dispose()).then(() => resolve(done), reject);
        }
      }
    });
    for (const r of reqs) engine.submit(r);
  });
}

async function main() {
  const addon = require(path.resolve(addonPath));
  const info = addon.backendInfo();
  console.log(`addon ${addon.version}; backend ${JSON.stringify(info)}`);
  if (!info.available) throw new Error(`backend unavailable: ${info.reason}`);
  const config = modelConfig(modelDir, { backend: opt.backend, tp: opt.tp, devices: opt.devices });
  let t0 = Date.now();
  const model = addon.createModel(config);
  await model.load();
  console.log(`loaded ${config.tensors.length} tensors, ${(model.weightBytes() / 1e9).toFixed(2)} GB, in ${((Date.now() - t0) / 1e3).toFixed(1)} s`);
  const V = config.vocabSize;
  const blockSize = 64;
  const perSeq = Math.ceil((promptLen + newTokens) / blockSize);
  const maxB = Math.max(...batches);
  const engineOpts = (B) => ({ maxBatchSize: B, blockSize, numBlocks: Math.max(maxB * perSeq, Math.ceil(prefillLen / blockSize)) + 8,
    sessionLen: Math.max(prefillLen, promptLen + newTokens) + 64, maxPrefillTokens: Math.max(prefillLen, maxB * promptLen) });
  // bytes one decode step must read: every f16 linear once (weightBytes also counts the f32 embedding table and norms)
  const H = config.hiddenSize, L = config.numLayers;
  const stepBytes = model.weightBytes() - V * H * 4 - (2 * L + 1) * H * 4;
  const result = { step_bytes: stepBytes, quant: config.quant ?? null, decode: {}, prefill: {} };
  let id = 1;
  const mk = (B, n) => Array.from({ length: B }, () => ({ id: id++, inputIds: randIds(promptLen, V), maxNewTokens: n,
    sampling: { temperature: 0 } }));
  // Decode: per batch size, `reps` runs of B requests, each after an 8-token warm-up (graphs, GEMM tuning; a changed
  // setting recaptures the graphs there, outside the timed run). With --ab the variant's run and the default's
  // alternate within each rep, so drift between them cancels. ms/step: the median over every request of every run;
  // the per-run medians' range shows the run-to-run spread.
  const variants = [{ label: '', env: [], into: result.decode }];
  if (opt.ab) {  // VAR=V[,VAR=V][;VAR=V...]: one variant per ';' group (ADDON_JSON: the first as "ab", all in "abs")
    result.abs = [];
    for (const group of String(opt.ab).split(';').filter(Boolean)) {
      const env = group.split(',').filter(Boolean).map((kv) => kv.split('='));
      const entry = { env: Object.fromEntries(env), decode: {} };
      result.abs.push(entry);
      variants.splice(variants.length - 1, 0, { label: `(${env.map((e) => e.join('=')).join(' ')}) `, env, into: entry.decode });
    }
    result.ab = result.abs[0];
  }
  const reps = Math.max(1, Number(opt.reps ?? 3));
  const withEnv = async (env, fn) => {
    const saved = env.map(([k]) => [k, process.env[k]]);
    for (const [k, v] of env) process.env[k] = v;
    try {
      return await fn();
    } finally {
      for (const [k, v] of saved) if (v === undefined) delete process.env[k]; else process.env[k] = v;
    }
  };
  for (const B of batches) {
    const runs = variants.map(() => []);
    for (let rep = 0; rep < reps; rep++) {
      for (const [vi, v] of variants.entries()) {
        runs[vi].push(await withEnv(v.env, async () => {
          await runEngine(addon, model, engineOpts(B), mk(B, 8));
          const t1 = Date.now();
          const done = await runEngine(addon, model, engineOpts(B), mk(B, newTokens));
          return { done, wall: Date.now() - t1 };
        }));
      }
    }
    for (const [vi, v] of variants.entries()) {
      const all = runs[vi].flatMap((r) => r.done);
      const per = all.map((d) => (d.totalMs - d.firstTokenMs) / Math.max(1, d.completionTokens - 1));
      const repMs = runs[vi].map((r) => median(r.done.map((d) => (d.totalMs - d.firstTokenMs) / Math.max(1, d.completionTokens - 1))));
      const ms = median(per), ttft = median(all.map((d) => d.firstTokenMs));
      const last = runs[vi][runs[vi].length - 1];
      const tokens = last.done.reduce((acc, d) => acc + d.completionTokens, 0);
      console.log(`addon engine ${v.label}batch ${B}: ${ms.toFixed(3)} ms/step (median over ${all.length} requests in ${reps} runs, ` +
        `run medians ${Math.min(...repMs).toFixed(3)}-${Math.max(...repMs).toFixed(3)}), ${(B * 1e3 / ms).toFixed(0)} tok/s; ` +
        `first token ${ttft.toFixed(1)} ms; ${tokens} tokens in ${last.wall} ms wall (${(tokens * 1e3 / last.wall).toFixed(0)} tok/s end to end)`);
      const kvBytes = 2 * L * B * (promptLen + newTokens / 2) * config.numKvHeads * config.headDim * 2;
      v.into[B] = { ms_per_step: ms, tok_s: B * 1e3 / ms, ttft_ms: ttft, e2e_ms: last.wall, kv_bytes: kvBytes, run_ms: repMs };
    }
  }
  if (prefillLen > 0) {
    const t = [];
    for (let rep = 0; rep < 4; rep++) {
      const [d] = await runEngine(addon, model, engineOpts(1), [{ id: id++, inputIds: randIds(prefillLen, V), maxNewTokens: 1,
        sampling: { temperature: 0 } }]);
      if (rep > 0) t.push(d.firstTokenMs - d.queuedMs);
    }
    const ms = median(t);
    console.log(`addon engine prefill ${prefillLen}: ${ms.toFixed(1)} ms, ${(prefillLen * 1e3 / ms).toFixed(0)} tok/s`);
    result.prefill[prefillLen] = { ms, tok_s: prefillLen * 1e3 / ms };
  }
  model.dispose();
  console.log('ADDON_JSON ' + JSON.stringify(result));
}

// Greedy decode of `prompts` for `steps` tokens with top-2 log-probs, the prompts submitted together (one submit: they
// start in the same step, so the batch does not depend on the JS thread's timing): per prompt { tokens, tops }, tops[j]
// the [[id, logprob], ...] of step j. (tp-parity.js, engine-determinism.js)
function greedyTop2(addon, model, prompts, steps) {
  return new Promise((resolve, reject) => {
    const engine = addon.createEngine(model, { maxBatchSize: prompts.length, blockSize: 64, numBlocks: prompts.length * 4 + 8, sessionLen: 256 });
    const out = prompts.map(() => ({ tokens: [], tops: [] }));
    let left = prompts.length;
    engine.start((events) => {
      for (const ev of Array.isArray(events) ? events : [events]) {
        if (ev.type === 'error') reject(new Error(`${ev.code}: ${ev.message}`));
        const o = out[ev.id];
        if (ev.type === 'tokens') {
          o.tokens.push(...ev.tokens);
          for (const lp of ev.logprobs ?? []) o.tops.push(lp.top);
        }
        if (ev.type === 'done' && --left === 0) Promise.resolve(engine.dispose()).then(() => resolve(out), reject);
      }
    });
    engine.submit(prompts.map((ids, id) => ({ id, inputIds: ids, maxNewTokens: steps, stopIds: [], logprobs: 2, sampling: { temperature: 0 } })));
  });
}

module.exports = { modelConfig, runEngine, randIds, greedyTop2 };

if (require.main === module) {
  main().catch((e) => {
    console.error(`engine-bench failed: ${e.stack || e}`);
    process.exit(1);
  });
}
