import * as fs from 'node:fs';
import * as path from 'node:path';
import { readSafetensorsDir, writeSafetensors, type WritableTensor } from '../io/safetensors';
import { sharedModelDir } from '../testing/shared-model';
import { makeTempDir } from '../testing/tmp-dir';
import { writeTinyModel } from '../testing/tiny-model';
import { F } from './testing-configs';
import { loadModelSpec, loadModelWeights } from './load';
import { qwen2 } from './qwen2';

describe('qwen2', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  beforeEach(() => (tmp = makeTempDir()));
  afterEach(() => tmp.cleanup());

  it('parses the shared Qwen2 config (rope_parameters form) with q/k/v bias', () => {
    const cfg = {
      architectures: ['Qwen2ForCausalLM'], dtype: 'float16', hidden_size: 384, intermediate_size: 1024, num_attention_heads: 6,
      num_hidden_layers: 6, num_key_value_heads: 2, rms_norm_eps: 1e-6, max_position_embeddings: 1024, vocab_size: 8192,
      rope_parameters: { rope_theta: 10000.0, rope_type: 'default' }, tie_word_embeddings: false, use_sliding_window: false,
    };
    const s = qwen2.parseConfig(cfg, F);
    expect(s).toMatchObject({ headDim: 64, numKvHeads: 2, qkvBias: true, oBias: false, rope: { type: 'default', theta: 10000 }, dtype: 'f16' });
    // use_sliding_window: the layers from max_window_layers on slide (transformers' rule; its default 28 leaves a
    // shallower model all full); without use_sliding_window the field is unused
    const n = Number(cfg.num_hidden_layers);
    expect(qwen2.parseConfig({ ...cfg, use_sliding_window: true, sliding_window: 256, max_window_layers: 1 }, F).layerWindows)
      .toEqual(Array.from({ length: n }, (_, i) => (i >= 1 ? 256 : 0)));
    expect(qwen2.parseConfig({ ...cfg, use_sliding_window: true, sliding_window: 256, max_window_layers: n }, F).layerWindows).toBeUndefined();
    expect(qwen2.parseConfig({ ...cfg, use_sliding_window: false, sliding_window: 256 }, F).layerWindows).toBeUndefined();
  });

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
