// Gemma 3: config parsing (the Hub's forms, transformers 5's per-layer-type rope_parameters, the image-text checkpoint's
// text_config), refusals, the weight map (norms load as 1 + w, both ConditionalGeneration prefixes), the workspace, and
// the native decoder against BlockForward's TypeScript forward (itself checked against an f64 reference of the layer in
// quant/block-forward.spec.ts).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decodeHalf } from '../io/half';
import { readSafetensorsDir, readTensorBytes } from '../io/safetensors';
import { cpuLogits, cpuVsBlockForward, nativeCpuOrReport } from '../testing/native-cpu';
import { maxAbsDiff } from '../testing/nmse';
import { makeTempDir } from '../testing/tmp-dir';
import { writeTinyModel, type TinyModelOptions } from '../testing/tiny-model';
import { convert } from '../workspace/convert';
import { loadWorkspace } from '../workspace/load';
import { gemma3, gemma3Multimodal } from './gemma3';
import { loadModelSpec, loadModelWeights } from './load';
import { readSourceF32 } from './source-bytes';
import { toNativeArchConfig } from './spec';
import { F, GEMMA3_1B_CONFIG, GEMMA3_4B_CONFIG } from './testing-configs';

const native = nativeCpuOrReport('gemma3');

const TINY: TinyModelOptions = { arch: 'gemma3', hiddenSize: 64, numHeads: 4, numKvHeads: 2, numLayers: 3, intermediateSize: 128, seed: 11 };
const NORMS = ['input_norm', 'attn_out_norm', 'post_norm', 'mlp_out_norm', 'q_norm', 'k_norm'];

describe('gemma3', () => {
  const tmp = makeTempDir('lmfleet-gemma3-');
  afterAll(() => tmp.cleanup());

  it('parses gemma-3-1b-it: gelu_tanh, q/k norms, sandwich norms, bf16 embedding scale, 5 sliding layers in 6 with their own rope', () => {
    const s = gemma3.parseConfig(GEMMA3_1B_CONFIG, F);
    const windows = Array.from({ length: 26 }, (_, i) => ((i + 1) % 6 ? 512 : 0));
    expect(s).toMatchObject({
      arch: 'gemma3', hfArchitecture: 'Gemma3ForCausalLM', modelType: 'gemma3_text', dtype: 'bf16', hiddenSize: 1152, headDim: 256,
      numHeads: 4, numKvHeads: 1, hiddenAct: 'gelu_tanh', qkNorm: true, sandwichNorms: true, tieWordEmbeddings: true, qkvBias: false,
      // sqrt(1152) = 33.94 in bf16 (transformers: embed_scale.to(weight.dtype))
      embedScale: 34, layerWindows: windows,
      rope: { type: 'default', theta: 1e6, attentionScale: 1 / 16 }, ropeLocal: { type: 'default', theta: 1e4, attentionScale: 1 / 16 },
    });
    expect(toNativeArchConfig(s)).toMatchObject({ hiddenAct: 'gelu_tanh', embedScale: 34, sandwichNorms: true, qkNorm: true, ropeLocal: { theta: 1e4 } });
    // an fp16 checkpoint rounds the scale to f16; query_pre_attn_scalar sets the softmax scale (27B: 168, head_dim 128)
    expect(gemma3.parseConfig({ ...GEMMA3_1B_CONFIG, torch_dtype: 'float16' }, F).embedScale).toBe(33.9375);
    expect(gemma3.parseConfig({ ...GEMMA3_1B_CONFIG, query_pre_attn_scalar: 168 }, F).ropeLocal?.attentionScale).toBeCloseTo(168 ** -0.5, 15);
    // hidden_act alone (no hidden_activation) is accepted in its tanh spellings
    const { hidden_activation: _, ...noActivation } = GEMMA3_1B_CONFIG;
    expect(gemma3.parseConfig({ ...noActivation, hidden_act: 'gelu_tanh' }, F).hiddenAct).toBe('gelu_tanh');
  });

  it('parses gemma-3-4b-it\'s text_config over Gemma3TextConfig\'s defaults; transformers 5\'s per-layer-type rope_parameters give the same spec', () => {
    const s = gemma3Multimodal.parseConfig(GEMMA3_4B_CONFIG, F);
    expect(s).toMatchObject({
      arch: 'gemma3', hfArchitecture: 'Gemma3ForConditionalGeneration', dtype: 'bf16', hiddenSize: 2560, intermediateSize: 10240, numLayers: 34,
      numHeads: 8, numKvHeads: 4, headDim: 256, vocabSize: 262208, maxPositionEmbeddings: 131072, tieWordEmbeddings: true, embedScale: 50.5,
      rope: { type: 'linear', factor: 8, theta: 1e6, attentionScale: 1 / 16 }, ropeLocal: { type: 'default', theta: 1e4, attentionScale: 1 / 16 },
    });
    expect(s.layerWindows?.filter((w) => w === 0).length).toBe(5);  // layers 5, 11, 17, 23, 29 attend globally
    const { rope_scaling: _, ...text } = GEMMA3_4B_CONFIG.text_config;
    const v5 = {
      ...GEMMA3_4B_CONFIG, torch_dtype: undefined, dtype: 'bfloat16',
      text_config: {
        ...text, dtype: 'bfloat16', layer_types: Array.from({ length: 34 }, (_, i) => ((i + 1) % 6 ? 'sliding_attention' : 'full_attention')),
        rope_parameters: { full_attention: { rope_type: 'linear', factor: 8.0, rope_theta: 1e6 }, sliding_attention: { rope_type: 'default', rope_theta: 1e4 } },
      },
    };
    expect(toNativeArchConfig(gemma3Multimodal.parseConfig(v5, F))).toEqual(toNativeArchConfig(s));
    // the 1B in transformers 5's form
    const { rope_theta: _t, rope_local_base_freq: _l, rope_scaling: _s, ...rest1b } = GEMMA3_1B_CONFIG;
    const v5small = { ...rest1b, rope_parameters: { full_attention: { rope_type: 'default', rope_theta: 1e6 }, sliding_attention: { rope_type: 'default', rope_theta: 1e4 } } };
    expect(toNativeArchConfig(gemma3.parseConfig(v5small, F))).toEqual(toNativeArchConfig(gemma3.parseConfig(GEMMA3_1B_CONFIG, F)));
  });

  it('which layers slide: every layer but each sliding_window_pattern-th (default 6), or layer_types; the window stays past the context', () => {
    const { sliding_window_pattern: _, ...noPattern } = GEMMA3_1B_CONFIG;
    const cfg = { ...noPattern, num_hidden_layers: 7 };
    expect(gemma3.parseConfig(cfg, F).layerWindows).toEqual([512, 512, 512, 512, 512, 0, 512]);
    expect(gemma3.parseConfig({ ...cfg, sliding_window_pattern: 2 }, F).layerWindows).toEqual([512, 0, 512, 0, 512, 0, 512]);
    expect(gemma3.parseConfig({ ...cfg, _sliding_window_pattern: 3 }, F).layerWindows).toEqual([512, 512, 0, 512, 512, 0, 512]);
    const types = ['full_attention', 'sliding_attention', 'sliding_attention', 'full_attention', 'full_attention', 'sliding_attention', 'full_attention'];
    expect(gemma3.parseConfig({ ...cfg, layer_types: types }, F).layerWindows).toEqual(types.map((t) => (t === 'sliding_attention' ? 512 : 0)));
    // a window longer than the context still marks the local-rope layers
    expect(gemma3.parseConfig({ ...cfg, sliding_window: 65536 }, F).layerWindows?.[0]).toBe(65536);
    // all global: no windows, no local rope
    const global = gemma3.parseConfig({ ...cfg, layer_types: types.map(() => 'full_attention') }, F);
    expect([global.layerWindows, global.ropeLocal]).toEqual([undefined, undefined]);
    expect(() => gemma3.parseConfig({ ...cfg, layer_types: ['full_attention'] }, F)).toThrow(/layer_types must list one attention type per layer/);
  });

  it('refuses soft-capping (Gemma 2\'s), bidirectional attention and activations other than gelu_tanh, naming the field', () => {
    expect(() => gemma3.parseConfig({ ...GEMMA3_1B_CONFIG, final_logit_softcapping: 30.0 }, F)).toThrow(/final_logit_softcapping is not supported/);
    expect(() => gemma3.parseConfig({ ...GEMMA3_1B_CONFIG, attn_logit_softcapping: 50.0 }, F)).toThrow(/attn_logit_softcapping is not supported/);
    expect(gemma3.parseConfig({ ...GEMMA3_1B_CONFIG, hidden_activation: 'gelu' }, F).hiddenAct).toBe('gelu');  // (exact, as ACT2FN)
    expect(() => gemma3.parseConfig({ ...GEMMA3_1B_CONFIG, hidden_activation: 'relu' }, F)).toThrow(/unsupported hidden_activation.*"relu"/);
    expect(() => gemma3.parseConfig({ ...GEMMA3_1B_CONFIG, hidden_activation: 'silu' }, F)).toThrow(/unsupported hidden_activation/);
    expect(() => gemma3.parseConfig({ ...GEMMA3_1B_CONFIG, use_bidirectional_attention: true }, F)).toThrow(/use_bidirectional_attention is not supported/);
    expect(() => gemma3Multimodal.parseConfig({ ...GEMMA3_4B_CONFIG, text_config: 'x' }, F)).toThrow(/text_config must be an object/);
  });

  it('maps Gemma3ForCausalLM and both ConditionalGeneration layouts to one canonical set: every norm with add 1, vision tensors left out', () => {
    const canon = (multimodal?: 'language_model.model' | 'model.language_model') => {
      const dir = path.join(tmp.dir, `map-${multimodal ?? 'causal'}`);
      writeTinyModel(dir, { ...TINY, gemma3: { multimodal } });
      const loaded = loadModelSpec(dir);
      expect(loaded.spec.hfArchitecture).toBe(multimodal ? 'Gemma3ForConditionalGeneration' : 'Gemma3ForCausalLM');
      return { loaded, tensors: loadModelWeights(loaded).tensors };
    };
    const { loaded, tensors } = canon();
    const names = tensors.map((t) => t.name);
    expect(names).not.toContain('lm_head.weight');  // tied
    for (const n of NORMS) expect(tensors.find((t) => t.name === `layers.2.${n}.weight`)).toMatchObject({ add: 1, shape: [/q_norm|k_norm/.test(n) ? 16 : 64] });
    expect(tensors.filter((t) => t.add !== undefined).map((t) => t.name).sort()).toEqual(names.filter((n) => /norm\.weight$/.test(n)).sort());
    // the engine reads 1 + w: the checkpoint's pre_feedforward_layernorm plus one
    const hf = readSafetensorsDir(loaded.dir).tensors.get('model.layers.1.pre_feedforward_layernorm.weight')!;
    const w = decodeHalf(readTensorBytes(hf), 'f16');
    expect(Array.from(readSourceF32(tensors.find((t) => t.name === 'layers.1.post_norm.weight')!))).toEqual(Array.from(w, (x) => Math.fround(1 + x)));
    expect(loaded.arch.awqScaleGroups(loaded.spec, 1).map((g) => `${g.prev}->${g.linears.map((l) => l.split('.').pop()).join(',')}`)).toEqual([
      'model.layers.1.input_layernorm->q_proj,k_proj,v_proj', 'model.layers.1.self_attn.v_proj->o_proj',
      'model.layers.1.pre_feedforward_layernorm->gate_proj,up_proj', 'model.layers.1.mlp.up_proj->down_proj',
    ]);
    for (const mm of ['language_model.model', 'model.language_model'] as const) {
      const other = canon(mm);
      expect(other.tensors.map((t) => [t.name, t.shape, t.add])).toEqual(tensors.map((t) => [t.name, t.shape, t.add]));
      expect(toNativeArchConfig(other.loaded.spec)).toEqual(toNativeArchConfig(loaded.spec));
      expect(other.loaded.arch.awqScaleGroups(other.loaded.spec, 0)[0].prev).toBe(`${mm}.layers.0.input_layernorm`);
      expect(other.loaded.arch.limits).toMatch(/images are not supported/);
    }
  });

  it('convert keeps each norm\'s bytes and its add in the workspace (1 + w rounded to the dtype would lose bits)', async () => {
    const dir = path.join(tmp.dir, 'ws-src');
    writeTinyModel(dir, { ...TINY, dtype: 'bf16' });
    const ws = path.join(tmp.dir, 'ws');
    await convert('gemma3', dir, { dstPath: ws });
    const { loaded, tensors } = loadWorkspace(ws);
    expect(toNativeArchConfig(loaded.spec)).toEqual(toNativeArchConfig(loadModelSpec(dir).spec));
    const src = loadModelWeights(loadModelSpec(dir)).tensors;
    for (const t of tensors) {
      const s = src.find((x) => x.name === t.name)!;
      expect({ name: t.name, add: t.add }).toEqual({ name: t.name, add: s.add });
      expect(Array.from(readSourceF32(t))).toEqual(Array.from(readSourceF32(s)));
    }
  });

  (native ? it : it.skip)('the native cpu decoder gives BlockForward\'s logits (classic and rope_parameters configs, the nested checkpoint, untied MHA), and so does its workspace', async () => {
    const ids = Int32Array.from({ length: 20 }, (_, i) => (i * 37 + 5) % 250);
    const cases: Array<[string, TinyModelOptions]> = [
      ['classic', TINY],
      ['parameters', { ...TINY, ropeForm: 'parameters', seed: 12 }],
      ['nested', { ...TINY, seed: 13, gemma3: { multimodal: 'model.language_model' } }],
      ['untied-mha', { ...TINY, seed: 14, numKvHeads: 4, tieWordEmbeddings: false, gemma3: { layerTypes: ['full_attention', 'sliding_attention', 'sliding_attention'] } }],
    ];
    for (const [name, opts] of cases) {
      const dir = path.join(tmp.dir, `fwd-${name}`);
      writeTinyModel(dir, opts);
      expect({ name, err: await cpuVsBlockForward(native!, dir, ids) }).toEqual({ name, err: expect.closeTo(0, 4) });  // 2e-6 of logits up to 2.4 (cpu, 2026-11-27)
    }
    // and the workspace of one
    const ws = path.join(tmp.dir, 'fwd-ws');
    await convert('gemma3', path.join(tmp.dir, 'fwd-classic'), { dstPath: ws });
    expect(maxAbsDiff(await cpuLogits(native!, ws, ids), await cpuLogits(native!, path.join(tmp.dir, 'fwd-classic'), ids))).toBeLessThan(1e-5);
    expect(fs.existsSync(path.join(ws, 'lmfleet.json'))).toBe(true);
  });
});
