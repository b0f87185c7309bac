// Gemma 1: config parsing (the Hub's forms, GemmaConfig's defaults), the activation rule of current transformers
// (hidden_act; "gelu" refused), the weight map ((1 + w) norms, post_attention_layernorm in front of the MLP), and the
// native decoder against BlockForward's TypeScript forward (itself checked against an f64 reference in
// quant/block-forward.spec.ts).
import * as path from 'node:path';
import { decodeHalf } from '../io/half';
import { readSafetensorsDir, readTensorBytes } from '../io/safetensors';
import { cpuLogits, cpuVsBlockForward, nativeCpuOrReport } from '../testing/native-cpu';
import { maxAbsDiff } from '../testing/nmse';
import { makeTempDir } from '../testing/tmp-dir';
import { writeTinyModel, type TinyModelOptions } from '../testing/tiny-model';
import { convert } from '../workspace/convert';
import { gemma } from './gemma';
import { loadModelSpec, loadModelWeights } from './load';
import { readSourceF32 } from './source-bytes';
import { toNativeArchConfig } from './spec';
import { F, GEMMA_2B_CONFIG, GEMMA_7B_CONFIG } from './testing-configs';

const native = nativeCpuOrReport('gemma');

// MQA with head_dim 32 over hidden 64 (q 128 wide), as gemma-2b's 8 heads of 256 on one KV head over 2048
const TINY: TinyModelOptions = { arch: 'gemma', hiddenSize: 64, numHeads: 4, numKvHeads: 1, headDim: 32, numLayers: 2, intermediateSize: 128, seed: 51 };

describe('gemma', () => {
  const tmp = makeTempDir('lmfleet-gemma-');
  afterAll(() => tmp.cleanup());

  it('parses a gemma-1.1-2b-it config: MQA, head_dim 256, gelu_tanh, no sandwich norms, no window, scale 1/sqrt(head_dim), bf16 embedding scale', () => {
    const s = gemma.parseConfig(GEMMA_2B_CONFIG, F);
    expect(s).toMatchObject({
      arch: 'gemma', hfArchitecture: 'GemmaForCausalLM', modelType: 'gemma', dtype: 'bf16', hiddenSize: 2048, headDim: 256, numHeads: 8,
      numKvHeads: 1, numLayers: 18, hiddenAct: 'gelu_tanh', tieWordEmbeddings: true, qkvBias: false, oBias: false,
      embedScale: 45.25,  // sqrt(2048) = 45.25 in bf16 (embed_scale.to(weight.dtype))
      rope: { type: 'default', theta: 1e4 },
    });
    expect([s.sandwichNorms, s.qkNorm, s.layerWindows, s.ropeLocal, s.rope.attentionScale, s.attnLogitSoftcap, s.finalLogitSoftcap]).toEqual(Array(7).fill(undefined));
    const n = toNativeArchConfig(s);
    expect(n).toMatchObject({ hiddenAct: 'gelu_tanh', embedScale: 45.25, headDim: 256 });
    for (const k of ['sandwichNorms', 'qkNorm', 'layerWindows', 'attnLogitSoftcap', 'finalLogitSoftcap']) expect(n).not.toHaveProperty(k);
    // gemma-7b with the tanh GELU named: q 16 x 256 = 4096 wide over hidden 3072; sqrt(3072) = 55.43 -> 55.5 in bf16, 55.4375 in f16
    const g7 = { ...GEMMA_7B_CONFIG, hidden_act: 'gelu_pytorch_tanh' };
    expect(gemma.parseConfig(g7, F)).toMatchObject({ hiddenSize: 3072, numHeads: 16, numKvHeads: 16, headDim: 256, embedScale: 55.5 });
    expect(gemma.parseConfig({ ...g7, torch_dtype: 'float16' }, F).embedScale).toBe(55.4375);
    // transformers 5's rope_parameters form
    const { rope_theta: _t, rope_scaling: _s, ...rest } = GEMMA_2B_CONFIG;
    expect(toNativeArchConfig(gemma.parseConfig({ ...rest, rope_parameters: { rope_type: 'default', rope_theta: 10000.0 } }, F))).toEqual(n);
  });

  it('GemmaConfig\'s defaults fill what a config leaves out (gemma-7b\'s shape, hidden_act gelu_pytorch_tanh)', () => {
    expect(gemma.parseConfig({ architectures: ['GemmaForCausalLM'] }, F)).toMatchObject({
      vocabSize: 256000, hiddenSize: 3072, intermediateSize: 24576, numLayers: 28, numHeads: 16, numKvHeads: 16, headDim: 256,
      maxPositionEmbeddings: 8192, tieWordEmbeddings: true, hiddenAct: 'gelu_tanh', dtype: 'f16', embedScale: 55.4375,
    });
  });

  it('follows current transformers\' activation rule: hidden_act decides, hidden_activation is ignored, "gelu" is the exact (erf) GELU', () => {
    // gemma-7b / gemma-2b as first released: hidden_act "gelu" is the exact GELU in transformers' GemmaMLP
    expect(gemma.parseConfig(GEMMA_7B_CONFIG, F).hiddenAct).toBe('gelu');
    // hidden_activation beside it does not change what transformers computes
    expect(gemma.parseConfig({ ...GEMMA_7B_CONFIG, hidden_activation: 'gelu_pytorch_tanh' }, F).hiddenAct).toBe('gelu');
    expect(() => gemma.parseConfig({ ...GEMMA_7B_CONFIG, hidden_act: 'relu', hidden_activation: 'gelu_pytorch_tanh' }, F))
      .toThrow(/unsupported hidden_act \(transformers' GemmaMLP applies hidden_act; hidden_activation "gelu_pytorch_tanh" is ignored\)/);
    expect(gemma.parseConfig({ ...GEMMA_2B_CONFIG, hidden_activation: 'gelu' }, F).hiddenAct).toBe('gelu_tanh');
    expect(gemma.parseConfig({ ...GEMMA_7B_CONFIG, hidden_act: 'gelu_tanh' }, F).hiddenAct).toBe('gelu_tanh');
    expect(() => gemma.parseConfig({ ...GEMMA_7B_CONFIG, hidden_act: 'silu' }, F)).toThrow(/unsupported hidden_act/);
    expect(() => gemma.parseConfig({ ...GEMMA_2B_CONFIG, use_bidirectional_attention: true }, F)).toThrow(/use_bidirectional_attention is not supported/);
  });

  it('maps input_layernorm and post_attention_layernorm (the norm in front of the MLP) with add 1, no sandwich norms; AWQ groups as AutoAWQ\'s Gemma', () => {
    const dir = path.join(tmp.dir, 'map');
    writeTinyModel(dir, TINY);
    const loaded = loadModelSpec(dir);
    const tensors = loadModelWeights(loaded).tensors;
    const names = tensors.map((t) => t.name);
    expect(names.filter((n) => /norm\.weight$/.test(n)).sort()).toEqual(['layers.0.input_norm.weight', 'layers.0.post_norm.weight', 'layers.1.input_norm.weight', 'layers.1.post_norm.weight', 'norm.weight']);
    expect(tensors.filter((t) => t.add !== undefined).every((t) => t.add === 1 && /norm\.weight$/.test(t.name))).toBe(true);
    expect(tensors.filter((t) => t.add === 1).length).toBe(5);
    expect(names).not.toContain('lm_head.weight');  // tied
    expect(tensors.find((t) => t.name === 'layers.1.q.weight')?.shape).toEqual([128, 64]);
    expect(tensors.find((t) => t.name === 'layers.1.k.weight')?.shape).toEqual([32, 64]);
    const w = decodeHalf(readTensorBytes(readSafetensorsDir(loaded.dir).tensors.get('model.layers.1.post_attention_layernorm.weight')!), 'f16');
    expect(Array.from(readSourceF32(tensors.find((t) => t.name === 'layers.1.post_norm.weight')!))).toEqual(Array.from(w, (x) => Math.fround(1 + x)));
    expect(loaded.arch.awqScaleGroups(loaded.spec, 1).map((g) => `${g.prev}->${g.linears.map((l) => l.split('.').pop()).join(',')}`)).toEqual([
      'model.layers.1.input_layernorm->q_proj,k_proj,v_proj', 'model.layers.1.self_attn.v_proj->o_proj',
      'model.layers.1.post_attention_layernorm->gate_proj,up_proj', 'model.layers.1.mlp.up_proj->down_proj',
    ]);
    expect(loaded.arch.awqScaleGroups(loaded.spec, 1)[1].kvGroupRepeat).toBe(4);
  });

  (native ? it : it.skip)('the native cpu decoder gives BlockForward\'s logits (classic and rope_parameters configs, untied GQA, exact GELU), and so does its workspace', async () => {
    const ids = Int32Array.from({ length: 20 }, (_, i) => (i * 37 + 5) % 250);
    const cases: Array<[string, TinyModelOptions]> = [
      ['classic', TINY],
      ['parameters', { ...TINY, ropeForm: 'parameters', seed: 52 }],
      ['untied-gqa', { ...TINY, seed: 53, numKvHeads: 2, headDim: 16, tieWordEmbeddings: false }],
      ['exact-gelu', { ...TINY, seed: 54, gemmaHiddenAct: 'gelu' }],
    ];
    for (const [name, opts] of cases) {
      const dir = path.join(tmp.dir, `fwd-${name}`);
      writeTinyModel(dir, opts);
      expect({ name, err: await cpuVsBlockForward(native!, dir, ids) }).toEqual({ name, err: expect.closeTo(0, 4) });
    }
    const ws = path.join(tmp.dir, 'fwd-ws');
    await convert('gemma', path.join(tmp.dir, 'fwd-classic'), { dstPath: ws });
    expect(maxAbsDiff(await cpuLogits(native!, ws, ids), await cpuLogits(native!, path.join(tmp.dir, 'fwd-classic'), ids))).toBeLessThan(1e-5);
  });
});
