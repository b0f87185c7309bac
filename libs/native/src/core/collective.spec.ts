// The cpu collective of tensor parallelism (core/collective.h) through a native harness: N ranks as threads on fresh
// random inputs, compared with a serial sum / concatenation computed here; a failing rank must not hang the others.
import { binaryPath } from '../index';
import { cudaNative, cudaSkipReason, Rng, withSeed } from '../ops/testing';

interface Spec {
  op: 'all_reduce_sum' | 'all_reduce_sum_f16' | 'all_gather' | 'barrier';
  inputs: Float32Array[];
  rows?: number;
  repeat?: number;
  failRank?: number;
  spinUs?: number;
  backend?: 'cpu' | 'cuda';
  devices?: number[];
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
const addon = require(binaryPath('cpu')!) as { runCollective(s: Spec): Float32Array[] };

function randomInputs(ranks: number, n: number, rng: Rng): Float32Array[] {
  return Array.from({ length: ranks }, () => rng.randn(n, 10));
}

describe('cpu collective (ranks as threads)', () => {
  for (const ranks of [1, 2, 3, 4]) {
    it(`all_reduce_sum over ${ranks} rank(s) equals the serial f32 sum in rank order, the same bits on every rank`, () =>
      withSeed('all_reduce_sum', (rng) => {
      for (const n of [1, 7, 64, 1000, 4099]) {
        const inputs = randomInputs(ranks, n, rng);
        const want = new Float32Array(n);
        for (let i = 0; i < n; i++) {
          let s = inputs[0][i];
          for (let r = 1; r < ranks; r++) s = Math.fround(s + inputs[r][i]);
          want[i] = s;
        }
        // repeat: consecutive calls alternate the scratch halves
        const outs = addon.runCollective({ op: 'all_reduce_sum', inputs, repeat: 3 });
        for (let r = 0; r < ranks; r++) expect({ n, r, out: Array.from(outs[r]) }).toEqual({ n, r, out: Array.from(want) });
      }
    }));

    it(`all_gather over ${ranks} rank(s) places rank r's [rows, cols] block at columns r*cols`, () =>
      withSeed('all_gather', (rng) => {
      for (const [rows, cols] of [[1, 5], [3, 8], [7, 33]]) {
        const inputs = randomInputs(ranks, rows * cols, rng);
        const want = new Float32Array(rows * cols * ranks);
        for (let r = 0; r < ranks; r++)
          for (let i = 0; i < rows; i++)
            for (let c = 0; c < cols; c++) want[i * cols * ranks + r * cols + c] = inputs[r][i * cols + c];
        const outs = addon.runCollective({ op: 'all_gather', inputs, rows, repeat: 2 });
        for (let r = 0; r < ranks; r++) expect({ rows, cols, r, out: Array.from(outs[r]) }).toEqual({ rows, cols, r, out: Array.from(want) });
      }
    }));
  }

  it('rank threads that poll for the next run (the cuda default) hand every run over: 50 runs in a row', () =>
    withSeed('spin', (rng) => {
      // 2000 us: the threads are still polling when the next run comes; 1 us: they have gone to sleep
      for (const spinUs of [2000, 1]) {
        for (const ranks of [2, 4]) {
          const inputs = randomInputs(ranks, 33, rng);
          const want = new Float32Array(33);
          for (let i = 0; i < 33; i++) {
            let s = inputs[0][i];
            for (let r = 1; r < ranks; r++) s = Math.fround(s + inputs[r][i]);
            want[i] = s;
          }
          const outs = addon.runCollective({ op: 'all_reduce_sum', inputs, repeat: 50, spinUs });
          for (let r = 0; r < ranks; r++) expect({ spinUs, ranks, r, out: Array.from(outs[r]) }).toEqual({ spinUs, ranks, r, out: Array.from(want) });
        }
        expect(() => addon.runCollective({ op: 'barrier', inputs: randomInputs(3, 4, rng), failRank: 1, repeat: 5, spinUs })).toThrow(
          /rank 1 failed on purpose/,
        );
      }
    }));

  it('a rank that fails aborts the others (no hang) and its error is the one reported', () => {
    const inputs = randomInputs(4, 16, new Rng(1));
    for (const op of ['all_reduce_sum', 'all_gather', 'barrier'] as const) {
      expect(() => addon.runCollective({ op, inputs, failRank: 2 })).toThrow(/rank 2 failed on purpose/);
    }
  });

  it('rejects bad input', () => {
    expect(() => addon.runCollective({ op: 'all_gather', inputs: [new Float32Array(5), new Float32Array(5)], rows: 2 })).toThrow(/rows must divide/);
    expect(() => addon.runCollective({ op: 'all_reduce_sum', inputs: [new Float32Array(5), new Float32Array(4)] })).toThrow(/one length/);
  });
});

describe('cuda collective (ranks sharing GPU 0: the device collective)', () => {
  it('all_reduce_sum and all_gather equal the serial references bit for bit', async () => {
    if (!cudaNative()) {
      console.log(`cuda collective: not run: ${cudaSkipReason()}`);
      return;
    }
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const cuda = require(binaryPath('cuda')!) as { runCollective(s: Spec): Float32Array[] };
    await withSeed('cuda collective', (rng) => {
      for (const ranks of [2, 4]) {
        const devices = Array.from({ length: ranks }, () => 0);
        const inputs = randomInputs(ranks, 4099, rng);
        const want = new Float32Array(4099);
        for (let i = 0; i < want.length; i++) {
          let s = inputs[0][i];
          for (let r = 1; r < ranks; r++) s = Math.fround(s + inputs[r][i]);
          want[i] = s;
        }
        const outs = cuda.runCollective({ op: 'all_reduce_sum', inputs, backend: 'cuda', devices, repeat: 3 });
        for (let r = 0; r < ranks; r++) expect(Array.from(outs[r])).toEqual(Array.from(want));
        const g = cuda.runCollective({ op: 'all_gather', inputs: inputs.map((x) => x.subarray(0, 21)), rows: 3, backend: 'cuda', devices });
        const cpu = addon.runCollective({ op: 'all_gather', inputs: inputs.map((x) => x.subarray(0, 21)), rows: 3 });
        for (let r = 0; r < ranks; r++) expect(Array.from(g[r])).toEqual(Array.from(cpu[r]));
      }
    });
  });
});
