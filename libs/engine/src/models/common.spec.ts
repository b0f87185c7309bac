import * as fs from 'node:fs';
import * as path from 'node:path';
import { ModelFormatError, UnsupportedArchitectureError } from '../errors';
import { makeTempDir } from '../testing/tmp-dir';
import { writeTinyModel } from '../testing/tiny-model';
import { parseRope } from './common';
import { llama } from './llama';
import { loadModelSpec, loadModelWeights } from './load';
import { LLAMA2_CONFIG, F } from './testing-configs';

describe('config parsing shared by every architecture', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  beforeEach(() => (tmp = makeTempDir()));
  afterEach(() => tmp.cleanup());

  it('parses linear and dynamic scaling, the old `type` key, and the rope_parameters form', () => {
    expect(parseRope({ rope_theta: 1e4, rope_scaling: { type: 'linear', factor: 2 } }, 128, F)).toEqual({ type: 'linear', theta: 1e4, factor: 2 });
    expect(parseRope({ rope_scaling: { rope_type: 'dynamic', factor: 4 } }, 128, F)).toEqual({ type: 'dynamic', theta: 1e4, factor: 4 });
    expect(parseRope({ rope_parameters: { rope_theta: 1e6, rope_type: 'default' } }, 64, F)).toEqual({ type: 'default', theta: 1e6 });
    expect(parseRope({ rope_parameters: { rope_theta: 5e5, rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } }, 64, F))
      .toMatchObject({ type: 'llama3', theta: 5e5, factor: 8, originalMaxPositionEmbeddings: 8192 });
    expect(parseRope({ rope_parameters: { full_attention: { rope_theta: 1e6, rope_type: 'linear', factor: 2 } } }, 64, F))
      .toEqual({ type: 'linear', theta: 1e6, factor: 2 });
    expect(parseRope({ rope_theta: 1e4, partial_rotary_factor: 0.5 }, 64, F)).toEqual({ type: 'default', theta: 1e4, rotaryDim: 32 });
    expect(() => parseRope({ rope_scaling: { type: 'ntk-by-parts', factor: 4 } }, 64, F)).toThrow(/unsupported rope scaling type "ntk-by-parts"/);
    expect(() => parseRope({ rope_scaling: { type: 'linear' } }, 64, F)).toThrow(ModelFormatError);
    expect(() => parseRope({ rope_scaling: { rope_type: 'llama3', factor: 8 } }, 64, F)).toThrow(/low_freq_factor/);
  });

  it('parses YaRN as Qwen2.5 / Qwen3 document it, with transformers\' defaults', () => {
    // { factor 4, original 32768 } on a 40960 context: attention factor 0.1 ln 4 + 1, betas 32 / 1, truncated band
    const qwen = { max_position_embeddings: 40960, rope_theta: 1e6, rope_scaling: { rope_type: 'yarn', factor: 4.0, original_max_position_embeddings: 32768 } };
    expect(parseRope(qwen, 128, F)).toEqual({
      type: 'yarn', theta: 1e6, factor: 4, originalMaxPositionEmbeddings: 32768, attentionFactor: 0.1 * Math.log(4) + 1, betaFast: 32, betaSlow: 1,
    });
    // no original: max_position_embeddings; an explicit attention factor; DeepSeek's mscale / mscale_all_dim ratio
    expect(parseRope({ max_position_embeddings: 4096, rope_scaling: { type: 'yarn', factor: 2, attention_factor: 1.5, beta_fast: 16, truncate: false } }, 64, F))
      .toMatchObject({ originalMaxPositionEmbeddings: 4096, attentionFactor: 1.5, betaFast: 16, truncate: false });
    const ms = parseRope({ max_position_embeddings: 4096, rope_scaling: { type: 'yarn', factor: 40, mscale: 1, mscale_all_dim: 0.707, original_max_position_embeddings: 4096 } }, 64, F);
    expect(ms.attentionFactor).toBeCloseTo((0.1 * Math.log(40) + 1) / (0.1 * 0.707 * Math.log(40) + 1), 12);
    // factor missing: the context's extension over the original
    expect(parseRope({ max_position_embeddings: 8192, rope_parameters: { rope_type: 'yarn', rope_theta: 1e4, original_max_position_embeddings: 2048 } }, 64, F).factor).toBe(4);
    expect(parseRope({ max_position_embeddings: 8192, rope_scaling: { type: 'yarn', factor: 4 }, partial_rotary_factor: 0.5 }, 64, F))
      .toMatchObject({ type: 'yarn', rotaryDim: 32 });
  });

  it('reports missing fields and bad head counts with the file name', () => {
    const { hidden_size: _h, ...noHidden } = LLAMA2_CONFIG;
    expect(() => llama.parseConfig(noHidden, '/m/config.json')).toThrow(/config.json lacks "hidden_size".*file: \/m\/config.json/);
    expect(() => llama.parseConfig({ ...LLAMA2_CONFIG, num_key_value_heads: 5 }, F)).toThrow(/multiple of num_key_value_heads/);
    expect(() => llama.parseConfig({ ...LLAMA2_CONFIG, hidden_act: 'gelu' }, F)).toThrow(/hidden_act/);
    expect(() => llama.parseConfig({ ...LLAMA2_CONFIG, mlp_bias: true }, F)).toThrow(/mlp_bias/);
  });

  it('parses AutoAWQ quantization_config and refuses other methods', () => {
    const q = llama.parseConfig({ ...LLAMA2_CONFIG, quantization_config: { quant_method: 'awq', bits: 4, group_size: 128, version: 'gemm', zero_point: true } }, F);
    expect(q.quant).toEqual({ method: 'awq', bits: 4, groupSize: 128 });
    expect(() => llama.parseConfig({ ...LLAMA2_CONFIG, quantization_config: { quant_method: 'gptq', bits: 4 } }, F)).toThrow(/unsupported quantization method "gptq"/);
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
});
