// channel_stats vs a TypeScript reference (the loop calibrate.ts ran before): absmax / min / max exact, the f64
// sum of |x| to its (hi, lo) f32 pair's precision (~2^-48 relative), accumulating across calls; cuda bit-exact
// with cpu where a cuda backend is loaded.
import type { OpTensor } from '../index';
import { cpuNative, cudaNative, cudaSkipReason, f32Of, tensor, withSeed } from './testing';

function stateTensors(cols: number, st?: OpTensor[]): OpTensor[] {
  if (st) return st;
  return [
    tensor('f32', [cols], new Float32Array(cols)),
    tensor('f32', [cols, 2], new Float32Array(2 * cols)),
    tensor('f32', [cols], new Float32Array(cols).fill(Infinity)),
    tensor('f32', [cols], new Float32Array(cols).fill(-Infinity)),
  ];
}

describe('channel_stats', () => {
  for (const [rows, cols, calls] of [[1, 5, 1], [37, 200, 3], [128, 1024, 2]]) {
    it(`[${rows}, ${cols}] x ${calls} calls`, () =>
      withSeed(`channel_stats ${rows}x${cols}`, async (rng) => {
        const absmax = new Float32Array(cols);
        const sum = new Float64Array(cols);
        const min = new Float32Array(cols).fill(Infinity);
        const max = new Float32Array(cols).fill(-Infinity);
        let st: OpTensor[] | undefined;
        let stCuda: OpTensor[] | undefined;
        const cu = cudaNative();
        const useCuda = !!cu && cu.listOps().includes('channel_stats');
        if (!useCuda && rows === 1) console.log(`channel_stats: cuda: ${cu ? 'not implemented' : `not run: ${cudaSkipReason()}`}`);
        for (let call = 0; call < calls; call++) {
          const x = rng.randn(rows * cols, 3);
          for (let r = 0; r < rows; r++)
            for (let c = 0; c < cols; c++) {
              const v = x[r * cols + c];
              const a = Math.abs(v);
              if (a > absmax[c]) absmax[c] = a;
              sum[c] += a;
              if (v < min[c]) min[c] = v;
              if (v > max[c]) max[c] = v;
            }
          const xt = tensor('f32', [rows, cols], x);
          st = await cpuNative().runOp('channel_stats', [xt, ...stateTensors(cols, st)], {});
          if (useCuda) {
            stCuda = await cu!.runOp('channel_stats', [xt, ...stateTensors(cols, stCuda)], {});
            for (let i = 0; i < 4; i++) expect(Buffer.compare(Buffer.from(stCuda[i].data), Buffer.from(st[i].data))).toBe(0);
          }
        }
        expect(st!.map((t) => t.shape)).toEqual([[cols], [cols, 2], [cols], [cols]]);
        expect(Array.from(f32Of(st![0]))).toEqual(Array.from(absmax));
        expect(Array.from(f32Of(st![2]))).toEqual(Array.from(min));
        expect(Array.from(f32Of(st![3]))).toEqual(Array.from(max));
        const pair = f32Of(st![1]);
        for (let c = 0; c < cols; c++) {
          const got = pair[2 * c] + pair[2 * c + 1];
          if (!(Math.abs(got - sum[c]) <= sum[c] * 2 ** -46)) throw new Error(`sum[${c}]: expected ${sum[c]}, got ${got}`);
        }
      }));
  }

  it('f16 input and bad input', async () => {
    const cpu = cpuNative();
    const [a, , mn, mx] = await cpu.runOp('channel_stats', [tensor('f16', [2, 3], [1, -2, 0.5, -4, 3, 0.25]), ...stateTensors(3)], {});
    expect(Array.from(f32Of(a))).toEqual([4, 3, 0.5]);
    expect(Array.from(f32Of(mn))).toEqual([-4, -2, 0.25]);
    expect(Array.from(f32Of(mx))).toEqual([1, 3, 0.5]);
    await expect(cpu.runOp('channel_stats', [tensor('f32', [2, 3], new Float32Array(6)), ...stateTensors(4)], {})).rejects.toThrow(/absmax must be \[3\]/);
    await expect(cpu.runOp('channel_stats', [tensor('f32', [2, 3], new Float32Array(6))], {})).rejects.toThrow(/expected 5 inputs/);
  });
});
