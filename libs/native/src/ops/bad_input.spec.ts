// Malformed runOp calls must reject with a code (never crash the process).
import { cpuNative, tensor } from './testing';

describe('runOp rejects malformed input with E_INVALID_ARGUMENT', () => {
  const f = (shape: number[]) => tensor('f32', shape, new Float32Array(shape.reduce((a, b) => a * b, 1)));
  const cases: Array<[string, string, Parameters<ReturnType<typeof cpuNative>['runOp']>[1], Record<string, number | string>]> = [
    ['unknown op', 'nope', [], {}],
    ['too few inputs', 'linear', [f([2, 3])], {}],
    ['data shorter than shape', 'add', [{ dtype: 'f32', shape: [4], data: new Uint8Array(8) }, f([4])], {}],
    ['unknown dtype', 'add', [{ dtype: 'f64' as 'f32', shape: [1], data: new Uint8Array(8) }, f([1])], {}],
    ['int tensor where float expected', 'rms_norm', [tensor('i32', [1, 2], [1, 2]), f([2])], {}],
    ['float ids', 'embedding', [f([2]), f([4, 2])], {}],
    ['negative id', 'embedding', [tensor('i32', [1], [-1]), f([4, 2])], {}],
    ['rank mismatch', 'attention', [f([1, 4]), f([1, 1, 1, 4]), f([1, 1, 1, 4]), tensor('i32', [1, 1], [0]), tensor('i32', [1, 3], [0, 1, 1])], {}],
    ['heads not a multiple of kv heads', 'attention', [f([1, 3, 4]), f([1, 1, 2, 4]), f([1, 1, 2, 4]), tensor('i32', [1, 1], [0]), tensor('i32', [1, 3], [0, 1, 1])], {}],
    ['ctx longer than the block table', 'attention', [f([1, 1, 4]), f([2, 2, 1, 4]), f([2, 2, 1, 4]), tensor('i32', [1, 1], [0]), tensor('i32', [1, 3], [0, 1, 9])], {}],
    ['kv slot out of range', 'kv_store', [f([1, 4]), f([1, 4]), tensor('i32', [1], [7]), f([2, 4]), f([2, 4])], {}],
    ['unknown rope type', 'rope', [f([1, 1, 4]), tensor('i32', [1], [0])], { type: 'yarn' }],
    ['empty vocab', 'argmax', [f([2, 0])], {}],
  ];
  for (const [name, op, inputs, params] of cases) {
    it(name, async () => {
      await expect(cpuNative().runOp(op, inputs, params)).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });
    });
  }
});
