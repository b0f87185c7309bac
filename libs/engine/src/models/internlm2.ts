// InternLM2ForCausalLM. Its own tensor names, and q/k/v packed into one `attention.wqkv` laid out per KV group:
// for each of the numKvHeads groups, [q heads of the group (numHeads/numKvHeads × headDim rows), k (headDim rows),
// v (headDim rows)]. We split it into canonical q/k/v tensors with in-memory `data` buffers (row-major [out, in],
// so every head is a contiguous run of rows). `bias` in config.json adds wqkv and wo biases.
// AutoAWQ checkpoints keep wqkv packed too (`attention.wqkv.qweight` [in, rows/8], `.qzeros`, `.scales` [groups, rows]):
// the same split applies to their columns (one head = headDim/8 int32 words, or headDim fp16 scales, per row), which
// needs headDim % 8 == 0. `packedLinears` tells writers (auto_awq) how to pack q/k/v back.
import { INTERNLM2_TEMPLATE } from '../chat-template/builtin';
import { QuantConfigError } from '../errors';
import { readTensorBytes, toNativeDType } from '../io/safetensors';
import type { TensorSource } from '../native';
import { awqLinearSources, bool, canonicalShapes, mapByTable, parseCommon, requireTensor } from './common';
import { readSourceBytes } from './source-bytes';
import type { ArchitectureDef, AwqScaleGroup, ModelSpec, PackedLinear } from './spec';

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

/** The inverse of splitWqkv: contiguous q, k, v row blocks → wqkv rows grouped per KV head as [q×G, k, v]. */
export function packWqkv(q: Uint8Array, k: Uint8Array, v: Uint8Array, l: WqkvLayout): Uint8Array {
  const G = l.numHeads / l.numKvHeads;
  const headBytes = l.headDim * l.rowBytes;
  if (q.byteLength !== l.numHeads * headBytes || k.byteLength !== l.numKvHeads * headBytes || v.byteLength !== l.numKvHeads * headBytes) {
    throw new Error(`wqkv parts have ${q.byteLength}/${k.byteLength}/${v.byteLength} bytes, expected ${l.numHeads * headBytes}/${l.numKvHeads * headBytes}/${l.numKvHeads * headBytes}`);
  }
  const out = new Uint8Array((l.numHeads + 2 * l.numKvHeads) * headBytes);
  for (let g = 0; g < l.numKvHeads; g++) {
    const base = g * (G + 2) * headBytes;
    out.set(q.subarray(g * G * headBytes, (g + 1) * G * headBytes), base);
    out.set(k.subarray(g * headBytes, (g + 1) * headBytes), base + G * headBytes);
    out.set(v.subarray(g * headBytes, (g + 1) * headBytes), base + (G + 1) * headBytes);
  }
  return out;
}

/**
 * Splits the columns of a row-major [rows, (numHeads + 2 numKvHeads) × headCols] tensor whose columns follow wqkv's
 * per-KV-group order (AutoAWQ's qweight/qzeros/scales of wqkv) into q, k, v column blocks, row by row.
 */
export function splitWqkvColumns(
  bytes: Uint8Array, rows: number, l: { numHeads: number; numKvHeads: number; headCols: number; elemBytes: number },
): { q: Uint8Array; k: Uint8Array; v: Uint8Array } {
  const headBytes = l.headCols * l.elemBytes;
  const rowLen = (l.numHeads + 2 * l.numKvHeads) * headBytes;
  if (bytes.byteLength !== rows * rowLen) throw new Error(`wqkv has ${bytes.byteLength} bytes, expected ${rows * rowLen}`);
  const q = new Uint8Array(rows * l.numHeads * headBytes);
  const k = new Uint8Array(rows * l.numKvHeads * headBytes);
  const v = new Uint8Array(rows * l.numKvHeads * headBytes);
  for (let r = 0; r < rows; r++) {
    const p = splitWqkv(bytes.subarray(r * rowLen, (r + 1) * rowLen), { numHeads: l.numHeads, numKvHeads: l.numKvHeads, headDim: l.headCols, rowBytes: l.elemBytes });
    q.set(p.q, r * p.q.byteLength);
    k.set(p.k, r * p.k.byteLength);
    v.set(p.v, r * p.v.byteLength);
  }
  return { q, k, v };
}

/** AutoAWQ wqkv (qweight/qzeros/scales) → canonical q/k/v AWQ sources with in-memory data. */
function awqWqkvSources(ctx: Parameters<ArchitectureDef['mapWeights']>[0], layer: number): TensorSource[] {
  const { spec } = ctx;
  const hfPrefix = `model.layers.${layer}.attention.wqkv`;
  if (spec.headDim % 8 !== 0) {
    throw new QuantConfigError(`${hfPrefix}: AWQ wqkv with head_dim ${spec.headDim} cannot be split into q/k/v (head_dim must be a multiple of 8)`);
  }
  const rows = (spec.numHeads + 2 * spec.numKvHeads) * spec.headDim;
  const [qweight, qzeros, scales] = awqLinearSources(ctx, hfPrefix, `layers.${layer}.qkv`, rows, spec.hiddenSize);
  const out: TensorSource[] = [];
  const parts = { q: spec.numHeads, k: spec.numKvHeads, v: spec.numKvHeads };
  for (const [src, suffix, headCols, elemBytes] of [
    [qweight, 'qweight', spec.headDim / 8, 4], [qzeros, 'qzeros', spec.headDim / 8, 4], [scales, 'scales', spec.headDim, 2],
  ] as const) {
    const nRows = src.shape[0];
    const split = splitWqkvColumns(readSourceBytes(src), nRows, { numHeads: spec.numHeads, numKvHeads: spec.numKvHeads, headCols, elemBytes });
    for (const name of ['q', 'k', 'v'] as const) {
      out.push({ name: `layers.${layer}.${name}.${suffix}`, dtype: src.dtype, shape: [nRows, parts[name] * headCols], data: split[name] });
    }
  }
  return out;
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
    const out = mapByTable(ctx, NAMES, PACKED);
    const shapes = canonicalShapes(spec).layer;
    const qkvRows = (spec.numHeads + 2 * spec.numKvHeads) * spec.headDim;
    for (let i = 0; i < spec.numLayers; i++) {
      const parts: Array<{ suffix: 'weight' | 'bias'; shape: number[] }> = [];
      if (spec.quant) out.push(...awqWqkvSources(ctx, i));
      else parts.push({ suffix: 'weight', shape: [qkvRows, spec.hiddenSize] });
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
  awqScaleGroups(spec: ModelSpec, layer: number): AwqScaleGroup[] {
    const p = `model.layers.${layer}`;
    // v → o scales the v rows inside wqkv (auto_awq works on the split q/k/v and packs them back; it skips v → o under
    // grouped-query attention, where v and o differ in shape, as for the other models).
    return [
      { kind: 'norm', prev: `${p}.attention_norm`, linears: [`${p}.attention.wqkv`] },
      { kind: 'linear', prev: `${p}.attention.wqkv[v]`, linears: [`${p}.attention.wo`], kvGroupRepeat: spec.numHeads / spec.numKvHeads },
      { kind: 'norm', prev: `${p}.ffn_norm`, linears: [`${p}.feed_forward.w1`, `${p}.feed_forward.w3`] },
      { kind: 'linear', prev: `${p}.feed_forward.w3`, linears: [`${p}.feed_forward.w2`] },
    ];
  },
  packedLinears(spec: ModelSpec, layer: number): PackedLinear[] {
    return [{
      hfPrefix: `model.layers.${layer}.attention.wqkv`,
      parts: ['q', 'k', 'v'],
      pack: ([q, k, v], rowBytes) => packWqkv(q, k, v, { numHeads: spec.numHeads, numKvHeads: spec.numKvHeads, headDim: spec.headDim, rowBytes }),
    }];
  },
  defaultChatTemplate: () => INTERNLM2_TEMPLATE,
};
