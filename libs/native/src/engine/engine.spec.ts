// Engine-level specs on a tiny random Qwen2-style model built here (q/k/v bias, GQA, untied lm_head):
// the native forward against a pure-TS reference forward, then the paged engine against the forward.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { EngineOptions, NativeEngine, NativeEvent, NativeLogprob, NativeModel, NativeModelConfig, NativeRequest, TensorSource } from '../index';
import { argmaxRef, attentionRef, linearRef, rmsNormRef, ropeInvFreqRef, ropeRef } from '../ops/reference';
import { cpuNative, expectNmse, f32ToF16, Rng, roundTo } from '../ops/testing';

const DIMS = { vocab: 96, hidden: 32, inter: 48, layers: 2, heads: 4, kvHeads: 2, headDim: 8 };
const EPS = 1e-6;
const THETA = 10000;

type Weights = Map<string, { shape: number[]; values: Float32Array }>;

function makeWeights(seed: number, tied = false): Weights {
  const rng = new Rng(seed);
  const { vocab, hidden: H, inter: I, layers, heads, kvHeads, headDim: D } = DIMS;
  const w: Weights = new Map();
  const add = (name: string, shape: number[], scale: number, offset = 0) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const v = rng.randn(n, scale).map((x) => x + offset);
    w.set(name, { shape, values: roundTo('f16', v) });
  };
  add('embed_tokens.weight', [vocab, H], 1);
  add('norm.weight', [H], 0.1, 1);
  if (!tied) add('lm_head.weight', [vocab, H], 0.3);
  for (let l = 0; l < layers; l++) {
    const p = `layers.${l}.`;
    add(p + 'input_norm.weight', [H], 0.1, 1);
    add(p + 'post_norm.weight', [H], 0.1, 1);
    add(p + 'q.weight', [heads * D, H], 0.3);
    add(p + 'q.bias', [heads * D], 0.1);
    add(p + 'k.weight', [kvHeads * D, H], 0.3);
    add(p + 'k.bias', [kvHeads * D], 0.1);
    add(p + 'v.weight', [kvHeads * D, H], 0.3);
    add(p + 'v.bias', [kvHeads * D], 0.1);
    add(p + 'o.weight', [H, heads * D], 0.3);
    add(p + 'gate.weight', [I, H], 0.3);
    add(p + 'up.weight', [I, H], 0.3);
    add(p + 'down.weight', [H, I], 0.3);
  }
  return w;
}

function f16Bytes(values: Float32Array): Uint8Array {
  const h = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) h[i] = f32ToF16(values[i]);
  return new Uint8Array(h.buffer);
}

function config(tensors: TensorSource[], tied = false): NativeModelConfig {
  const { vocab, hidden, inter, layers, heads, kvHeads, headDim } = DIMS;
  return {
    backend: 'cpu',
    threads: 2,
    dtype: 'f16',
    vocabSize: vocab,
    hiddenSize: hidden,
    intermediateSize: inter,
    numLayers: layers,
    numHeads: heads,
    numKvHeads: kvHeads,
    headDim,
    rmsNormEps: EPS,
    maxPositionEmbeddings: 512,
    rope: { type: 'default', theta: THETA },
    tieWordEmbeddings: tied,
    hiddenAct: 'silu',
    tensors,
  };
}

function inMemoryTensors(w: Weights): TensorSource[] {
  return [...w].map(([name, t]) => ({ name, dtype: 'f16', shape: t.shape, data: f16Bytes(t.values) }));
}

/** Writes a safetensors file (8-byte LE header length, JSON header, data) and returns file-backed sources. */
function writeSafetensors(w: Weights, file: string): TensorSource[] {
  const header: Record<string, unknown> = {};
  const chunks: Uint8Array[] = [];
  let off = 0;
  for (const [name, t] of w) {
    const b = f16Bytes(t.values);
    header[name] = { dtype: 'F16', shape: t.shape, data_offsets: [off, off + b.length] };
    chunks.push(b);
    off += b.length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  fs.writeFileSync(file, Buffer.concat([len, Buffer.from(json), ...chunks]));
  const base = 8 + json.length;
  return [...w].map(([name, t]) => {
    const h = header[name] as { data_offsets: number[] };
    return { name, dtype: 'f16', shape: t.shape, file, offset: base + h.data_offsets[0] };
  });
}

/** Pure-TS reference forward: logits [n, vocab]. */
function referenceForward(w: Weights, ids: number[], tied = false): Float32Array {
  const { vocab, hidden: H, inter: I, layers, heads, kvHeads, headDim: D } = DIMS;
  const g = (n: string) => w.get(n)!.values;
  const n = ids.length;
  let x = new Float32Array(n * H);
  ids.forEach((id, t) => x.set(g('embed_tokens.weight').subarray(id * H, (id + 1) * H), t * H));
  const inv = ropeInvFreqRef({ type: 'default', theta: THETA }, D, n);
  const pos = ids.map((_, i) => i);
  for (let l = 0; l < layers; l++) {
    const p = `layers.${l}.`;
    const h = rmsNormRef(x, g(p + 'input_norm.weight'), n, H, EPS);
    const q = linearRef(h, g(p + 'q.weight'), g(p + 'q.bias'), n, heads * D, H);
    const k = linearRef(h, g(p + 'k.weight'), g(p + 'k.bias'), n, kvHeads * D, H);
    const v = linearRef(h, g(p + 'v.weight'), g(p + 'v.bias'), n, kvHeads * D, H);
    ropeRef(q, n, heads, D, pos, inv);
    ropeRef(k, n, kvHeads, D, pos, inv);
    const a = attentionRef(q, k, v, n, n, heads, kvHeads, D, 1 / Math.sqrt(D));
    const o = linearRef(a, g(p + 'o.weight'), null, n, H, heads * D);
    x = x.map((xv, i) => xv + o[i]);
    const h2 = rmsNormRef(x, g(p + 'post_norm.weight'), n, H, EPS);
    const gate = linearRef(h2, g(p + 'gate.weight'), null, n, I, H);
    const up = linearRef(h2, g(p + 'up.weight'), null, n, I, H);
    const act = gate.map((gv, i) => (gv / (1 + Math.exp(-gv))) * up[i]);
    const d = linearRef(act, g(p + 'down.weight'), null, n, H, I);
    x = x.map((xv, i) => xv + d[i]);
  }
  const xn = rmsNormRef(x, g('norm.weight'), n, H, EPS);
  return linearRef(xn, g(tied ? 'embed_tokens.weight' : 'lm_head.weight'), null, n, vocab, H);
}

async function greedyByForward(model: NativeModel, prompt: number[], steps: number): Promise<number[]> {
  const seq = [...prompt];
  const out: number[] = [];
  for (let s = 0; s < steps; s++) {
    const logits = await model.forward(Int32Array.from(seq));
    const tok = argmaxRef(logits, (seq.length - 1) * DIMS.vocab, DIMS.vocab);
    out.push(tok);
    seq.push(tok);
  }
  return out;
}

/** Collects events per request id; resolves each request's promise on done/error. */
class Collector {
  tokens = new Map<number, number[]>();
  logprobs = new Map<number, { logprob: number; top: [number, number][] }[]>();
  done = new Map<number, NativeEvent>();
  order: string[] = [];  // `${type}:${id}` of every event as it came
  private waiters = new Map<number, (ev: NativeEvent) => void>();
  promptLogprobs = new Map<number, NativeLogprob[]>();
  onEvent = (ev: NativeEvent) => {
    this.order.push(`${ev.type}:${ev.id}`);
    if (ev.type !== 'error' && ev.promptLogprobs) {
      expect(this.promptLogprobs.has(ev.id)).toBe(false); // once, on the first event
      this.promptLogprobs.set(ev.id, ev.promptLogprobs);
    }
    if (ev.type === 'tokens') {
      this.tokens.set(ev.id, [...(this.tokens.get(ev.id) ?? []), ...ev.tokens]);
      if (ev.logprobs) this.logprobs.set(ev.id, [...(this.logprobs.get(ev.id) ?? []), ...ev.logprobs]);
    } else {
      this.done.set(ev.id, ev);
      this.waiters.get(ev.id)?.(ev);
    }
  };
  wait(id: number): Promise<NativeEvent> {
    const d = this.done.get(id);
    if (d) return Promise.resolve(d);
    return new Promise((resolve) => this.waiters.set(id, resolve));
  }
}

/** Polls `cond` (the batch thread works asynchronously) for up to 10 s. */
async function until(cond: () => boolean): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > 10_000) throw new Error('condition not reached within 10 s');
    await new Promise((res) => setTimeout(res, 2));
  }
}

function prompt(rng: Rng, n: number): number[] {
  return Array.from({ length: n }, () => rng.int(DIMS.vocab));
}

const native = cpuNative();
const SEED = 1234;
const weights = makeWeights(SEED);
let model: NativeModel;

beforeAll(async () => {
  model = native.createModel(config(inMemoryTensors(weights)));
  await model.load();
});
afterAll(() => model?.dispose());

async function withEngine<T>(opts: Partial<EngineOptions>, fn: (e: NativeEngine, c: Collector) => Promise<T>, start = true): Promise<T> {
  const engine = native.createEngine(model, { maxBatchSize: 8, blockSize: 4, numBlocks: 256, sessionLen: 256, ...opts });
  const c = new Collector();
  if (start) engine.start(c.onEvent);
  try {
    return await fn(engine, c);
  } finally {
    await engine.dispose();
  }
}

async function runAlone(req: NativeRequest, opts: Partial<EngineOptions> = {}): Promise<number[]> {
  return withEngine(opts, async (e, c) => {
    e.submit(req);
    const ev = await c.wait(req.id);
    expect(ev.type).toBe('done');
    return c.tokens.get(req.id) ?? [];
  });
}

describe('decoder forward', () => {
  it('(a) logits equal the TS reference forward (in-memory tensors)', async () => {
    const ids = prompt(new Rng(1), 23);
    const got = await model.forward(Int32Array.from(ids));
    expect(got.length).toBe(ids.length * DIMS.vocab);
    expectNmse(referenceForward(weights, ids), got, 1e-9, 'logits');
  });

  it('(a) tied embeddings, weights memory-mapped from a safetensors file', async () => {
    const w = makeWeights(99, true);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmfleet-native-'));
    const m = native.createModel(config(writeSafetensors(w, path.join(dir, 'model.safetensors')), true));
    await m.load();
    const ids = prompt(new Rng(2), 17);
    expectNmse(referenceForward(w, ids, true), await m.forward(Int32Array.from(ids)), 1e-9, 'logits');
    expect(m.weightBytes()).toBeGreaterThan(0);
    m.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('scoreTokens gives -log p(next token) from the same logits', async () => {
    const ids = prompt(new Rng(3), 19);
    const logits = await model.forward(Int32Array.from(ids));
    const nll = await model.scoreTokens(Int32Array.from(ids));
    expect(nll.length).toBe(ids.length - 1);
    const ref = new Float64Array(ids.length - 1);
    for (let t = 0; t + 1 < ids.length; t++) {
      const row = logits.subarray(t * DIMS.vocab, (t + 1) * DIMS.vocab);
      const mx = Math.max(...row);
      const lse = Math.log(row.reduce((s, v) => s + Math.exp(v - mx), 0)) + mx;
      ref[t] = lse - row[ids[t + 1]];
    }
    expectNmse(ref, nll, 1e-10, 'nll');
  });
});

describe('engine', () => {
  it('(b) greedy decode (prefill + paged decode) equals argmax over forward of the growing sequence', async () => {
    const p = prompt(new Rng(4), 9);
    const expected = await greedyByForward(model, p, 12);
    const got = await runAlone({ id: 1, inputIds: Int32Array.from(p), maxNewTokens: 12 });
    expect(got).toEqual(expected);
    // Chunked prefill (3 tokens per step) gives the same tokens.
    expect(await runAlone({ id: 2, inputIds: Int32Array.from(p), maxNewTokens: 12 }, { maxPrefillTokens: 3 })).toEqual(expected);
  });

  it('(c) continuous batching: 8 requests of different lengths, submitted at different times, equal each alone', async () => {
    const rng = new Rng(5);
    const reqs: NativeRequest[] = Array.from({ length: 8 }, (_, i) => ({
      id: 100 + i,
      inputIds: Int32Array.from(prompt(rng, 3 + ((i * 7) % 20))),
      maxNewTokens: 5 + ((i * 3) % 11),
      sampling: i % 2 ? { temperature: 0.9, topK: 20, seed: 1000 + i } : undefined,
      ...(i % 3 === 0 ? { promptLogprobs: 1 } : {}), // scored prompts: each log-prob once, whatever preemption recomputes
    }));
    const alone = new Map<number, number[]>();
    for (const r of reqs) alone.set(r.id, await runAlone(r));
    // maxBatchSize 3 and a small cache: requests queue, join as others leave, and get preempted.
    await withEngine({ maxBatchSize: 3, numBlocks: 24, maxPrefillTokens: 16 }, async (e, c) => {
      for (const r of reqs) {
        e.submit(r);
        await new Promise((res) => setTimeout(res, (r.id % 3) * 3));
      }
      const evs = await Promise.all(reqs.map((r) => c.wait(r.id)));
      for (const ev of evs) expect(ev.type).toBe('done');
      for (const r of reqs) expect({ id: r.id, tokens: c.tokens.get(r.id) }).toEqual({ id: r.id, tokens: alone.get(r.id) });
      for (const r of reqs.filter((x) => x.promptLogprobs !== undefined)) {
        const nll = await model.scoreTokens(r.inputIds);
        expect(c.promptLogprobs.get(r.id)?.map((lp) => lp.logprob)).toEqual(Array.from(nll, (x) => expect.closeTo(-x, 4)));
      }
      expect(e.stats().blocksFree).toBe(24);
    });
  });

  it('events held for the next step (the cuda default) or not arrive complete and in order', async () => {
    const rng = new Rng(12);
    const reqs: NativeRequest[] = Array.from({ length: 6 }, (_, i) => ({
      id: 150 + i,
      inputIds: Int32Array.from(prompt(rng, 2 + i)),
      maxNewTokens: 2 + ((i * 5) % 7),
    }));
    const alone = new Map<number, number[]>();
    for (const r of reqs) alone.set(r.id, await runAlone(r));
    for (const holdEvents of [true, false]) {
      await withEngine({ maxBatchSize: 3, holdEvents }, async (e, c) => {
        for (const r of reqs) e.submit(r);
        for (const ev of await Promise.all(reqs.map((r) => c.wait(r.id)))) expect(ev.type).toBe('done');
        for (const r of reqs) {
          expect({ id: r.id, tokens: c.tokens.get(r.id) }).toEqual({ id: r.id, tokens: alone.get(r.id) });
          // every token event before the request's one done event
          expect(c.order.lastIndexOf(`tokens:${r.id}`)).toBeLessThan(c.order.indexOf(`done:${r.id}`));
          expect(c.order.filter((x) => x === `done:${r.id}`)).toHaveLength(1);
        }
      });
    }
  });

  it('submit([...]) queues requests together: one first step for all, the same tokens as each alone', async () => {
    const rng = new Rng(11);
    const reqs: NativeRequest[] = Array.from({ length: 4 }, (_, i) => ({ id: 200 + i, inputIds: Int32Array.from(prompt(rng, 3 + i)), maxNewTokens: 3 }));
    const alone = new Map<number, number[]>();
    for (const r of reqs) alone.set(r.id, await runAlone(r));
    await withEngine({}, async (e, c) => {
      e.submit(reqs);
      for (const ev of await Promise.all(reqs.map((r) => c.wait(r.id)))) expect(ev.type).toBe('done');
      for (const r of reqs) expect(c.tokens.get(r.id)).toEqual(alone.get(r.id));
      // prefill of all four in the first step, then two decode steps of all four
      expect(e.stats().steps).toBe(3);
    });
  });

  it('submit([...]) with one bad request or a repeated id queues none of them', async () => {
    await withEngine({}, async (e, c) => {
      const ok: NativeRequest = { id: 300, inputIds: Int32Array.from([1, 2, 3]), maxNewTokens: 2 };
      expect(() => e.submit([ok, { id: 301, inputIds: Int32Array.from([1, DIMS.vocab]), maxNewTokens: 2 }])).toThrow(
        expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }),
      );
      expect(() => e.submit([ok, { ...ok }])).toThrow(expect.objectContaining({ code: 'E_INVALID_ARGUMENT', message: expect.stringContaining('300') }));
      expect(e.stats()).toMatchObject({ running: 0, waiting: 0, steps: 0 });
      e.submit([ok]); // id 300 was never queued, so it is free
      expect((await c.wait(300)).type).toBe('done');
    });
  });

  it('(d) sampling with a seed is reproducible and independent of the batch', async () => {
    const rng = new Rng(6);
    const p = Int32Array.from(prompt(rng, 6));
    const req: NativeRequest = { id: 7, inputIds: p, maxNewTokens: 16, sampling: { temperature: 1.2, topP: 0.95, topK: 50, repetitionPenalty: 1.1, seed: 77 } };
    const a = await runAlone(req);
    const b = await runAlone(req);
    expect(a).toEqual(b);
    const inBatch = await withEngine({}, async (e, c) => {
      for (let i = 0; i < 5; i++)
        e.submit({ id: 50 + i, inputIds: Int32Array.from(prompt(rng, 4 + i)), maxNewTokens: 10, sampling: { temperature: 1, seed: i } });
      e.submit(req);
      await Promise.all([c.wait(7), ...[0, 1, 2, 3, 4].map((i) => c.wait(50 + i))]);
      return c.tokens.get(7);
    });
    expect(inBatch).toEqual(a);
    const other = await runAlone({ ...req, sampling: { ...req.sampling, seed: 78 } });
    expect(other).not.toEqual(a);
  });

  it('(d2) min-p 1 leaves only the most likely token: a hot sampled request gives the greedy tokens; min-p outside [0, 1] is refused', async () => {
    const p = Int32Array.from(prompt(new Rng(16), 6));
    const greedy = await runAlone({ id: 21, inputIds: p, maxNewTokens: 16, sampling: { temperature: 0 } });
    const hot = { id: 22, inputIds: p, maxNewTokens: 16, sampling: { temperature: 2, topP: 0.99, seed: 5 } };
    expect(await runAlone({ ...hot, sampling: { ...hot.sampling, minP: 1 } })).toEqual(greedy);
    expect(await runAlone(hot)).not.toEqual(greedy); // the same request without it wanders
    await withEngine({}, async (e) => {
      expect(() => e.submit({ ...hot, sampling: { minP: 1.5 } })).toThrow(expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }));
    });
  });

  it('(d3) promptLogprobs: each prompt token after the first, as scoreTokens scores it, in chunks; on the first event; not with a session', async () => {
    const p = prompt(new Rng(17), 41);
    const nll = await model.scoreTokens(Int32Array.from(p));
    // the top-2 of each position from the whole-sequence logits: (logit desc, id asc)
    const logits = await model.forward(Int32Array.from(p));
    const V = DIMS.vocab;
    const top2 = (k: number) =>
      Array.from({ length: V }, (_, t) => t)
        .sort((a, b) => logits[k * V + b] - logits[k * V + a] || a - b)
        .slice(0, 2);
    for (const maxNewTokens of [0, 3]) {
      // maxPrefillTokens 16: the prompt's logits come over three steps
      const lps = await withEngine({ maxPrefillTokens: 16 }, async (e, c) => {
        e.submit({ id: 31, inputIds: Int32Array.from(p), maxNewTokens, promptLogprobs: 2 });
        expect((await c.wait(31)).type).toBe('done');
        expect(c.order[0]).toBe(maxNewTokens ? 'tokens:31' : 'done:31');
        expect(c.tokens.get(31)?.length ?? 0).toBe(maxNewTokens);
        return c.promptLogprobs.get(31)!;
      });
      expect(lps).toHaveLength(p.length - 1);
      lps.forEach((lp, k) => {
        expect(lp.logprob).toBeCloseTo(-nll[k], 4);
        expect(lp.top.map(([t]) => t)).toEqual(top2(k));
        const row = logits.subarray(k * V, (k + 1) * V);
        expect(lp.rank).toBe(1 + row.filter((x) => x > row[p[k + 1]]).length); // vLLM's rank of the prompt token
        expect(lp.top[0][1]).toBeGreaterThanOrEqual(lp.top[1][1]);
        expect(lp.top[0][1]).toBeGreaterThanOrEqual(lp.logprob - 1e-6);
      });
    }
    await withEngine({}, async (e) => {
      expect(() => e.submit({ id: 32, sessionId: 5, inputIds: Int32Array.from(p), maxNewTokens: 1, promptLogprobs: 0 })).toThrow(expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }));
    });
  });

  it('(e) cancel ends the request with "cancelled" and frees its blocks', async () => {
    await withEngine({ numBlocks: 1100, sessionLen: 4096 }, async (e, c) => {
      e.submit({ id: 9, inputIds: Int32Array.from(prompt(new Rng(7), 30)), maxNewTokens: 4000 });
      e.submit({ id: 10, inputIds: Int32Array.from(prompt(new Rng(7), 3)), maxNewTokens: 4000 });
      e.cancel(10); // still waiting (or just admitted)
      await until(() => (c.tokens.get(9) ?? []).length > 0); // running and generating
      e.cancel(9);
      const ev = await c.wait(9);
      expect(ev).toMatchObject({ type: 'done', finishReason: 'cancelled' });
      expect(await c.wait(10)).toMatchObject({ type: 'done', finishReason: 'cancelled' });
      expect((c.tokens.get(9) ?? []).length).toBeGreaterThan(0);
      const s = e.stats();
      expect(s.blocksFree).toBe(s.blocksTotal);
      expect(s.running + s.waiting).toBe(0);
    });
  });

  it('(f) sessions: turn 2 continues from turn 1\'s cache and equals running the concatenation', async () => {
    const rng = new Rng(8);
    const t1 = prompt(rng, 7);
    const t2 = prompt(rng, 5);
    await withEngine({}, async (e, c) => {
      e.submit({ id: 1, sessionId: 42, inputIds: Int32Array.from(t1), maxNewTokens: 6 });
      await c.wait(1);
      const out1 = c.tokens.get(1)!;
      expect(e.stats().sessions).toBe(1);
      const kept = e.stats().blocksTotal - e.stats().blocksFree;
      expect(kept).toBeGreaterThan(0);
      e.submit({ id: 2, sessionId: 42, inputIds: Int32Array.from(t2), maxNewTokens: 6 });
      await c.wait(2);
      const out2 = c.tokens.get(2)!;
      expect(out2).toEqual(await greedyByForward(model, [...t1, ...out1, ...t2], 6));
      e.endSession(42); // handled by the batch thread
      await until(() => e.stats().sessions === 0);
      expect(e.stats().blocksFree).toBe(e.stats().blocksTotal);
    });
  });

  it('stops at stop ids and reports timings', async () => {
    const p = prompt(new Rng(9), 5);
    const expected = await greedyByForward(model, p, 8);
    await withEngine({}, async (e, c) => {
      e.submit({ id: 3, inputIds: Int32Array.from(p), maxNewTokens: 8, stopIds: [expected[3]], logprobs: 2 });
      const ev = await c.wait(3);
      const stopAt = expected.indexOf(expected[3]);
      expect(ev).toMatchObject({ type: 'done', finishReason: 'stop', promptTokens: 5, completionTokens: stopAt + 1 });
      expect(c.tokens.get(3) ?? []).toEqual(expected.slice(0, stopAt));
      if (ev.type === 'done') expect(ev.totalMs).toBeGreaterThanOrEqual(ev.firstTokenMs);
    });
  });

  it('a request that can never fit ends with E_OUT_OF_KV_CACHE; others keep running', async () => {
    await withEngine({ numBlocks: 4, blockSize: 4 }, async (e, c) => {
      e.submit({ id: 1, inputIds: Int32Array.from(prompt(new Rng(10), 10)), maxNewTokens: 20 });
      e.submit({ id: 2, inputIds: Int32Array.from(prompt(new Rng(11), 3)), maxNewTokens: 4 });
      expect(await c.wait(1)).toMatchObject({ type: 'error', code: 'E_OUT_OF_KV_CACHE' });
      expect(await c.wait(2)).toMatchObject({ type: 'done', finishReason: 'length' });
    });
  });
});

describe('speculative decoding (n-gram drafts)', () => {
  // A prompt that repeats itself, and long outputs: the random model falls into loops, so drafts get accepted.
  const looping = (seed: number) => {
    const base = prompt(new Rng(seed), 5);
    return Int32Array.from([...base, ...base, ...base.slice(0, 3)]);
  };
  const SPEC = { specDraftTokens: 4 };
  async function both(req: NativeRequest, opts: Partial<EngineOptions> = {}) {
    const plain = await withEngine(opts, async (e, c) => {
      e.submit(req);
      await c.wait(req.id);
      return { tokens: c.tokens.get(req.id) ?? [], logprobs: c.logprobs.get(req.id), done: c.done.get(req.id)! };
    });
    const spec = await withEngine({ ...opts, ...SPEC }, async (e, c) => {
      e.submit(req);
      await c.wait(req.id);
      return { tokens: c.tokens.get(req.id) ?? [], logprobs: c.logprobs.get(req.id), done: c.done.get(req.id)!, stats: e.stats() };
    });
    return { plain, spec };
  }

  it('greedy: the same tokens as plain decoding (and as the forward of the growing sequence), in fewer steps', async () => {
    const p = looping(31);
    const expected = await greedyByForward(model, Array.from(p), 40);
    const { plain, spec } = await both({ id: 1, inputIds: p, maxNewTokens: 40 });
    expect(plain.tokens).toEqual(expected);
    expect(spec.tokens).toEqual(expected);
    expect(spec.done).toMatchObject({ type: 'done', finishReason: 'length', completionTokens: 40 });
    if (spec.done.type !== 'done') throw new Error('not done');
    expect(spec.done.draftTokens).toBeGreaterThan(0);
    expect(spec.done.acceptedTokens).toBeGreaterThan(0);
    expect(spec.stats).toMatchObject({ specDraftTokens: spec.done.draftTokens, specAcceptedTokens: spec.done.acceptedTokens });
    // each step gives 1 + its accepted drafts: prefill + decode steps < 1 + 40
    expect(spec.stats.steps).toBe(1 + 40 - 1 - spec.done.acceptedTokens!);
  });

  it('sampling with a seed, penalties, log-probs and min new tokens: the tokens plain decoding draws', async () => {
    const p = looping(32);
    const req: NativeRequest = {
      id: 2, inputIds: p, maxNewTokens: 48, logprobs: 2, minNewTokens: 6, stopIds: [p[1]],
      sampling: { temperature: 0.7, topK: 8, repetitionPenalty: 1.05, presencePenalty: 0.1, frequencyPenalty: 0.1, seed: 9 },
    };
    const { plain, spec } = await both(req);
    expect(spec.tokens).toEqual(plain.tokens);
    expect(spec.stats.specDraftTokens).toBeGreaterThan(0); // its rows sampled drafts' positions
    expect(spec.logprobs!.length).toBe(plain.logprobs!.length);
    spec.logprobs!.forEach((lp, i) => expect(lp.logprob).toBeCloseTo(plain.logprobs![i].logprob, 4));
    expect(spec.done).toMatchObject({ finishReason: (plain.done as { finishReason: string }).finishReason, completionTokens: (plain.done as { completionTokens: number }).completionTokens });
  });

  it('in a batch with other requests, with chunked prefill, and across a session\'s turns', async () => {
    const reqs: NativeRequest[] = [0, 1, 2, 3].map((i) => ({ id: 10 + i, inputIds: looping(40 + i), maxNewTokens: 24 + 4 * i }));
    const alone = await Promise.all(reqs.map((r) => runAlone(r)));
    await withEngine({ ...SPEC, maxPrefillTokens: 5 }, async (e, c) => {
      e.submit(reqs);
      await Promise.all(reqs.map((r) => c.wait(r.id)));
      reqs.forEach((r, i) => expect(c.tokens.get(r.id)).toEqual(alone[i]));
      expect(e.stats().specAcceptedTokens).toBeGreaterThan(0);
    });
    const turn2 = Int32Array.from(prompt(new Rng(44), 3));
    const session = async (opts: Partial<EngineOptions>) =>
      withEngine(opts, async (e, c) => {
        e.submit({ id: 20, sessionId: 5, inputIds: looping(45), maxNewTokens: 20 });
        await c.wait(20);
        e.submit({ id: 21, sessionId: 5, inputIds: turn2, maxNewTokens: 20 });
        await c.wait(21);
        return [c.tokens.get(20), c.tokens.get(21)];
      });
    expect(await session(SPEC)).toEqual(await session({}));
  });

  it('bad settings are refused when the engine is made', () => {
    expect(() => native.createEngine(model, { maxBatchSize: 8, blockSize: 4, numBlocks: 64, sessionLen: 256, specDraftTokens: 99 })).toThrow(
      expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }),
    );
  });
});

describe('logit bias and min new tokens', () => {
  it('a +100 bias makes a token the greedy pick; a -100 bias on the greedy tokens changes them; log-probs stay the model\'s', async () => {
    const p = Int32Array.from(prompt(new Rng(31), 6));
    const free = await runAlone({ id: 1, inputIds: p, maxNewTokens: 6, logprobs: 0 });
    const forced = await runAlone({ id: 2, inputIds: p, maxNewTokens: 6, logitBias: [[17, 100]] });
    expect(forced).toEqual([17, 17, 17, 17, 17, 17]);
    const banned = await runAlone({ id: 3, inputIds: p, maxNewTokens: 6, logitBias: [...new Set(free)].map((t) => [t, -100] as [number, number]) });
    for (const t of banned) expect(free).not.toContain(t);
    // the first step's log-prob of the forced token is the model's (the bias is not in it)
    const logits = await model.forward(p);
    const row = Array.from(logits.subarray((p.length - 1) * DIMS.vocab, p.length * DIMS.vocab));
    const mx = Math.max(...row);
    const lse = mx + Math.log(row.reduce((a, x) => a + Math.exp(x - mx), 0));
    await withEngine({}, async (e, c) => {
      e.submit({ id: 4, inputIds: p, maxNewTokens: 1, logitBias: [[17, 100]], logprobs: 0 });
      expect(await c.wait(4)).toMatchObject({ type: 'done' });
      expect(c.logprobs.get(4)![0].logprob).toBeCloseTo(row[17] - lse, 4);
    });
  });

  it('min new tokens: the stop id cannot end the output earlier; bad biases are refused', async () => {
    const p = Int32Array.from(prompt(new Rng(32), 5));
    const [first] = await runAlone({ id: 1, inputIds: p, maxNewTokens: 1 });
    // the greedy first token as the stop id: without min it ends at once, with min 4 it cannot for 4 tokens
    await withEngine({}, async (e, c) => {
      e.submit({ id: 2, inputIds: p, maxNewTokens: 8, stopIds: [first] });
      e.submit({ id: 3, inputIds: p, maxNewTokens: 8, stopIds: [first], minNewTokens: 4 });
      expect(await c.wait(2)).toMatchObject({ type: 'done', finishReason: 'stop', completionTokens: 1 });
      const done = await c.wait(3);
      expect(done.type).toBe('done');
      expect((done as { completionTokens: number }).completionTokens).toBeGreaterThan(4);
      expect(c.tokens.get(3)!.slice(0, 4)).not.toContain(first);
    });
    await withEngine({}, async (e) => {
      expect(() => e.submit({ id: 5, inputIds: p, maxNewTokens: 2, logitBias: [[DIMS.vocab, 1]] })).toThrow(/outside \[0, 96\)/);
      expect(() => e.submit({ id: 6, inputIds: p, maxNewTokens: 2, logitBias: [[3, 1], [3, 2]] })).toThrow(/appears twice/);
      expect(() => e.submit({ id: 7, inputIds: p, maxNewTokens: 2, logitBias: [[3, NaN]] })).toThrow(/finite/);
      expect(() => e.submit({ id: 8, inputIds: p, maxNewTokens: 2, minNewTokens: 1, allowedTokens: maskOf(() => true) })).toThrow(/guided/);
    });
  });
});

/** A vocabulary bitmask (bit t % 32 of word t / 32) allowing the tokens for which `allow` is true. */
function maskOf(allow: (t: number) => boolean): Uint32Array {
  const m = new Uint32Array(Math.ceil(DIMS.vocab / 32));
  for (let t = 0; t < DIMS.vocab; t++) if (allow(t)) m[t >> 5] |= 1 << (t & 31);
  return m;
}

describe('guided decoding (allowed-token masks)', () => {
  /** Greedy over the allowed tokens of each step, by forward() of the growing sequence. */
  async function guidedByForward(p: number[], steps: number, allowed: (step: number) => (t: number) => boolean): Promise<number[]> {
    const seq = [...p];
    const out: number[] = [];
    for (let s = 0; s < steps; s++) {
      const logits = await model.forward(Int32Array.from(seq));
      const row = (seq.length - 1) * DIMS.vocab;
      let best = -1;
      for (let t = 0; t < DIMS.vocab; t++) if (allowed(s)(t) && (best < 0 || logits[row + t] > logits[row + best])) best = t;
      out.push(best);
      seq.push(best);
    }
    return out;
  }

  it('each token is the best allowed one; the request waits for its next set while others run', async () => {
    const p = prompt(new Rng(21), 7);
    const allowed = (step: number) => (t: number) => (t + step) % 3 === 0; // a different third of the vocabulary each step
    const expected = await guidedByForward(p, 10, allowed);
    const other = { id: 2, inputIds: Int32Array.from(prompt(new Rng(22), 5)), maxNewTokens: 12 };
    const otherAlone = await runAlone(other);
    await withEngine({}, async (e, c) => {
      let step = 0;
      let release: () => void = () => {};
      const held = new Promise<void>((res) => (release = res));
      const onEvent = c.onEvent;
      c.onEvent = (ev) => {
        onEvent(ev);
        if (ev.type !== 'tokens' || ev.id !== 1) return;
        step += ev.tokens.length;
        // The first token's next set comes only once the other request has finished: meanwhile request 1 must not move.
        if (step === 1) void held.then(() => e.setAllowedTokens(1, maskOf(allowed(1))));
        else e.setAllowedTokens(1, maskOf(allowed(step)));
      };
      e.start(c.onEvent);
      e.submit([{ id: 1, inputIds: Int32Array.from(p), maxNewTokens: 10, allowedTokens: maskOf(allowed(0)) }, other]);
      expect(await c.wait(2)).toMatchObject({ type: 'done', finishReason: 'length' });
      expect(c.tokens.get(2)).toEqual(otherAlone);
      expect(c.tokens.get(1)).toHaveLength(1);
      expect(e.stats().running).toBe(1); // waiting for its set, still holding its blocks
      release();
      expect(await c.wait(1)).toMatchObject({ type: 'done', finishReason: 'length', completionTokens: 10 });
      expect(c.tokens.get(1)).toEqual(expected);
    }, false);
  });

  it('sampled tokens stay inside the set; a set of only the stop id ends the request', async () => {
    const p = Int32Array.from(prompt(new Rng(23), 4));
    const odd = maskOf((t) => t % 2 === 1);
    await withEngine({}, async (e, c) => {
      const onEvent = c.onEvent;
      c.onEvent = (ev) => {
        onEvent(ev);
        if (ev.type !== 'tokens') return;
        const n = c.tokens.get(ev.id)!.length;
        e.setAllowedTokens(ev.id, ev.id === 4 && n >= 5 ? maskOf((t) => t === 7) : odd);
      };
      e.start(c.onEvent);
      e.submit([
        { id: 3, inputIds: p, maxNewTokens: 24, sampling: { temperature: 1.5, topK: 0, seed: 5 }, allowedTokens: odd, logprobs: 1 },
        { id: 4, inputIds: p, maxNewTokens: 24, stopIds: [7], sampling: { temperature: 1, seed: 6 }, allowedTokens: odd },
      ]);
      expect(await c.wait(3)).toMatchObject({ type: 'done', finishReason: 'length', completionTokens: 24 });
      expect(c.tokens.get(3)!.every((t) => t % 2 === 1)).toBe(true);
      expect(await c.wait(4)).toMatchObject({ type: 'done', finishReason: 'stop', completionTokens: 6 });
      expect(c.tokens.get(4)).toHaveLength(5);
    }, false);
  });

  it('a cancel reaches a request waiting for its set; bad masks are refused', async () => {
    await withEngine({}, async (e, c) => {
      e.start(c.onEvent);
      const p = Int32Array.from(prompt(new Rng(24), 3));
      expect(() => e.submit({ id: 5, inputIds: p, maxNewTokens: 4, allowedTokens: new Uint32Array(2) })).toThrow(/mask has 2 words, the vocabulary of 96 needs 3/);
      expect(() => e.submit({ id: 5, inputIds: p, maxNewTokens: 4, allowedTokens: new Uint32Array(3) })).toThrow(/allows no token/);
      e.submit({ id: 6, inputIds: p, maxNewTokens: 4, allowedTokens: maskOf(() => true) });
      await until(() => (c.tokens.get(6) ?? []).length === 1);
      expect(() => e.setAllowedTokens(6, maskOf(() => false))).toThrow(/allows no token/);
      e.cancel(6);
      expect(await c.wait(6)).toMatchObject({ type: 'done', finishReason: 'cancelled' });
      e.setAllowedTokens(6, maskOf(() => true)); // ended: ignored
      const s = e.stats();
      expect(s.blocksFree).toBe(s.blocksTotal);
    }, false);
  });
});

describe('bad input', () => {
  const base = () => inMemoryTensors(weights);

  it('(g) wrong tensor shape -> E_MODEL_FORMAT', async () => {
    const t = base().map((x) => (x.name === 'layers.1.k.weight' ? { ...x, shape: [DIMS.kvHeads * DIMS.headDim + 1, DIMS.hidden] } : x));
    await expect(native.createModel(config(t)).load()).rejects.toMatchObject({ code: 'E_MODEL_FORMAT', message: expect.stringContaining('layers.1.k.weight') });
  });

  it('(g) missing tensor -> E_MODEL_FORMAT', async () => {
    const t = base().filter((x) => x.name !== 'layers.0.down.weight');
    await expect(native.createModel(config(t)).load()).rejects.toMatchObject({ code: 'E_MODEL_FORMAT', message: expect.stringContaining('missing tensor layers.0.down.weight') });
  });

  it('(g) file too short -> E_MODEL_FORMAT', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmfleet-native-'));
    const file = path.join(dir, 'm.safetensors');
    const t = writeSafetensors(weights, file);
    fs.truncateSync(file, fs.statSync(file).size - 10);
    await expect(native.createModel(config(t)).load()).rejects.toMatchObject({ code: 'E_MODEL_FORMAT', message: expect.stringContaining('too short') });
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('(g) token id >= vocab -> E_INVALID_ARGUMENT (forward, scoreTokens, submit)', async () => {
    const bad = Int32Array.from([1, DIMS.vocab]);
    await expect(model.forward(bad)).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });
    await expect(model.scoreTokens(bad)).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });
    await withEngine({}, async (e) => {
      expect(() => e.submit({ id: 1, inputIds: bad, maxNewTokens: 1 })).toThrow(expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }));
    });
  });

  it('(g) bad config and unknown backend', () => {
    expect(() => native.createModel({ ...config(base()), numHeads: 3 })).toThrow(expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }));
    expect(() => native.createModel({ ...config(base()), backend: 'cuda' })).toThrow(expect.objectContaining({ code: 'E_BACKEND_UNAVAILABLE' }));
  });

  it('use after dispose -> E_DISPOSED; dispose is idempotent', async () => {
    const m = native.createModel(config(base()));
    await m.load();
    const e = native.createEngine(m, { maxBatchSize: 2, blockSize: 4, numBlocks: 8, sessionLen: 64 });
    e.start(() => undefined);
    await e.dispose();
    await e.dispose();
    expect(() => e.stats()).toThrow(expect.objectContaining({ code: 'E_DISPOSED' }));
    m.dispose();
    m.dispose();
    await expect(m.forward(Int32Array.from([1]))).rejects.toMatchObject({ code: 'E_DISPOSED' });
  });
});
