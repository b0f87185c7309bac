import * as fs from 'node:fs';
import * as path from 'node:path';
import { QuantConfigError, InvalidArgumentError } from '../errors';
import { PretrainedModel } from '../generation/pretrained';
import { decodeHalf } from '../io/half';
import { readSafetensorsDir, readTensorBytes, writeSafetensors, type WritableTensor } from '../io/safetensors';
import { nativeCpuOrReport } from '../testing/native-cpu';
import { makeTempDir } from '../testing/tmp-dir';
import { writeTinyModel } from '../testing/tiny-model';
import { quantizeLinear, toAwqGemm } from '../quant/pack';
import { Engine } from '../generation/engine';
import { convert, WORKSPACE_FILE } from './convert';
import { isWorkspace, readWorkspaceManifest } from './load';

const native = nativeCpuOrReport('workspace convert');

/** An AutoAWQ copy of a tiny model (group 32) made with pack.ts (its layout is checked against AutoAWQ's elsewhere). */
function awqCopy(src: string, dst: string): void {
  fs.mkdirSync(dst);
  const idx = readSafetensorsDir(src);
  const out: WritableTensor[] = [];
  for (const t of idx.tensors.values()) {
    const data = readTensorBytes(t);
    if (!/_proj\.weight$/.test(t.name)) {
      out.push({ name: t.name, dtype: t.dtype, shape: t.shape, data });
      continue;
    }
    const [o, i] = t.shape;
    const g = toAwqGemm(quantizeLinear(decodeHalf(data, 'f16'), o, i, 4, 32));
    const p = t.name.replace(/\.weight$/, '');
    out.push({ name: `${p}.qweight`, dtype: 'I32', shape: [i, o / 8], data: new Uint8Array(g.qweight.buffer) });
    out.push({ name: `${p}.qzeros`, dtype: 'I32', shape: [i / 32, o / 8], data: new Uint8Array(g.qzeros.buffer) });
    out.push({ name: `${p}.scales`, dtype: 'F16', shape: [i / 32, o], data: new Uint8Array(g.scales.buffer) });
  }
  writeSafetensors(path.join(dst, 'model.safetensors'), out);
  const cfg = JSON.parse(fs.readFileSync(path.join(src, 'config.json'), 'utf8'));
  cfg.quantization_config = { quant_method: 'awq', bits: 4, group_size: 32, zero_point: true, version: 'gemm' };
  fs.writeFileSync(path.join(dst, 'config.json'), JSON.stringify(cfg));
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json']) fs.copyFileSync(path.join(src, f), path.join(dst, f));
}

(native ? describe : describe.skip)('convert → engine workspace', () => {
  jest.setTimeout(60_000);
  const tmp = makeTempDir('lmfleet-ws-');
  afterAll(() => tmp.cleanup());
  const ids = [4, 8, 15, 16, 23, 42, 108, 7];

  async function logits(dir: string): Promise<Float32Array> {
    const m = await PretrainedModel.load(dir, { native: native!, backend: 'cpu' });
    try {
      return await m.forward(ids);
    } finally {
      m.dispose();
    }
  }

  it.each([['hf', 1], ['hf', 3], ['awq', 1]] as const)('%s checkpoint (%d shards): aligned weights.bin, same logits as the source', async (format, shards) => {
    const src = path.join(tmp.dir, `src-${format}-${shards}`);
    writeTinyModel(src, { arch: 'qwen2', hiddenSize: 64, intermediateSize: 128, numLayers: 2, shards, seed: 3 });
    let from = src;
    if (format === 'awq') {
      from = `${src}-awq`;
      awqCopy(src, from);
    }
    const dst = path.join(tmp.dir, `ws-${format}-${shards}`);
    const fractions: number[] = [];
    const r = await convert('qwen2', from, { modelFormat: format, groupSize: format === 'awq' ? 32 : undefined, dstPath: dst, onProgress: (f) => fractions.push(f) });
    expect(fractions[fractions.length - 1]).toBe(1);
    expect(isWorkspace(dst)).toBe(true);
    const m = readWorkspaceManifest(dst);
    expect(m.architecture).toBe('Qwen2ForCausalLM');
    expect(m.quantization).toEqual(format === 'awq' ? { method: 'awq', bits: 4, groupSize: 32, layout: 'lmfleet-w4a16' } : null);
    for (const t of m.weights.tensors) expect(t.offset % 64).toBe(0);
    expect(fs.statSync(path.join(dst, 'weights.bin')).size).toBe(m.weights.bytes);
    expect(m.tokenizerFiles).toContain('tokenizer.json');
    expect(r.manifest.weights.tensors.length).toBe(m.weights.tensors.length);
    expect(Array.from(await logits(dst))).toEqual(Array.from(await logits(from)));
    expect(fs.readdirSync(tmp.dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('AWQ W4A16 loaded natively (AutoAWQ directory, converted workspace) generates the greedy tokens of its fp16 counterpart', async () => {
    const src = path.join(tmp.dir, 'w4-src');
    writeTinyModel(src, { arch: 'qwen2', hiddenSize: 64, intermediateSize: 160, numLayers: 2, seed: 11, weightStd: 0.2 });
    const awq = `${src}-awq`;
    awqCopy(src, awq);
    const ws = path.join(tmp.dir, 'w4-ws');
    await convert('qwen2', awq, { modelFormat: 'awq', dstPath: ws });
    const names = readWorkspaceManifest(ws).weights.tensors.map((t) => t.name);
    expect(names).toContain('layers.0.gate.scales_zeros');
    expect(names.some((n) => n.endsWith('.qzeros'))).toBe(false);
    const run = async (dir: string, awqMode: 'native' | 'dequantize') => {
      const engine = await Engine.fromPretrained(dir, { native: native!, backend: 'cpu', awq: awqMode, maxBatchSize: 2, sessionLen: 128 });
      try {
        const [r] = await engine.generate(['the cat sat'], { maxNewTokens: 24, temperature: 0, ignoreEos: true });
        return { tokens: r.tokenIds, logits: Array.from(await engine.pretrained.forward(ids)) };
      } finally {
        await engine.dispose();
      }
    };
    const fp16 = await run(awq, 'dequantize');
    for (const got of [await run(awq, 'native'), await run(ws, 'native')]) {
      expect(got.tokens).toEqual(fp16.tokens);
      expect(got.logits).toEqual(fp16.logits);
    }
    await expect(run(ws, 'dequantize')).rejects.toThrow(/loads natively only/);
  });

  it('refuses mismatches clearly and leaves no destination behind', async () => {
    const src = path.join(tmp.dir, 'bad-src');
    writeTinyModel(src, { numLayers: 1 });
    const awq = `${src}-awq`;
    awqCopy(src, awq);
    const dst = path.join(tmp.dir, 'bad-ws');
    await expect(convert('qwen2', awq, { modelFormat: 'hf', dstPath: dst })).rejects.toThrow(/use --model-format awq/);
    await expect(convert('qwen2', src, { modelFormat: 'awq', dstPath: dst })).rejects.toThrow(QuantConfigError);
    await expect(convert('qwen2', awq, { modelFormat: 'awq', groupSize: 128, dstPath: dst })).rejects.toThrow(/does not match the checkpoint's group_size 32/);
    await expect(convert('internlm2', src, { dstPath: dst })).rejects.toThrow(InvalidArgumentError);
    fs.rmSync(path.join(src, 'model.safetensors'));
    await expect(convert('qwen2', src, { dstPath: dst })).rejects.toThrow(/no safetensors weights/);
    expect(fs.existsSync(dst)).toBe(false);
    expect(fs.existsSync(path.join(dst, WORKSPACE_FILE))).toBe(false);
  });
});
