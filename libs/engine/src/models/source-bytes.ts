import * as fs from 'node:fs';
import { ModelFormatError } from '../errors';
import { decodeHalf, encodeHalf } from '../io/half';
import type { TensorSource } from '../native';

const BYTES: Record<string, number> = { f32: 4, f16: 2, bf16: 2, i32: 4, u8: 1 };

/** The bytes of a tensor source: its in-memory data, or its byte range of a file; with `scale`, its values times the
 *  scale in its own dtype (as the native loader reads it). */
export function readSourceBytes(t: TensorSource): Uint8Array {
  const raw = readRaw(t);
  return t.scale === undefined || t.scale === 1 ? raw : scaleBytes(raw, t.dtype, t.scale, t.name);
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

/** f32 / f16 / bf16 bytes times k, in the same dtype (in chunks: a large table is never held as f32 at once). */
export function scaleBytes(bytes: Uint8Array, dtype: string, k: number, name: string): Uint8Array {
  const out = new Uint8Array(bytes.length);
  if (dtype === 'f32') {
    const from = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    const to = new Float32Array(out.buffer);
    for (let i = 0; i < from.length; i++) to[i] = Math.fround(from[i] * k);
  } else if (dtype === 'f16' || dtype === 'bf16') {
    const CHUNK = 1 << 21;
    for (let o = 0; o < bytes.length; o += CHUNK) {
      const v = decodeHalf(bytes.subarray(o, Math.min(bytes.length, o + CHUNK)), dtype);
      for (let i = 0; i < v.length; i++) v[i] = Math.fround(v[i] * Math.fround(k));
      out.set(encodeHalf(v, dtype), o);
    }
  } else {
    throw new ModelFormatError(`tensor ${name}: a ${dtype} tensor cannot carry a scale`, { tensor: name });
  }
  return out;
}
