// GraniteForCausalLM (IBM Granite 3.x dense): the Llama layout with four scalars. transformers computes
//   h0 = embed(ids) * embedding_multiplier;  h += attn(norm(h)) * residual_multiplier;  h += mlp(norm(h)) * residual_multiplier;
//   softmax scale attention_multiplier (in place of 1/sqrt(head_dim));  logits = lm_head(norm(h)) / logits_scaling.
// All but the attention scale are linear in a weight, so they are folded into the canonical tensors as they load
// (TensorSource.scale: the native loader multiplies as it reads): the embedding table times embedding_multiplier,
// o_proj / down_proj (weights, biases, or an AutoAWQ checkpoint's per-group scales) times residual_multiplier, lm_head
// divided by logits_scaling. A tied checkpoint gets its own lm_head (the embedding's bytes, divided by logits_scaling).
// The attention scale rides on rope.attentionScale. The engine's kernels stay the Llama ones. auto_awq searches and
// quantizes the folded tensors (the real function) and writes a plain Granite checkpoint: its writer divides each
// source's scale back out (o/down per-group scales and biases, embedding, lm_head; a tied head is written once).
import { LLAMA3_TEMPLATE } from '../chat-template/builtin';
import { ModelFormatError } from '../errors';
import { LLAMA_STYLE_NAMES, applyLlamaBiases, llamaStyleAwqGroups, mapByTable, num, parseCommon } from './common';
import type { ArchitectureDef, ModelSpec } from './spec';

interface GraniteScales {
  embedding: number;
  residual: number;
  logits: number;
  /** the checkpoint ties lm_head to the embedding (spec.tieWordEmbeddings is then false: the head is its own copy) */
  tied: boolean;
}
const SCALES = new WeakMap<ModelSpec, GraniteScales>();

export const granite: ArchitectureDef = {
  key: 'granite',
  hfArchitectures: ['GraniteForCausalLM'],
  parseConfig(cfg, file) {
    const spec = parseCommon(cfg, file, 'granite', 'GraniteForCausalLM');
    applyLlamaBiases(spec, cfg, file);
    const positive = (key: string, fallback: number) => {
      const v = num(cfg, key, file, fallback);
      if (!(v > 0)) throw new ModelFormatError(`${key} must be positive`, { file, found: String(v) });
      return v;
    };
    const s: GraniteScales = {
      embedding: positive('embedding_multiplier', 1),
      residual: positive('residual_multiplier', 1),
      logits: positive('logits_scaling', 1),
      tied: spec.tieWordEmbeddings,
    };
    spec.rope.attentionScale = positive('attention_multiplier', 1 / Math.sqrt(spec.headDim));
    spec.tieWordEmbeddings = false;
    SCALES.set(spec, s);
    return spec;
  },
  mapWeights(ctx) {
    const s = SCALES.get(ctx.spec);
    if (!s) throw new Error('internal: granite weights mapped without its parsed config');
    const names = { ...LLAMA_STYLE_NAMES, global: { ...LLAMA_STYLE_NAMES.global, 'lm_head.weight': s.tied ? 'model.embed_tokens.weight' : 'lm_head.weight' } };
    const residual = /^layers\.\d+\.(o|down)\.(weight|bias|scales)$/;
    // the scale rides on the source: the native loader (and readSourceBytes) multiply as they read, nothing is copied
    return mapByTable(ctx, names).map((t) => {
      const k = t.name === 'embed_tokens.weight' ? s.embedding : t.name === 'lm_head.weight' ? 1 / s.logits : residual.test(t.name) ? s.residual : 1;
      return k === 1 ? t : { ...t, scale: k };
    });
  },
  awqScaleGroups: llamaStyleAwqGroups,
  defaultChatTemplate: () => LLAMA3_TEMPLATE,
};
