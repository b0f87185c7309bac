// Phi3ForCausalLM (Phi-3-mini/medium, Phi-3.5-mini, Phi-4): the Llama function with q/k/v packed into one
// `self_attn.qkv_proj` ([q rows; k rows; v rows]) and gate/up into `mlp.gate_up_proj` ([gate rows; up rows]), no biases.
// fp16 checkpoints: the canonical q/k/v/gate/up are row ranges of the packed tensors (file offsets, no copies).
// AutoAWQ checkpoints pack the same way along the output columns of qweight/qzeros/scales: split in memory.
// `sliding_window` (Phi-3-mini: 2047 of a 4k context) on every layer, as for Mistral (common.ts applySlidingWindow); LongRoPE (the 128k variants and
// Phi-3.5: rope_scaling "longrope" / "su") is parsed by parseRope, also with a partial rotary head (Phi-4-mini: 0.75 of
// each head rotates, so the attention factor multiplies cos and sin in the rope itself, ops/rope.h rope_cs_scale).
import { PHI3_TEMPLATE } from '../chat-template/builtin';
import { ModelFormatError, QuantConfigError } from '../errors';
import type { TensorSource } from '../native';
import { LLAMA_STYLE_NAMES, applySlidingWindow, awqLinearSources, bool, fileSource, mapByTable, parseCommon, requireTensor } from './common';
import { readSourceBytes } from './source-bytes';
import type { ArchitectureDef, ModelSpec, PackedLinear, WeightMapContext } from './spec';

const PACKED = new Set(['q.weight', 'k.weight', 'v.weight', 'gate.weight', 'up.weight']);

/** The packed linears of a layer: HF prefix, the canonical parts in row order, and each part's rows. */
function packs(spec: ModelSpec, layer: number): Array<{ hfPrefix: string; parts: Array<[string, number]> }> {
  const qd = spec.numHeads * spec.headDim;
  const kvd = spec.numKvHeads * spec.headDim;
  const p = `model.layers.${layer}`;
  return [
    { hfPrefix: `${p}.self_attn.qkv_proj`, parts: [['q', qd], ['k', kvd], ['v', kvd]] },
    { hfPrefix: `${p}.mlp.gate_up_proj`, parts: [['gate', spec.intermediateSize], ['up', spec.intermediateSize]] },
  ];
}

/** Splits each row of a row-major [rows, sum(widths)] tensor into column blocks of `widths` bytes. */
export function splitColumnBlocks(bytes: Uint8Array, rows: number, widths: number[]): Uint8Array[] {
  const rowLen = widths.reduce((a, b) => a + b, 0);
  if (bytes.byteLength !== rows * rowLen) throw new Error(`packed tensor has ${bytes.byteLength} bytes, expected ${rows * rowLen}`);
  const out = widths.map((w) => new Uint8Array(rows * w));
  for (let r = 0; r < rows; r++) {
    let at = r * rowLen;
    widths.forEach((w, j) => {
      out[j].set(bytes.subarray(at, at + w), r * w);
      at += w;
    });
  }
  return out;
}

function mapPacked(ctx: WeightMapContext, layer: number): TensorSource[] {
  const { spec } = ctx;
  const out: TensorSource[] = [];
  for (const { hfPrefix, parts } of packs(spec, layer)) {
    const rows = parts.reduce((a, [, n]) => a + n, 0);
    if (ctx.weights.tensors.has(`${hfPrefix}.bias`)) throw new ModelFormatError('Phi-3 linears have no bias', { file: ctx.dir, tensor: `${hfPrefix}.bias` });
    if (!spec.quant) {
      // row ranges of the packed [rows, hidden] weight: file sources at the parts' byte offsets
      const t = requireTensor(ctx, `${hfPrefix}.weight`, [rows, spec.hiddenSize]);
      const src = fileSource('', t);
      const rowBytes = t.byteLength / rows;
      let r0 = 0;
      for (const [name, n] of parts) {
        out.push({ ...src, name: `layers.${layer}.${name}.weight`, shape: [n, spec.hiddenSize], offset: src.offset! + r0 * rowBytes });
        r0 += n;
      }
      continue;
    }
    const [qweight, qzeros, scales] = awqLinearSources(ctx, hfPrefix, `layers.${layer}.${hfPrefix.endsWith('qkv_proj') ? 'qkv' : 'gate_up'}`, rows, spec.hiddenSize);
    for (const [src, suffix, perCol] of [[qweight, 'qweight', 0.5], [qzeros, 'qzeros', 0.5], [scales, 'scales', 2]] as const) {
      // qweight/qzeros: 8 columns per i32 (4 bytes): 0.5 byte per column; scales: f16, 2 bytes per column
      if (parts.some(([, n]) => (n * perCol) % (perCol === 0.5 ? 4 : 2) !== 0)) {
        throw new QuantConfigError(`${hfPrefix}: AWQ parts must be multiples of 8 columns to split`);
      }
      const nRows = src.shape[0];
      const blocks = splitColumnBlocks(readSourceBytes(src), nRows, parts.map(([, n]) => n * perCol));
      parts.forEach(([name, n], j) => {
        out.push({ name: `layers.${layer}.${name}.${suffix}`, dtype: src.dtype, shape: [nRows, suffix === 'scales' ? n : n / 8], data: blocks[j] });
      });
    }
  }
  return out;
}

const NAMES = {
  global: LLAMA_STYLE_NAMES.global,
  layer: {
    'input_norm.weight': LLAMA_STYLE_NAMES.layer['input_norm.weight'],
    'post_norm.weight': LLAMA_STYLE_NAMES.layer['post_norm.weight'],
    'o.weight': LLAMA_STYLE_NAMES.layer['o.weight'],
    'down.weight': LLAMA_STYLE_NAMES.layer['down.weight'],
  },
};

export const phi3: ArchitectureDef = {
  key: 'phi3',
  hfArchitectures: ['Phi3ForCausalLM'],
  parseConfig(cfg, file) {
    const spec = parseCommon(cfg, file, 'phi3', 'Phi3ForCausalLM');
    if (bool(cfg, 'attention_bias', false)) throw new ModelFormatError('Phi-3 with attention_bias is not supported', { file, expected: 'no biases', found: 'attention_bias: true' });
    applySlidingWindow(spec, cfg, file);
    return spec;
  },
  mapWeights(ctx) {
    const out = mapByTable(ctx, NAMES, PACKED);
    for (let i = 0; i < ctx.spec.numLayers; i++) out.push(...mapPacked(ctx, i));
    return out;
  },
  // AWQ's groups (auto_awq runs them on the split linears and packs the quantized parts back: packedLinears)
  awqScaleGroups(spec, layer) {
    const p = `model.layers.${layer}`;
    return [
      { kind: 'norm', prev: `${p}.input_layernorm`, linears: [`${p}.self_attn.qkv_proj`] },
      { kind: 'linear', prev: `${p}.self_attn.qkv_proj[v]`, linears: [`${p}.self_attn.o_proj`], kvGroupRepeat: spec.numHeads / spec.numKvHeads },
      { kind: 'norm', prev: `${p}.post_attention_layernorm`, linears: [`${p}.mlp.gate_up_proj`] },
      { kind: 'linear', prev: `${p}.mlp.gate_up_proj[up]`, linears: [`${p}.mlp.down_proj`] },
    ];
  },
  packedLinears(spec, layer): PackedLinear[] {
    // the parts' rows one after the other
    return packs(spec, layer).map(({ hfPrefix, parts }) => ({ hfPrefix, parts: parts.map(([name]) => name), pack: (blocks) => Buffer.concat(blocks) }));
  },
  defaultChatTemplate: () => PHI3_TEMPLATE,
};
