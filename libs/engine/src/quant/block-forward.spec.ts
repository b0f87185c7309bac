// The TS layer-by-layer forward must reproduce the native decoder's logits (and transformers' golden logits); its Gemma 3
// layer, an f64 reference of transformers' Gemma3TextModel written here from the checkpoint's own tensors.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decodeHalf, roundHalf } from '../io/half';
import { readSafetensorsDir, readTensorBytes } from '../io/safetensors';
import { nativeCpuOrReport } from '../testing/native-cpu';
import { GOLDEN_DIR, goldenCases } from '../testing/golden';
import { makeTempDir } from '../testing/tmp-dir';
import { writeTinyModel, writeTinyTokenizer } from '../testing/tiny-model';
import { PretrainedModel } from '../generation/pretrained';
import { BlockForward } from './block-forward';

const GOLDEN = GOLDEN_DIR;
const native = nativeCpuOrReport('block forward');
// (mixtral and qwen3-moe among them: the experts' routing in TypeScript, BlockForward.moeBlock)
const cases = goldenCases('all');

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

(native ? describe : describe.skip)('BlockForward', () => {
  const tmp = makeTempDir('lmfleet-bf-');
  afterAll(() => tmp.cleanup());

  it.each(cases)('matches model.forward() and the golden logits on %s', async (name) => {
    const golden = JSON.parse(fs.readFileSync(path.join(GOLDEN, name, 'golden.json'), 'utf8'));
    const dir = path.join(tmp.dir, name);
    fs.mkdirSync(dir);
    for (const f of ['config.json', 'model.safetensors']) fs.symlinkSync(path.join(GOLDEN, name, f), path.join(dir, f));
    writeTinyTokenizer(dir, { arch: name.startsWith('llama') ? 'llama' : 'qwen2', vocabSize: golden.vocab_size });
    const ids = Int32Array.from(golden.prompt_ids as number[]);
    const { fwd } = BlockForward.fromDir(native!, dir);
    const ours = await fwd.forward(ids);
    const model = await PretrainedModel.load(dir, { native: native!, backend: 'cpu' });
    try {
      const ref = await model.forward(ids);
      expect(ours.length).toBe(ref.length);
      expect(maxAbsDiff(ours, ref)).toBeLessThan(2e-3);
      expect(maxAbsDiff(ours, (golden.logits as number[][]).flat())).toBeLessThan(2e-2);
    } finally {
      model.dispose();
    }
    // two sequences batched (one shorter) give each sequence's own logits
    const a = ids.subarray(0, 7);
    const both = await fwd.forward(Int32Array.from([...ids, ...a]), [ids.length, a.length]);
    const V = golden.vocab_size as number;
    expect(maxAbsDiff(both.subarray(0, ids.length * V), ours)).toBeLessThan(1e-4);
    expect(maxAbsDiff(both.subarray(ids.length * V), ours.subarray(0, a.length * V))).toBeLessThan(1e-4);
  });
});

/**
 * transformers' Gemma3TextModel in f64, straight from a tiny Gemma3ForCausalLM directory (f16 tensors, classic config):
 * logits [ids.length, vocab].
 */
function gemma3Reference(dir: string, ids: Int32Array): Float64Array {
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  const tensors = readSafetensorsDir(dir).tensors;
  const W = (n: string) => Float64Array.from(decodeHalf(readTensorBytes(tensors.get(n)!), 'f16'));
  const { hidden_size: H, num_attention_heads: nH, num_key_value_heads: nKv, head_dim: hd, rms_norm_eps: eps, vocab_size: V } = cfg;
  const T = ids.length;
  const norm = (x: Float64Array, w: Float64Array) => x.map((v, i) => {  // rows of w.length values, times (1 + w)
    const r = Math.floor(i / w.length) * w.length;
    let ss = 0;
    for (let c = 0; c < w.length; c++) ss += x[r + c] ** 2;
    return (v / Math.sqrt(ss / w.length + eps)) * (1 + w[i - r]);
  });
  const lin = (x: Float64Array, w: Float64Array, out: number) => {
    const inp = w.length / out;
    const y = new Float64Array((x.length / inp) * out);
    for (let t = 0; t < x.length / inp; t++) for (let o = 0; o < out; o++) {
      let a = 0;
      for (let i = 0; i < inp; i++) a += x[t * inp + i] * w[o * inp + i];
      y[t * out + o] = a;
    }
    return y;
  };
  const rope = (x: Float64Array, heads: number, theta: number, factor: number) => {  // rotate-half, positions 0..T-1
    const y = Float64Array.from(x);
    for (let t = 0; t < T; t++) for (let h = 0; h < heads; h++) for (let i = 0; i < hd / 2; i++) {
      const a = (t / factor) * theta ** (-(2 * i) / hd);
      const o = (t * heads + h) * hd;
      y[o + i] = x[o + i] * Math.cos(a) - x[o + i + hd / 2] * Math.sin(a);
      y[o + i + hd / 2] = x[o + i + hd / 2] * Math.cos(a) + x[o + i] * Math.sin(a);
    }
    return y;
  };
  const embed = W('model.embed_tokens.weight');
  const scale = roundHalf(Math.sqrt(H), 'f16');  // embed_scale.to(weight.dtype)
  let x = new Float64Array(T * H);
  for (let t = 0; t < T; t++) for (let c = 0; c < H; c++) x[t * H + c] = embed[ids[t] * H + c] * scale;
  for (let l = 0; l < cfg.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    const sliding = (l + 1) % cfg.sliding_window_pattern !== 0;
    const [theta, factor] = sliding ? [cfg.rope_local_base_freq, 1] : [cfg.rope_theta, cfg.rope_scaling?.factor ?? 1];
    const h = norm(x, W(`${p}input_layernorm.weight`));
    const q = rope(norm(lin(h, W(`${p}self_attn.q_proj.weight`), nH * hd), W(`${p}self_attn.q_norm.weight`)), nH, theta, factor);
    const k = rope(norm(lin(h, W(`${p}self_attn.k_proj.weight`), nKv * hd), W(`${p}self_attn.k_norm.weight`)), nKv, theta, factor);
    const v = lin(h, W(`${p}self_attn.v_proj.weight`), nKv * hd);
    const att = new Float64Array(T * nH * hd);
    for (let t = 0; t < T; t++) for (let hh = 0; hh < nH; hh++) {
      const g = Math.floor(hh / (nH / nKv));
      const keys = Array.from({ length: t + 1 }, (_, j) => j).filter((j) => !sliding || j > t - cfg.sliding_window);
      const sc = keys.map((j) => {
        let d = 0;
        for (let i = 0; i < hd; i++) d += q[(t * nH + hh) * hd + i] * k[(j * nKv + g) * hd + i];
        return d * cfg.query_pre_attn_scalar ** -0.5;
      });
      const m = Math.max(...sc);
      const e = sc.map((z) => Math.exp(z - m));
      const sum = e.reduce((a, b) => a + b, 0);
      keys.forEach((j, n) => {
        for (let i = 0; i < hd; i++) att[(t * nH + hh) * hd + i] += (e[n] / sum) * v[(j * nKv + g) * hd + i];
      });
    }
    const a = norm(lin(att, W(`${p}self_attn.o_proj.weight`), H), W(`${p}post_attention_layernorm.weight`));
    x = x.map((z, i) => z + a[i]);
    const m = norm(x, W(`${p}pre_feedforward_layernorm.weight`));
    const ff = cfg.intermediate_size;
    const gate = lin(m, W(`${p}mlp.gate_proj.weight`), ff);
    const up = lin(m, W(`${p}mlp.up_proj.weight`), ff);
    const act = gate.map((z, i) => 0.5 * z * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (z + 0.044715 * z ** 3))) * up[i]);
    const d = norm(lin(act, W(`${p}mlp.down_proj.weight`), H), W(`${p}post_feedforward_layernorm.weight`));
    x = x.map((z, i) => z + d[i]);
  }
  return lin(norm(x, W('model.norm.weight')), embed, V);
}

(native ? describe : describe.skip)('BlockForward on Gemma 3', () => {
  const tmp = makeTempDir('lmfleet-bf-gemma3-');
  afterAll(() => tmp.cleanup());

  it('matches an f64 reference of transformers\' layer: (1 + w) and sandwich norms, gelu_tanh, local / global rope, window, scale', async () => {
    // 3 layers, pattern 2: layers 0 and 2 slide over 4 positions with theta 1e4; layer 1 attends globally, theta 1e6 / linear 2
    const dir = path.join(tmp.dir, 'tiny');
    writeTinyModel(dir, { arch: 'gemma3', hiddenSize: 64, numHeads: 4, numKvHeads: 2, numLayers: 3, intermediateSize: 128, seed: 31 });
    const ids = Int32Array.from({ length: 16 }, (_, i) => (i * 41 + 7) % 250);
    const { fwd } = BlockForward.fromDir(native!, dir);
    const ours = await fwd.forward(ids);
    const ref = gemma3Reference(dir, ids);
    const scale = Math.max(...ref.map(Math.abs));
    expect(maxAbsDiff(ours, ref) / scale).toBeLessThan(1e-4);
    // the check has teeth at this size: the global rope on the sliding layers too is far off
    fwd.spec.ropeLocal = { ...fwd.spec.rope };
    expect(maxAbsDiff(await fwd.forward(ids), ref) / scale).toBeGreaterThan(1e-2);
  });
});
