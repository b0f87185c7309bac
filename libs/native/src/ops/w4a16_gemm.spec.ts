import { linearRef, w4DequantRef, w4PackAwqRef, w4PackOursRef, type W4Ref } from './reference';
import { compareCudaToCpu, cpuNative, expectNmse, f32Of, NMSE_BOUND, roundTo, Rng, tensor, withSeed } from './testing';
import type { OpTensor } from '../index';

function randomW4(rng: Rng, n: number, k: number, group: number): W4Ref {
  const G = k / group;
  const q = new Uint8Array(n * k);
  for (let i = 0; i < q.length; i++) q[i] = rng.int(16);
  const z = new Uint8Array(n * G);
  for (let i = 0; i < z.length; i++) z[i] = rng.int(16);
  const s = new Float32Array(n * G);
  for (let i = 0; i < s.length; i++) s[i] = 0.002 + 0.02 * rng.next();
  return { n, k, group, q, z, s: roundTo('f16', s) };
}

function awqInputs(w: W4Ref, x: Float32Array, m: number, bias: Float32Array | null): OpTensor[] {
  const p = w4PackAwqRef(w);
  const inputs = [
    tensor('f32', [m, w.k], x),
    tensor('i32', [w.k, w.n / 8], p.qweight),
    tensor('i32', [w.k / w.group, w.n / 8], p.qzeros),
    tensor('f16', [w.k / w.group, w.n], p.scales),
  ];
  if (bias) inputs.push(tensor('f32', [w.n], bias));
  return inputs;
}

describe('w4a16_gemm', () => {
  // [m, n, k, group]: odd m, k not a multiple of 128 (padded layout), every group size, batch 1..97
  const shapes: Array<[number, number, number, number]> = [
    [1, 64, 128, 32],
    [3, 40, 96, 32],
    [5, 200, 256, 64],
    [17, 128, 384, 128],
    [33, 72, 640, 64],
    [97, 136, 256, 128],
  ];
  for (const [m, n, k, group] of shapes) {
    for (const withBias of [false, true]) {
      it(`AutoAWQ tensors m=${m} n=${n} k=${k} group=${group}${withBias ? ' +bias' : ''}`, () =>
        withSeed(`w4a16_gemm ${m}x${n}x${k} g${group}`, async (rng) => {
          const w = randomW4(rng, n, k, group);
          const x = rng.randn(m * k);
          const bias = withBias ? roundTo('f16', rng.randn(n)) : null;
          const inputs = awqInputs(w, x, m, bias);
          const [y] = await cpuNative().runOp('w4a16_gemm', inputs, { group });
          expect(y.shape).toEqual([m, n]);
          expectNmse(linearRef(x, w4DequantRef(w), bias, m, n, k), f32Of(y), NMSE_BOUND.f32);
          await compareCudaToCpu('w4a16_gemm', inputs, { group });
        }));
    }
  }

  it('our layout written from its description gives the same result as the converted AutoAWQ tensors', () =>
    withSeed('w4a16_gemm layouts', async (rng) => {
      for (const [m, n, k, group] of [[4, 48, 160, 32], [2, 24, 256, 128]] as const) {
        const w = randomW4(rng, n, k, group);
        const x = rng.randn(m * k);
        const ours = w4PackOursRef(w);
        const inputs = [
          tensor('f32', [m, k], x),
          tensor('i32', [n / 8, ours.kp / 128, 128], ours.qweight),
          tensor('f16', [ours.kp / group, n, 2], ours.scalesZeros),
        ];
        const [a] = await cpuNative().runOp('w4a16_gemm', inputs, { group, layout: 'lmfleet' });
        const [b] = await cpuNative().runOp('w4a16_gemm', awqInputs(w, x, m, null), { group });
        expect(Array.from(f32Of(a))).toEqual(Array.from(f32Of(b)));
        await compareCudaToCpu('w4a16_gemm', inputs, { group, layout: 'lmfleet' });
      }
    }));

  it('a row gives the same bits whatever the batch around it', () =>
    withSeed('w4a16_gemm batch invariance', async (rng) => {
      const [n, k, group] = [32, 256, 64];
      const w = randomW4(rng, n, k, group);
      const x = rng.randn(9 * k);
      const [all] = await cpuNative().runOp('w4a16_gemm', awqInputs(w, x, 9, null), { group });
      const [one] = await cpuNative().runOp('w4a16_gemm', awqInputs(w, x.subarray(4 * k, 5 * k), 1, null), { group });
      expect(Array.from(f32Of(one))).toEqual(Array.from(f32Of(all).subarray(4 * n, 5 * n)));
    }));

  it('rejects a group size that does not divide k, unsupported groups and mis-shaped tensors', async () => {
    const rng = new Rng(1);
    const w = randomW4(rng, 16, 128, 32);
    const x = rng.randn(2 * 128);
    const ok = awqInputs(w, x, 2, null);
    await expect(cpuNative().runOp('w4a16_gemm', ok, { group: 48 })).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });
    await expect(cpuNative().runOp('w4a16_gemm', ok, { group: 64 })).rejects.toThrow(/qzeros must be/);
    const badX = [tensor('f32', [2, 96], x.subarray(0, 192)), ...ok.slice(1)];
    await expect(cpuNative().runOp('w4a16_gemm', badX, { group: 32 })).rejects.toThrow(/qweight must be/);
    await expect(cpuNative().runOp('w4a16_gemm', ok, {})).rejects.toThrow(/group is required/);
  });
});
