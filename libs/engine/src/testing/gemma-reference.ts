// transformers' Gemma text models in f64 (GemmaModel, Gemma2Model, Gemma3TextModel), written from their definitions
// and read straight off a tiny CausalLM directory as writeTinyModel writes it (f16 tensors, the classic rope_theta
// config form): the specs' reference for BlockForward's Gemma layers (quant/block-forward.spec.ts).
//   Gemma 1: x += attn(n1(x)); x += mlp(post_attention_layernorm(x)); softmax scale 1/sqrt(head_dim), one RoPE
//   Gemma 2: sandwich norms, scale query_pre_attn_scalar^-0.5, layers slide by layer_types or (i + 1) % 2, attention
//            scores and final logits soft-capped (c tanh(x / c)) when the config sets them
//   Gemma 3: Gemma 2's layer without soft-capping, q / k RMS-normed per head, the sliding layers (sliding_window_pattern)
//            on their own RoPE (rope_local_base_freq, no scaling), the global ones on rope_theta with rope_scaling
// All: every norm times (1 + w), the embedding times sqrt(hidden_size) rounded to f16, GeGLU (gelu tanh; exact, erf,
// where the activation field says "gelu"), tied head.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decodeHalf, roundHalf } from '../io/half';
import { readSafetensorsDir, readTensorBytes } from '../io/safetensors';
import { erf } from '../quant/block-forward';

/** Logits [ids.length, vocab] of the tiny Gemma (1, 2 or 3) CausalLM directory `dir`, in f64. */
export function gemmaReference(dir: string, ids: Int32Array): Float64Array {
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  const gen = ({ gemma: 1, gemma2: 2, gemma3_text: 3 } as Record<string, number>)[cfg.model_type];
  if (!gen) throw new Error(`gemmaReference: model_type ${cfg.model_type} is not a Gemma text model`);
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
  const cap = (c: number | null | undefined) => (z: number) => (c ? c * Math.tanh(z / c) : z);
  const attnCap = cap(gen === 2 ? cfg.attn_logit_softcapping : null);
  const finalCap = cap(gen === 2 ? cfg.final_logit_softcapping : null);
  const scale = gen === 1 ? hd ** -0.5 : cfg.query_pre_attn_scalar ** -0.5;
  const exactGelu = (gen === 1 ? cfg.hidden_act : cfg.hidden_activation) === 'gelu';
  const pattern = gen === 2 ? 2 : cfg.sliding_window_pattern;
  const slides = (l: number) => gen !== 1 && (cfg.layer_types ? cfg.layer_types[l] === 'sliding_attention' : (l + 1) % pattern !== 0);
  const embed = W('model.embed_tokens.weight');
  const embedScale = roundHalf(Math.sqrt(H), 'f16');  // embed_scale.to(weight.dtype)
  let x = new Float64Array(T * H);
  for (let t = 0; t < T; t++) for (let c = 0; c < H; c++) x[t * H + c] = embed[ids[t] * H + c] * embedScale;
  for (let l = 0; l < cfg.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    const sliding = slides(l);
    const [theta, factor] = gen === 3 && sliding ? [cfg.rope_local_base_freq, 1] : [cfg.rope_theta, cfg.rope_scaling?.factor ?? 1];
    const qkNorm = (y: Float64Array, which: 'q' | 'k') => (gen === 3 ? norm(y, W(`${p}self_attn.${which}_norm.weight`)) : y);
    const h = norm(x, W(`${p}input_layernorm.weight`));
    const q = rope(qkNorm(lin(h, W(`${p}self_attn.q_proj.weight`), nH * hd), 'q'), nH, theta, factor);
    const k = rope(qkNorm(lin(h, W(`${p}self_attn.k_proj.weight`), nKv * hd), 'k'), nKv, theta, factor);
    const v = lin(h, W(`${p}self_attn.v_proj.weight`), nKv * hd);
    const att = new Float64Array(T * nH * hd);
    for (let t = 0; t < T; t++) for (let hh = 0; hh < nH; hh++) {
      const g = Math.floor(hh / (nH / nKv));
      const keys = Array.from({ length: t + 1 }, (_, j) => j).filter((j) => !sliding || j > t - cfg.sliding_window);
      const sc = keys.map((j) => {
        let d = 0;
        for (let i = 0; i < hd; i++) d += q[(t * nH + hh) * hd + i] * k[(j * nKv + g) * hd + i];
        return attnCap(d * scale);
      });
      const m = Math.max(...sc);
      const e = sc.map((z) => Math.exp(z - m));
      const sum = e.reduce((a, b) => a + b, 0);
      keys.forEach((j, n) => {
        for (let i = 0; i < hd; i++) att[(t * nH + hh) * hd + i] += (e[n] / sum) * v[(j * nKv + g) * hd + i];
      });
    }
    // Gemma 2 / 3: post_attention_layernorm on the attention output, pre_feedforward_layernorm before the MLP and
    // post_feedforward_layernorm after it; Gemma 1: post_attention_layernorm before the MLP
    const o = lin(att, W(`${p}self_attn.o_proj.weight`), H);
    const a = gen === 1 ? o : norm(o, W(`${p}post_attention_layernorm.weight`));
    x = x.map((z, i) => z + a[i]);
    const m = norm(x, W(`${p}${gen === 1 ? 'post_attention_layernorm' : 'pre_feedforward_layernorm'}.weight`));
    const ff = cfg.intermediate_size;
    const gate = lin(m, W(`${p}mlp.gate_proj.weight`), ff);
    const up = lin(m, W(`${p}mlp.up_proj.weight`), ff);
    const act = gate.map((z, i) => (exactGelu ? 0.5 * z * (1 + erf(z / Math.SQRT2))
      : 0.5 * z * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (z + 0.044715 * z ** 3)))) * up[i]);
    const down = lin(act, W(`${p}mlp.down_proj.weight`), H);
    const d = gen === 1 ? down : norm(down, W(`${p}post_feedforward_layernorm.weight`));
    x = x.map((z, i) => z + d[i]);
  }
  return lin(norm(x, W('model.norm.weight')), embed, V).map(finalCap);
}
