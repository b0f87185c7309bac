import * as fs from 'node:fs';
import { InvalidArgumentError, ModelFormatError } from '../errors';
import { decodeHalf, encodeHalf } from '../io/half';
import type { TensorSource } from '../native';

const BYTES: Record<string, number> = { f32: 4, f16: 2, bf16: 2, i32: 4, u8: 1 };

/** The fold a source carries as the loader reads it: every value becomes value * scale + add (Granite's scalars,
 *  Gemma's 1 + w norms). */
const foldOf = (t: TensorSource): { k: number; add: number } => ({ k: t.scale ?? 1, add: t.add ?? 0 });

/** The bytes of a tensor source: its in-memory data, or its byte range of a file; with a `scale` / `add`, its values
 *  folded (value * scale + add in f32) and rounded back to its own dtype. */
export function readSourceBytes(t: TensorSource): Uint8Array {
  const raw = readRaw(t);
  const { k, add } = foldOf(t);
  return k === 1 && add === 0 ? raw : foldBytes(raw, t.dtype, k, add, t.name);
}

/** A float tensor source's values as f32, folded (value * scale + add) in f32 and unrounded, as the native CPU loader
 *  reads them. */
export function readSourceF32(t: TensorSource): Float32Array {
  const raw = readRaw(t);
  let v: Float32Array;
  if (t.dtype === 'f16' || t.dtype === 'bf16') v = decodeHalf(raw, t.dtype);
  else if (t.dtype === 'f32') v = new Float32Array(raw.slice().buffer);
  else throw new InvalidArgumentError(`tensor ${t.name} has dtype ${t.dtype}: not a float weight`);
  const { k, add } = foldOf(t);
  if (k !== 1 || add !== 0) {
    const [kf, af] = [Math.fround(k), Math.fround(add)];
    for (let i = 0; i < v.length; i++) v[i] = Math.fround(Math.fround(v[i] * kf) + af);
  }
  return v;
}

function readRaw(t: TensorSource): Uint8Array {
  if (t.data) return t.data;
  if (!t.file || t.offset === undefined) throw new ModelFormatError('tensor source has neither data nor file/offset', { tensor: t.name });
  const len = t.shape.reduce((a, b) => a * b, 1) * BYTES[t.dtype];
  const buf = Buffer.alloc(len);
  const fd = fs.openSync(t.file, 'r');
  try {
    const n = fs.readSync(fd, buf, 0, len, t.offset);
    if (n !== len) throw new ModelFormatError('short read of tensor data', { file: t.file, tensor: t.name, expected: `${len} bytes`, found: `${n}` });
  } finally {
    fs.closeSync(fd);
  }
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** f32 / f16 / bf16 bytes times k plus `add` (in f32), in the same dtype (in chunks: a large table is never held as
 *  f32 at once). */
export function foldBytes(bytes: Uint8Array, dtype: string, k: number, add: number, name: string): Uint8Array {
  const out = new Uint8Array(bytes.length);
  const [kf, af] = [Math.fround(k), Math.fround(add)];
  if (dtype === 'f32') {
    const from = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    const to = new Float32Array(out.buffer);
    for (let i = 0; i < from.length; i++) to[i] = Math.fround(Math.fround(from[i] * kf) + af);
  } else if (dtype === 'f16' || dtype === 'bf16') {
    const CHUNK = 1 << 21;
    for (let o = 0; o < bytes.length; o += CHUNK) {
      const v = decodeHalf(bytes.subarray(o, Math.min(bytes.length, o + CHUNK)), dtype);
      for (let i = 0; i < v.length; i++) v[i] = Math.fround(Math.fround(v[i] * kf) + af);
      out.set(encodeHalf(v, dtype), o);
    }
  } else {
    throw new ModelFormatError(`tensor ${name}: a ${dtype} tensor cannot carry a scale or an add`, { tensor: name });
  }
  return out;
}
