// awq_fake_quant vs a TypeScript reference of the same math (pack.ts quantizeLinear / dequantizeLinear with AWQ's
// column scaling; the engine's native-quant.spec.ts checks against pack.ts itself): bit-exact on the cpu backend,
// and cuda bit-exact with cpu where a cuda backend is loaded.
import type { OpTensor } from '../index';
import { cpuNative, cudaNative, cudaSkipReason, f16ToF32, f32Of, f32ToF16, Rng, tensor, withSeed } from './testing';

const roundF16 = (x: number): number => f16ToF32(f32ToF16(Math.fround(x)));

interface Ref { out: Float32Array; q: Uint8Array; zeros: Uint8Array; scales: Float32Array }

function fakeQuantRef(w: Float32Array, rows: number, cols: number, bits: number, group: number, s?: Float32Array, clip?: Float32Array): Ref {
  const qmax = (1 << bits) - 1;
  const groups = cols / group;
  const ws = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) ws[r * cols + c] = s ? w[r * cols + c] * s[c] : w[r * cols + c];
  const out = new Float32Array(w.length);
  const q = new Uint8Array(w.length);
  const zeros = new Uint8Array(rows * groups);
  const scales = new Float32Array(rows * groups);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < groups; g++) {
      const base = r * cols + g * group;
      const c = clip ? clip[r * groups + g] : Infinity;
      const v = (k: number): number => Math.min(c, Math.max(-c, ws[base + k]));
      let mn = Infinity;
      let mx = -Infinity;
      for (let k = 0; k < group; k++) {
        mn = Math.min(mn, v(k));
        mx = Math.max(mx, v(k));
      }
      let sc = roundF16(Math.max(mx - mn, 1e-5) / qmax);
      if (!(sc > 0)) sc = 6.103515625e-5;
      const z = Math.min(qmax, Math.max(0, Math.round(-mn / sc)));
      zeros[r * groups + g] = z;
      scales[r * groups + g] = sc;
      for (let k = 0; k < group; k++) {
        const qi = Math.min(qmax, Math.max(0, Math.round(v(k) / sc) + z));
        q[base + k] = qi;
        const d = Math.fround((qi - z) * sc);
        out[base + k] = s ? d / s[(g * group + k) % cols] : d;
      }
    }
  }
  return { out, q, zeros, scales };
}

function expectSame(what: string, ref: ArrayLike<number>, got: ArrayLike<number>): void {
  expect(got.length).toBe(ref.length);
  for (let i = 0; i < ref.length; i++) {
    if (!Object.is(ref[i], got[i]) && !(ref[i] === 0 && got[i] === 0)) throw new Error(`${what}[${i}]: expected ${ref[i]}, got ${got[i]}`);
  }
}

let reported = false;
async function cudaSame(inputs: OpTensor[], params: Record<string, number>, cpu: OpTensor[]): Promise<void> {
  const cu = cudaNative();
  if (!cu) {
    if (!reported) console.log(`awq_fake_quant: cuda: not run: ${cudaSkipReason()}`);
    reported = true;
    return;
  }
  if (!cu.listOps().includes('awq_fake_quant')) return void console.log('awq_fake_quant: cuda: not implemented');
  const got = await cu.runOp('awq_fake_quant', inputs, params);
  expect(got.length).toBe(cpu.length);
  for (let i = 0; i < cpu.length; i++) expect(Buffer.compare(Buffer.from(got[i].data), Buffer.from(cpu[i].data))).toBe(0);
}

/** Weights with the awkward cases in: a constant group, a tiny group (zero scale), values on rounding ties. */
function weights(rng: Rng, rows: number, cols: number, group: number): Float32Array {
  const w = rng.randn(rows * cols, 0.05);
  for (let i = 0; i < rows * cols; i += 7) w[i] *= 20; // outliers
  if (cols >= group && rows >= 3) {
    w.fill(0.25, 0, group); // constant group: max - min = 0
    for (let k = 0; k < group; k++) w[cols + k] = 1e-9 * (k % 3); // scale below fp16's range
    for (let k = 0; k < group; k++) w[2 * cols + k] = (k - 7.5) / 8; // codes exactly on .5 ties
  }
  return w;
}

describe('awq_fake_quant', () => {
  const cases: Array<[number, number, number, number]> = [[3, 128, 128, 4], [5, 256, 64, 4], [8, 96, 32, 4], [4, 384, 128, 8], [33, 512, 32, 4]];
  for (const [rows, cols, group, bits] of cases) {
    for (const mode of ['plain', 'scale', 'clip', 'scale+clip'] as const) {
      it(`[${rows}, ${cols}] g${group} w${bits} ${mode}: bit-exact with the reference`, () =>
        withSeed(`awq_fake_quant ${rows}x${cols} g${group} ${mode}`, async (rng) => {
          const w = weights(rng, rows, cols, group);
          const s = mode.includes('scale') ? Float32Array.from({ length: cols }, () => Math.exp(rng.normal())) : undefined;
          const groups = cols / group;
          let clip: Float32Array | undefined;
          if (mode.includes('clip')) {
            clip = new Float32Array(rows * groups);
            for (let r = 0; r < rows; r++)
              for (let g = 0; g < groups; g++) {
                let m = 0;
                for (let k = 0; k < group; k++) m = Math.max(m, Math.abs(w[r * cols + g * group + k] * (s ? s[g * group + k] : 1)));
                clip[r * groups + g] = m * (1 - rng.int(10) / 20);
              }
          }
          const inputs: OpTensor[] = [tensor('f32', [rows, cols], w)];
          if (s) inputs.push(tensor('f32', [cols], s));
          if (clip) inputs.push(tensor('f32', [rows, groups], clip));
          const params = { bits, group, codes: 1 };
          const out = await cpuNative().runOp('awq_fake_quant', inputs, params);
          const ref = fakeQuantRef(w, rows, cols, bits, group, s, clip);
          expect(out.map((t) => t.dtype)).toEqual(['f32', 'u8', 'u8', 'f32']);
          expectSame('out', ref.out, f32Of(out[0]));
          expectSame('q', ref.q, out[1].data);
          expectSame('zeros', ref.zeros, out[2].data);
          expectSame('scales', ref.scales, f32Of(out[3]));
          // without codes: the same dequantized weights only
          const [only, ...rest] = await cpuNative().runOp('awq_fake_quant', inputs, { bits, group });
          expect(rest).toHaveLength(0);
          expectSame('out (no codes)', ref.out, f32Of(only));
          await cudaSame(inputs, params, out);
        }));
    }
  }

  it('f16 weights are read as their f32 values', () =>
    withSeed('awq_fake_quant f16', async (rng) => {
      const [rows, cols, group] = [6, 256, 128];
      const w = Float32Array.from(rng.randn(rows * cols, 0.1), (x) => roundF16(x));
      const s = Float32Array.from({ length: cols }, () => 0.5 + rng.next());
      const inputs = [tensor('f16', [rows, cols], w), tensor('f32', [cols], s)];
      const [out] = await cpuNative().runOp('awq_fake_quant', inputs, { group });
      expectSame('out', fakeQuantRef(w, rows, cols, 4, group, s).out, f32Of(out));
      await cudaSame(inputs, { group }, [out]);
    }));

  it('bad input is refused with the reason', async () => {
    const cpu = cpuNative();
    const w = tensor('f32', [2, 128], new Float32Array(256));
    await expect(cpu.runOp('awq_fake_quant', [w], {})).rejects.toThrow(/group is required/);
    await expect(cpu.runOp('awq_fake_quant', [w], { group: 48 })).rejects.toThrow(/group must be 32, 64 or 128/);
    await expect(cpu.runOp('awq_fake_quant', [w], { group: 128, bits: 3 })).rejects.toThrow(/bits must be 4 or 8/);
    await expect(cpu.runOp('awq_fake_quant', [tensor('f32', [2, 96], new Float32Array(192))], { group: 64 })).rejects.toThrow(/not a multiple of the group size/);
    await expect(cpu.runOp('awq_fake_quant', [w, tensor('f32', [127], new Float32Array(127))], { group: 128 })).rejects.toThrow(/scale must be \[128\]/);
    await expect(cpu.runOp('awq_fake_quant', [w, tensor('f32', [2, 2], new Float32Array(4))], { group: 128 })).rejects.toThrow(/clip must be \[2, 1\]/);
  });
});
