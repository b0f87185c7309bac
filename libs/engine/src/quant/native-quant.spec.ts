// The native AWQ ops against the TypeScript they replaced in awq.ts / calibrate.ts: pack.ts quantizeLinear +
// dequantizeLinear with the search's column scaling (bit-exact), and the per-channel statistics loop.
import { nativeCpuOrReport } from '../testing/native-cpu';
import { rng } from '../testing/tiny-model';
import { fakeQuantNative, NativeChannelStats, quantizeLinearNative } from './native-quant';
import { dequantizeLinear, quantizeLinear } from './pack';

function gauss(r: () => number): number {
  return Math.sqrt(-2 * Math.log(Math.max(r(), 1e-12))) * Math.cos(2 * Math.PI * r());
}

/** What awq.ts computed before: scaleColumns(fq(scaleColumns(W, s)), s, inverse). */
function tsFakeQuant(w: Float32Array, out: number, inp: number, bits: number, group: number, s: Float32Array): Float32Array {
  const ws = new Float32Array(w.length);
  for (let o = 0; o < out; o++) for (let i = 0; i < inp; i++) ws[o * inp + i] = w[o * inp + i] * s[i];
  const fq = dequantizeLinear(quantizeLinear(ws, out, inp, bits, group));
  const r = new Float32Array(w.length);
  for (let o = 0; o < out; o++) for (let i = 0; i < inp; i++) r[o * inp + i] = fq[o * inp + i] / s[i];
  return r;
}

function expectBitEqual(what: string, a: ArrayLike<number>, b: ArrayLike<number>): void {
  expect(b.length).toBe(a.length);
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i]) && !(a[i] === 0 && b[i] === 0)) throw new Error(`${what}[${i}]: ${a[i]} vs ${b[i]}`);
}

const native = nativeCpuOrReport('native-quant');
(native ? describe : describe.skip)('native AWQ ops vs the TypeScript path', () => {
  for (const seed of [1, 2, 3]) {
    for (const [out, inp, group] of [[64, 256, 128], [24, 192, 64], [16, 96, 32]]) {
      it(`seed ${seed} [${out}, ${inp}] g${group}: fake quantization with scales and quantization with clip are bit-exact`, async () => {
        const r = rng(seed * 1000 + group);
        const w = Float32Array.from({ length: out * inp }, () => gauss(r) * 0.04 * (r() < 0.02 ? 30 : 1));
        const xMean = Float32Array.from({ length: inp }, () => Math.abs(gauss(r)) * (r() < 0.05 ? 50 : 1) + 1e-3);
        for (const alpha of [0, 0.35, 0.95]) {
          // the search's scales: mean|x|^alpha / sqrt(max * min)
          const s = Float32Array.from(xMean, (m) => Math.max(Math.pow(m, alpha), 1e-4));
          const norm = Math.sqrt(Math.max(...s) * Math.min(...s));
          for (let c = 0; c < inp; c++) s[c] /= norm;
          expectBitEqual(`alpha ${alpha}`, tsFakeQuant(w, out, inp, 4, group, s), await fakeQuantNative(native!, w, out, inp, 4, group, { scale: s }));
        }
        const groups = inp / group;
        const clip = new Float32Array(out * groups);
        for (let o = 0; o < out; o++)
          for (let g = 0; g < groups; g++) {
            let m = 0;
            for (let k = 0; k < group; k++) m = Math.max(m, Math.abs(w[o * inp + g * group + k]));
            clip[o * groups + g] = m * (1 - Math.floor(r() * 10) / 20);
          }
        for (const c of [undefined, clip]) {
          const ref = quantizeLinear(w, out, inp, 4, group, { clip: c });
          const got = await quantizeLinearNative(native!, w, out, inp, 4, group, c);
          expectBitEqual('q', ref.q, got.ql.q);
          expectBitEqual('zeros', ref.zeros, got.ql.zeros);
          expectBitEqual('scales', ref.scales, got.ql.scales);
          expectBitEqual('dequantized', dequantizeLinear(ref), got.dequantized);
        }
      });
    }
  }

  it('channel statistics accumulate as the TypeScript loop did (absmean to f32)', async () => {
    const r = rng(7);
    const dim = 300;
    const st = new NativeChannelStats(native!, dim);
    const acc = new Float64Array(dim);
    let rows = 0;
    for (const n of [17, 64, 5]) {
      const x = Float32Array.from({ length: n * dim }, () => gauss(r) * 2);
      for (let t = 0; t < n; t++) for (let c = 0; c < dim; c++) acc[c] += Math.abs(x[t * dim + c]);
      rows += n;
      await st.add(x);
    }
    expect(st.rows).toBe(rows);
    expectBitEqual('absmean', Float32Array.from(acc, (v) => v / rows), st.absmean());
  });
});
