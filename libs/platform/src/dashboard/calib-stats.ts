// Per-layer summaries of a calibration (the engine's calib_stats.safetensors: f32 tensors
// `layers.{i}.{linear}.{absmax|absmean|min|max}` per input channel and `layers.{i}.{k_cache|v_cache}.{min|max|absmax}`
// per KV head). The API reads the file itself (a safetensors header is 8 bytes of length + JSON) so it never
// loads the engine.
import * as fs from 'node:fs/promises';
import { InvalidInputError } from '../errors';

export interface LinearSummary {
  /** max over channels of the per-channel absmax */
  absmax: number;
  /** mean over channels of the per-channel mean |x| */
  absmean: number;
  min: number;
  max: number;
  channels: number;
  /** The channels with the largest absmax, largest first (the outliers AWQ protects). */
  topChannels: Array<{ channel: number; absmax: number }>;
}

export interface KvSummary {
  /** per KV head */
  min: number[];
  max: number[];
  absmax: number[];
}

export interface LayerSummary {
  layer: number;
  linears: Record<string, LinearSummary>;
  k?: KvSummary;
  v?: KvSummary;
}

export interface CalibStatsSummary {
  layers: LayerSummary[];
  linearNames: string[];
  metadata: Record<string, string>;
}

interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

const MAX_HEADER_BYTES = 64 * 1024 * 1024;

/** Reads every F32 tensor of a safetensors file (calibration stats are small: a few floats per channel). */
export async function readF32Tensors(file: string): Promise<{ tensors: Map<string, Float32Array>; metadata: Record<string, string> }> {
  const buf = await fs.readFile(file);
  if (buf.length < 8) throw new InvalidInputError(`${file}: not a safetensors file (${buf.length} bytes)`);
  const headerLen = Number(buf.readBigUInt64LE(0));
  if (headerLen <= 0 || headerLen > MAX_HEADER_BYTES || 8 + headerLen > buf.length) {
    throw new InvalidInputError(`${file}: bad safetensors header length ${headerLen}`);
  }
  let header: Record<string, HeaderEntry | Record<string, string>>;
  try {
    header = JSON.parse(buf.subarray(8, 8 + headerLen).toString('utf8'));
  } catch (err) {
    throw new InvalidInputError(`${file}: safetensors header is not JSON (${(err as Error).message})`);
  }
  const base = 8 + headerLen;
  const tensors = new Map<string, Float32Array>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = entry as Record<string, string>;
      continue;
    }
    const e = entry as HeaderEntry;
    if (e.dtype !== 'F32') continue;
    const [start, end] = e.data_offsets;
    if (!(end >= start && base + end <= buf.length && (end - start) % 4 === 0)) {
      throw new InvalidInputError(`${file}: tensor ${name} has offsets [${start}, ${end}) outside the file`);
    }
    const bytes = buf.subarray(base + start, base + end);
    tensors.set(name, new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)));
  }
  return { tensors, metadata };
}

function reduce(a: Float32Array, f: (acc: number, x: number) => number, init: number): number {
  let acc = init;
  for (let i = 0; i < a.length; i++) acc = f(acc, a[i]);
  return acc;
}

/** Per-layer summaries from the tensors of calib_stats.safetensors (pure). */
export function summarizeCalibStats(tensors: Map<string, Float32Array>, metadata: Record<string, string> = {}, topK = 5): CalibStatsSummary {
  const layers = new Map<number, LayerSummary>();
  const layer = (i: number) => {
    let l = layers.get(i);
    if (!l) layers.set(i, (l = { layer: i, linears: {} }));
    return l;
  };
  const linearNames = new Set<string>();
  for (const [name, absmax] of tensors) {
    const m = /^layers\.(\d+)\.([A-Za-z0-9_]+)\.absmax$/.exec(name);
    if (!m) continue;
    const i = Number(m[1]);
    const lin = m[2];
    const prefix = `layers.${i}.${lin}`;
    if (lin === 'k_cache' || lin === 'v_cache') {
      const kv: KvSummary = {
        absmax: [...absmax],
        min: [...(tensors.get(`${prefix}.min`) ?? [])],
        max: [...(tensors.get(`${prefix}.max`) ?? [])],
      };
      layer(i)[lin === 'k_cache' ? 'k' : 'v'] = kv;
      continue;
    }
    linearNames.add(lin);
    const absmean = tensors.get(`${prefix}.absmean`);
    const min = tensors.get(`${prefix}.min`);
    const max = tensors.get(`${prefix}.max`);
    const order = [...absmax.keys()].sort((a, b) => absmax[b] - absmax[a]).slice(0, topK);
    layer(i).linears[lin] = {
      absmax: reduce(absmax, Math.max, 0),
      absmean: absmean && absmean.length ? reduce(absmean, (s, x) => s + x, 0) / absmean.length : 0,
      min: min ? reduce(min, Math.min, Infinity) : 0,
      max: max ? reduce(max, Math.max, -Infinity) : 0,
      channels: absmax.length,
      topChannels: order.map((c) => ({ channel: c, absmax: absmax[c] })),
    };
  }
  return { layers: [...layers.values()].sort((a, b) => a.layer - b.layer), linearNames: [...linearNames].sort(), metadata };
}
