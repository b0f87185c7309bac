// Mixture-of-experts models: MixtralForCausalLM (Mixtral 8x7B / 8x22B: Mistral attention, every layer routes each token
// to num_experts_per_tok of num_local_experts SwiGLU experts, `block_sparse_moe`) and Qwen3MoeForCausalLM (Qwen3-30B-A3B,
// 235B-A22B: Qwen3 attention with per-head q / k norms, `mlp.gate` + `mlp.experts.{e}`, norm_topk_prob,
// decoder_sparse_step and mlp_only_layers for dense layers). The router's softmax runs over all experts; the chosen
// experts' weights are renormalized to sum 1 (Mixtral always, Qwen3-MoE when norm_topk_prob), as transformers does.
// The engine runs them on the cpu (any tp) and cuda (tp 1) backends; calibrate / auto_awq run their layers in TypeScript
// (quant/awq-session.ts nativeSessionRefusal: the native layer session does not route).
import { QWEN2_TEMPLATE, LLAMA2_TEMPLATE } from '../chat-template/builtin';
import { ModelFormatError } from '../errors';
import type { TensorSource } from '../native';
import {
  LLAMA_STYLE_NAMES, applySlidingWindow, awqLinearSources, bool, fileSource, int, mapByTable, parseCommon, requireTensor,
} from './common';
import { QWEN3_NAMES } from './qwen3';
import type { ArchitectureDef, HfConfig, ModelSpec, WeightMapContext } from './spec';

const MLP = new Set(['gate.weight', 'up.weight', 'down.weight']);

/** The experts' HF module names of layer i: the router, and expert e's gate / up / down projections. */
interface MoeNames {
  router: (i: number) => string;
  expert: (i: number, e: number, which: 'gate' | 'up' | 'down') => string;
  /** a dense layer's gate / up / down (Qwen3-MoE's mlp_only_layers) */
  dense: (i: number, which: 'gate' | 'up' | 'down') => string;
}

function parseMoe(spec: ModelSpec, cfg: HfConfig, file: string, numExpertsKey: string, interKey: string, dense: number[]): void {
  const E = int(cfg, numExpertsKey, file);
  const K = int(cfg, 'num_experts_per_tok', file);
  if (!(E > 0) || !(K >= 1 && K <= E)) {
    throw new ModelFormatError(`a mixture of experts needs ${numExpertsKey} > 0 and num_experts_per_tok in [1, ${numExpertsKey}]`, {
      file, found: `${E} experts, ${K} per token`,
    });
  }
  spec.numExperts = E;
  spec.numExpertsPerTok = K;
  spec.moeIntermediateSize = int(cfg, interKey, file);
  if (dense.length) spec.denseLayers = dense;
}

/** Attention and norms by `attnTables`, then per layer the router and experts (or a dense MLP for denseLayers). */
function mapMoe(ctx: WeightMapContext, attnTables: { global: Record<string, string>; layer: Record<string, string> }, names: MoeNames): TensorSource[] {
  const s = ctx.spec;
  const H = s.hiddenSize, E = s.numExperts!, Im = s.moeIntermediateSize!, I = s.intermediateSize;
  const out = mapByTable(ctx, attnTables, MLP);
  const linear = (hf: string, canonical: string, rows: number, cols: number) =>
    s.quant ? awqLinearSources(ctx, hf, canonical, rows, cols) : [fileSource(`${canonical}.weight`, requireTensor(ctx, `${hf}.weight`, [rows, cols]))];
  for (let i = 0; i < s.numLayers; i++) {
    const p = `layers.${i}.`;
    if (s.denseLayers?.includes(i)) {
      out.push(...linear(names.dense(i, 'gate'), `${p}gate`, I, H), ...linear(names.dense(i, 'up'), `${p}up`, I, H), ...linear(names.dense(i, 'down'), `${p}down`, H, I));
      continue;
    }
    // the router stays fp16 in AutoAWQ checkpoints
    out.push(fileSource(`${p}router.weight`, requireTensor(ctx, `${names.router(i)}.weight`, [E, H])));
    for (let e = 0; e < E; e++) {
      const x = `${p}experts.${e}.`;
      out.push(
        ...linear(names.expert(i, e, 'gate'), `${x}gate`, Im, H),
        ...linear(names.expert(i, e, 'up'), `${x}up`, Im, H),
        ...linear(names.expert(i, e, 'down'), `${x}down`, H, Im),
      );
    }
  }
  return out;
}

const MIXTRAL_W = { gate: 'w1', up: 'w3', down: 'w2' } as const;
const MOE_LIMITS = 'mixture of experts: calibrate and auto_awq run in TypeScript (no native layer session)';

export const mixtral: ArchitectureDef = {
  key: 'mixtral',
  hfArchitectures: ['MixtralForCausalLM'],
  parseConfig(cfg, file) {
    const spec = parseCommon(cfg, file, 'mixtral', 'MixtralForCausalLM');
    parseMoe(spec, cfg, file, 'num_local_experts', 'intermediate_size', []);
    applySlidingWindow(spec, cfg, file);
    return spec;
  },
  mapWeights: (ctx) =>
    mapMoe(ctx, LLAMA_STYLE_NAMES, {
      router: (i) => `model.layers.${i}.block_sparse_moe.gate`,
      expert: (i, e, w) => `model.layers.${i}.block_sparse_moe.experts.${e}.${MIXTRAL_W[w]}`,
      dense: () => {
        throw new Error('internal: Mixtral has no dense layers');
      },
    }),
  awqScaleGroups: () => [],
  defaultChatTemplate: () => LLAMA2_TEMPLATE,
  limits: MOE_LIMITS,
};

export const qwen3Moe: ArchitectureDef = {
  key: 'qwen3_moe',
  hfArchitectures: ['Qwen3MoeForCausalLM'],
  parseConfig(cfg, file) {
    const spec = parseCommon(cfg, file, 'qwen3_moe', 'Qwen3MoeForCausalLM');
    const bias = bool(cfg, 'attention_bias', false);
    spec.qkvBias = bias;
    spec.oBias = bias;
    spec.qkNorm = true;
    // transformers: layer l is sparse when it is not in mlp_only_layers and (l + 1) % decoder_sparse_step == 0
    const step = int(cfg, 'decoder_sparse_step', file, 1);
    const only = cfg.mlp_only_layers ?? [];
    if (!Array.isArray(only) || only.some((l) => !Number.isInteger(l))) {
      throw new ModelFormatError('mlp_only_layers must be a list of layer indices', { file, found: JSON.stringify(only).slice(0, 80) });
    }
    if (!(step >= 1)) throw new ModelFormatError('decoder_sparse_step must be >= 1', { file, found: String(step) });
    const dense = Array.from({ length: spec.numLayers }, (_, l) => l).filter((l) => (only as number[]).includes(l) || (l + 1) % step !== 0);
    // Hub checkpoints say num_experts; transformers 5 saves the same count as num_local_experts
    const expertsKey = cfg.num_experts === undefined && cfg.num_local_experts !== undefined ? 'num_local_experts' : 'num_experts';
    parseMoe(spec, cfg, file, expertsKey, 'moe_intermediate_size', dense);
    spec.normTopkProb = bool(cfg, 'norm_topk_prob', false);
    if (bool(cfg, 'use_sliding_window', false)) applySlidingWindow(spec, cfg, file, int(cfg, 'max_window_layers', file, 28));
    return spec;
  },
  mapWeights: (ctx) =>
    mapMoe(
      ctx,
      QWEN3_NAMES,
      {
        router: (i) => `model.layers.${i}.mlp.gate`,
        expert: (i, e, w) => `model.layers.${i}.mlp.experts.${e}.${w}_proj`,
        dense: (i, w) => `model.layers.${i}.mlp.${w}_proj`,
      },
    ),
  awqScaleGroups: () => [],
  defaultChatTemplate: () => QWEN2_TEMPLATE,
  limits: MOE_LIMITS,
};
