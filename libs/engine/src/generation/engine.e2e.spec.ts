// End to end on the real CPU backend: parity with transformers on the golden fixtures (logits and greedy tokens),
// and the generation API (streaming, stop words, abort, sessions) on a generated tiny model.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readSafetensorsDir, readTensorBytes, writeSafetensors, type WritableTensor } from '../io/safetensors';
import { REPO_ROOT } from '../testing/shared-model';
import { GOLDEN_DIR, goldenCases as listGoldenCases } from '../testing/golden';
import { nativeCpuOrReport } from '../testing/native-cpu';
import { makeTempDir } from '../testing/tmp-dir';
import { writeTinyModel, writeTinyTokenizer, type TinyModelInfo } from '../testing/tiny-model';
import { Engine } from './engine';
import { PretrainedModel } from './pretrained';
import type { StreamOutput } from './types';

const GOLDEN = GOLDEN_DIR;
const native = nativeCpuOrReport('engine e2e');
/** Loads an Engine, or reports "not run" while the addon has no batch engine yet (createEngine not bound). */
async function engineOrReport(dir: string, cfg: Parameters<typeof Engine.fromPretrained>[1]): Promise<Engine | undefined> {
  try {
    return await Engine.fromPretrained(dir, cfg);
  } catch (e) {
    if (/createEngine is not a function/.test(String((e as Error)?.message))) {
      console.log(`engine e2e: not run: the native addon has no createEngine yet`);
      return undefined;
    }
    throw e;
  }
}

interface Golden {
  case: string;
  prompt_ids: number[];
  greedy_ids: number[];
  logits: number[][];
  min_margin: number;
  vocab_size: number;
}

async function collect(it: AsyncIterable<StreamOutput>): Promise<StreamOutput[]> {
  const outs: StreamOutput[] = [];
  for await (const o of it) outs.push(o);
  return outs;
}

/** A golden case as a loadable model directory: its files plus a tiny tokenizer sized to its vocabulary. */
function goldenModelDir(tmp: string, name: string, copyName = name): { dir: string; golden: Golden } {
  const src = path.join(GOLDEN, name);
  const dir = path.join(tmp, copyName);
  fs.mkdirSync(dir, { recursive: true });
  for (const f of ['config.json', 'model.safetensors']) fs.symlinkSync(path.join(src, f), path.join(dir, f));
  const golden = JSON.parse(fs.readFileSync(path.join(src, 'golden.json'), 'utf8')) as Golden;
  writeTinyTokenizer(dir, { arch: name.startsWith('llama') ? 'llama' : 'qwen2', vocabSize: golden.vocab_size });
  return { dir, golden };
}

/**
 * Rewrites a Llama-layout golden case as another architecture's checkpoint holding the same function: InternLM2
 * (packed wqkv per KV group, its own names) or InternLM v1 (Llama names plus q/k/v/o bias, zero where absent).
 */
function rewriteGolden(tmp: string, name: string, as: 'internlm2' | 'internlm'): { dir: string; golden: Golden } {
  const src = path.join(GOLDEN, name);
  const dir = path.join(tmp, `${name}-as-${as}`);
  fs.mkdirSync(dir, { recursive: true });
  const cfg = JSON.parse(fs.readFileSync(path.join(src, 'config.json'), 'utf8'));
  const golden = JSON.parse(fs.readFileSync(path.join(src, 'golden.json'), 'utf8')) as Golden;
  const idx = readSafetensorsDir(src);
  const bytes = (n: string) => readTensorBytes(idx.tensors.get(n)!);
  const heads = cfg.num_attention_heads;
  const kv = cfg.num_key_value_heads ?? heads;
  const hd = cfg.head_dim ?? cfg.hidden_size / heads;
  const h = cfg.hidden_size;
  const out: WritableTensor[] = [];
  const copy = (from: string, to: string) => {
    const t = idx.tensors.get(from)!;
    out.push({ name: to, dtype: t.dtype, shape: t.shape, data: bytes(from) });
  };
  if (as === 'internlm2') {
    copy('model.embed_tokens.weight', 'model.tok_embeddings.weight');
    copy('model.norm.weight', 'model.norm.weight');
    if (!cfg.tie_word_embeddings) copy('lm_head.weight', 'output.weight');
    const G = heads / kv;
    const rowBytes = h * 2;
    for (let i = 0; i < cfg.num_hidden_layers; i++) {
      const p = `model.layers.${i}`;
      const [q, k, v] = ['q', 'k', 'v'].map((x) => bytes(`${p}.self_attn.${x}_proj.weight`));
      const wqkv = new Uint8Array((heads + 2 * kv) * hd * rowBytes);
      let o = 0;
      const put = (src: Uint8Array, head: number) => {
        wqkv.set(src.subarray(head * hd * rowBytes, (head + 1) * hd * rowBytes), o);
        o += hd * rowBytes;
      };
      for (let g = 0; g < kv; g++) {
        for (let j = 0; j < G; j++) put(q, g * G + j);
        put(k, g);
        put(v, g);
      }
      out.push({ name: `${p}.attention.wqkv.weight`, dtype: 'F16', shape: [(heads + 2 * kv) * hd, h], data: wqkv });
      copy(`${p}.self_attn.o_proj.weight`, `${p}.attention.wo.weight`);
      copy(`${p}.mlp.gate_proj.weight`, `${p}.feed_forward.w1.weight`);
      copy(`${p}.mlp.up_proj.weight`, `${p}.feed_forward.w3.weight`);
      copy(`${p}.mlp.down_proj.weight`, `${p}.feed_forward.w2.weight`);
      copy(`${p}.input_layernorm.weight`, `${p}.attention_norm.weight`);
      copy(`${p}.post_attention_layernorm.weight`, `${p}.ffn_norm.weight`);
    }
    cfg.bias = false;
  } else {
    for (const t of idx.tensors.values()) copy(t.name, t.name);
    for (let i = 0; i < cfg.num_hidden_layers; i++) {
      for (const [x, n] of [['q', heads * hd], ['k', kv * hd], ['v', kv * hd], ['o', h]] as const) {
        const name = `model.layers.${i}.self_attn.${x}_proj.bias`;
        if (!idx.tensors.has(name)) out.push({ name, dtype: 'F16', shape: [n], data: new Uint8Array(n * 2) });
      }
    }
    cfg.bias = true;
  }
  cfg.architectures = [as === 'internlm2' ? 'InternLM2ForCausalLM' : 'InternLMForCausalLM'];
  cfg.model_type = as;
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg));
  writeSafetensors(path.join(dir, 'model.safetensors'), out);
  writeTinyTokenizer(dir, { arch: 'qwen2', vocabSize: golden.vocab_size });
  return { dir, golden };
}

async function maxLogitError(dir: string, golden: Golden): Promise<number> {
  const pm = await PretrainedModel.load(dir, { native });
  try {
    const logits = await pm.forward(golden.prompt_ids);
    let maxErr = 0;
    golden.logits.forEach((row, t) => row.forEach((g, v) => (maxErr = Math.max(maxErr, Math.abs(logits[t * golden.vocab_size + v] - g)))));
    return maxErr;
  } finally {
    pm.dispose();
  }
}

const goldenCases = listGoldenCases();

describe('golden parity with transformers (cpu)', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  beforeAll(() => (tmp = makeTempDir()));
  afterAll(() => tmp.cleanup());

  it.each(goldenCases)('%s: forward logits match', async (name) => {
    if (!native) return;
    const { dir, golden } = goldenModelDir(tmp.dir, name);
    const pm = await PretrainedModel.load(dir, { native });
    try {
      const logits = await pm.forward(golden.prompt_ids);
      const V = golden.vocab_size;
      expect(logits.length).toBe(golden.prompt_ids.length * V);
      let maxErr = 0;
      let maxRef = 0;
      for (let t = 0; t < golden.prompt_ids.length; t++) {
        for (let v = 0; v < V; v++) {
          maxErr = Math.max(maxErr, Math.abs(logits[t * V + v] - golden.logits[t][v]));
          maxRef = Math.max(maxRef, Math.abs(golden.logits[t][v]));
        }
      }
      console.log(`${name}: max |logit - golden| = ${maxErr.toExponential(2)} (max |golden| ${maxRef.toFixed(2)})`);
      expect(maxErr).toBeLessThan(Math.max(1e-2, golden.min_margin / 2));
    } finally {
      pm.dispose();
    }
  });

  it.each(goldenCases)('%s: greedy tokens match', async (name) => {
    if (!native) return;
    const { dir, golden } = goldenModelDir(tmp.dir, name, name + '-greedy');
    const engine = await engineOrReport(dir, { native, maxBatchSize: 2 });
    if (!engine) return;
    try {
      const outs = await collect(
        engine.createInstance().streamInfer({ inputIds: golden.prompt_ids, maxNewTokens: golden.greedy_ids.length, stopIds: [], sampling: { temperature: 0 } }),
      );
      expect(outs.flatMap((o) => o.tokenIds)).toEqual(golden.greedy_ids);
      expect(outs[outs.length - 1].finishReason).toBe('length');
    } finally {
      await engine.dispose();
    }
  });
});

describe('other architectures hold the same function (cpu)', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  beforeAll(() => (tmp = makeTempDir()));
  afterAll(() => tmp.cleanup());

  it.each([
    ['llama3', 'internlm2'], // GQA 4:2: checks the per-KV-group wqkv split against transformers' logits
    ['llama', 'internlm2'],
    ['qwen2', 'internlm'], // q/k/v bias kept, zero o bias added
  ] as const)('%s rewritten as %s: logits match the golden', async (name, as) => {
    if (!native || !goldenCases.includes(name)) return;
    const { dir, golden } = rewriteGolden(tmp.dir, name, as);
    const err = await maxLogitError(dir, golden);
    console.log(`${name} as ${as}: max |logit - golden| = ${err.toExponential(2)}`);
    expect(err).toBeLessThan(Math.max(1e-2, golden.min_margin / 2));
  });
});

describe('generation API on a tiny generated model (cpu)', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  let info: TinyModelInfo;
  let engine: Engine | undefined;
  beforeAll(async () => {
    tmp = makeTempDir();
    info = writeTinyModel(path.join(tmp.dir, 'tiny'), { arch: 'qwen2', seed: 7, weightStd: 0.2 });
    if (native) engine = await engineOrReport(info.dir, { native, maxBatchSize: 4, sessionLen: 256 });
  });
  afterAll(async () => {
    await engine?.dispose();
    tmp.cleanup();
  });
  const greedy = { temperature: 0 };

  it('generate: greedy is deterministic, streamed text equals the decoded tokens', async () => {
    if (!engine) return;
    const [a, b] = await engine.generate(['the cat', 'the cat'], { maxNewTokens: 24, temperature: 0, ignoreEos: true });
    expect(a.tokenIds).toEqual(b.tokenIds);
    expect(a.tokenIds).toHaveLength(24);
    expect(a.text).toBe(engine.tokenizer.decode(a.tokenIds));
    expect(a.usage).toMatchObject({ promptTokens: engine.encodePrompt('the cat').length, completionTokens: 24 });
  });

  it('responseFormat: json_schema output fits the schema and ends with the stop token, greedy and sampled, beside free requests', async () => {
    if (!engine) return;
    const schema = { type: 'object', properties: { ok: { type: 'boolean' }, size: { enum: ['s', 'm', 'l'] } }, required: ['ok', 'size'] };
    const inputIds = engine.encodePrompt('the cat');
    const stopIds = engine.defaultStopIds(false);
    const run = async (sampling: { temperature: number; seed?: number }) => {
      let text = '';
      let finish: string | undefined;
      for await (const o of engine!.createInstance().streamInfer({ inputIds, maxNewTokens: 80, stopIds, sampling, responseFormat: { type: 'json_schema', schema } })) {
        text += o.text;
        finish = o.finishReason ?? finish;
      }
      return { text, finish };
    };
    // Guided requests and a free one in one batch: the free one's tokens are its own alone.
    const [free] = await engine.generate(['a dog'], { maxNewTokens: 20, temperature: 0, ignoreEos: true });
    const [g1, g2, g3, free2] = await Promise.all([
      run({ temperature: 0 }),
      run({ temperature: 1.5, seed: 1 }),
      run({ temperature: 1.5, seed: 2 }),
      engine.generate(['a dog'], { maxNewTokens: 20, temperature: 0, ignoreEos: true }).then((r) => r[0]),
    ]);
    expect(free2.tokenIds).toEqual(free.tokenIds);
    for (const g of [g1, g2, g3]) {
      expect(g.finish).toBe('stop');
      const v = JSON.parse(g.text);
      expect(Object.keys(v).sort()).toEqual(['ok', 'size']);
      expect(typeof v.ok).toBe('boolean');
      expect(['s', 'm', 'l']).toContain(v.size);
    }
    expect((await run({ temperature: 0 })).text).toBe(g1.text); // greedy guided decoding is deterministic
    // Free strings: what a weak model puts in them still parses (no raw control characters).
    const strings = { type: 'object', properties: { items: { type: 'array', items: { type: 'string', maxLength: 12 }, minItems: 4, maxItems: 4 } }, required: ['items'] };
    let text = '';
    for await (const o of engine.createInstance().streamInfer({ inputIds, maxNewTokens: 160, stopIds, sampling: { temperature: 0 }, responseFormat: { type: 'json_schema', schema: strings } })) text += o.text;
    const items = (JSON.parse(text) as { items: string[] }).items;
    expect(items.map((x) => [...x].length <= 12)).toEqual([true, true, true, true]);
    // Aborted while its grammar compiled (here: before): cancelled, nothing runs.
    const ac = new AbortController();
    ac.abort();
    const aborted = await collect(engine.createInstance().streamInfer({ inputIds, maxNewTokens: 8, signal: ac.signal, responseFormat: { type: 'json_object' } }));
    expect(aborted.map((o) => o.finishReason)).toEqual(['cancelled']);
    // A schema xgrammar cannot compile fails before the request runs, naming the problem.
    await expect(engine.prepareResponseFormat({ type: 'json_schema', schema: { type: 'tensor' } })).rejects.toThrow(/schema/i);
    await expect(collect(engine.createInstance().streamInfer({ inputIds, maxNewTokens: 8, responseFormat: { type: 'json_schema', schema: { type: 'tensor' } } }))).rejects.toThrow(/schema/i);
  });

  it('guideAfter: free text until the marker (a reasoning model thinking), then the response format', async () => {
    if (!engine) return;
    const schema = { type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'] };
    const inputIds = engine.encodePrompt('the cat');
    const stopIds = engine.defaultStopIds(false);
    const run = async (guideAfter: string, maxNewTokens: number) => {
      const tokens: number[] = [];
      let finish: string | undefined;
      for await (const o of engine!.createInstance().streamInfer({ inputIds, maxNewTokens, stopIds, sampling: greedy, responseFormat: { type: 'json_schema', schema }, guideAfter })) {
        tokens.push(...o.tokenIds);
        finish = o.finishReason ?? finish;
      }
      return { tokens, finish };
    };
    // the free greedy continuation, and a marker it writes a few tokens in
    const free = (await collect(engine.createInstance().streamInfer({ inputIds, maxNewTokens: 40, stopIds, sampling: greedy }))).flatMap((o) => o.tokenIds);
    const upTo = (ts: number[], n: number) => engine!.tokenizer.decode(ts.slice(0, n), { skipSpecialTokens: false });
    const k = 4;
    const freeText = upTo(free, k);
    const marker = freeText.slice(-3);
    expect(marker.length).toBe(3);
    const at = (ts: number[]) => ts.findIndex((_, i) => upTo(ts, i + 1).includes(marker)) + 1; // tokens up to the marker
    const g = await run(marker, 80);
    const m = at(g.tokens);
    expect(m).toBeGreaterThan(0);
    expect(g.tokens.slice(0, m)).toEqual(free.slice(0, m)); // unconstrained (greedy) until the marker
    expect(g.finish).toBe('stop'); // the grammar ended it
    expect(JSON.parse(upTo(g.tokens.slice(m), g.tokens.length))).toMatchObject({ ok: expect.any(Boolean) });
    // a marker that never comes: the whole output is free (the same tokens as without a format)
    const never = await run('\u0001never\u0002', 40);
    expect(never.tokens).toEqual(free);
  });

  it('guideOpener: the first token either opens the thinking (free until guideAfter) or starts the formatted answer', async () => {
    if (!engine) return;
    const schema = { type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'] };
    const inputIds = engine.encodePrompt('the cat');
    const stopIds = engine.defaultStopIds(false);
    const run = async (guide: { guideAfter?: string; guideOpener?: string }, maxNewTokens: number) => {
      const tokens: number[] = [];
      let finish: string | undefined;
      for await (const o of engine!.createInstance().streamInfer({ inputIds, maxNewTokens, stopIds, sampling: greedy, responseFormat: { type: 'json_schema', schema }, ...guide })) {
        tokens.push(...o.tokenIds);
        finish = o.finishReason ?? finish;
      }
      return { tokens, finish };
    };
    const text = (ts: number[]) => engine!.tokenizer.decode(ts, { skipSpecialTokens: false });
    const free = (await collect(engine.createInstance().streamInfer({ inputIds, maxNewTokens: 40, stopIds, sampling: greedy }))).flatMap((o) => o.tokenIds);
    // an opener the model writes first (its greedy first token's text): as without one, free until the marker
    const opener = text([free[0]]).replace(/^\s+/, '');
    expect(opener.length).toBeGreaterThan(0);
    const marker = text(free.slice(0, 4)).slice(-3);
    const after = await run({ guideAfter: marker }, 80);
    expect((await run({ guideAfter: marker, guideOpener: opener }, 80)).tokens).toEqual(after.tokens);
    // an opener the vocabulary lacks (this tokenizer has no <think>): the format from the first token, even though
    // the marker never comes
    const guided = await run({}, 80);
    expect(guided.finish).toBe('stop');
    expect(JSON.parse(text(guided.tokens))).toMatchObject({ ok: expect.any(Boolean) });
    expect((await run({ guideAfter: '\u0001never\u0002', guideOpener: '<think>' }, 80)).tokens).toEqual(guided.tokens);
    expect(after.tokens[0]).toBe(free[0]);
    expect(guided.tokens[0]).not.toBe(free[0]); // so the opener was let through beside the grammar's first tokens
  });

  it('responseFormat on a model that ships only tokenizer.model (SentencePiece): the converted vocabulary guides it', async () => {
    if (!native) return;
    const dir = path.join(tmp.dir, 'sp-only');
    writeTinyModel(dir, { arch: 'llama', seed: 3, vocabSize: 800 }); // the fixture's 800 pieces
    fs.rmSync(path.join(dir, 'tokenizer.json'));
    fs.copyFileSync(path.join(REPO_ROOT, 'libs/engine/src/tokenizer/fixtures/bpe-llama.model'), path.join(dir, 'tokenizer.model'));
    fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<s>', eos_token: '</s>' }));
    const e = await engineOrReport(dir, { native, maxBatchSize: 2, sessionLen: 256 });
    if (!e) return;
    try {
      const schema = { type: 'object', properties: { ok: { type: 'boolean' }, size: { enum: ['small', 'large'] } }, required: ['ok', 'size'] };
      let text = '';
      let finish: string | undefined;
      for await (const o of e.createInstance().streamInfer({ inputIds: e.encodePrompt('the cat'), maxNewTokens: 80, sampling: { temperature: 0 }, responseFormat: { type: 'json_schema', schema } })) {
        text += o.text;
        finish = o.finishReason ?? finish;
      }
      expect(finish).toBe('stop');
      expect(Object.keys(JSON.parse(text)).sort()).toEqual(['ok', 'size']);
    } finally {
      await e.dispose();
    }
  });

  it('sampling with a seed is reproducible', async () => {
    if (!engine) return;
    const g = { maxNewTokens: 16, temperature: 1, topK: 20, topP: 0.9, seed: 1234, ignoreEos: true };
    const [a] = await engine.generate(['hello'], g);
    const [b] = await engine.generate(['hello'], g);
    expect(a.tokenIds).toEqual(b.tokenIds);
  });

  it('stop words cut the text and end the request', async () => {
    if (!engine) return;
    const [full] = await engine.generate(['on the'], { maxNewTokens: 32, temperature: 0, ignoreEos: true });
    const word = full.text.slice(6, 8);
    if (word.length < 2) return;
    const [cut] = await engine.generate(['on the'], { maxNewTokens: 32, temperature: 0, ignoreEos: true, stopWords: [word] });
    expect(cut.finishReason).toBe('stop');
    expect(cut.text).toBe(full.text.slice(0, full.text.indexOf(word)));
    // cancellation is asynchronous: a fast model may have generated everything before the cancel lands
    expect(cut.usage.completionTokens).toBeLessThanOrEqual(32);
  });

  it('abort cancels a running request', async () => {
    if (!engine) return;
    // A long request on its own engine, so that the abort lands long before the tiny model could finish it.
    const long = await engineOrReport(info.dir, { native, maxBatchSize: 1, sessionLen: 8192 });
    if (!long) return;
    try {
      const ac = new AbortController();
      const outs: StreamOutput[] = [];
      for await (const o of long.createInstance().streamInfer({ inputIds: long.encodePrompt('x'), maxNewTokens: 8000, stopIds: [], sampling: greedy, signal: ac.signal })) {
        outs.push(o);
        if (outs.length === 2) ac.abort();
      }
      const last = outs[outs.length - 1];
      expect(last.finishReason).toBe('cancelled');
      expect(last.usage!.completionTokens).toBeLessThan(8000);
      expect(long.stats().running).toBe(0);
    } finally {
      await long.dispose();
    }
  });

  it('a session continues from its KV cache exactly like the full sequence', async () => {
    if (!engine) return;
    const inst = engine.createInstance();
    const sid = 41;
    const p1 = engine.tokenizer.encode('first turn');
    const t1 = (await collect(inst.streamInfer({ sessionId: sid, inputIds: p1, maxNewTokens: 8, stopIds: [], sampling: greedy }))).flatMap((o) => o.tokenIds);
    const p2 = engine.tokenizer.encode(' and then');
    const t2 = (await collect(inst.streamInfer({ sessionId: sid, inputIds: p2, maxNewTokens: 8, stopIds: [], sampling: greedy }))).flatMap((o) => o.tokenIds);
    // Same tokens without a session: the whole history as one prompt.
    const ref = (await collect(inst.streamInfer({ inputIds: [...p1, ...t1, ...p2], maxNewTokens: 8, stopIds: [], sampling: greedy }))).flatMap((o) => o.tokenIds);
    expect(t2).toEqual(ref);
    expect(engine.sessionLength(sid)).toBe(p1.length + 8 + p2.length + 8);
    inst.endSession(sid);
    expect(engine.sessionLength(sid)).toBe(0);
  });

  it('a cancelled turn drops its session: the next turn starts from scratch', async () => {
    if (!engine) return;
    const inst = engine.createInstance();
    const sid = 42;
    const p1 = engine.tokenizer.encode('keep this');
    await collect(inst.streamInfer({ sessionId: sid, inputIds: p1, maxNewTokens: 4, stopIds: [], sampling: greedy }));
    expect(engine.sessionLength(sid)).toBe(p1.length + 4);
    const ac = new AbortController();
    ac.abort();
    // aborted before submit: nothing reaches native, the session is untouched
    await collect(inst.streamInfer({ sessionId: sid, inputIds: [5], maxNewTokens: 4, signal: ac.signal }));
    expect(engine.sessionLength(sid)).toBe(p1.length + 4);
    const ac2 = new AbortController();
    for await (const o of inst.streamInfer({ sessionId: sid, inputIds: [5], maxNewTokens: 200, stopIds: [], sampling: greedy, signal: ac2.signal })) {
      if (o.tokenIds.length) ac2.abort();
    }
    const p2 = engine.tokenizer.encode('fresh');
    const t = (await collect(inst.streamInfer({ sessionId: sid, inputIds: p2, maxNewTokens: 4, stopIds: [], sampling: greedy }))).flatMap((o) => o.tokenIds);
    const ref = (await collect(inst.streamInfer({ inputIds: p2, maxNewTokens: 4, stopIds: [], sampling: greedy }))).flatMap((o) => o.tokenIds);
    if (engine.sessionLength(sid) === p2.length + 4) expect(t).toEqual(ref); // the abort landed before the turn ended
    inst.endSession(sid);
  });

  it('returns log-probs of the sampled tokens with top alternatives', async () => {
    if (!engine) return;
    const outs = await collect(engine.createInstance().streamInfer({ inputIds: engine.encodePrompt('the'), maxNewTokens: 6, stopIds: [], sampling: greedy, logprobs: 3 }));
    const lps = outs.flatMap((o) => o.logprobs ?? []);
    expect(lps).toHaveLength(6);
    for (const lp of lps) {
      expect(lp.logprob).toBeLessThanOrEqual(0);
      expect(lp.top).toHaveLength(3);
      // greedy: the sampled token is the most likely one
      expect(lp.top[0].tokenId).toBe(lp.tokenId);
      expect(lp.top[0].logprob).toBeCloseTo(lp.logprob, 4);
    }
    const zero = await collect(engine.createInstance().streamInfer({ inputIds: engine.encodePrompt('the'), maxNewTokens: 3, stopIds: [], sampling: greedy, logprobs: 0 }));
    expect(zero.flatMap((o) => o.logprobs ?? []).map((l) => l.top.length)).toEqual([0, 0, 0]);
    const none = await collect(engine.createInstance().streamInfer({ inputIds: engine.encodePrompt('the'), maxNewTokens: 3, stopIds: [], sampling: greedy }));
    expect(none.some((o) => o.logprobs)).toBe(false);
  });

  it('a request larger than the whole KV cache fails with a clear error', async () => {
    if (!engine) return;
    const small = await engineOrReport(info.dir, { native, maxBatchSize: 1, sessionLen: 256, numBlocks: 2, blockSize: 16 });
    if (!small) return;
    try {
      const run = collect(small.createInstance().streamInfer({ inputIds: new Array(100).fill(40), maxNewTokens: 10, stopIds: [] }));
      await expect(run).rejects.toMatchObject({ code: expect.stringMatching(/E_OUT_OF_KV_CACHE|E_INVALID_ARGUMENT/) });
    } finally {
      await small.dispose();
    }
  });

  it("backend 'cuda' without a GPU throws BackendUnavailableError with the reason", async () => {
    if (!engine) return;
    if (fs.existsSync('/dev/nvidia0')) return;
    await expect(Engine.fromPretrained(info.dir, { backend: 'cuda' })).rejects.toThrow(/backend "cuda" is unavailable: .*(GPU|cuda)/i);
    const auto = await Engine.fromPretrained(info.dir, { backend: 'auto', log: () => {} });
    expect(auto.backend).toBe('cpu');
    await auto.dispose();
  });

  it('many concurrent requests each get their own tokens', async () => {
    if (!engine) return;
    const prompts = ['a', 'the dog', 'in the house', 'é世🙂', 'one', 'two'];
    const batched = await engine.generate(prompts, { maxNewTokens: 12, temperature: 0, ignoreEos: true });
    for (let i = 0; i < prompts.length; i++) {
      const [single] = await engine.generate([prompts[i]], { maxNewTokens: 12, temperature: 0, ignoreEos: true });
      expect(batched[i].tokenIds).toEqual(single.tokenIds);
    }
  });

  it('speculative decoding (ngram): the same tokens and log-probs as plain decoding, with its drafts in the usage', async () => {
    if (!engine) return;
    const spec = await engineOrReport(info.dir, { native, maxBatchSize: 4, sessionLen: 256, speculative: { method: 'ngram', numDraftTokens: 4, promptLookupMax: 3 } });
    if (!spec) return;
    try {
      const run = async (e: Engine, inputIds: number[], sampling: object) => {
        const outs = await collect(e.createInstance().streamInfer({ inputIds, maxNewTokens: 40, stopIds: [], sampling, logprobs: 1 }));
        return { tokens: outs.flatMap((o) => o.tokenIds), logprobs: outs.flatMap((o) => o.logprobs ?? []).map((l) => l.logprob), usage: outs[outs.length - 1].usage! };
      };
      const base = [5, 9, 14, 3, 27, 8];
      const ids = [...base, ...base, ...base.slice(0, 2)];
      for (const sampling of [greedy, { temperature: 0.8, topK: 10, seed: 3 }]) {
        const got = await run(spec, ids, sampling);
        const ref = await run(engine, ids, sampling);
        expect(got.tokens).toEqual(ref.tokens);
        for (let i = 0; i < ref.logprobs.length; i++) expect(got.logprobs[i]).toBeCloseTo(ref.logprobs[i], 4);
        expect(got.usage.draftTokens).toBeGreaterThan(0);
        expect(got.usage.acceptedDraftTokens).toBeGreaterThanOrEqual(0);
        expect(ref.usage.draftTokens).toBeUndefined();
      }
      expect(spec.stats().specDraftTokens).toBeGreaterThan(0);
      await expect(Engine.fromPretrained(info.dir, { native, speculative: { method: 'eagle' as 'ngram', numDraftTokens: 4 } })).rejects.toThrow(/method must be "ngram"/);
      await expect(Engine.fromPretrained(info.dir, { native, speculative: { method: 'ngram', numDraftTokens: 0 } })).rejects.toThrow(/numDraftTokens must be an integer in \[1, 15\]/);
    } finally {
      await spec.dispose();
    }
  });

  it('prefix caching: a prompt that shares full blocks with earlier requests (or a chat resent with its reply) starts from them, with the same tokens and log-probs', async () => {
    if (!engine) return;
    const cached = await engineOrReport(info.dir, { native, maxBatchSize: 4, sessionLen: 256, blockSize: 16, enablePrefixCaching: true });
    if (!cached) return;
    try {
      const run = async (e: Engine, inputIds: number[]) => {
        const outs = await collect(e.createInstance().streamInfer({ inputIds, maxNewTokens: 12, stopIds: [], sampling: greedy, logprobs: 2 }));
        return { tokens: outs.flatMap((o) => o.tokenIds), logprobs: outs.flatMap((o) => o.logprobs ?? []).map((l) => l.logprob), usage: outs[outs.length - 1].usage! };
      };
      const system = Array.from({ length: 70 }, (_, i) => 3 + ((i * 37) % (info.vocabSize - 3)));
      const first = await run(cached, [...system, 11, 12]);
      expect(first.usage.cachedTokens).toBe(0);
      // 72 + 11 tokens computed: blocks 0-4 (tokens 0-79) are full and cached
      const cases = [
        { ids: [...system, 21, 22, 23], cachedTokens: 64 }, // the system prompt's 4 full blocks
        { ids: [...system, 11, 12, ...first.tokens, 5, 6], cachedTokens: 80 }, // the first exchange resent, blocks from its decode steps too
      ];
      for (const c of cases) {
        const got = await run(cached, c.ids);
        const ref = await run(engine, c.ids);
        expect(got.usage.cachedTokens).toBe(c.cachedTokens);
        expect(got.usage.promptTokens).toBe(c.ids.length);
        expect(got.tokens).toEqual(ref.tokens);
        for (let i = 0; i < ref.logprobs.length; i++) expect(got.logprobs[i]).toBeCloseTo(ref.logprobs[i], 4);
      }
      expect(cached.stats()).toMatchObject({ running: 0, blocksFree: cached.stats().blocksTotal });
      expect(cached.stats().blocksCached).toBeGreaterThanOrEqual(5); // evictable, so also counted free
      expect(engine.stats().blocksCached).toBe(0);
    } finally {
      await cached.dispose();
    }
  });
});
