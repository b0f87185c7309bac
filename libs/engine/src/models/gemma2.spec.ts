// Gemma 2: config parsing (the Hub's form, transformers 5's, Gemma2Config's defaults), the soft-capping fields into the
// native config, refusals, the weight map (sandwich norms, each loading as 1 + w), the workspace, and the native decoder
// against BlockForward's TypeScript forward (itself checked against an f64 reference in quant/block-forward.spec.ts).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decodeHalf } from '../io/half';
import { readSafetensorsDir, readTensorBytes } from '../io/safetensors';
import { nativeSessionRefusal } from '../quant/awq-session';
import { cpuLogits, cpuVsBlockForward, nativeCpuOrReport } from '../testing/native-cpu';
import { maxAbsDiff } from '../testing/nmse';
import { makeTempDir } from '../testing/tmp-dir';
import { writeTinyModel, type TinyModelOptions } from '../testing/tiny-model';
import { convert } from '../workspace/convert';
import { loadWorkspace } from '../workspace/load';
import { gemma2 } from './gemma2';
import { loadModelSpec, loadModelWeights } from './load';
import { readSourceF32 } from './source-bytes';
import { toNativeArchConfig } from './spec';
import { F, GEMMA2_27B_CONFIG, GEMMA2_9B_CONFIG } from './testing-configs';

const native = nativeCpuOrReport('gemma2');

// layers 0 and 2 slide (window 4), layer 1 is global; attention scores capped at 0.5, logits at 1.5 (tiny-model.ts)
const TINY: TinyModelOptions = { arch: 'gemma2', hiddenSize: 64, numHeads: 4, numKvHeads: 2, numLayers: 3, intermediateSize: 128, seed: 41 };
const NORMS = ['input_norm', 'attn_out_norm', 'post_norm', 'mlp_out_norm'];
const alternating = (n: number, w: number) => Array.from({ length: n }, (_, i) => (i % 2 ? 0 : w));

describe('gemma2', () => {
  const tmp = makeTempDir('lmfleet-gemma2-');
  afterAll(() => tmp.cleanup());

  it('parses gemma-2-9b-it: sandwich norms without q/k norms, one rope, softcaps 50 / 30, every other layer sliding, bf16 embedding scale', () => {
    const s = gemma2.parseConfig(GEMMA2_9B_CONFIG, F);
    expect(s).toMatchObject({
      arch: 'gemma2', hfArchitecture: 'Gemma2ForCausalLM', modelType: 'gemma2', dtype: 'bf16', hiddenSize: 3584, headDim: 256, numHeads: 16,
      numKvHeads: 8, hiddenAct: 'gelu_tanh', sandwichNorms: true, tieWordEmbeddings: true, qkvBias: false, oBias: false,
      // sqrt(3584) = 59.87 in bf16 (transformers: embed_scale.to(weight.dtype))
      embedScale: 59.75, attnLogitSoftcap: 50, finalLogitSoftcap: 30, layerWindows: alternating(42, 4096),
      rope: { type: 'default', theta: 1e4, attentionScale: 1 / 16 },
    });
    expect([s.qkNorm, s.ropeLocal]).toEqual([undefined, undefined]);
    expect(toNativeArchConfig(s)).toMatchObject({ hiddenAct: 'gelu_tanh', embedScale: 59.75, sandwichNorms: true, attnLogitSoftcap: 50, finalLogitSoftcap: 30 });
    // 27b: the softmax scale is query_pre_attn_scalar 144's, not head_dim 128's; sqrt(4608) = 67.88 -> 68 in bf16
    expect(gemma2.parseConfig(GEMMA2_27B_CONFIG, F)).toMatchObject({ headDim: 128, embedScale: 68, rope: { attentionScale: 1 / 12 } });
    expect(gemma2.parseConfig({ ...GEMMA2_9B_CONFIG, torch_dtype: 'float16' }, F).embedScale).toBe(59.875);
    // calibrate / auto_awq: the native layer session runs none of it; the attention soft-capping alone would refuse it too
    expect(nativeSessionRefusal(s)).toBe('a model with sandwich norms, a gelu_tanh MLP, attention logit soft-capping');
    expect(nativeSessionRefusal({ ...s, sandwichNorms: undefined, hiddenAct: 'silu' })).toBe('a model with attention logit soft-capping');
    expect(nativeSessionRefusal({ ...s, sandwichNorms: undefined, hiddenAct: 'silu', attnLogitSoftcap: undefined })).toBeUndefined();
  });

  it('transformers 5\'s form (layer_types, rope_parameters, dtype, no hidden_act) gives the same spec; Gemma2Config\'s defaults fill what a config leaves out', () => {
    const { hidden_act: _a, rope_theta: _t, torch_dtype: _d, ...rest } = GEMMA2_9B_CONFIG;
    const v5 = {
      ...rest, dtype: 'bfloat16', use_bidirectional_attention: null, rope_parameters: { rope_type: 'default', rope_theta: 10000.0 },
      layer_types: Array.from({ length: 42 }, (_, i) => ((i + 1) % 2 ? 'sliding_attention' : 'full_attention')),
    };
    expect(toNativeArchConfig(gemma2.parseConfig(v5, F))).toEqual(toNativeArchConfig(gemma2.parseConfig(GEMMA2_9B_CONFIG, F)));
    // gemma-2-2b's shape, head_dim 256 (not hidden / heads = 288), softcaps 50 / 30, window 4096, scale 256^-0.5
    expect(gemma2.parseConfig({ architectures: ['Gemma2ForCausalLM'] }, F)).toMatchObject({
      vocabSize: 256000, hiddenSize: 2304, intermediateSize: 9216, numLayers: 26, numHeads: 8, numKvHeads: 4, headDim: 256, maxPositionEmbeddings: 8192,
      tieWordEmbeddings: true, embedScale: 48, attnLogitSoftcap: 50, finalLogitSoftcap: 30, layerWindows: alternating(26, 4096),
      rope: { type: 'default', theta: 1e4, attentionScale: 1 / 16 },
    });
  });

  it('softcaps and windows: null turns each off; layer_types picks the sliding layers; hidden_act is ignored as transformers ignores it', () => {
    const off = gemma2.parseConfig({ ...GEMMA2_9B_CONFIG, attn_logit_softcapping: null, final_logit_softcapping: null }, F);
    expect([off.attnLogitSoftcap, off.finalLogitSoftcap]).toEqual([undefined, undefined]);
    expect(toNativeArchConfig(off)).not.toHaveProperty('attnLogitSoftcap');
    expect(toNativeArchConfig(off)).not.toHaveProperty('finalLogitSoftcap');
    const attnOnly = gemma2.parseConfig({ ...GEMMA2_9B_CONFIG, final_logit_softcapping: null }, F);
    expect([attnOnly.attnLogitSoftcap, attnOnly.finalLogitSoftcap]).toEqual([50, undefined]);
    const small = { ...GEMMA2_9B_CONFIG, num_hidden_layers: 5 };
    expect(gemma2.parseConfig(small, F).layerWindows).toEqual([4096, 0, 4096, 0, 4096]);
    expect(gemma2.parseConfig({ ...small, sliding_window: null }, F).layerWindows).toBeUndefined();
    const types = ['full_attention', 'sliding_attention', 'sliding_attention', 'full_attention', 'sliding_attention'];
    expect(gemma2.parseConfig({ ...small, layer_types: types, sliding_window: 8 }, F).layerWindows).toEqual([0, 8, 8, 0, 8]);
    expect(gemma2.parseConfig({ ...small, layer_types: types.map(() => 'full_attention') }, F).layerWindows).toBeUndefined();
    // Gemma2MLP reads hidden_activation only: hidden_act "gelu" beside it (or alone) changes nothing
    expect(gemma2.parseConfig({ ...GEMMA2_9B_CONFIG, hidden_act: 'gelu' }, F).hiddenAct).toBe('gelu_tanh');
    const { hidden_activation: _, ...noActivation } = GEMMA2_9B_CONFIG;
    expect(gemma2.parseConfig({ ...noActivation, hidden_act: 'gelu' }, F).hiddenAct).toBe('gelu_tanh');
  });

  it('refuses other activations, bad softcaps, bidirectional attention and a wrong layer_types, naming the field', () => {
    expect(gemma2.parseConfig({ ...GEMMA2_9B_CONFIG, hidden_activation: 'gelu' }, F).hiddenAct).toBe('gelu');  // (exact, as ACT2FN)
    expect(() => gemma2.parseConfig({ ...GEMMA2_9B_CONFIG, hidden_activation: 'relu' }, F)).toThrow(/unsupported hidden_activation.*"relu"/);
    expect(() => gemma2.parseConfig({ ...GEMMA2_9B_CONFIG, hidden_activation: 'silu' }, F)).toThrow(/unsupported hidden_activation/);
    for (const bad of [0, -50, '50', Infinity]) {
      expect(() => gemma2.parseConfig({ ...GEMMA2_9B_CONFIG, attn_logit_softcapping: bad }, F)).toThrow(/attn_logit_softcapping must be a positive number or null/);
      expect(() => gemma2.parseConfig({ ...GEMMA2_9B_CONFIG, final_logit_softcapping: bad }, F)).toThrow(/final_logit_softcapping must be a positive number or null/);
    }
    expect(() => gemma2.parseConfig({ ...GEMMA2_9B_CONFIG, use_bidirectional_attention: true }, F)).toThrow(/use_bidirectional_attention is not supported/);
    expect(() => gemma2.parseConfig({ ...GEMMA2_9B_CONFIG, layer_types: ['full_attention'] }, F)).toThrow(/layer_types must list one attention type per layer/);
    expect(() => gemma2.parseConfig({ ...GEMMA2_9B_CONFIG, query_pre_attn_scalar: 0 }, F)).toThrow(/query_pre_attn_scalar must be positive/);
    expect(() => gemma2.parseConfig({ ...GEMMA2_9B_CONFIG, sliding_window: 0 }, F)).toThrow(/sliding_window must be positive/);
  });

  it('maps the four norms of a layer (pre_feedforward_layernorm in front of the MLP), each with add 1; AWQ groups as AutoAWQ\'s Gemma 2', () => {
    const dir = path.join(tmp.dir, 'map');
    writeTinyModel(dir, TINY);
    const loaded = loadModelSpec(dir);
    const tensors = loadModelWeights(loaded).tensors;
    const names = tensors.map((t) => t.name);
    expect(names).not.toContain('lm_head.weight');  // tied
    expect(names.filter((n) => /q_norm|k_norm/.test(n))).toEqual([]);
    for (const n of NORMS) expect(tensors.find((t) => t.name === `layers.2.${n}.weight`)).toMatchObject({ add: 1, shape: [64] });
    expect(tensors.filter((t) => t.add !== undefined).map((t) => t.name).sort()).toEqual(names.filter((n) => /norm\.weight$/.test(n)).sort());
    expect(names.filter((n) => /norm\.weight$/.test(n)).length).toBe(4 * 3 + 1);
    const hf = readSafetensorsDir(loaded.dir).tensors;
    for (const [canon, name] of [['post_norm', 'pre_feedforward_layernorm'], ['attn_out_norm', 'post_attention_layernorm']]) {
      const w = decodeHalf(readTensorBytes(hf.get(`model.layers.1.${name}.weight`)!), 'f16');
      expect(Array.from(readSourceF32(tensors.find((t) => t.name === `layers.1.${canon}.weight`)!))).toEqual(Array.from(w, (x) => Math.fround(1 + x)));
    }
    expect(loaded.arch.awqScaleGroups(loaded.spec, 1).map((g) => `${g.prev}->${g.linears.map((l) => l.split('.').pop()).join(',')}`)).toEqual([
      'model.layers.1.input_layernorm->q_proj,k_proj,v_proj', 'model.layers.1.self_attn.v_proj->o_proj',
      'model.layers.1.pre_feedforward_layernorm->gate_proj,up_proj', 'model.layers.1.mlp.up_proj->down_proj',
    ]);
    expect(loaded.arch.limits).toMatch(/calibrate and auto_awq run in TypeScript/);
  });

  (native ? it : it.skip)('the native cpu decoder gives BlockForward\'s logits (classic and rope_parameters configs, untied MHA, softcaps off), and so does its workspace', async () => {
    const ids = Int32Array.from({ length: 20 }, (_, i) => (i * 37 + 5) % 250);
    const cases: Array<[string, TinyModelOptions]> = [
      ['classic', TINY],
      ['parameters', { ...TINY, ropeForm: 'parameters', seed: 42 }],
      ['untied-mha', { ...TINY, seed: 43, numKvHeads: 4, tieWordEmbeddings: false, gemma2: { layerTypes: ['full_attention', 'sliding_attention', 'sliding_attention'] } }],
      ['no-softcaps', { ...TINY, seed: 44, gemma2: { attnSoftcap: null, finalSoftcap: null } }],
    ];
    for (const [name, opts] of cases) {
      const dir = path.join(tmp.dir, `fwd-${name}`);
      writeTinyModel(dir, opts);
      expect({ name, err: await cpuVsBlockForward(native!, dir, ids) }).toEqual({ name, err: expect.closeTo(0, 4) });
    }
    // (BlockForward's caps bite at this size: quant/block-forward.spec.ts) and the final cap bounds the native logits
    const capped = await cpuLogits(native!, path.join(tmp.dir, 'fwd-classic'), ids);
    expect(Math.max(...capped.map(Math.abs))).toBeLessThanOrEqual(1.5);
    const ws = path.join(tmp.dir, 'fwd-ws');
    await convert('gemma2', path.join(tmp.dir, 'fwd-classic'), { dstPath: ws });
    expect(JSON.parse(fs.readFileSync(path.join(ws, 'lmfleet.json'), 'utf8')).native).toMatchObject({ attnLogitSoftcap: 0.5, finalLogitSoftcap: 1.5, sandwichNorms: true });
    expect(toNativeArchConfig(loadWorkspace(ws).loaded.spec)).toEqual(toNativeArchConfig(loadModelSpec(path.join(tmp.dir, 'fwd-classic')).spec));
    expect(maxAbsDiff(await cpuLogits(native!, ws, ids), capped)).toBeLessThan(1e-5);
  });
});
