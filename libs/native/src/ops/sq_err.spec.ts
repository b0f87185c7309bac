// sq_err vs a float64 TypeScript reference (sum over rows of (a - b)^2 per column, rows in order): equal to the
// (hi, lo) pair's precision; cuda bit-exact with cpu where a GPU is (both sum each column's rows in order in f64).
import { cpuNative, cudaNative, cudaSkipReason, f32Of, tensor, withSeed } from './testing';

describe('sq_err', () => {
  for (const [rows, cols] of [[1, 3], [37, 200], [64, 1100]]) {
    it(`[${rows}, ${cols}]`, () =>
      withSeed(`sq_err ${rows}x${cols}`, async (rng) => {
        const a = rng.randn(rows * cols, 2);
        const b = rng.randn(rows * cols, 2);
        const want = new Float64Array(cols);
        for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) want[c] += (a[r * cols + c] - b[r * cols + c]) ** 2;
        const ins = [tensor('f32', [rows, cols], a), tensor('f32', [rows, cols], b)];
        const [out] = await cpuNative().runOp('sq_err', ins, {});
        expect(out.shape).toEqual([cols, 2]);
        const p = f32Of(out);
        for (let c = 0; c < cols; c++) {
          const got = p[2 * c] + p[2 * c + 1];
          if (!(Math.abs(got - want[c]) <= want[c] * 2 ** -46)) throw new Error(`column ${c}: expected ${want[c]}, got ${got}`);
        }
        const cu = cudaNative();
        if (!cu) {
          if (rows === 1) console.log(`sq_err: cuda: not run: ${cudaSkipReason()}`);
          return;
        }
        const [co] = await cu.runOp('sq_err', ins, {});
        expect(Buffer.compare(Buffer.from(co.data), Buffer.from(out.data))).toBe(0);
      }));
  }

  it('bad input', async () => {
    await expect(cpuNative().runOp('sq_err', [tensor('f32', [2, 3], new Float32Array(6)), tensor('f32', [3, 2], new Float32Array(6))], {})).rejects.toThrow(/same shape/);
    await expect(cpuNative().runOp('sq_err', [tensor('f32', [2, 3], new Float32Array(6))], {})).rejects.toThrow(/expected 2 inputs/);
  });
});
