// Phi-3: the Llama function with q/k/v and gate/up packed. A tiny Llama rewritten as Phi-3 (the same weights, packed)
// must give the same logits; auto_awq must write the packed layout back, and the engine must read it. Parity with
// transformers itself: the golden case test/fixtures/golden/phi3 (engine.e2e.spec.ts, block-forward.spec.ts).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readSafetensorsDir, readTensorBytes, writeSafetensors, type WritableTensor } from '../io/safetensors';
import { autoAwq } from '../quant/awq';
import { cpuLogits, nativeCpuOrReport } from '../testing/native-cpu';
import { makeTempDir } from '../testing/tmp-dir';
import { writeTinyModel } from '../testing/tiny-model';
import { F } from './testing-configs';
import { loadModelSpec, loadModelWeights } from './load';
import { phi3, splitColumnBlocks } from './phi3';

const native = nativeCpuOrReport('phi3');

const CFG = {
  architectures: ['Phi3ForCausalLM'], model_type: 'phi3', hidden_size: 3072, intermediate_size: 8192, num_attention_heads: 32,
  num_key_value_heads: 32, num_hidden_layers: 32, rms_norm_eps: 1e-5, max_position_embeddings: 4096, original_max_position_embeddings: 4096,
  vocab_size: 32064, rope_theta: 10000.0, rope_scaling: null, sliding_window: 2047, tie_word_embeddings: false, torch_dtype: 'bfloat16', hidden_act: 'silu',
};

/** Rewrites a tiny Llama directory as Phi3ForCausalLM: the same tensors with q/k/v and gate/up concatenated by rows. */
function asPhi3(src: string, dst: string, extra: Record<string, unknown> = {}): void {
  fs.mkdirSync(dst, { recursive: true });
  const idx = readSafetensorsDir(src);
  const bytes = (n: string) => readTensorBytes(idx.tensors.get(n)!);
  const cat = (names: string[]) => Buffer.concat(names.map((n) => Buffer.from(bytes(n))));
  const out: WritableTensor[] = [];
  for (const t of idx.tensors.values()) {
    const m = /^(model\.layers\.\d+)\.(self_attn\.(q|k|v)_proj|mlp\.(gate|up)_proj)\.weight$/.exec(t.name);
    if (!m) {
      out.push({ name: t.name, dtype: t.dtype, shape: t.shape, data: bytes(t.name) });
      continue;
    }
    const p = m[1];
    if (m[3] === 'q') {
      const parts = ['q', 'k', 'v'].map((x) => `${p}.self_attn.${x}_proj.weight`);
      const rows = parts.reduce((a, n) => a + idx.tensors.get(n)!.shape[0], 0);
      out.push({ name: `${p}.self_attn.qkv_proj.weight`, dtype: t.dtype, shape: [rows, t.shape[1]], data: new Uint8Array(cat(parts)) });
    } else if (m[4] === 'gate') {
      const parts = ['gate', 'up'].map((x) => `${p}.mlp.${x}_proj.weight`);
      out.push({ name: `${p}.mlp.gate_up_proj.weight`, dtype: t.dtype, shape: [2 * t.shape[0], t.shape[1]], data: new Uint8Array(cat(parts)) });
    }
  }
  writeSafetensors(path.join(dst, 'model.safetensors'), out);
  const cfg = JSON.parse(fs.readFileSync(path.join(src, 'config.json'), 'utf8'));
  fs.writeFileSync(path.join(dst, 'config.json'), JSON.stringify({ ...cfg, architectures: ['Phi3ForCausalLM'], model_type: 'phi3', ...extra }));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(src, f), path.join(dst, f));
}

const logitsOf = (dir: string, ids: Int32Array) => cpuLogits(native!, dir, ids);

describe('phi3', () => {
  const tmp = makeTempDir('lmfleet-phi3-');
  afterAll(() => tmp.cleanup());

  it('parses Phi-3 config.json (sliding_window on every layer) and LongRoPE (the 128k variants, Phi-3.5)', () => {
    expect(phi3.parseConfig(CFG, F)).toMatchObject({ arch: 'phi3', headDim: 96, numKvHeads: 32, qkvBias: false });
    expect(phi3.parseConfig(CFG, F).layerWindows).toEqual(new Array(CFG.num_hidden_layers).fill(2047));
    expect(phi3.parseConfig({ ...CFG, sliding_window: null }, F).layerWindows).toBeUndefined();
    // Phi-3-mini-128k's shape: 48 factors each, 131072 over an original 4096: attention factor sqrt(1 + ln 32 / ln 4096)
    const f = Array.from({ length: 48 }, (_, i) => 1 + i / 10);
    const long = { ...CFG, max_position_embeddings: 131072, sliding_window: 262144, rope_scaling: { type: 'longrope', short_factor: f, long_factor: f.map((x) => 2 * x) } };
    const s = phi3.parseConfig(long, F);
    expect(s.rope).toMatchObject({ type: 'longrope', originalMaxPositionEmbeddings: 4096, shortFactor: f });
    expect(s.rope.attentionFactor).toBeCloseTo(Math.sqrt(1 + Math.log(32) / Math.log(4096)), 12);
    expect(() => phi3.parseConfig({ ...long, rope_scaling: { ...long.rope_scaling, long_factor: [1, 2] } }, F)).toThrow(/must have 48 values/);
    // Phi-4-mini: a partial rotary head (0.75 of 96 = 72 dims): the factors cover its 36 pairs
    expect(() => phi3.parseConfig({ ...long, partial_rotary_factor: 0.75 }, F)).toThrow(/must have 36 values/);
    const f36 = f.slice(0, 36);
    expect(phi3.parseConfig({ ...long, partial_rotary_factor: 0.75, rope_scaling: { type: 'longrope', short_factor: f36, long_factor: f36 } }, F).rope)
      .toMatchObject({ type: 'longrope', rotaryDim: 72 });
  });

  (native ? it : it.skip)('longrope frequencies: short factors up to the original context, long ones beyond (the rope op)', async () => {
    const hd = 8;
    const short = [1, 2, 3, 4];
    const long = [5, 6, 7, 8];
    const ropeAt = async (seqLen: number, pos: number) => {
      const probe = new Float32Array(hd);
      for (let i = 0; i < hd / 2; i++) probe[i] = 1;
      const t = (a: Float32Array | Int32Array, shape: number[], dtype: 'f32' | 'i32') => ({ dtype, shape, data: new Uint8Array(a.buffer, a.byteOffset, a.byteLength) });
      const [r] = await native!.runOp('rope', [t(probe, [1, 1, hd], 'f32'), t(Int32Array.of(pos), [1], 'i32'), t(Float32Array.from(short), [4], 'f32'), t(Float32Array.from(long), [4], 'f32')],
        { type: 'longrope', theta: 10000, originalMaxPositionEmbeddings: 16, seqLen });
      return new Float32Array(r.data.slice().buffer);
    };
    for (const [seqLen, fac] of [[16, short], [17, long]] as const) {
      const out = await ropeAt(seqLen, 5);
      for (let i = 0; i < hd / 2; i++) {
        const inv = 1 / (fac[i] * 10000 ** ((2 * i) / hd));
        expect(out[i]).toBeCloseTo(Math.cos(5 * inv), 5);
        expect(out[i + hd / 2]).toBeCloseTo(Math.sin(5 * inv), 5);
      }
    }
  });

  it('splits packed column blocks row by row', () => {
    const b = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(splitColumnBlocks(b, 2, [2, 1, 3]).map((x) => Array.from(x))).toEqual([[1, 2, 7, 8], [3, 9], [4, 5, 6, 10, 11, 12]]);
  });

  (native ? it : it.skip)('maps qkv_proj / gate_up_proj to row ranges (no copies) and computes the Llama function', async () => {
    const ldir = path.join(tmp.dir, 'llama');
    const pdir = path.join(tmp.dir, 'phi3');
    writeTinyModel(ldir, { arch: 'llama', hiddenSize: 64, numHeads: 4, numKvHeads: 2, numLayers: 2, intermediateSize: 96, seed: 21 });
    asPhi3(ldir, pdir);
    const loaded = loadModelSpec(pdir);
    expect(loaded.arch.key).toBe('phi3');
    const byName = new Map(loadModelWeights(loaded).tensors.map((t) => [t.name, t]));
    const q = byName.get('layers.0.q.weight')!;
    const k = byName.get('layers.0.k.weight')!;
    expect(q).toMatchObject({ shape: [64, 64] });
    expect(k).toMatchObject({ shape: [32, 64], file: q.file });
    expect(k.offset! - q.offset!).toBe(64 * 64 * 2); // k starts after q's rows, in the same file
    expect(byName.get('layers.1.up.weight')).toMatchObject({ shape: [96, 64] });
    const ids = Int32Array.from({ length: 16 }, (_, i) => (i * 11 + 3) % 200);
    expect(Array.from(await logitsOf(pdir, ids))).toEqual(Array.from(await logitsOf(ldir, ids)));
  });

  (native ? it : it.skip)('auto_awq writes qkv_proj / gate_up_proj back packed; the engine reads them as the Llama twin', async () => {
    const ldir = path.join(tmp.dir, 'awq-llama');
    const pdir = path.join(tmp.dir, 'awq-phi3');
    writeTinyModel(ldir, { arch: 'llama', hiddenSize: 64, numHeads: 4, numKvHeads: 2, numLayers: 2, intermediateSize: 128, seed: 23 });
    asPhi3(ldir, pdir);
    const opts = { wGroupSize: 32, searchScale: false, searchClip: false, native: native! };
    await autoAwq(ldir, { ...opts, workDir: path.join(tmp.dir, 'w-l'), dstDir: path.join(tmp.dir, 'q-llama') });
    await autoAwq(pdir, { ...opts, workDir: path.join(tmp.dir, 'w-p'), dstDir: path.join(tmp.dir, 'q-phi3') });
    const names = [...readSafetensorsDir(path.join(tmp.dir, 'q-phi3')).tensors.keys()];
    expect(names).toContain('model.layers.0.self_attn.qkv_proj.qweight');
    expect(names).toContain('model.layers.1.mlp.gate_up_proj.scales');
    expect(names.some((n) => /q_proj|gate_proj/.test(n))).toBe(false);
    // round to nearest is deterministic per linear: the packed checkpoint holds exactly the Llama one's codes
    const ids = Int32Array.from({ length: 12 }, (_, i) => (i * 17 + 5) % 200);
    expect(Array.from(await logitsOf(path.join(tmp.dir, 'q-phi3'), ids))).toEqual(Array.from(await logitsOf(path.join(tmp.dir, 'q-llama'), ids)));
  });
});
