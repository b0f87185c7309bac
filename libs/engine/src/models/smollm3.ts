// SmolLM3ForCausalLM (HuggingFaceTB/SmolLM3-3B): the Llama layout with NoPE layers. Every `no_rope_layer_interval`-th
// layer (4: layers 3, 7, ...) applies no RoPE, or config.json's `no_rope_layers` (1 = RoPE, 0 = NoPE) says which:
// spec.noRopeLayers. With use_sliding_window, the NoPE layers slide (or config.json's layer_types), as transformers
// builds them. Tied embeddings; the checkpoint ships its own chat template (with /think and /no_think).
import { QWEN2_TEMPLATE } from '../chat-template/builtin';
import { ModelFormatError } from '../errors';
import { LLAMA_STYLE_NAMES, applyLlamaBiases, applySlidingWindow, bool, int, llamaStyleAwqGroups, mapByTable, parseCommon, parseRope } from './common';
import type { ArchitectureDef } from './spec';

export const smollm3: ArchitectureDef = {
  key: 'smollm3',
  hfArchitectures: ['SmolLM3ForCausalLM'],
  parseConfig(cfg, file) {
    const spec = parseCommon(cfg, file, 'smollm3', 'SmolLM3ForCausalLM');
    spec.rope = parseRope(cfg, spec.headDim, file, 2000000);  // transformers' default theta for SmolLM3
    applyLlamaBiases(spec, cfg, file);
    const n = spec.numLayers;
    let ropeFlags: number[];
    const given = cfg.no_rope_layers;
    if (given !== undefined && given !== null) {
      if (!Array.isArray(given) || given.length < n || !given.every((x) => x === 0 || x === 1)) {
        throw new ModelFormatError('no_rope_layers must hold a 1 (RoPE) or 0 (NoPE) per layer', {
          file, expected: `${n} entries of 0 / 1`, found: JSON.stringify(given).slice(0, 80),
        });
      }
      ropeFlags = (given as number[]).slice(0, n);
    } else {
      const every = int(cfg, 'no_rope_layer_interval', file, 4);
      ropeFlags = Array.from({ length: n }, (_, i) => ((i + 1) % every !== 0 ? 1 : 0));
    }
    const nope = ropeFlags.flatMap((r, i) => (r ? [] : [i]));
    if (nope.length) spec.noRopeLayers = nope;
    if (bool(cfg, 'use_sliding_window', false)) {
      // transformers: the layers without RoPE slide, unless layer_types says otherwise
      const types = cfg.layer_types ?? ropeFlags.map((r) => (r ? 'full_attention' : 'sliding_attention'));
      applySlidingWindow(spec, { ...cfg, layer_types: types }, file);
    }
    return spec;
  },
  mapWeights: (ctx) => mapByTable(ctx, LLAMA_STYLE_NAMES),
  awqScaleGroups: llamaStyleAwqGroups,
  // SmolLM3 checkpoints ship their own template; ChatML (its format) is only the fallback
  defaultChatTemplate: () => QWEN2_TEMPLATE,
};
