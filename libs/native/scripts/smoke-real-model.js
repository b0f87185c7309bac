#!/usr/bin/env node
// Smoke test + speed check on a real HF model directory (default: the tiny Qwen2 test model).
// Reads safetensors headers itself (8-byte LE length + JSON), maps HF names to canonical names, loads the
// model on the cpu backend and times scoreTokens over random ids (no tokenizer here) and engine decode.
// Usage: node libs/native/scripts/smoke-real-model.js [modelDir] [--windows N] [--seqlen N] [--decode-batch N]
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const modelDir = args[0] && !args[0].startsWith('--') ? args[0] : '/work/shared/models/tiny-qwen2-pydocs';
const windows = opt('--windows', 116);
const seqlen = opt('--seqlen', 512);
const decodeBatch = opt('--decode-batch', 16);
const decodeTokens = opt('--decode-tokens', 64);

const nativeDir = path.resolve(__dirname, '..');
const addon = require(path.join(nativeDir, 'build/cpu/Release/lmfleet_native.node'));

const DTYPES = { F16: 'f16', BF16: 'bf16', F32: 'f32' };
function readTensors(dir) {
  const out = [];
  for (const f of fs.readdirSync(dir).filter((n) => n.endsWith('.safetensors')).sort()) {
    const file = path.join(dir, f);
    const fd = fs.openSync(file, 'r');
    const lenBuf = Buffer.alloc(8);
    fs.readSync(fd, lenBuf, 0, 8, 0);
    const len = Number(lenBuf.readBigUInt64LE(0));
    const hdr = Buffer.alloc(len);
    fs.readSync(fd, hdr, 0, len, 8);
    fs.closeSync(fd);
    const json = JSON.parse(hdr.toString('utf8'));
    for (const [name, t] of Object.entries(json)) {
      if (name === '__metadata__') continue;
      out.push({ hfName: name, dtype: DTYPES[t.dtype], shape: t.shape, file, offset: 8 + len + t.data_offsets[0] });
    }
  }
  return out;
}

function canonical(hf) {
  let m;
  if (hf === 'model.embed_tokens.weight') return 'embed_tokens.weight';
  if (hf === 'model.norm.weight') return 'norm.weight';
  if (hf === 'lm_head.weight') return 'lm_head.weight';
  if ((m = /^model\.layers\.(\d+)\.self_attn\.([qkvo])_proj\.(weight|bias)$/.exec(hf))) return `layers.${m[1]}.${m[2]}.${m[3]}`;
  if ((m = /^model\.layers\.(\d+)\.mlp\.(gate|up|down)_proj\.weight$/.exec(hf))) return `layers.${m[1]}.${m[2]}.weight`;
  if ((m = /^model\.layers\.(\d+)\.input_layernorm\.weight$/.exec(hf))) return `layers.${m[1]}.input_norm.weight`;
  if ((m = /^model\.layers\.(\d+)\.post_attention_layernorm\.weight$/.exec(hf))) return `layers.${m[1]}.post_norm.weight`;
  return null;
}

async function main() {
  const cfg = JSON.parse(fs.readFileSync(path.join(modelDir, 'config.json'), 'utf8'));
  const tensors = readTensors(modelDir)
    .map((t) => ({ ...t, name: canonical(t.hfName) }))
    .filter((t) => t.name);
  const rp = cfg.rope_parameters ?? { rope_theta: cfg.rope_theta ?? 10000, rope_type: 'default' };
  const config = {
    backend: 'cpu',
    dtype: 'f16',
    vocabSize: cfg.vocab_size,
    hiddenSize: cfg.hidden_size,
    intermediateSize: cfg.intermediate_size,
    numLayers: cfg.num_hidden_layers,
    numHeads: cfg.num_attention_heads,
    numKvHeads: cfg.num_key_value_heads,
    headDim: cfg.head_dim ?? cfg.hidden_size / cfg.num_attention_heads,
    rmsNormEps: cfg.rms_norm_eps,
    maxPositionEmbeddings: cfg.max_position_embeddings,
    rope: { type: rp.rope_type === 'default' ? 'default' : rp.rope_type, theta: rp.rope_theta },
    tieWordEmbeddings: !!cfg.tie_word_embeddings,
    hiddenAct: 'silu',
    tensors,
  };
  const model = addon.createModel(config);
  let t0 = Date.now();
  await model.load();
  console.log(`load: ${Date.now() - t0} ms, ${tensors.length} tensors, ${(model.weightBytes() / 2 ** 20).toFixed(1)} MiB resident (f32)`);

  if (args.includes('--ppl')) {
    // Perplexity on the model's eval.txt (non-overlapping windows of seqlen tokens), tokenized with
    // tokenizer.json through @huggingface/tokenizers; compare with reference.json's ppl_float16.
    const { Tokenizer } = await import('@huggingface/tokenizers');
    const tok = new Tokenizer(JSON.parse(fs.readFileSync(path.join(modelDir, 'tokenizer.json'), 'utf8')),
      JSON.parse(fs.readFileSync(path.join(modelDir, 'tokenizer_config.json'), 'utf8')));
    const ids = tok.encode(fs.readFileSync(path.join(modelDir, 'eval.txt'), 'utf8'), { add_special_tokens: false }).ids;
    const n = Math.min(windows, Math.floor(ids.length / seqlen));
    let sum = 0;
    let cnt = 0;
    const tp = Date.now();
    for (let w = 0; w < n; w++) {
      const nll = await model.scoreTokens(Int32Array.from(ids.slice(w * seqlen, (w + 1) * seqlen)));
      for (const v of nll) {
        sum += v;
        cnt++;
      }
    }
    let ref = '';
    try {
      ref = ` (reference.json ppl_float16 ${JSON.parse(fs.readFileSync(path.join(modelDir, 'reference.json'), 'utf8')).ppl_float16.toFixed(2)})`;
    } catch {
      /* no reference */
    }
    console.log(`ppl: ${ids.length} tokens, ${n} windows of ${seqlen}: ppl ${Math.exp(sum / cnt).toFixed(3)}${ref} in ${((Date.now() - tp) / 1000).toFixed(1)} s`);
  }

  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 4294967296);
  let nllSum = 0;
  let count = 0;
  if (windows > 0) {
  t0 = Date.now();
  const cpu0 = process.cpuUsage();
  for (let w = 0; w < windows; w++) {
    const ids = new Int32Array(seqlen);
    for (let i = 0; i < seqlen; i++) ids[i] = Math.floor(rand() * cfg.vocab_size);
    const nll = await model.scoreTokens(ids);
    for (const v of nll) {
      nllSum += v;
      count++;
    }
  }
  const sec = (Date.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const cpuSec = (cpu.user + cpu.system) / 1e6;
  console.log(`scoreTokens: ${windows} x ${seqlen} tokens in ${sec.toFixed(2)} s = ${((windows * seqlen) / sec).toFixed(0)} tokens/s; ` +
    `process cpu ${cpuSec.toFixed(2)} s (${((windows * seqlen) / cpuSec).toFixed(0)} tokens per cpu-second; wall is inflated when other processes share the cores); ` +
    `mean NLL on random ids ${(nllSum / count).toFixed(3)} (ln(vocab) = ${Math.log(cfg.vocab_size).toFixed(3)})`);
  }

  if (addon.createEngine && decodeBatch > 0) {
    const engine = addon.createEngine(model, { maxBatchSize: Math.max(decodeBatch, 1), blockSize: 64, numBlocks: decodeBatch * 4 + 8, sessionLen: 1024 });
    let generated = 0;
    let done = 0;
    let tFirst = 0;
    const finished = new Promise((resolve) => {
      engine.start((events) => {
        for (const ev of events) {
          if (ev.type === 'tokens') {
            if (!tFirst) tFirst = Date.now();
            generated += ev.tokens.length;
          } else if (ev.type === 'done' || ev.type === 'error') {
            if (ev.type === 'error') console.log('error event', ev);
            if (++done === decodeBatch) resolve();
          }
        }
      });
    });
    t0 = Date.now();
    for (let r = 0; r < decodeBatch; r++) {
      const ids = new Int32Array(32);
      for (let i = 0; i < 32; i++) ids[i] = Math.floor(rand() * cfg.vocab_size);
      engine.submit({ id: r + 1, inputIds: ids, maxNewTokens: decodeTokens, sampling: { temperature: 0 } });
    }
    await finished;
    const total = (Date.now() - t0) / 1000;
    const decodeSec = (Date.now() - tFirst) / 1000;
    console.log(`decode: batch ${decodeBatch} x ${decodeTokens} new tokens (prompt 32): ${generated} tokens in ${total.toFixed(2)} s; ` +
      `steady decode ~${((generated - decodeBatch) / decodeSec).toFixed(0)} tokens/s`);
    await engine.dispose();
  }
  model.dispose();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
