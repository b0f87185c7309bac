import * as fs from 'node:fs';
import * as path from 'node:path';
import { ModelFormatError, UnsupportedArchitectureError } from '../errors';
import { encodeHalf, decodeHalf } from '../io/half';
import { readSafetensorsDir, writeSafetensors, type WritableTensor } from '../io/safetensors';
import { makeTempDir } from '../testing/tmp-dir';
import { sharedModelDir } from '../testing/shared-model';
import { writeTinyModel } from '../testing/tiny-model';
import { parseRope } from './common';
import { internlm } from './internlm';
import { internlm2, splitWqkv } from './internlm2';
import { llama } from './llama';
import { loadModelSpec, loadModelWeights } from './load';
import { qwen2 } from './qwen2';
import { getArchitecture, supportedArchitectures } from './registry';
import { toNativeArchConfig } from './spec';

const F = 'config.json';

const llama2Config = {
  architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 4096, intermediate_size: 11008,
  num_attention_heads: 32, num_hidden_layers: 32, num_key_value_heads: 32, rms_norm_eps: 1e-5, vocab_size: 32000,
  max_position_embeddings: 4096, rope_theta: 10000.0, rope_scaling: null, tie_word_embeddings: false, torch_dtype: 'float16',
  hidden_act: 'silu',
};
const llama31Config = {
  ...llama2Config, num_key_value_heads: 8, vocab_size: 128256, intermediate_size: 14336, max_position_embeddings: 131072,
  rope_theta: 500000.0, torch_dtype: 'bfloat16',
  rope_scaling: { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
};

describe('architecture configs', () => {
  it('parses Llama 2 (classic rope form, MHA, fp16)', () => {
    const s = llama.parseConfig(llama2Config, F);
    expect(toNativeArchConfig(s)).toEqual({
      dtype: 'f16', vocabSize: 32000, hiddenSize: 4096, intermediateSize: 11008, numLayers: 32, numHeads: 32, numKvHeads: 32,
      headDim: 128, rmsNormEps: 1e-5, maxPositionEmbeddings: 4096, rope: { type: 'default', theta: 10000 },
      tieWordEmbeddings: false, hiddenAct: 'silu',
    });
    expect(s.qkvBias).toBe(false);
    expect(llama.defaultChatTemplate(s)).toContain('[INST]');
  });

  it('parses Llama 3.1 llama3 rope scaling, GQA and bf16', () => {
    const s = llama.parseConfig(llama31Config, F);
    expect(s.dtype).toBe('bf16');
    expect(s.numKvHeads).toBe(8);
    expect(s.rope).toEqual({ type: 'llama3', theta: 500000, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 });
    expect(llama.defaultChatTemplate(s)).toContain('<|start_header_id|>');
  });

  it('parses linear and dynamic scaling, the old `type` key, and the rope_parameters form', () => {
    expect(parseRope({ rope_theta: 1e4, rope_scaling: { type: 'linear', factor: 2 } }, 128, F)).toEqual({ type: 'linear', theta: 1e4, factor: 2 });
    expect(parseRope({ rope_scaling: { rope_type: 'dynamic', factor: 4 } }, 128, F)).toEqual({ type: 'dynamic', theta: 1e4, factor: 4 });
    expect(parseRope({ rope_parameters: { rope_theta: 1e6, rope_type: 'default' } }, 64, F)).toEqual({ type: 'default', theta: 1e6 });
    expect(parseRope({ rope_parameters: { rope_theta: 5e5, rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } }, 64, F))
      .toMatchObject({ type: 'llama3', theta: 5e5, factor: 8, originalMaxPositionEmbeddings: 8192 });
    expect(parseRope({ rope_parameters: { full_attention: { rope_theta: 1e6, rope_type: 'linear', factor: 2 } } }, 64, F))
      .toEqual({ type: 'linear', theta: 1e6, factor: 2 });
    expect(parseRope({ rope_theta: 1e4, partial_rotary_factor: 0.5 }, 64, F)).toEqual({ type: 'default', theta: 1e4, rotaryDim: 32 });
    expect(() => parseRope({ rope_scaling: { type: 'yarn', factor: 4 } }, 64, F)).toThrow(/unsupported rope scaling type "yarn"/);
    expect(() => parseRope({ rope_scaling: { type: 'linear' } }, 64, F)).toThrow(ModelFormatError);
    expect(() => parseRope({ rope_scaling: { rope_type: 'llama3', factor: 8 } }, 64, F)).toThrow(/low_freq_factor/);
  });

  it('parses the shared Qwen2 config (rope_parameters form) with q/k/v bias', () => {
    const cfg = {
      architectures: ['Qwen2ForCausalLM'], dtype: 'float16', hidden_size: 384, intermediate_size: 1024, num_attention_heads: 6,
      num_hidden_layers: 6, num_key_value_heads: 2, rms_norm_eps: 1e-6, max_position_embeddings: 1024, vocab_size: 8192,
      rope_parameters: { rope_theta: 10000.0, rope_type: 'default' }, tie_word_embeddings: false, use_sliding_window: false,
    };
    const s = qwen2.parseConfig(cfg, F);
    expect(s).toMatchObject({ headDim: 64, numKvHeads: 2, qkvBias: true, oBias: false, rope: { type: 'default', theta: 10000 }, dtype: 'f16' });
    expect(() => qwen2.parseConfig({ ...cfg, use_sliding_window: true }, F)).toThrow(/sliding_window/);
  });

  it('InternLM takes q/k/v/o bias from `bias` (default true); InternLM2 defaults to none', () => {
    const base = { ...llama2Config, architectures: ['InternLMForCausalLM'] };
    expect(internlm.parseConfig(base, F)).toMatchObject({ qkvBias: true, oBias: true });
    expect(internlm.parseConfig({ ...base, bias: false }, F)).toMatchObject({ qkvBias: false, oBias: false });
    const i2 = internlm2.parseConfig({ ...base, architectures: ['InternLM2ForCausalLM'], num_key_value_heads: 8, rope_scaling: { type: 'dynamic', factor: 2.0 }, rope_theta: 1e6 }, F);
    expect(i2).toMatchObject({ qkvBias: false, oBias: false, numKvHeads: 8, rope: { type: 'dynamic', factor: 2, theta: 1e6 } });
  });

  it('reports missing fields and bad head counts with the file name', () => {
    const { hidden_size: _h, ...noHidden } = llama2Config;
    expect(() => llama.parseConfig(noHidden, '/m/config.json')).toThrow(/config.json lacks "hidden_size".*file: \/m\/config.json/);
    expect(() => llama.parseConfig({ ...llama2Config, num_key_value_heads: 5 }, F)).toThrow(/multiple of num_key_value_heads/);
    expect(() => llama.parseConfig({ ...llama2Config, hidden_act: 'gelu' }, F)).toThrow(/hidden_act/);
    expect(() => llama.parseConfig({ ...llama2Config, mlp_bias: true }, F)).toThrow(/mlp_bias/);
  });

  it('parses AutoAWQ quantization_config and refuses other methods', () => {
    const q = llama.parseConfig({ ...llama2Config, quantization_config: { quant_method: 'awq', bits: 4, group_size: 128, version: 'gemm', zero_point: true } }, F);
    expect(q.quant).toEqual({ method: 'awq', bits: 4, groupSize: 128 });
    expect(() => llama.parseConfig({ ...llama2Config, quantization_config: { quant_method: 'gptq', bits: 4 } }, F)).toThrow(/unsupported quantization method "gptq"/);
  });
});

describe('registry', () => {
  it('has one entry per architecture and names the supported ones for unknown classes', () => {
    expect(supportedArchitectures()).toEqual(['LlamaForCausalLM', 'Qwen2ForCausalLM', 'InternLMForCausalLM', 'InternLM2ForCausalLM']);
    expect(getArchitecture('Qwen2ForCausalLM').key).toBe('qwen2');
    let err: unknown;
    try {
      getArchitecture('MistralForCausalLM');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UnsupportedArchitectureError);
    expect((err as Error).message).toMatch(/MistralForCausalLM.*supported: LlamaForCausalLM, Qwen2ForCausalLM, InternLMForCausalLM, InternLM2ForCausalLM/);
  });
});

describe('weight maps', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  beforeEach(() => (tmp = makeTempDir()));
  afterEach(() => tmp.cleanup());

  it('maps a tiny Qwen2 to canonical names with absolute file offsets', () => {
    writeTinyModel(tmp.dir, { arch: 'qwen2', shards: 2 });
    const loaded = loadModelSpec(tmp.dir);
    const { tensors } = loadModelWeights(loaded);
    const names = tensors.map((t) => t.name);
    expect(names).toContain('embed_tokens.weight');
    expect(names).toContain('lm_head.weight');
    expect(names).toContain('layers.1.q.bias');
    expect(names).not.toContain('layers.0.o.bias');
    expect(tensors).toHaveLength(3 + 2 * 12);
    const q = tensors.find((t) => t.name === 'layers.0.q.weight')!;
    expect(q).toMatchObject({ dtype: 'f16', shape: [64, 64] });
    expect(path.isAbsolute(q.file!)).toBe(true);
    expect(typeof q.offset).toBe('number');
  });

  it('maps a tiny bf16 Llama with tied embeddings (no lm_head)', () => {
    writeTinyModel(tmp.dir, { arch: 'llama', dtype: 'bf16', tieWordEmbeddings: true });
    const loaded = loadModelSpec(tmp.dir);
    const { tensors } = loadModelWeights(loaded);
    expect(loaded.spec.dtype).toBe('bf16');
    expect(tensors.map((t) => t.name)).not.toContain('lm_head.weight');
    expect(tensors.every((t) => t.dtype === 'bf16')).toBe(true);
  });

  it('reports a missing tensor and a mis-shaped tensor with expected vs found', () => {
    writeTinyModel(tmp.dir, { arch: 'qwen2' });
    const cfgFile = path.join(tmp.dir, 'config.json');
    const cfg = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
    fs.writeFileSync(cfgFile, JSON.stringify({ ...cfg, intermediate_size: 96 }));
    expect(() => loadModelWeights(loadModelSpec(tmp.dir))).toThrow(
      /tensor has the wrong shape.*tensor: model.layers.0.mlp.gate_proj.weight; expected: \[96, 64\]; found: \[128, 64\]/,
    );
    fs.writeFileSync(cfgFile, JSON.stringify({ ...cfg, num_hidden_layers: 3 }));
    expect(() => loadModelWeights(loadModelSpec(tmp.dir))).toThrow(/missing tensor.*tensor: model.layers.2.input_layernorm.weight.*found: missing/);
  });

  it('refuses an unsupported architecture and a directory without config.json', () => {
    writeTinyModel(tmp.dir, { arch: 'qwen2' });
    const cfgFile = path.join(tmp.dir, 'config.json');
    fs.writeFileSync(cfgFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(cfgFile, 'utf8')), architectures: ['GPT2LMHeadModel'] }));
    expect(() => loadModelSpec(tmp.dir)).toThrow(UnsupportedArchitectureError);
    fs.rmSync(cfgFile);
    expect(() => loadModelSpec(tmp.dir)).toThrow(/config.json is missing/);
    expect(() => loadModelSpec(path.join(tmp.dir, 'nope'))).toThrow(/does not exist/);
  });

  it('maps an AutoAWQ GEMM checkpoint to canonical qweight/qzeros/scales (norms, embeddings and biases stay fp16)', () => {
    writeTinyModel(tmp.dir, { arch: 'qwen2', numLayers: 1 });
    const cfgFile = path.join(tmp.dir, 'config.json');
    const cfg = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
    fs.writeFileSync(cfgFile, JSON.stringify({ ...cfg, quantization_config: { quant_method: 'awq', bits: 4, group_size: 32, version: 'gemm', zero_point: true } }));
    const fp = readSafetensorsDir(tmp.dir);
    const tensors: WritableTensor[] = [];
    for (const t of fp.tensors.values()) {
      const m = /^(.*)\.(q|k|v|o|gate|up|down)_proj\.weight$/.exec(t.name);
      if (!m) {
        tensors.push({ name: t.name, dtype: t.dtype, shape: t.shape, data: new Uint8Array(t.byteLength) });
        continue;
      }
      const [out, inp] = t.shape;
      const base = t.name.replace(/\.weight$/, '');
      tensors.push({ name: `${base}.qweight`, dtype: 'I32', shape: [inp, out / 8], data: new Uint8Array(inp * out / 2) });
      tensors.push({ name: `${base}.qzeros`, dtype: 'I32', shape: [inp / 32, out / 8], data: new Uint8Array((inp / 32) * out / 2) });
      tensors.push({ name: `${base}.scales`, dtype: 'F16', shape: [inp / 32, out], data: new Uint8Array((inp / 32) * out * 2) });
    }
    fs.rmSync(path.join(tmp.dir, 'model.safetensors'));
    writeSafetensors(path.join(tmp.dir, 'model.safetensors'), tensors);
    const loaded = loadModelSpec(tmp.dir);
    expect(loaded.spec.quant).toEqual({ method: 'awq', bits: 4, groupSize: 32 });
    const mapped = loadModelWeights(loaded).tensors;
    const byName = new Map(mapped.map((t) => [t.name, t]));
    expect(byName.get('layers.0.gate.qweight')).toMatchObject({ dtype: 'i32', shape: [64, 16] });
    expect(byName.get('layers.0.gate.qzeros')).toMatchObject({ dtype: 'i32', shape: [2, 16] });
    expect(byName.get('layers.0.down.scales')).toMatchObject({ dtype: 'f16', shape: [4, 64] });
    expect(byName.get('layers.0.q.bias')).toMatchObject({ dtype: 'f16', shape: [64] });
    expect(byName.has('layers.0.q.weight')).toBe(false);
    expect(byName.get('embed_tokens.weight')).toBeDefined();
    fs.writeFileSync(cfgFile, JSON.stringify({ ...cfg, quantization_config: { quant_method: 'awq', bits: 4, group_size: 64, version: 'gemm' } }));
    expect(() => loadModelWeights(loadModelSpec(tmp.dir))).toThrow(/AWQ tensor has the wrong shape.*q_proj.qzeros.*expected: \[1, 8\]; found: \[2, 8\]/);
  });

  it('splits InternLM2 wqkv per KV group (hand-computed)', () => {
    // 4 heads, 2 kv heads (G = 2), headDim 1, one byte per row: rows are [q0 q1 k0 v0 | q2 q3 k1 v1].
    const packed = new Uint8Array([10, 11, 20, 30, 12, 13, 21, 31]);
    const { q, k, v } = splitWqkv(packed, { numHeads: 4, numKvHeads: 2, headDim: 1, rowBytes: 1 });
    expect(Array.from(q)).toEqual([10, 11, 12, 13]);
    expect(Array.from(k)).toEqual([20, 21]);
    expect(Array.from(v)).toEqual([30, 31]);
    // headDim 2, rowBytes 2, MHA-like G = 1: [q0(2 rows) k0(2) v0(2)]
    const p2 = new Uint8Array(Array.from({ length: 12 }, (_, i) => i));
    const s2 = splitWqkv(p2, { numHeads: 1, numKvHeads: 1, headDim: 2, rowBytes: 2 });
    expect(Array.from(s2.q)).toEqual([0, 1, 2, 3]);
    expect(Array.from(s2.k)).toEqual([4, 5, 6, 7]);
    expect(Array.from(s2.v)).toEqual([8, 9, 10, 11]);
    expect(() => splitWqkv(new Uint8Array(7), { numHeads: 4, numKvHeads: 2, headDim: 1, rowBytes: 1 })).toThrow(/expected 8/);
  });

  it('maps a generated InternLM2 checkpoint: canonical q/k/v rows match the packed layout', () => {
    const hidden = 8, heads = 4, kv = 2, hd = 2, ff = 16, vocab = 10;
    const cfg = {
      architectures: ['InternLM2ForCausalLM'], model_type: 'internlm2', hidden_size: hidden, intermediate_size: ff,
      num_attention_heads: heads, num_key_value_heads: kv, num_hidden_layers: 1, vocab_size: vocab, rms_norm_eps: 1e-5,
      max_position_embeddings: 64, rope_theta: 1e6, bias: true, torch_dtype: 'float16', hidden_act: 'silu',
    };
    fs.writeFileSync(path.join(tmp.dir, 'config.json'), JSON.stringify(cfg));
    const t = (name: string, shape: number[], fill: (i: number) => number): WritableTensor => {
      const n = shape.reduce((a, b) => a * b, 1);
      return { name, dtype: 'F16', shape, data: encodeHalf(Array.from({ length: n }, (_, i) => fill(i)), 'f16') };
    };
    const rows = (heads + 2 * kv) * hd;
    // wqkv[r][c] = r (the packed row index), bias[r] = 100 + r.
    writeSafetensors(path.join(tmp.dir, 'model.safetensors'), [
      t('model.tok_embeddings.weight', [vocab, hidden], () => 0.5),
      t('model.norm.weight', [hidden], () => 1),
      t('output.weight', [vocab, hidden], () => 0.25),
      t('model.layers.0.attention_norm.weight', [hidden], () => 1),
      t('model.layers.0.ffn_norm.weight', [hidden], () => 1),
      t('model.layers.0.attention.wqkv.weight', [rows, hidden], (i) => Math.floor(i / hidden)),
      t('model.layers.0.attention.wqkv.bias', [rows], (i) => 100 + i),
      t('model.layers.0.attention.wo.weight', [hidden, heads * hd], () => 0),
      t('model.layers.0.attention.wo.bias', [hidden], () => 0),
      t('model.layers.0.feed_forward.w1.weight', [ff, hidden], () => 1),
      t('model.layers.0.feed_forward.w3.weight', [ff, hidden], () => 3),
      t('model.layers.0.feed_forward.w2.weight', [hidden, ff], () => 2),
    ]);
    const loaded = loadModelSpec(tmp.dir);
    const { tensors } = loadModelWeights(loaded);
    const get = (n: string) => tensors.find((x) => x.name === n)!;
    // Packed rows per group g (G = 2, hd = 2): q rows 8g..8g+3, k rows 8g+4..8g+5, v rows 8g+6..8g+7.
    const rowIds = (n: string) => {
      const vals = decodeHalf(get(n).data!, 'f16');
      const width = get(n).shape.length === 2 ? hidden : 1;
      return Array.from({ length: vals.length / width }, (_, r) => vals[r * width]);
    };
    expect(get('layers.0.q.weight').shape).toEqual([heads * hd, hidden]);
    expect(rowIds('layers.0.q.weight')).toEqual([0, 1, 2, 3, 8, 9, 10, 11]);
    expect(rowIds('layers.0.k.weight')).toEqual([4, 5, 12, 13]);
    expect(rowIds('layers.0.v.weight')).toEqual([6, 7, 14, 15]);
    expect(rowIds('layers.0.q.bias')).toEqual([100, 101, 102, 103, 108, 109, 110, 111]);
    expect(rowIds('layers.0.v.bias')).toEqual([106, 107, 114, 115]);
    expect(get('layers.0.gate.weight').file).toBeDefined();
    expect(get('lm_head.weight').shape).toEqual([vocab, hidden]);
    expect(internlm2.awqScaleGroups(loaded.spec, 0).map((g) => `${g.prev}->${g.linears.join(',')}`)).toEqual([
      'model.layers.0.attention_norm->model.layers.0.attention.wqkv',
      'model.layers.0.ffn_norm->model.layers.0.feed_forward.w1,model.layers.0.feed_forward.w3',
      'model.layers.0.feed_forward.w3->model.layers.0.feed_forward.w2',
    ]);
  });

  it('AWQ scaling groups of the Llama family name real HF modules of the shared model', () => {
    const dir = sharedModelDir('tiny-qwen2-pydocs');
    if (!dir) {
      console.log('not run: no shared model');
      return;
    }
    const loaded = loadModelSpec(dir);
    const idx = readSafetensorsDir(dir);
    const groups = loaded.arch.awqScaleGroups(loaded.spec, 3);
    expect(groups.map((g) => g.kind)).toEqual(['norm', 'linear', 'norm', 'linear']);
    expect(groups[1]).toMatchObject({ prev: 'model.layers.3.self_attn.v_proj', linears: ['model.layers.3.self_attn.o_proj'], kvGroupRepeat: 3 });
    for (const g of groups) for (const m of [g.prev, ...g.linears]) expect(idx.tensors.has(`${m}.weight`)).toBe(true);
    const { tensors } = loadModelWeights(loaded);
    expect(tensors).toHaveLength(3 + 6 * 12);
  });
});
