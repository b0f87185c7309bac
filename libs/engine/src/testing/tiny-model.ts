// Writes a tiny random Hugging Face model directory (Llama, Qwen2, Qwen3, Gemma 1 / 2 / 3 or InternLM2 layout): config.json, safetensors weights,
// a byte-level BPE tokenizer.json that @huggingface/tokenizers loads, tokenizer_config.json with a ChatML chat
// template, and generation_config.json. Deterministic from the seed: same options → same bytes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { encodeHalf } from '../io/half';
import { writeSafetensors, type WritableTensor } from '../io/safetensors';
import { byteLevelAlphabet } from '../tokenizer/byte-level';

export interface TinyModelOptions {
  /** internlm2: InternLM2's own tensor names with q/k/v packed per KV group in `attention.wqkv` (byte-level tokenizer). */
  arch?: 'llama' | 'mistral' | 'qwen2' | 'qwen3' | 'smollm3' | 'internlm2' | 'mixtral' | 'qwen3_moe' | 'gemma' | 'gemma2' | 'gemma3';
  /** gemma3 (Gemma3ForCausalLM; tied embeddings by default, norms stored as w around 0 and applied as 1 + w):
   *  sliding_window_pattern (default 2: layers 0, 2, ... slide) or layer_types, query_pre_attn_scalar (default 24),
   *  the full layers' rope_scaling (default linear x2; global theta 1e6, local 1e4), and `multimodal`: a
   *  Gemma3ForConditionalGeneration directory, the text config under text_config, the text weights under that prefix
   *  beside a few vision tensors. slidingWindow (default 4) is config sliding_window. */
  gemma3?: {
    pattern?: number;
    layerTypes?: string[];
    queryPreAttnScalar?: number;
    ropeScaling?: Record<string, unknown> | null;
    multimodal?: 'language_model.model' | 'model.language_model';
  };
  /** gemma2 (Gemma2ForCausalLM; tied by default, norms stored as w around 0): layer_types (default: none stated, so
   *  transformers' rule, layer 0, 2, ... sliding), query_pre_attn_scalar (default 24) and the soft-capping, sized to
   *  bend this model's values (attention scores reach ~1, logits ~2.5): attn_logit_softcapping (default 0.5),
   *  final_logit_softcapping (default 1.5); null writes null (off). slidingWindow (default 4) is config sliding_window.
   *  gemma (GemmaForCausalLM, Gemma 1: input_layernorm / post_attention_layernorm only, tied by default): gemmaHiddenAct
   *  (default gelu_pytorch_tanh; "gelu": the exact GELU, as gemma-2b / 7b's configs say) (headDim and numKvHeads 1 give
   *  Gemma's shapes). */
  gemmaHiddenAct?: string;
  gemma2?: {
    layerTypes?: string[];
    queryPreAttnScalar?: number;
    attnSoftcap?: number | null;
    finalSoftcap?: number | null;
  };
  /** mixtral / qwen3_moe: experts per layer and per token (default 4 and 2); qwen3_moe: the experts' width (default
   *  intermediateSize / 2), norm_topk_prob (default true) and mlp_only_layers (dense layers, default none). */
  numExperts?: number;
  numExpertsPerTok?: number;
  moeIntermediateSize?: number;
  normTopkProb?: boolean;
  mlpOnlyLayers?: number[];
  /** mistral: config sliding_window (default null: none). */
  slidingWindow?: number;
  /** smollm3: config no_rope_layers (1 = RoPE, 0 = NoPE per layer; default: transformers' every 4th layer NoPE). */
  noRopeLayers?: number[];
  /** qwen3: head_dim when it is not hiddenSize / numHeads (Qwen3 states it; q is numHeads × headDim wide). */
  headDim?: number;
  /** internlm2 only: config `bias` (wqkv and wo biases). */
  bias?: boolean;
  seed?: number;
  dtype?: 'f16' | 'bf16';
  hiddenSize?: number;
  numLayers?: number;
  numHeads?: number;
  numKvHeads?: number;
  intermediateSize?: number;
  maxPositionEmbeddings?: number;
  tieWordEmbeddings?: boolean;
  /** How config.json states RoPE: classic `rope_theta` or transformers v5 `rope_parameters`. */
  ropeForm?: 'classic' | 'parameters';
  /** Split weights over this many shards with a model.safetensors.index.json (default 1: model.safetensors). */
  shards?: number;
  /** Pad the tokenizer with `<|extra_N|>` specials up to this vocabulary size (e.g. to make it divide by a tp). */
  vocabSize?: number;
  /** Std-dev of the random linear weights (default 0.08: enough for non-uniform next-token distributions). */
  weightStd?: number;
}

export interface TinyModelInfo {
  dir: string;
  vocabSize: number;
  eosId: number;
  bosId: number;
  imStartId: number;
  imEndId: number;
  config: Record<string, unknown>;
}

export { byteLevelAlphabet };

/** mulberry32: a small seeded PRNG (uniform in [0, 1)). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gaussian(rand: () => number): () => number {
  return () => {
    const u = Math.max(rand(), 1e-12);
    const v = rand();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
}

const MERGES: Array<[string, string]> = [
  ['Ġ', 't'], ['h', 'e'], ['i', 'n'], ['Ġ', 'a'], ['e', 'r'], ['Ġt', 'he'], ['o', 'n'], ['r', 'e'], ['Ġ', 's'], ['a', 't'],
  ['Ġ', 'w'], ['o', 'u'], ['e', 'n'], ['Ġ', 'c'], ['i', 's'], ['Ġ', 'o'], ['Ġ', 'b'], ['e', 's'], ['Ġ', 'f'], ['o', 'r'],
];

// ChatML; like Qwen3's, `enable_thinking: false` (chat_template_kwargs) closes an empty think block in the generation prompt
export const TINY_CHAT_TEMPLATE =
  "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}" +
  "{% if enable_thinking is defined and enable_thinking is false %}{{ '<think>\\n\\n</think>\\n\\n' }}{% endif %}{% endif %}";

function buildTokenizer(arch: 'llama' | 'qwen2', padToVocabSize = 0): { json: object; vocabSize: number; ids: Record<string, number> } {
  const alphabet = byteLevelAlphabet();
  const vocab: Record<string, number> = {};
  let size = 0; // (counted: Object.keys per token made a padded 32k vocabulary take minutes)
  for (const ch of alphabet) vocab[ch] = size++;
  for (const [a, b] of MERGES) if (!(a + b in vocab)) vocab[a + b] = size++;
  const specials = arch === 'llama' ? ['<s>', '</s>', '<|im_start|>', '<|im_end|>'] : ['<|endoftext|>', '<|im_start|>', '<|im_end|>'];
  const ids: Record<string, number> = {};
  for (let k = 0; specials.length + size < padToVocabSize; k++) specials.push(`<|extra_${k}|>`);
  for (const s of specials) {
    ids[s] = size++;
    vocab[s] = ids[s];
  }
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  const postProcessor =
    arch === 'llama'
      ? {
          type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
          pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
          special_tokens: { '<s>': { id: '<s>', ids: [ids['<s>']], tokens: ['<s>'] } },
        }
      : { ...byteLevel, trim_offsets: false };
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((s) => ({ id: ids[s], content: s, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: postProcessor,
    decoder: byteLevel,
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: MERGES.map(([a, b]) => `${a} ${b}`),
    },
  };
  return { json, vocabSize: Object.keys(vocab).length, ids };
}

/**
 * Writes only the tokenizer files (tokenizer.json, tokenizer_config.json) of the tiny byte-level BPE, padded with
 * `<|extra_N|>` special tokens up to `vocabSize` — for model directories that ship weights but no tokenizer.
 */
export function writeTinyTokenizer(dir: string, opts: { arch?: 'llama' | 'qwen2'; vocabSize?: number } = {}): { vocabSize: number; ids: Record<string, number> } {
  const arch = opts.arch ?? 'qwen2';
  const tok = buildTokenizer(arch, opts.vocabSize ?? 0);
  if (opts.vocabSize !== undefined && tok.vocabSize !== opts.vocabSize) {
    throw new Error(`the tiny tokenizer needs at least ${tok.vocabSize} tokens, asked for ${opts.vocabSize}`);
  }
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tok.json));
  const bos = arch === 'llama' ? '<s>' : '<|endoftext|>';
  const eos = arch === 'llama' ? '</s>' : '<|endoftext|>';
  fs.writeFileSync(
    path.join(dir, 'tokenizer_config.json'),
    JSON.stringify({ bos_token: bos, eos_token: eos, add_bos_token: false, clean_up_tokenization_spaces: false, chat_template: TINY_CHAT_TEMPLATE }),
  );
  return { vocabSize: tok.vocabSize, ids: tok.ids };
}

export function writeTinyModel(dir: string, opts: TinyModelOptions = {}): TinyModelInfo {
  const arch = opts.arch ?? 'qwen2';
  const seed = opts.seed ?? 1;
  const dtype = opts.dtype ?? 'f16';
  const hidden = opts.hiddenSize ?? 64;
  const layers = opts.numLayers ?? 2;
  const heads = opts.numHeads ?? 4;
  const kvHeads = opts.numKvHeads ?? 2;
  const headDim = opts.headDim ?? hidden / heads;
  const ff = opts.intermediateSize ?? 128;
  const isGemma = arch === 'gemma' || arch === 'gemma2' || arch === 'gemma3';
  const tie = opts.tieWordEmbeddings ?? isGemma;
  const std = opts.weightStd ?? 0.08;
  fs.mkdirSync(dir, { recursive: true });

  const tokArch = arch === 'llama' || arch === 'mistral' || arch === 'smollm3' || arch === 'mixtral' || isGemma ? 'llama' : 'qwen2';
  const tok = buildTokenizer(tokArch, opts.vocabSize ?? 0);
  const vocabSize = tok.vocabSize;
  const bosId = tokArch === 'llama' ? tok.ids['<s>'] : tok.ids['<|endoftext|>'];
  const eosId = tokArch === 'llama' ? tok.ids['</s>'] : tok.ids['<|endoftext|>'];
  const imEndId = tok.ids['<|im_end|>'];

  const rope = opts.ropeForm === 'parameters'
    ? { rope_parameters: { rope_theta: 10000.0, rope_type: 'default' } }
    : { rope_theta: 10000.0, rope_scaling: null };
  const config: Record<string, unknown> = {
    architectures: [{ llama: 'LlamaForCausalLM', qwen2: 'Qwen2ForCausalLM', qwen3: 'Qwen3ForCausalLM', mistral: 'MistralForCausalLM', smollm3: 'SmolLM3ForCausalLM', internlm2: 'InternLM2ForCausalLM', mixtral: 'MixtralForCausalLM', qwen3_moe: 'Qwen3MoeForCausalLM', gemma: 'GemmaForCausalLM', gemma2: 'Gemma2ForCausalLM', gemma3: 'Gemma3ForCausalLM' }[arch]],
    model_type: arch,
    hidden_size: hidden,
    intermediate_size: ff,
    num_hidden_layers: layers,
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    head_dim: headDim,
    hidden_act: 'silu',
    max_position_embeddings: opts.maxPositionEmbeddings ?? 512,
    rms_norm_eps: 1e-6,
    vocab_size: vocabSize,
    tie_word_embeddings: tie,
    bos_token_id: bosId,
    eos_token_id: eosId,
    torch_dtype: dtype === 'f16' ? 'float16' : 'bfloat16',
    ...rope,
  };
  if (arch === 'llama' || arch === 'qwen3' || arch === 'smollm3') config.attention_bias = false;
  if (arch === 'smollm3' && opts.noRopeLayers) config.no_rope_layers = opts.noRopeLayers;
  if (arch === 'mistral') config.sliding_window = opts.slidingWindow ?? null;
  if (arch === 'internlm2') config.bias = opts.bias ?? false;
  const E = opts.numExperts ?? 4, moeFf = arch === 'mixtral' ? ff : opts.moeIntermediateSize ?? Math.max(8, ff / 2);
  if (arch === 'mixtral') Object.assign(config, { num_local_experts: E, num_experts_per_tok: opts.numExpertsPerTok ?? 2, sliding_window: null, attention_bias: false });
  const g3 = opts.gemma3 ?? {};
  if (arch === 'gemma3') {
    const full = g3.ropeScaling === null ? { rope_type: 'default' } : { rope_type: 'linear', factor: 2, ...g3.ropeScaling };
    delete config.hidden_act;
    Object.assign(config, {
      model_type: 'gemma3_text', hidden_activation: 'gelu_pytorch_tanh', query_pre_attn_scalar: g3.queryPreAttnScalar ?? 24,
      sliding_window: opts.slidingWindow ?? 4, sliding_window_pattern: g3.pattern ?? 2, attention_bias: false,
      final_logit_softcapping: null, attn_logit_softcapping: null,
      ...(g3.layerTypes ? { layer_types: g3.layerTypes } : {}),
      ...(opts.ropeForm === 'parameters'
        ? { rope_parameters: { full_attention: { ...full, rope_theta: 1e6 }, sliding_attention: { rope_type: 'default', rope_theta: 1e4 } } }
        : { rope_theta: 1e6, rope_local_base_freq: 1e4, rope_scaling: g3.ropeScaling === null ? null : full }),
    });
  }
  const g2 = opts.gemma2 ?? {};
  if (arch === 'gemma2') {
    delete config.hidden_act;
    Object.assign(config, {
      hidden_activation: 'gelu_pytorch_tanh', query_pre_attn_scalar: g2.queryPreAttnScalar ?? 24, sliding_window: opts.slidingWindow ?? 4,
      attention_bias: false, attn_logit_softcapping: g2.attnSoftcap === undefined ? 0.5 : g2.attnSoftcap,
      final_logit_softcapping: g2.finalSoftcap === undefined ? 1.5 : g2.finalSoftcap, ...(g2.layerTypes ? { layer_types: g2.layerTypes } : {}),
    });
  }
  if (arch === 'gemma') Object.assign(config, { hidden_act: opts.gemmaHiddenAct ?? 'gelu_pytorch_tanh', attention_bias: false });
  if (arch === 'qwen3_moe') {
    Object.assign(config, {
      num_experts: E, num_experts_per_tok: opts.numExpertsPerTok ?? 2, moe_intermediate_size: moeFf, norm_topk_prob: opts.normTopkProb ?? true,
      decoder_sparse_step: 1, mlp_only_layers: opts.mlpOnlyLayers ?? [], attention_bias: false,
    });
  }

  const normal = gaussian(rng(seed));
  const sfDtype = dtype === 'f16' ? 'F16' : 'BF16';
  const tensors: WritableTensor[] = [];
  const gen = (n: number, init: 'normal' | 'ones' | 'small' | 'centered'): Float32Array => {
    const v = new Float32Array(n);
    for (let i = 0; i < n; i++) v[i] = init === 'ones' ? 1 + 0.1 * normal() : init === 'small' ? 0.02 * normal() : init === 'centered' ? 0.1 * normal() : std * normal();
    return v;
  };
  const put = (name: string, shape: number[], v: Float32Array) => tensors.push({ name, dtype: sfDtype, shape, data: encodeHalf(v, dtype) });
  const add = (name: string, shape: number[], init: 'normal' | 'ones' | 'small' | 'centered') => put(name, shape, gen(shape.reduce((a, b) => a * b, 1), init));
  // (Gemma's norms are stored as w and applied as 1 + w)
  const norm = isGemma ? 'centered' : 'ones';
  const mp = arch === 'gemma3' && g3.multimodal ? `${g3.multimodal}.` : 'model.';
  if (arch === 'internlm2') {
    // InternLM2: tok_embeddings, attention_norm, wqkv (rows per KV group g: the G q heads of g, k head g, v head g), wo,
    // ffn_norm, feed_forward.w1 (gate) / w3 (up) / w2 (down), norm, output.
    const G = heads / kvHeads;
    const packRows = (q: Float32Array, k: Float32Array, v: Float32Array, width: number): Float32Array => {
      const out = new Float32Array(q.length + k.length + v.length);
      const hw = headDim * width;
      for (let g = 0; g < kvHeads; g++) {
        const base = g * (G + 2) * hw;
        out.set(q.subarray(g * G * hw, (g + 1) * G * hw), base);
        out.set(k.subarray(g * hw, (g + 1) * hw), base + G * hw);
        out.set(v.subarray(g * hw, (g + 1) * hw), base + (G + 1) * hw);
      }
      return out;
    };
    const rows = (heads + 2 * kvHeads) * headDim;
    add('model.tok_embeddings.weight', [vocabSize, hidden], 'normal');
    for (let i = 0; i < layers; i++) {
      const p = `model.layers.${i}`;
      add(`${p}.attention_norm.weight`, [hidden], 'ones');
      const q = gen(heads * headDim * hidden, 'normal');
      const k = gen(kvHeads * headDim * hidden, 'normal');
      const v = gen(kvHeads * headDim * hidden, 'normal');
      put(`${p}.attention.wqkv.weight`, [rows, hidden], packRows(q, k, v, hidden));
      if (opts.bias) {
        put(`${p}.attention.wqkv.bias`, [rows], packRows(gen(heads * headDim, 'small'), gen(kvHeads * headDim, 'small'), gen(kvHeads * headDim, 'small'), 1));
      }
      add(`${p}.attention.wo.weight`, [hidden, heads * headDim], 'normal');
      if (opts.bias) add(`${p}.attention.wo.bias`, [hidden], 'small');
      add(`${p}.ffn_norm.weight`, [hidden], 'ones');
      add(`${p}.feed_forward.w1.weight`, [ff, hidden], 'normal');
      add(`${p}.feed_forward.w3.weight`, [ff, hidden], 'normal');
      add(`${p}.feed_forward.w2.weight`, [hidden, ff], 'normal');
    }
    add('model.norm.weight', [hidden], 'ones');
    if (!tie) add('output.weight', [vocabSize, hidden], 'normal');
  } else {
    add(`${mp}embed_tokens.weight`, [vocabSize, hidden], 'normal');
    for (let i = 0; i < layers; i++) {
      const p = `${mp}layers.${i}`;
      add(`${p}.input_layernorm.weight`, [hidden], norm);
      add(`${p}.self_attn.q_proj.weight`, [heads * headDim, hidden], 'normal');
      add(`${p}.self_attn.k_proj.weight`, [kvHeads * headDim, hidden], 'normal');
      add(`${p}.self_attn.v_proj.weight`, [kvHeads * headDim, hidden], 'normal');
      if (arch === 'qwen2') {
        add(`${p}.self_attn.q_proj.bias`, [heads * headDim], 'small');
        add(`${p}.self_attn.k_proj.bias`, [kvHeads * headDim], 'small');
        add(`${p}.self_attn.v_proj.bias`, [kvHeads * headDim], 'small');
      }
      if (arch === 'qwen3' || arch === 'qwen3_moe' || arch === 'gemma3') {
        add(`${p}.self_attn.q_norm.weight`, [headDim], norm);
        add(`${p}.self_attn.k_norm.weight`, [headDim], norm);
      }
      add(`${p}.self_attn.o_proj.weight`, [hidden, heads * headDim], 'normal');
      add(`${p}.post_attention_layernorm.weight`, [hidden], norm);
      if (arch === 'gemma2' || arch === 'gemma3') {
        add(`${p}.pre_feedforward_layernorm.weight`, [hidden], norm);
        add(`${p}.post_feedforward_layernorm.weight`, [hidden], norm);
      }
      if (arch === 'mixtral') {
        add(`${p}.block_sparse_moe.gate.weight`, [E, hidden], 'normal');
        for (let e = 0; e < E; e++) {
          add(`${p}.block_sparse_moe.experts.${e}.w1.weight`, [moeFf, hidden], 'normal');
          add(`${p}.block_sparse_moe.experts.${e}.w3.weight`, [moeFf, hidden], 'normal');
          add(`${p}.block_sparse_moe.experts.${e}.w2.weight`, [hidden, moeFf], 'normal');
        }
      } else if (arch === 'qwen3_moe' && !(opts.mlpOnlyLayers ?? []).includes(i)) {
        add(`${p}.mlp.gate.weight`, [E, hidden], 'normal');
        for (let e = 0; e < E; e++) {
          add(`${p}.mlp.experts.${e}.gate_proj.weight`, [moeFf, hidden], 'normal');
          add(`${p}.mlp.experts.${e}.up_proj.weight`, [moeFf, hidden], 'normal');
          add(`${p}.mlp.experts.${e}.down_proj.weight`, [hidden, moeFf], 'normal');
        }
      } else {
        add(`${p}.mlp.gate_proj.weight`, [ff, hidden], 'normal');
        add(`${p}.mlp.up_proj.weight`, [ff, hidden], 'normal');
        add(`${p}.mlp.down_proj.weight`, [hidden, ff], 'normal');
      }
    }
    add(`${mp}norm.weight`, [hidden], norm);
    if (!tie) add('lm_head.weight', [vocabSize, hidden], 'normal');
    if (mp !== 'model.') {
      add('vision_tower.vision_model.embeddings.patch_embedding.weight', [8, 3, 2, 2], 'normal');
      add('multi_modal_projector.mm_input_projection_weight', [8, hidden], 'normal');
    }
  }

  const shards = Math.max(1, opts.shards ?? 1);
  if (shards === 1) {
    writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
  } else {
    const per = Math.ceil(tensors.length / shards);
    const weightMap: Record<string, string> = {};
    let total = 0;
    for (let s = 0; s < shards; s++) {
      const part = tensors.slice(s * per, (s + 1) * per);
      const name = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
      writeSafetensors(path.join(dir, name), part);
      for (const t of part) {
        weightMap[t.name] = name;
        total += t.data.byteLength;
      }
    }
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2));
  }

  const { architectures: _, torch_dtype, ...text } = config;
  const written = mp === 'model.' ? config : {
    architectures: ['Gemma3ForConditionalGeneration'], model_type: 'gemma3', torch_dtype, text_config: text,
    vision_config: { model_type: 'siglip_vision_model', hidden_size: 8, patch_size: 2 }, mm_tokens_per_image: 4,
  };
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(written, null, 2));
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tok.json));
  const bosTok = tokArch === 'llama' ? '<s>' : '<|endoftext|>';
  const eosTok = tokArch === 'llama' ? '</s>' : '<|endoftext|>';
  fs.writeFileSync(
    path.join(dir, 'tokenizer_config.json'),
    JSON.stringify({ bos_token: bosTok, eos_token: eosTok, pad_token: eosTok, add_bos_token: tokArch === 'llama', clean_up_tokenization_spaces: false, chat_template: TINY_CHAT_TEMPLATE }, null, 2),
  );
  fs.writeFileSync(
    path.join(dir, 'generation_config.json'),
    JSON.stringify({ bos_token_id: bosId, eos_token_id: [eosId, imEndId] }, null, 2),
  );
  return { dir: path.resolve(dir), vocabSize, eosId, bosId, imStartId: tok.ids['<|im_start|>'], imEndId, config: written };
}
