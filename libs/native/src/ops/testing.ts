// Shared helpers for op specs (ggml's test-backend-ops idea, one spec per op):
// - seeded random inputs; the seed is printed when a check fails (LMFLEET_TEST_SEED=<n> replays it)
// - an NMSE bound per dtype
// - guard values (NaN) around what an op may touch: reading them poisons the output, overwriting them shows
// - cuda vs cpu comparison when a cuda backend loads; here it prints "cuda: not run: <reason>"
import { loadNative, NativeModule, OpTensor, DType } from '../index';

let cpu: NativeModule | undefined;
export function cpuNative(): NativeModule {
  cpu ??= loadNative({ backend: 'cpu' });
  return cpu;
}

let cuda: NativeModule | null | undefined;
let cudaReason = '';
export function cudaNative(): NativeModule | null {
  if (cuda === undefined) {
    try {
      cuda = loadNative({ backend: 'cuda' });
    } catch (e) {
      cuda = null;
      cudaReason = (e as Error).message.includes('no NVIDIA GPU') ? 'no CUDA' : (e as Error).message;
    }
  }
  return cuda;
}
export function cudaSkipReason(): string {
  cudaNative();
  return cudaReason;
}

/** mulberry32: small, seedable, good enough for test inputs. */
export class Rng {
  private s: number;
  constructor(readonly seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  normal(): number {
    const u = Math.max(this.next(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  randn(n: number, scale = 1): Float32Array {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = this.normal() * scale;
    return a;
  }
  ints(n: number, max: number): Int32Array {
    const a = new Int32Array(n);
    for (let i = 0; i < n; i++) a[i] = this.int(max);
    return a;
  }
}

export function newSeed(): number {
  const env = process.env.LMFLEET_TEST_SEED;
  return env ? Number(env) : Math.floor(Math.random() * 0x7fffffff);
}

/** Runs fn with a fresh seeded Rng; on failure the error says which seed replays it. */
export async function withSeed(name: string, fn: (rng: Rng) => Promise<void> | void): Promise<void> {
  const seed = newSeed();
  try {
    await fn(new Rng(seed));
  } catch (e) {
    const msg = `${name}: failed with seed ${seed} (replay: LMFLEET_TEST_SEED=${seed})`;
    console.error(msg);
    if (e instanceof Error) e.message = `${msg}\n${e.message}`;
    throw e;
  }
}

// --- dtype encoding -------------------------------------------------------------------------------------
const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

export function f32ToF16(x: number): number {
  f32buf[0] = x;
  const b = u32buf[0];
  const sign = (b >>> 16) & 0x8000;
  const abs = b & 0x7fffffff;
  if (abs >= 0x7f800000) return sign | 0x7c00 | (abs > 0x7f800000 ? 0x200 : 0);
  if (abs >= 0x477ff000) return sign | 0x7c00;
  if (abs < 0x38800000) {
    if (abs < 0x33000000) return sign;
    const e = abs >>> 23;
    const m = (abs & 0x7fffff) | 0x800000;
    const s = 126 - e;
    let v = m >>> s;
    const rem = m & ((1 << s) - 1);
    const half = 1 << (s - 1);
    if (rem > half || (rem === half && v & 1)) v++;
    return sign | v;
  }
  let v = (abs >>> 13) - ((127 - 15) << 10);
  const rem = abs & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && v & 1)) v++;
  return sign | v;
}

export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

export function f32ToBf16(x: number): number {
  f32buf[0] = x;
  const b = u32buf[0];
  if ((b & 0x7fffffff) > 0x7f800000) return ((b >>> 16) | 0x40) & 0xffff;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

export function bf16ToF32(h: number): number {
  u32buf[0] = (h << 16) >>> 0;
  return f32buf[0];
}

/** The values a reference sees after storing `values` as `dtype`. */
export function roundTo(dtype: DType, values: Float32Array): Float32Array {
  if (dtype === 'f32') return values;
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++)
    out[i] = dtype === 'f16' ? f16ToF32(f32ToF16(values[i])) : bf16ToF32(f32ToBf16(values[i]));
  return out;
}

export function tensor(dtype: DType, shape: number[], values: ArrayLike<number>): OpTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  if (values.length !== n) throw new Error(`tensor: ${values.length} values for shape [${shape}]`);
  let data: Uint8Array;
  if (dtype === 'f32') data = new Uint8Array(Float32Array.from(values).buffer);
  else if (dtype === 'i32') data = new Uint8Array(Int32Array.from(values).buffer);
  else if (dtype === 'u8') data = Uint8Array.from(values);
  else {
    const h = new Uint16Array(n);
    for (let i = 0; i < n; i++) h[i] = dtype === 'f16' ? f32ToF16(values[i]) : f32ToBf16(values[i]);
    data = new Uint8Array(h.buffer);
  }
  return { dtype, shape, data };
}

export function f32Of(t: OpTensor): Float32Array {
  if (t.dtype !== 'f32') throw new Error(`expected f32 output, got ${t.dtype}`);
  return new Float32Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength));
}
export function i32Of(t: OpTensor): Int32Array {
  if (t.dtype !== 'i32') throw new Error(`expected i32 output, got ${t.dtype}`);
  return new Int32Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength));
}

// --- comparison -----------------------------------------------------------------------------------------
/** Normalized MSE: sum((a-b)^2) / sum(a^2). NaN anywhere gives Infinity. */
export function nmse(ref: ArrayLike<number>, got: ArrayLike<number>): number {
  if (ref.length !== got.length) throw new Error(`length mismatch: ref ${ref.length}, got ${got.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    if (!Number.isFinite(got[i]) || !Number.isFinite(ref[i])) return Infinity;
    num += (ref[i] - got[i]) ** 2;
    den += ref[i] ** 2;
  }
  return den === 0 ? num : num / den;
}

/** NMSE bound per compute dtype (cpu computes f32; cuda stores f16/bf16 activations). */
export const NMSE_BOUND: Record<'f32' | 'f16' | 'bf16', number> = { f32: 1e-9, f16: 1e-5, bf16: 1e-4 };

export function expectNmse(ref: ArrayLike<number>, got: ArrayLike<number>, bound: number, what = 'output'): void {
  const e = nmse(ref, got);
  if (!(e <= bound)) throw new Error(`${what}: NMSE ${e.toExponential(3)} > bound ${bound.toExponential(1)}`);
}

/** Fills with NaN: guard values that must neither be read (the output would turn NaN) nor written. */
export function guarded(n: number): Float32Array {
  return new Float32Array(n).fill(NaN);
}

export function expectGuardsIntact(values: Float32Array, ranges: Array<[number, number]>, what = 'guard'): void {
  for (const [b, e] of ranges)
    for (let i = b; i < e; i++)
      if (!Number.isNaN(values[i])) throw new Error(`${what}: guard value at ${i} was overwritten (${values[i]})`);
}

const reported = new Set<string>();

/**
 * Runs an op on cuda and cpu and compares by NMSE when a cuda backend is loaded; otherwise prints why not.
 * Called by every op spec so the device script runs the same cases with CUDA.
 */
export async function compareCudaToCpu(op: string, inputs: OpTensor[], params: Record<string, number | string>, bound = NMSE_BOUND.f16): Promise<void> {
  const cu = cudaNative();
  if (!cu) {
    if (!reported.has(op)) console.log(`${op}: cuda: not run: ${cudaSkipReason()}`);
    reported.add(op);
    return;
  }
  if (!cu.listOps().includes(op)) {
    console.log(`${op}: cuda: not implemented`);
    return;
  }
  const [a, b] = await Promise.all([cu.runOp(op, inputs, params), cpuNative().runOp(op, inputs, params)]);
  for (let i = 0; i < b.length; i++) {
    if (b[i].dtype === 'i32') expect(Array.from(i32Of(a[i]))).toEqual(Array.from(i32Of(b[i])));
    else expectNmse(f32Of(b[i]), f32Of(a[i]), bound, `${op} cuda vs cpu, output ${i}`);
  }
}
