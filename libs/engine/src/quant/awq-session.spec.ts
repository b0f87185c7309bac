// The native AWQ session (awq-session.ts, libs/native/src/engine/awq_session.h) against the TypeScript path it
// replaces on the golden tiny models (cpu backend): the layer outputs and taps of BlockForward, the tap statistics of
// channel_stats, the scale-search losses of fake-quantized candidates run through BlockForward's blocks, the clip of
// the awq_clip_search op on the same rows; bad input is refused with a clear error.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadNative, type NativeModule } from '../native';
import { nativeCpuOrReport } from '../testing/native-cpu';
import { GOLDEN_DIR, goldenCases } from '../testing/golden';
import { makeTempDir } from '../testing/tmp-dir';
import { writeTinyTokenizer } from '../testing/tiny-model';
import { asF32, BlockForward, f32Tensor, type LayerTaps } from './block-forward';
import { createLayerSession, setLayerTensors, subsampleIndices, tapMean } from './awq-session';
import { scaleCandidates } from './awq';
import { fakeQuantNative, NativeChannelStats, quantizeLinearNative } from './native-quant';
import { toAwqGemm } from './pack';

const GOLDEN = GOLDEN_DIR;
const native = nativeCpuOrReport('awq session');
// (the native layer session runs Llama-style dense layers only: mixtures of experts and Gemma take the TypeScript path)
const cases = goldenCases('session');

function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    m = Math.max(m, Math.abs(a[i] - b[i]));
    s = Math.max(s, Math.abs(b[i]));
  }
  return m / Math.max(s, 1e-30);
}

function mse(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return s / a.length;
}

function rowsOf(x: Float32Array, dim: number, rows: Int32Array): Float32Array {
  const out = new Float32Array(rows.length * dim);
  rows.forEach((r, i) => out.set(x.subarray(r * dim, (r + 1) * dim), i * dim));
  return out;
}

(native ? describe : describe.skip)('AWQ session (cpu) vs the TypeScript path', () => {
  const tmp = makeTempDir('lmfleet-awqs-');
  afterAll(() => tmp.cleanup());

  it.each(cases)('%s: layers, taps, statistics, scale losses, clip', async (name) => {
    const golden = JSON.parse(fs.readFileSync(path.join(GOLDEN, name, 'golden.json'), 'utf8'));
    const dir = path.join(tmp.dir, name);
    fs.mkdirSync(dir);
    for (const f of ['config.json', 'model.safetensors']) fs.symlinkSync(path.join(GOLDEN, name, f), path.join(dir, f));
    writeTinyTokenizer(dir, { arch: name.startsWith('llama') ? 'llama' : 'qwen2', vocabSize: golden.vocab_size });
    const { fwd } = BlockForward.fromDir(native!, dir);
    const V = fwd.spec.vocabSize;
    // two sequences of different lengths (the session's per-token KV blocks), then one more appended
    const lens = [19, 11, 16];
    const ids = Int32Array.from({ length: 46 }, (_, i) => (i * 7919 + 13) % V);
    const sess = createLayerSession(fwd);
    try {
      let x = await fwd.embed(ids);
      await sess.setInput(x.slice(0, 30 * fwd.spec.hiddenSize), Int32Array.from(lens.slice(0, 2)), { reserveTokens: 46 });
      await sess.setInput(x.slice(30 * fwd.spec.hiddenSize), Int32Array.from([16]), { append: true });
      for (let i = 0; i < fwd.spec.numLayers; i++) {
        const taps: Partial<LayerTaps> = {};
        const next = await fwd.layer(i, x, lens, taps);
        await setLayerTensors(sess, fwd, i);
        // batches of at most 30 tokens: [19, 11], [16]
        const st = (await sess.run({ stats: true, taps: true, batchTokens: 30 }))!;
        for (const [tap, dim] of [['attnIn', fwd.spec.hiddenSize], ['oIn', fwd.spec.numHeads * fwd.spec.headDim], ['mlpIn', fwd.spec.hiddenSize],
          ['downIn', fwd.spec.intermediateSize], ['k', fwd.spec.numKvHeads * fwd.spec.headDim], ['v', fwd.spec.numKvHeads * fwd.spec.headDim]] as const) {
          const ref = new NativeChannelStats(native!, dim);
          await ref.add(taps[tap]!);
          expect(st[tap].rows).toBe(46);
          const diffs = [relDiff(st[tap].absmax, ref.absmax), relDiff(tapMean(st[tap]), ref.absmean()), relDiff(st[tap].min, ref.min), relDiff(st[tap].max, ref.max)];
          expect({ layer: i, tap, ok: diffs.every((d) => d < 1e-4), diffs }).toMatchObject({ layer: i, tap, ok: true });
        }
        if (i === 0) {
          const G = 32;
          // scale losses: v -> o, gate/up on the MLP, down; q/k/v on the attention block of the first two sequences
          for (const [gi, lins, tap] of [[1, ['o'], 'oIn'], [2, ['gate', 'up'], 'mlpIn'], [3, ['down'], 'downIn'], [0, ['q', 'k', 'v'], 'attnIn']] as const) {
            const dim = fwd.linearShape(lins[0])[1];
            if (dim % G) continue;
            const cands = scaleCandidates(tapMean(st[tap]), 4);
            const rows = subsampleIndices(46, 23);
            const got = await sess.scaleLosses(gi, cands, gi === 0 ? { seqs: 2, groupSize: G } : { rows, groupSize: G });
            const inp = gi === 0 ? taps.attnIn!.subarray(0, 30 * dim) : rowsOf(taps[tap]!, dim, rows);
            const run = (w: Record<string, Float32Array>) => gi === 0 ? fwd.attnBlock(i, inp, [19, 11], w)
              : gi === 1 ? fwd.linear(i, 'o', inp, w.o) : gi === 2 ? fwd.mlpBlock(i, inp, w) : fwd.linear(i, 'down', inp, w.down);
            const ref = await run({});
            for (let n = 0; n < 4; n++) {
              const w: Record<string, Float32Array> = {};
              for (const l of lins) {
                const [o, inD] = fwd.linearShape(l);
                w[l] = await fakeQuantNative(native!, fwd.w(`layers.${i}.${l}.weight`), o, inD, 4, G, { scale: cands.subarray(n * dim, (n + 1) * dim) });
              }
              const want = mse(await run(w), ref);
              expect(Math.abs(got[n] - want)).toBeLessThanOrEqual(want * 2e-3 + 1e-12);
            }
          }
          // clip search: the op on the same rows of the tap
          const [out, inp] = fwd.linearShape('gate');
          if (inp % G === 0) {
            const rows = subsampleIndices(46, 20);
            const got = await sess.clipSearch('gate', rows, { groupSize: G });
            const [clip] = await native!.runOp('awq_clip_search', [f32Tensor(fwd.w(`layers.${i}.gate.weight`), [out, inp]), f32Tensor(rowsOf(taps.mlpIn!, inp, rows), [rows.length, inp])], { group: G });
            expect(relDiff(got.clip, asF32(clip))).toBeLessThan(1e-6);
            // the final quantization: the codes of quantizeLinearNative with that clip; the session then holds the
            // dequantized weight (put the fp one back for the layer comparison below)
            const w = fwd.w(`layers.${i}.gate.weight`);
            const q = await sess.quantize('gate', got.clip, { groupSize: G });
            const { ql } = await quantizeLinearNative(native!, w, out, inp, 4, G, got.clip);
            expect(Buffer.compare(Buffer.from(q.q), Buffer.from(ql.q))).toBe(0);
            expect(Buffer.compare(Buffer.from(q.zeros), Buffer.from(ql.zeros))).toBe(0);
            expect(Array.from(q.scales)).toEqual(Array.from(ql.scales));
            // and its AutoAWQ GEMM packing, done natively, is pack.ts's (from the fp weight again)
            await sess.setTensors({ gate: w });
            const packed = await sess.quantize('gate', got.clip, { groupSize: G, pack: true });
            const want = toAwqGemm(ql);
            expect(Buffer.compare(Buffer.from(packed.gemm!.qweight.buffer), Buffer.from(want.qweight.buffer))).toBe(0);
            expect(Buffer.compare(Buffer.from(packed.gemm!.qzeros.buffer), Buffer.from(want.qzeros.buffer))).toBe(0);
            expect(Buffer.compare(Buffer.from(packed.gemm!.scales.buffer), Buffer.from(want.scales.buffer))).toBe(0);
            await sess.setTensors({ gate: w });
          }
        }
        await sess.run({ advance: true, batchTokens: 1 << 20 });
        x = next;
      }
      expect(relDiff(await sess.input(), x)).toBeLessThan(1e-3);
    } finally {
      sess.dispose();
    }
  });

  // Where a GPU is: the cuda session (f16 weights in cuBLAS, f16 q/k/v in the prefill kernel) against the cpu one.
  it('cuda session vs cpu session (where a GPU is)', async () => {
    let cuda: NativeModule;
    try {
      cuda = loadNative({ backend: 'cuda' });
    } catch (e) {
      console.log(`awq session: cuda: not run: ${(e as Error).message}`);
      return;
    }
    const dir = path.join(tmp.dir, 'cuda-qwen2');
    fs.mkdirSync(dir);
    for (const f of ['config.json', 'model.safetensors']) fs.symlinkSync(path.join(GOLDEN, 'qwen2', f), path.join(dir, f));
    const { fwd } = BlockForward.fromDir(native!, dir);
    const { fwd: fwdCuda } = BlockForward.fromDir(cuda, dir);
    const ids = Int32Array.from({ length: 64 }, (_, i) => (i * 7919 + 13) % fwd.spec.vocabSize);
    const x = await fwd.embed(ids);
    const outs: Float32Array[] = [];
    const clips: Float32Array[] = [];
    for (const f of [fwd, fwdCuda]) {
      const sess = createLayerSession(f);
      try {
        await sess.setInput(x, Int32Array.from([40, 24]));
        for (let i = 0; i < f.spec.numLayers; i++) {
          await setLayerTensors(sess, f, i);
          await sess.run({ taps: true });
          if (i === 0) clips.push((await sess.clipSearch('gate', subsampleIndices(64, 32), { groupSize: 32 })).clip);
          await sess.run({ advance: true });
        }
        outs.push(await sess.input());
      } finally {
        sess.dispose();
      }
    }
    expect(relDiff(outs[1], outs[0])).toBeLessThan(2e-2);
    let same = 0;
    for (let j = 0; j < clips[0].length; j++) if (clips[0][j] === clips[1][j]) same++;
    expect(same / clips[0].length).toBeGreaterThan(0.8);
  });

  it('refuses bad input', async () => {
    const sess = native!.createAwqSession!({ hiddenSize: 8, intermediateSize: 16, numHeads: 2, numKvHeads: 1, headDim: 4, rope: { type: 'default', theta: 10000 } });
    try {
      await expect(sess.run({})).rejects.toThrow(/no weight for q/);
      await expect(sess.setTensors({ q: new Float32Array(3) })).rejects.toThrow(/q needs 64 values, got 3/);
      await expect(sess.setTensors({ wq: new Float32Array(3) })).rejects.toThrow(/unknown tensor 'wq'/);
      await expect(sess.setInput(new Float32Array(16), Int32Array.from([3]))).rejects.toThrow(/add up to 3, the input has 2 tokens/);
      await expect(sess.scaleLosses(1, new Float32Array(8), { rows: Int32Array.from([0]), groupSize: 32 })).rejects.toThrow(/no kept taps/);
      await expect(sess.clipSearch('x', new Int32Array(1), { groupSize: 32 })).rejects.toThrow(/unknown linear 'x'/);
      await expect(sess.quantize('q', undefined, { groupSize: 32 })).rejects.toThrow(/no weight for q/);
    } finally {
      sess.dispose();
    }
    expect(() => native!.createAwqSession!({ hiddenSize: 8, intermediateSize: 16, numHeads: 3, numKvHeads: 2, headDim: 4, rope: { type: 'default', theta: 1e4 } })).toThrow(/multiple of kv heads/);
  });
});
