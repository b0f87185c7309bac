// Mixture-of-experts layers (Mixtral, Qwen3-MoE) on the cpu backend, against a pure-TS reference forward of the same
// tiny model: the router's softmax over all experts, the top-k experts per token, their weights renormalized (or not:
// Qwen3-MoE's norm_topk_prob false), a dense layer among the sparse ones (mlp_only_layers); then the paged engine's
// greedy tokens against the forward's arg-max, and the config checks.
import { NativeModelConfig, TensorSource } from '../index';
import { argmaxRef, attentionRef, linearRef, rmsNormRef, ropeInvFreqRef, ropeRef, w4DequantRef, w4PackAwqRef, type W4Ref } from '../ops/reference';
import { cpuNative, f32ToF16, Rng, roundTo } from '../ops/testing';

const D = { vocab: 80, hidden: 32, inter: 40, moeInter: 32, layers: 3, heads: 4, kvHeads: 2, headDim: 8, experts: 6, perTok: 2 };
const EPS = 1e-6;
const THETA = 10000;
type Weights = Map<string, { shape: number[]; values: Float32Array }>;

function makeWeights(seed: number, dense: number[]): Weights {
  const rng = new Rng(seed);
  const { vocab, hidden: H, inter: I, moeInter: Im, layers, heads, kvHeads, headDim: Dh, experts: E } = D;
  const w: Weights = new Map();
  const add = (name: string, shape: number[], scale: number, offset = 0) => {
    const n = shape.reduce((a, b) => a * b, 1);
    w.set(name, { shape, values: roundTo('f16', rng.randn(n, scale).map((x) => x + offset)) });
  };
  add('embed_tokens.weight', [vocab, H], 1);
  add('norm.weight', [H], 0.1, 1);
  add('lm_head.weight', [vocab, H], 0.3);
  for (let l = 0; l < layers; l++) {
    const p = `layers.${l}.`;
    add(p + 'input_norm.weight', [H], 0.1, 1);
    add(p + 'post_norm.weight', [H], 0.1, 1);
    add(p + 'q.weight', [heads * Dh, H], 0.3);
    add(p + 'k.weight', [kvHeads * Dh, H], 0.3);
    add(p + 'v.weight', [kvHeads * Dh, H], 0.3);
    add(p + 'o.weight', [H, heads * Dh], 0.3);
    if (dense.includes(l)) {
      add(p + 'gate.weight', [I, H], 0.3);
      add(p + 'up.weight', [I, H], 0.3);
      add(p + 'down.weight', [H, I], 0.3);
      continue;
    }
    add(p + 'router.weight', [E, H], 0.5);
    for (let e = 0; e < E; e++) {
      add(`${p}experts.${e}.gate.weight`, [Im, H], 0.3);
      add(`${p}experts.${e}.up.weight`, [Im, H], 0.3);
      add(`${p}experts.${e}.down.weight`, [H, Im], 0.3);
    }
  }
  return w;
}

function f16Bytes(values: Float32Array): Uint8Array {
  const h = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) h[i] = f32ToF16(values[i]);
  return new Uint8Array(h.buffer);
}

function config(w: Weights, moe: { normTopkProb: boolean; dense: number[] }, extra: Partial<NativeModelConfig> = {}): NativeModelConfig {
  const tensors: TensorSource[] = [...w].map(([name, t]) => ({ name, dtype: 'f16', shape: t.shape, data: f16Bytes(t.values) }));
  return {
    backend: 'cpu', threads: 2, dtype: 'f16', vocabSize: D.vocab, hiddenSize: D.hidden, intermediateSize: D.inter, numLayers: D.layers,
    numHeads: D.heads, numKvHeads: D.kvHeads, headDim: D.headDim, rmsNormEps: EPS, maxPositionEmbeddings: 256,
    rope: { type: 'default', theta: THETA }, tieWordEmbeddings: false, hiddenAct: 'silu', tensors,
    numExperts: D.experts, numExpertsPerTok: D.perTok, moeIntermediateSize: D.moeInter, normTopkProb: moe.normTopkProb,
    ...(moe.dense.length ? { denseLayers: moe.dense } : {}),
    ...extra,
  };
}

const silu = (g: number) => g / (1 + Math.exp(-g));

/** transformers' sparse MLP block: softmax over every expert (f32 in torch; f64 here), the top-k, renormalized or not. */
function moeRef(w: Weights, p: string, h: Float32Array, n: number, normTopk: boolean): Float32Array {
  const { hidden: H, moeInter: Im, experts: E, perTok: K } = D;
  const g = (x: string) => w.get(x)!.values;
  const logits = linearRef(h, g(p + 'router.weight'), null, n, E, H);
  const out = new Float32Array(n * H);
  for (let t = 0; t < n; t++) {
    const r = Array.from(logits.subarray(t * E, (t + 1) * E));
    const mx = Math.max(...r);
    const pr = r.map((x) => Math.exp(x - mx));
    const sum = pr.reduce((a, b) => a + b, 0);
    const top = [...pr.keys()].sort((a, b) => pr[b] - pr[a] || a - b).slice(0, K);
    const topSum = top.reduce((a, e) => a + pr[e], 0);
    const x = h.subarray(t * H, (t + 1) * H);
    for (const e of top) {
      const wt = pr[e] / (normTopk ? topSum : sum);
      const gate = linearRef(x, g(`${p}experts.${e}.gate.weight`), null, 1, Im, H);
      const up = linearRef(x, g(`${p}experts.${e}.up.weight`), null, 1, Im, H);
      const y = linearRef(gate.map((gv, i) => silu(gv) * up[i]), g(`${p}experts.${e}.down.weight`), null, 1, H, Im);
      for (let j = 0; j < H; j++) out[t * H + j] += wt * y[j];
    }
  }
  return out;
}

function referenceForward(w: Weights, ids: number[], moe: { normTopkProb: boolean; dense: number[] }): Float32Array {
  const { vocab, hidden: H, inter: I, layers, heads, kvHeads, headDim: Dh } = D;
  const g = (n: string) => w.get(n)!.values;
  const n = ids.length;
  let x = new Float32Array(n * H);
  ids.forEach((id, t) => x.set(g('embed_tokens.weight').subarray(id * H, (id + 1) * H), t * H));
  const inv = ropeInvFreqRef({ type: 'default', theta: THETA }, Dh, n);
  const pos = ids.map((_, i) => i);
  for (let l = 0; l < layers; l++) {
    const p = `layers.${l}.`;
    const h = rmsNormRef(x, g(p + 'input_norm.weight'), n, H, EPS);
    const q = linearRef(h, g(p + 'q.weight'), null, n, heads * Dh, H);
    const k = linearRef(h, g(p + 'k.weight'), null, n, kvHeads * Dh, H);
    const v = linearRef(h, g(p + 'v.weight'), null, n, kvHeads * Dh, H);
    ropeRef(q, n, heads, Dh, pos, inv);
    ropeRef(k, n, kvHeads, Dh, pos, inv);
    const a = attentionRef(q, k, v, n, n, heads, kvHeads, Dh, 1 / Math.sqrt(Dh));
    const o = linearRef(a, g(p + 'o.weight'), null, n, H, heads * Dh);
    x = x.map((xv, i) => xv + o[i]);
    const h2 = rmsNormRef(x, g(p + 'post_norm.weight'), n, H, EPS);
    let d: Float32Array;
    if (moe.dense.includes(l)) {
      const gate = linearRef(h2, g(p + 'gate.weight'), null, n, I, H);
      const up = linearRef(h2, g(p + 'up.weight'), null, n, I, H);
      d = linearRef(gate.map((gv, i) => silu(gv) * up[i]), g(p + 'down.weight'), null, n, H, I);
    } else {
      d = moeRef(w, p, h2, n, moe.normTopkProb);
    }
    x = x.map((xv, i) => xv + d[i]);
  }
  const xn = rmsNormRef(x, g('norm.weight'), n, H, EPS);
  return linearRef(xn, g('lm_head.weight'), null, n, vocab, H);
}

function maxRelErr(a: Float32Array, b: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}

const native = cpuNative();

describe('mixture of experts (cpu)', () => {
  const ids = [3, 17, 42, 8, 8, 61, 5, 29, 33, 70, 12];
  const cases = [
    { name: 'Mixtral-style: every layer sparse, top-2 renormalized', moe: { normTopkProb: true, dense: [] as number[] }, seed: 1 },
    { name: 'Qwen3-MoE-style: norm_topk_prob false, layer 1 dense (mlp_only_layers)', moe: { normTopkProb: false, dense: [1] }, seed: 2 },
  ];
  for (const c of cases) {
    it(`${c.name}: logits equal the reference forward; greedy decode equals the forward's arg-max`, async () => {
      const w = makeWeights(c.seed, c.moe.dense);
      const model = native.createModel(config(w, c.moe));
      await model.load();
      try {
        const got = await model.forward(Int32Array.from(ids));
        const ref = referenceForward(w, ids, c.moe);
        expect(maxRelErr(got, ref)).toBeLessThan(1e-4);
        // the paged engine (prefill + decode steps, each token routed on its own) against the forward of the growing sequence
        const seq = [...ids.slice(0, 5)];
        const expected: number[] = [];
        for (let s = 0; s < 8; s++) {
          const logits = await model.forward(Int32Array.from(seq));
          const tok = argmaxRef(logits, (seq.length - 1) * D.vocab, D.vocab);
          expected.push(tok);
          seq.push(tok);
        }
        const engine = native.createEngine(model, { maxBatchSize: 4, blockSize: 4, numBlocks: 64, sessionLen: 64 });
        const tokens: number[] = [];
        await new Promise<void>((resolve) => {
          engine.start((ev) => {
            if (ev.type === 'tokens') tokens.push(...ev.tokens);
            else resolve();
          });
          engine.submit({ id: 1, inputIds: Int32Array.from(ids.slice(0, 5)), maxNewTokens: 8 });
        });
        await engine.dispose();
        expect(tokens).toEqual(expected);
      } finally {
        model.dispose();
      }
    });
  }

  it('AutoAWQ W4 experts (the router and attention fp16) compute their dequantized weights\' function', async () => {
    const moe = { normTopkProb: true, dense: [] as number[] };
    const w = makeWeights(4, []);
    const rng = new Rng(5);
    const group = 32;
    const awq: TensorSource[] = [];
    const bytes = (a: Int32Array) => new Uint8Array(a.buffer.slice(0));
    for (const [name, t] of [...w]) {
      if (!/\.experts\.\d+\.(gate|up|down)\.weight$/.test(name)) continue;
      const [n, k] = t.shape;
      const q = new Uint8Array(n * k).map(() => rng.int(16));
      const z = new Uint8Array((n * k) / group).map(() => rng.int(16));
      const sc = roundTo('f16', new Float32Array((n * k) / group).map(() => 0.01 + 0.05 * rng.next()));
      const wr: W4Ref = { n, k, group, q, z, s: sc };
      w.set(name, { shape: t.shape, values: w4DequantRef(wr) }); // what the reference computes with
      const p = w4PackAwqRef(wr);
      const pre = name.replace(/\.weight$/, '');
      awq.push({ name: `${pre}.qweight`, dtype: 'i32', shape: [k, n / 8], data: bytes(p.qweight) });
      awq.push({ name: `${pre}.qzeros`, dtype: 'i32', shape: [k / group, n / 8], data: bytes(p.qzeros) });
      awq.push({ name: `${pre}.scales`, dtype: 'f16', shape: [k / group, n], data: f16Bytes(p.scales) });
    }
    expect(awq.length).toBe(D.layers * D.experts * 3 * 3);
    const cfg = config(w, moe, { quant: { method: 'awq', bits: 4, groupSize: group } });
    cfg.tensors = [...cfg.tensors.filter((t) => !/\.experts\./.test(t.name)), ...awq];
    const model = native.createModel(cfg);
    await model.load();
    try {
      expect(maxRelErr(await model.forward(Int32Array.from(ids)), referenceForward(w, ids, moe))).toBeLessThan(1e-4);
    } finally {
      model.dispose();
    }
  });

  it('bad mixture-of-experts configs are refused: counts, a dense layer out of range, an expert width tp does not divide', () => {
    const w = makeWeights(3, []);
    const moe = { normTopkProb: true, dense: [] as number[] };
    const bad = (extra: Partial<NativeModelConfig>) => () => native.createModel(config(w, moe, extra));
    expect(bad({ numExpertsPerTok: 7 })).toThrow(/numExpertsPerTok in \[1, numExperts\]/);
    expect(bad({ moeIntermediateSize: 0 })).toThrow(/moeIntermediateSize > 0/);
    expect(bad({ denseLayers: [3] })).toThrow(/denseLayers holds layer 3 of 3/);
    // (heads 4, inter 40 and vocab 80 divide by 4; an expert width of 30 does not)
    expect(bad({ tp: 4, moeIntermediateSize: 30 })).toThrow(/moeIntermediateSize 30 does not divide by 4/);
    // intermediateSize only sizes dense MLPs: checked when a layer has one, not when every layer is sparse
    expect(bad({ tp: 4, intermediateSize: 30, denseLayers: [1] })).toThrow(/intermediateSize 30 does not divide by 4/);
    const allSparse = native.createModel(config(w, moe, { tp: 4, intermediateSize: 30 }));
    allSparse.dispose();
  });
});
