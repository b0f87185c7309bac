import * as fs from 'node:fs';
import { ModelFormatError } from '../errors';
import type { TensorSource } from '../native';

const BYTES: Record<string, number> = { f32: 4, f16: 2, bf16: 2, i32: 4, u8: 1 };

/** The bytes of a tensor source: its in-memory data, or its byte range of a file. */
export function readSourceBytes(t: TensorSource): Uint8Array {
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
