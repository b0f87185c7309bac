// Qwen3: config parsing, the weight map (q_norm / k_norm), and the per-head norm in every forward path (the native
// decoder, the TypeScript BlockForward, the native AWQ session through auto_awq). Parity with transformers itself is
// checked on the golden fixtures (test/fixtures/golden/qwen3*, engine.e2e.spec.ts and block-forward.spec.ts).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readSafetensorsDir, readTensorBytes, writeSafetensors, type WritableTensor } from '../io/safetensors';
import { f16BitsToF32, f32ToF16Bits } from '../io/half';
import { BlockForward } from '../quant/block-forward';
import { autoAwq } from '../quant/awq';
import { cpuLogits, nativeCpuOrReport } from '../testing/native-cpu';
import { makeTempDir } from '../testing/tmp-dir';
import { writeTinyModel } from '../testing/tiny-model';
import { F } from './testing-configs';
import { loadModelSpec, loadModelWeights } from './load';
import { qwen3 } from './qwen3';

const native = nativeCpuOrReport('qwen3');

// Qwen3-0.6B's shape class: q is numHeads × headDim = 2048 wide over a 1024 hidden size
const CFG = {
  architectures: ['Qwen3ForCausalLM'], model_type: 'qwen3', torch_dtype: 'bfloat16', hidden_size: 1024, intermediate_size: 3072,
  num_attention_heads: 16, num_key_value_heads: 8, head_dim: 128, num_hidden_layers: 28, rms_norm_eps: 1e-6,
  max_position_embeddings: 40960, vocab_size: 151936, rope_theta: 1000000, rope_scaling: null, tie_word_embeddings: true,
  attention_bias: false, use_sliding_window: false, sliding_window: null, max_window_layers: 28, hidden_act: 'silu',
};

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Rewrites the model's safetensors with `edit` applied to the f32 values of the tensors it names. */
function editTensors(dir: string, edit: (name: string, v: Float32Array, shape: number[]) => Float32Array | undefined): void {
  const idx = readSafetensorsDir(dir);
  const out: WritableTensor[] = [];
  for (const t of idx.tensors.values()) {
    const bytes = readTensorBytes(t);
    const u16 = new Uint16Array(bytes.slice().buffer);
    const v = Float32Array.from(u16, (b) => f16BitsToF32(b));
    const e = edit(t.name, v, t.shape);
    out.push({ name: t.name, dtype: t.dtype, shape: t.shape, data: e ? new Uint8Array(Uint16Array.from(e, (x) => f32ToF16Bits(x)).buffer) : bytes });
  }
  fs.rmSync(path.join(dir, 'model.safetensors'));
  writeSafetensors(path.join(dir, 'model.safetensors'), out);
}

describe('qwen3', () => {
  const tmp = makeTempDir('lmfleet-qwen3-');
  afterAll(() => tmp.cleanup());

  it('parses Qwen3 config.json: explicit head_dim, per-head q/k norms, no biases; sliding-window layers', () => {
    const s = qwen3.parseConfig(CFG, F);
    expect(s).toMatchObject({
      arch: 'qwen3', headDim: 128, numHeads: 16, numKvHeads: 8, hiddenSize: 1024, qkNorm: true, qkvBias: false, oBias: false,
      tieWordEmbeddings: true, dtype: 'bf16', rope: { type: 'default', theta: 1000000 },
    });
    expect(qwen3.parseConfig({ ...CFG, attention_bias: true }, F)).toMatchObject({ qkvBias: true, oBias: true });
    // the layers from max_window_layers on slide (transformers' rule): none of CFG's 28 at its 28, the last 8 at 20
    const n = Number(CFG.num_hidden_layers);
    expect(qwen3.parseConfig({ ...CFG, use_sliding_window: true, sliding_window: 4096 }, F).layerWindows).toBeUndefined();
    expect(qwen3.parseConfig({ ...CFG, use_sliding_window: true, sliding_window: 4096, max_window_layers: 20 }, F).layerWindows)
      .toEqual(Array.from({ length: n }, (_, i) => (i >= 20 ? 4096 : 0)));
  });

  it('maps q_norm / k_norm to canonical [headDim] tensors; a checkpoint without them is refused by tensor name', () => {
    const dir = path.join(tmp.dir, 'map');
    writeTinyModel(dir, { arch: 'qwen3', hiddenSize: 64, numHeads: 4, numKvHeads: 2, headDim: 32, numLayers: 2 });
    const loaded = loadModelSpec(dir);
    expect(loaded.arch.key).toBe('qwen3');
    const { tensors } = loadModelWeights(loaded);
    const byName = new Map(tensors.map((t) => [t.name, t]));
    expect(byName.get('layers.1.q_norm.weight')).toMatchObject({ shape: [32] });
    expect(byName.get('layers.0.k_norm.weight')).toMatchObject({ shape: [32] });
    expect(byName.get('layers.0.q.weight')).toMatchObject({ shape: [128, 64] });
    expect(byName.get('layers.0.o.weight')).toMatchObject({ shape: [64, 128] });
    expect(byName.has('layers.0.q.bias')).toBe(false);
    // the same directory without layer 1's k_norm
    const idx = readSafetensorsDir(dir);
    const kept: WritableTensor[] = [...idx.tensors.values()]
      .filter((t) => t.name !== 'model.layers.1.self_attn.k_norm.weight')
      .map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: readTensorBytes(t) }));
    fs.rmSync(path.join(dir, 'model.safetensors'));
    writeSafetensors(path.join(dir, 'model.safetensors'), kept);
    expect(() => loadModelWeights(loadModelSpec(dir))).toThrow(/missing tensor.*model\.layers\.1\.self_attn\.k_norm\.weight/);
  });

  (native ? it : it.skip)('the per-head norm is applied: the native decoder and BlockForward agree, and scaling a q or k head changes nothing', async () => {
    const dir = path.join(tmp.dir, 'fwd');
    writeTinyModel(dir, { arch: 'qwen3', hiddenSize: 64, numHeads: 4, numKvHeads: 2, headDim: 32, numLayers: 2, intermediateSize: 96, seed: 3 });
    const ids = Int32Array.from({ length: 14 }, (_, i) => (i * 37 + 5) % 200);
    const logitsOf = (d: string) => cpuLogits(native!, d, ids);
    const ref = await logitsOf(dir);
    const { fwd } = BlockForward.fromDir(native!, dir);
    expect(maxAbsDiff(await fwd.forward(ids), ref)).toBeLessThan(2e-3);
    // RMSNorm per head makes q and k invariant to a positive scale of any one head's projection rows (head 1 of q x3,
    // kv head 0 of k x0.25): with the norm applied the logits stay (up to f16 rounding of the scaled weights); without
    // it, attention would change.
    const scaled = path.join(tmp.dir, 'fwd-scaled');
    fs.cpSync(dir, scaled, { recursive: true });
    editTensors(scaled, (name, v) => {
      const hd = 32;
      const m = /^model\.layers\.\d+\.self_attn\.(q|k)_proj\.weight$/.exec(name);
      if (!m) return undefined;
      const [head, f] = m[1] === 'q' ? [1, 3] : [0, 0.25];
      const r = Float32Array.from(v);
      for (let i = head * hd * 64; i < (head + 1) * hd * 64; i++) r[i] *= f;
      return r;
    });
    const after = await logitsOf(scaled);
    expect(maxAbsDiff(after, ref)).toBeLessThan(2e-2);
    // the same scaling with the norms' weights set to 1 / that scale does change the logits: the check above has teeth
    const unnormed = path.join(tmp.dir, 'fwd-unnormed');
    fs.cpSync(scaled, unnormed, { recursive: true });
    editTensors(unnormed, (name, v) => (/self_attn\.q_norm\.weight$/.test(name) ? Float32Array.from(v, (x) => x * 3) : undefined));
    expect(maxAbsDiff(await logitsOf(unnormed), ref)).toBeGreaterThan(0.1);
  });

  (native ? it : it.skip)('auto_awq (native session, scale + clip search) quantizes a Qwen3 model the engine then loads, close to fp16', async () => {
    const src = path.join(tmp.dir, 'awq-src');
    writeTinyModel(src, { arch: 'qwen3', hiddenSize: 64, numHeads: 4, numKvHeads: 2, headDim: 32, numLayers: 2, intermediateSize: 128, seed: 7 });
    const ds = path.join(tmp.dir, 'calib.txt');
    fs.writeFileSync(ds, Array.from({ length: 40 }, (_, i) => `line ${i}: the cache holds ${i * 13} blocks and the scheduler runs ${i * 7} steps.`).join('\n'));
    const out = path.join(tmp.dir, 'awq-out');
    await autoAwq(src, { workDir: path.join(tmp.dir, 'awq-work'), dstDir: out, wGroupSize: 32, calibDataset: ds, calibSamples: 4, calibSeqlen: 48, native: native! });
    const cfg = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
    expect(cfg.architectures).toEqual(['Qwen3ForCausalLM']);
    expect(cfg.quantization_config).toMatchObject({ quant_method: 'awq', bits: 4, group_size: 32 });
    const names = [...readSafetensorsDir(out).tensors.keys()];
    expect(names).toContain('model.layers.0.self_attn.q_norm.weight');
    expect(names).toContain('model.layers.1.self_attn.q_proj.qweight');
    const ids = Int32Array.from({ length: 12 }, (_, i) => (i * 29 + 3) % 200);
    const logits = [await cpuLogits(native!, src, ids), await cpuLogits(native!, out, ids)];
    // 4-bit g32 on random weights moves the logits, but not far (autoawq.spec.ts's sanity bound; the ppl specs measure quality)
    let num = 0;
    let den = 0;
    for (let i = 0; i < logits[0].length; i++) {
      num += (logits[1][i] - logits[0][i]) ** 2;
      den += logits[0][i] ** 2;
    }
    console.log(`qwen3 auto_awq g32: relative squared logit error ${(num / den).toExponential(2)}`);
    expect(num / den).toBeLessThan(0.15);
    expect(num).toBeGreaterThan(0);
  });
});
