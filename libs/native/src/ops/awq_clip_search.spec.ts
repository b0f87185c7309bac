// awq_clip_search vs a TypeScript reference written from the definition (ops/awq_clip_search.h): per (row, group) and
// shrink step, clamp to c = f32(max|w| * (1 - step / nGrid)), quantize as pack.ts does, and sum the squared partial
// outputs x_g . (Q(clamp(w)) - w) over the tokens in f64. The op's dot products are f32 (FMA in k order), so its
// errors match to ~1e-5 relative and its clip is the reference's argmin unless two steps are within that of each
// other. cuda (where a GPU is) against cpu the same way, on fresh random inputs.
import { cpuNative, cudaNative, cudaSkipReason, f16ToF32, f32Of, f32ToF16, tensor, withSeed, type Rng } from './testing';

const roundF16 = (x: number): number => f16ToF32(f32ToF16(Math.fround(x)));

interface Ref {
  clip: Float32Array;
  /** errors [rows * groups][steps] */
  errs: Float64Array[];
}

function clipRef(w: Float32Array, x: Float32Array, rows: number, cols: number, tokens: number, bits: number, group: number, nGrid: number, steps: number): Ref {
  const groups = cols / group;
  const qmax = (1 << bits) - 1;
  const clip = new Float32Array(rows * groups);
  const errs: Float64Array[] = [];
  for (let o = 0; o < rows; o++) {
    for (let g = 0; g < groups; g++) {
      const base = o * cols + g * group;
      let org = 0;
      for (let k = 0; k < group; k++) org = Math.max(org, Math.abs(w[base + k]));
      const e = new Float64Array(steps);
      for (let step = 0; step < steps; step++) {
        const c = Math.fround(org * (1 - step / nGrid));
        const v = (k: number) => Math.min(c, Math.max(-c, w[base + k]));
        let mn = Infinity;
        let mx = -Infinity;
        for (let k = 0; k < group; k++) {
          mn = Math.min(mn, v(k));
          mx = Math.max(mx, v(k));
        }
        const s = roundF16(Math.max(mx - mn, 1e-5) / qmax) || 6.103515625e-5;
        const z = Math.min(qmax, Math.max(0, Math.round(-mn / s)));
        const r = new Float64Array(group);
        for (let k = 0; k < group; k++) {
          const q = Math.min(qmax, Math.max(0, Math.round(v(k) / s) + z));
          r[k] = Math.fround(Math.fround((q - z) * s) - w[base + k]);
        }
        let err = 0;
        for (let t = 0; t < tokens; t++) {
          let d = 0;
          for (let k = 0; k < group; k++) d += x[t * cols + g * group + k] * r[k];
          err += d * d;
        }
        e[step] = err;
      }
      let best = 0;
      for (let step = 1; step < steps; step++) if (e[step] < e[best]) best = step;
      clip[o * groups + g] = Math.fround(org * (1 - best / nGrid));
      errs.push(e);
    }
  }
  return { clip, errs };
}

/** clip / err of the op against the reference: errors within tol of the reference's error of the chosen step. */
function expectClose(what: string, ref: Ref, clip: Float32Array, err: Float32Array, org: Float32Array, nGrid: number, tol: number): void {
  for (let i = 0; i < clip.length; i++) {
    const e = ref.errs[i];
    const minErr = Math.min(...e);
    // the op's step: from its clip value
    const step = Math.round((1 - clip[i] / (org[i] || 1)) * nGrid);
    const chosen = org[i] === 0 ? minErr : e[Math.max(0, Math.min(e.length - 1, step))];
    if (!(chosen <= minErr * (1 + tol) + 1e-30)) throw new Error(`${what}: (row, group) ${i}: op chose an error ${chosen} above the minimum ${minErr}`);
    if (!(Math.abs(err[i] - chosen) <= chosen * tol + 1e-30)) throw new Error(`${what}: (row, group) ${i}: err ${err[i]} vs reference ${chosen}`);
  }
}

function orgMax(w: Float32Array, rows: number, cols: number, group: number): Float32Array {
  const groups = cols / group;
  const out = new Float32Array(rows * groups);
  for (let i = 0; i < rows * groups; i++) {
    const o = Math.floor(i / groups);
    const g = i % groups;
    for (let k = 0; k < group; k++) out[i] = Math.max(out[i], Math.abs(w[o * cols + g * group + k]));
  }
  return out;
}

function inputs(rng: Rng, rows: number, cols: number, tokens: number): { w: Float32Array; x: Float32Array } {
  const w = rng.randn(rows * cols, 0.05);
  // a few outliers per row, as real weights have: these are what clipping trims
  for (let o = 0; o < rows; o++) w[o * cols + rng.int(cols)] *= 8;
  const x = rng.randn(tokens * cols);
  return { w, x };
}

describe('awq_clip_search', () => {
  for (const [rows, cols, tokens, group, bits, nGrid, shrink] of [
    [7, 128, 33, 32, 4, 20, 0.5], [70, 256, 64, 128, 4, 20, 0.5], [65, 192, 100, 64, 4, 10, 1], [3, 128, 5, 128, 8, 20, 0.5],
  ]) {
    it(`[${rows}, ${cols}] x ${tokens} tokens, group ${group}, ${bits} bits, nGrid ${nGrid}, maxShrink ${shrink}`, () =>
      withSeed(`awq_clip_search ${rows}x${cols}`, async (rng) => {
        const { w, x } = inputs(rng, rows, cols, tokens);
        const steps = Math.max(1, Math.round(shrink * nGrid));
        const ref = clipRef(w, x, rows, cols, tokens, bits, group, nGrid, steps);
        const ins = [tensor('f32', [rows, cols], w), tensor('f32', [tokens, cols], x)];
        const params = { group, bits, nGrid, maxShrink: shrink };
        const [clip, err] = await cpuNative().runOp('awq_clip_search', ins, params);
        expect(clip.shape).toEqual([rows, cols / group]);
        const org = orgMax(w, rows, cols, group);
        expectClose('cpu', ref, f32Of(clip), f32Of(err), org, nGrid, 1e-5);
        const cu = cudaNative();
        if (!cu) {
          if (rows === 7) console.log(`awq_clip_search: cuda: not run: ${cudaSkipReason()}`);
          return;
        }
        const [cc, ce] = await cu.runOp('awq_clip_search', ins, params);
        expectClose('cuda', ref, f32Of(cc), f32Of(ce), org, nGrid, 1e-5);
      }));
  }

  it('a constant group keeps its value; bad input', async () => {
    const cpu = cpuNative();
    const w = new Float32Array(64).fill(0.5);
    const [clip] = await cpu.runOp('awq_clip_search', [tensor('f32', [1, 64], w), tensor('f32', [2, 64], new Float32Array(128).fill(1))], { group: 32 });
    expect(Array.from(f32Of(clip))).toEqual([0.5, 0.5]);
    await expect(cpu.runOp('awq_clip_search', [tensor('f32', [1, 64], w), tensor('f32', [2, 32], new Float32Array(64))], { group: 32 })).rejects.toThrow(/x must be \[tokens, 64\]/);
    await expect(cpu.runOp('awq_clip_search', [tensor('f32', [1, 64], w), tensor('f32', [2, 64], new Float32Array(128))], { group: 48 })).rejects.toThrow(/group must be 32, 64 or 128/);
    await expect(cpu.runOp('awq_clip_search', [tensor('f32', [1, 64], w), tensor('f32', [2, 64], new Float32Array(128))], {})).rejects.toThrow(/param group is required/);
    await expect(cpu.runOp('awq_clip_search', [tensor('f32', [1, 64], w), tensor('f32', [2, 64], new Float32Array(128))], { group: 32, maxShrink: 2 })).rejects.toThrow(/maxShrink/);
  });
});
