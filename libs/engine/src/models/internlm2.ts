// InternLM2ForCausalLM. Its own tensor names, and q/k/v packed into one `attention.wqkv` laid out per KV group:
// for each of the numKvHeads groups, [q heads of the group (numHeads/numKvHeads × headDim rows), k (headDim rows),
// v (headDim rows)]. We split it into canonical q/k/v tensors with in-memory `data` buffers (row-major [out, in],
// so every head is a contiguous run of rows). `bias` in config.json adds wqkv and wo biases.
import { INTERNLM2_TEMPLATE } from '../chat-template/builtin';
import { QuantConfigError } from '../errors';
import { readTensorBytes, toNativeDType } from '../io/safetensors';
import type { TensorSource } from '../native';
import { bool, canonicalShapes, mapByTable, parseCommon, requireTensor } from './common';
import type { ArchitectureDef, AwqScaleGroup, ModelSpec } from './spec';

const NAMES = {
  global: { 'embed_tokens.weight': 'model.tok_embeddings.weight', 'norm.weight': 'model.norm.weight', 'lm_head.weight': 'output.weight' },
  layer: {
    'input_norm.weight': 'model.layers.{i}.attention_norm.weight',
    'post_norm.weight': 'model.layers.{i}.ffn_norm.weight',
    'o.weight': 'model.layers.{i}.attention.wo.weight',
    'o.bias': 'model.layers.{i}.attention.wo.bias',
    'gate.weight': 'model.layers.{i}.feed_forward.w1.weight',
    'up.weight': 'model.layers.{i}.feed_forward.w3.weight',
    'down.weight': 'model.layers.{i}.feed_forward.w2.weight',
  },
};
const PACKED = new Set(['q.weight', 'k.weight', 'v.weight', 'q.bias', 'k.bias', 'v.bias']);

export interface WqkvLayout {
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** Bytes of one row: in × element size for a weight, element size for a bias. */
  rowBytes: number;
}

/** Splits packed wqkv bytes (rows grouped per KV head as [q×G, k, v]) into contiguous q, k, v row blocks. */
export function splitWqkv(packed: Uint8Array, l: WqkvLayout): { q: Uint8Array; k: Uint8Array; v: Uint8Array } {
  const G = l.numHeads / l.numKvHeads;
  const headBytes = l.headDim * l.rowBytes;
  const expected = (l.numHeads + 2 * l.numKvHeads) * headBytes;
  if (packed.byteLength !== expected) {
    throw new Error(`wqkv has ${packed.byteLength} bytes, expected ${expected}`);
  }
  const q = new Uint8Array(l.numHeads * headBytes);
  const k = new Uint8Array(l.numKvHeads * headBytes);
  const v = new Uint8Array(l.numKvHeads * headBytes);
  for (let g = 0; g < l.numKvHeads; g++) {
    const base = g * (G + 2) * headBytes;
    q.set(packed.subarray(base, base + G * headBytes), g * G * headBytes);
    k.set(packed.subarray(base + G * headBytes, base + (G + 1) * headBytes), g * headBytes);
    v.set(packed.subarray(base + (G + 1) * headBytes, base + (G + 2) * headBytes), g * headBytes);
  }
  return { q, k, v };
}

export const internlm2: ArchitectureDef = {
  key: 'internlm2',
  hfArchitectures: ['InternLM2ForCausalLM'],
  parseConfig(cfg, file) {
    const spec = parseCommon(cfg, file, 'internlm2', 'InternLM2ForCausalLM');
    const bias = bool(cfg, 'bias', false);
    spec.qkvBias = bias;
    spec.oBias = bias;
    return spec;
  },
  mapWeights(ctx) {
    const { spec } = ctx;
    if (spec.quant) {
      throw new QuantConfigError(`${ctx.dir}: AWQ InternLM2 checkpoints (packed wqkv qweight) are not supported yet`);
    }
    const out = mapByTable(ctx, NAMES, PACKED);
    const shapes = canonicalShapes(spec).layer;
    const qkvRows = (spec.numHeads + 2 * spec.numKvHeads) * spec.headDim;
    for (let i = 0; i < spec.numLayers; i++) {
      const parts: Array<{ suffix: 'weight' | 'bias'; shape: number[] }> = [{ suffix: 'weight', shape: [qkvRows, spec.hiddenSize] }];
      if (spec.qkvBias) parts.push({ suffix: 'bias', shape: [qkvRows] });
      for (const { suffix, shape } of parts) {
        const t = requireTensor(ctx, `model.layers.${i}.attention.wqkv.${suffix}`, shape);
        const elemBytes = t.byteLength / shape.reduce((a, b) => a * b, 1);
        const rowBytes = suffix === 'weight' ? spec.hiddenSize * elemBytes : elemBytes;
        const split = splitWqkv(readTensorBytes(t), { numHeads: spec.numHeads, numKvHeads: spec.numKvHeads, headDim: spec.headDim, rowBytes });
        const dtype = toNativeDType(t.dtype)!;
        for (const name of ['q', 'k', 'v'] as const) {
          const canon = `${name}.${suffix}`;
          const src: TensorSource = { name: `layers.${i}.${canon}`, dtype, shape: [...shapes[canon]], data: split[name] };
          out.push(src);
        }
      }
    }
    return out;
  },
  awqScaleGroups(_spec: ModelSpec, layer: number): AwqScaleGroup[] {
    const p = `model.layers.${layer}`;
    // v → o is not expressible while q/k/v are packed in wqkv; LMDeploy skips it for InternLM2 too.
    return [
      { kind: 'norm', prev: `${p}.attention_norm`, linears: [`${p}.attention.wqkv`] },
      { kind: 'norm', prev: `${p}.ffn_norm`, linears: [`${p}.feed_forward.w1`, `${p}.feed_forward.w3`] },
      { kind: 'linear', prev: `${p}.feed_forward.w3`, linears: [`${p}.feed_forward.w2`] },
    ];
  },
  defaultChatTemplate: () => INTERNLM2_TEMPLATE,
};
