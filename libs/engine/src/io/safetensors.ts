// safetensors headers: an 8-byte little-endian header length, a JSON header mapping tensor names to
// { dtype, shape, data_offsets: [begin, end] } relative to the end of the header, then the data.
// Only headers are read here; native code memory-maps the data ranges.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ModelFormatError } from '../errors';
import type { DType } from '../native';

export type SafetensorsDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL' | string;

export interface TensorInfo {
  name: string;
  /** The dtype string as written in the file (F16, BF16, F32, I32, ...). */
  dtype: SafetensorsDType;
  shape: number[];
  /** Absolute path of the file holding the tensor. */
  file: string;
  /** Absolute byte offset of the tensor's first byte in `file`. */
  offset: number;
  byteLength: number;
}

export interface SafetensorsIndex {
  tensors: Map<string, TensorInfo>;
  /** Absolute paths of the files read, in order. */
  files: string[];
  /** `__metadata__` of each file, merged. */
  metadata: Record<string, string>;
}

const DTYPE_BYTES: Record<string, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1, F8_E4M3: 1, F8_E5M2: 1,
};

export function dtypeBytes(dtype: SafetensorsDType): number | undefined {
  return DTYPE_BYTES[dtype];
}

/** safetensors dtype → native dtype (undefined when the native side has no such dtype). */
export function toNativeDType(dtype: SafetensorsDType): DType | undefined {
  switch (dtype) {
    case 'F32': return 'f32';
    case 'F16': return 'f16';
    case 'BF16': return 'bf16';
    case 'I32': return 'i32';
    case 'U8': return 'u8';
    default: return undefined;
  }
}

const MAX_HEADER_BYTES = 100 * 1024 * 1024;

/** Reads and validates one safetensors file's header. */
export function readSafetensorsHeader(file: string): { tensors: TensorInfo[]; metadata: Record<string, string> } {
  const abs = path.resolve(file);
  let fd: number;
  try {
    fd = fs.openSync(abs, 'r');
  } catch (e) {
    throw new ModelFormatError('cannot open safetensors file', { file: abs }, { cause: e });
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (size < 8) {
      throw new ModelFormatError('safetensors file too short for its header length', { file: abs, expected: '>= 8 bytes', found: `${size} bytes` });
    }
    const lenBuf = Buffer.alloc(8);
    fs.readSync(fd, lenBuf, 0, 8, 0);
    const headerLen = Number(lenBuf.readBigUInt64LE(0));
    if (headerLen <= 0 || headerLen > MAX_HEADER_BYTES || 8 + headerLen > size) {
      throw new ModelFormatError('bad safetensors header length', {
        file: abs, expected: `1..${Math.min(MAX_HEADER_BYTES, size - 8)} bytes`, found: `${headerLen}`,
      });
    }
    const headerBuf = Buffer.alloc(headerLen);
    fs.readSync(fd, headerBuf, 0, headerLen, 8);
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(headerBuf.toString('utf8'));
    } catch (e) {
      throw new ModelFormatError('safetensors header is not valid JSON', { file: abs }, { cause: e });
    }
    const dataStart = 8 + headerLen;
    const dataLen = size - dataStart;
    const tensors: TensorInfo[] = [];
    let metadata: Record<string, string> = {};
    for (const [name, raw] of Object.entries(header)) {
      if (name === '__metadata__') {
        metadata = (raw ?? {}) as Record<string, string>;
        continue;
      }
      const t = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      if (typeof t?.dtype !== 'string' || !Array.isArray(t.shape) || !Array.isArray(t.data_offsets) || t.data_offsets.length !== 2) {
        throw new ModelFormatError('malformed tensor entry in safetensors header', {
          file: abs, tensor: name, expected: '{dtype, shape, data_offsets:[begin,end]}', found: JSON.stringify(raw),
        });
      }
      const shape = t.shape as number[];
      const [begin, end] = t.data_offsets as number[];
      const elemBytes = dtypeBytes(t.dtype);
      const numel = shape.reduce((a, b) => a * b, 1);
      if (elemBytes !== undefined && end - begin !== numel * elemBytes) {
        throw new ModelFormatError('tensor byte range does not match its shape and dtype', {
          file: abs, tensor: name, expected: `${numel * elemBytes} bytes (${t.dtype} [${shape.join(', ')}])`, found: `${end - begin} bytes`,
        });
      }
      if (!(begin >= 0 && end >= begin)) {
        throw new ModelFormatError('bad data_offsets', { file: abs, tensor: name, found: `[${begin}, ${end}]` });
      }
      if (end > dataLen) {
        throw new ModelFormatError('safetensors file is truncated: tensor data runs past the end of the file', {
          file: abs, tensor: name, expected: `${dataStart + end} bytes`, found: `${size} bytes`,
        });
      }
      tensors.push({ name, dtype: t.dtype, shape, file: abs, offset: dataStart + begin, byteLength: end - begin });
    }
    return { tensors, metadata };
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Lists the safetensors files of a model directory: the shards named by `model.safetensors.index.json` when present,
 * else `model.safetensors`, else every `*.safetensors` file. Returns [] when there are none.
 */
export function listSafetensorsFiles(dir: string): string[] {
  const absDir = path.resolve(dir);
  const indexFile = path.join(absDir, 'model.safetensors.index.json');
  if (fs.existsSync(indexFile)) {
    let index: { weight_map?: Record<string, string> };
    try {
      index = JSON.parse(fs.readFileSync(indexFile, 'utf8'));
    } catch (e) {
      throw new ModelFormatError('cannot parse safetensors index', { file: indexFile }, { cause: e });
    }
    if (!index.weight_map || typeof index.weight_map !== 'object') {
      throw new ModelFormatError('safetensors index has no weight_map', { file: indexFile });
    }
    const files = [...new Set(Object.values(index.weight_map))].sort();
    for (const f of files) {
      if (!fs.existsSync(path.join(absDir, f))) {
        throw new ModelFormatError('shard named by the safetensors index is missing', { file: path.join(absDir, f) });
      }
    }
    return files.map((f) => path.join(absDir, f));
  }
  const single = path.join(absDir, 'model.safetensors');
  if (fs.existsSync(single)) return [single];
  if (!fs.existsSync(absDir)) return [];
  return fs.readdirSync(absDir).filter((f) => f.endsWith('.safetensors')).sort().map((f) => path.join(absDir, f));
}

/** Reads every safetensors header of a model directory (sharded or not). */
export function readSafetensorsDir(dir: string): SafetensorsIndex {
  const files = listSafetensorsFiles(dir);
  if (files.length === 0) {
    throw new ModelFormatError('no safetensors weights found (model.safetensors or model.safetensors.index.json)', {
      file: path.resolve(dir),
    });
  }
  const tensors = new Map<string, TensorInfo>();
  const metadata: Record<string, string> = {};
  const indexFile = path.join(path.resolve(dir), 'model.safetensors.index.json');
  const weightMap: Record<string, string> | undefined = fs.existsSync(indexFile)
    ? JSON.parse(fs.readFileSync(indexFile, 'utf8')).weight_map
    : undefined;
  for (const file of files) {
    const h = readSafetensorsHeader(file);
    Object.assign(metadata, h.metadata);
    for (const t of h.tensors) {
      if (tensors.has(t.name)) {
        throw new ModelFormatError('tensor appears in two files', { tensor: t.name, file, found: tensors.get(t.name)!.file });
      }
      tensors.set(t.name, t);
    }
  }
  if (weightMap) {
    for (const [name, f] of Object.entries(weightMap)) {
      const t = tensors.get(name);
      if (!t) {
        throw new ModelFormatError('tensor named by the safetensors index is not in its shard', {
          file: path.join(path.resolve(dir), f), tensor: name,
        });
      }
    }
  }
  return { tensors, files, metadata };
}

/** Reads a tensor's bytes (for tensors the engine must re-lay-out, such as InternLM2's packed wqkv). */
export function readTensorBytes(t: TensorInfo): Uint8Array {
  const fd = fs.openSync(t.file, 'r');
  try {
    const buf = Buffer.alloc(t.byteLength);
    const n = fs.readSync(fd, buf, 0, t.byteLength, t.offset);
    if (n !== t.byteLength) {
      throw new ModelFormatError('short read of tensor data', { file: t.file, tensor: t.name, expected: `${t.byteLength} bytes`, found: `${n}` });
    }
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  } finally {
    fs.closeSync(fd);
  }
}

export interface WritableTensor {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  data: Uint8Array;
}

/** Writes a safetensors file (tensors in the given order, 8-byte aligned header). Used by tests and converters. */
export function writeSafetensors(file: string, tensors: WritableTensor[], metadata: Record<string, string> = { format: 'pt' }): void {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  const pad = (8 - ((8 + Buffer.byteLength(json)) % 8)) % 8;
  json += ' '.repeat(pad);
  const headerBuf = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerBuf.byteLength));
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, len);
    fs.writeSync(fd, headerBuf);
    for (const t of tensors) fs.writeSync(fd, t.data);
  } finally {
    fs.closeSync(fd);
  }
}
