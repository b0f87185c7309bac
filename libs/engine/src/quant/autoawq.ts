// The AutoAWQ GEMM checkpoint format: writing one (auto_awq's output). Loading one is models/awq-dequant.ts (engine).
//
// Directory layout (readable by tools that read AutoAWQ checkpoints, and by ours):
//   config.json           the original config plus quantization_config {quant_method: "awq", bits: 4, group_size,
//                         zero_point: true, version: "gemm"}
//   model.safetensors     per quantized linear `<module>.qweight` I32 [in, out/8], `<module>.qzeros` I32
//                         [in/group, out/8], `<module>.scales` F16 [in/group, out]; every other tensor (embeddings,
//                         norms, biases, lm_head) in the model's dtype under its HF name; linears the model packs
//                         (InternLM2's attention.wqkv: ArchitectureDef.packedLinears) are packed back, rows in its order
//   tokenizer / chat template / generation_config files copied from the source model
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ModelFormatError, NotSupportedError, QuantConfigError } from '../errors';
import { encodeHalf } from '../io/half';
import { readSafetensorsDir, writeSafetensors, type WritableTensor } from '../io/safetensors';
import type { LoadedModelSpec } from '../models/load';
import type { PackedLinear } from '../models/spec';
import type { TensorSource } from '../native';
import { copyAuxFiles, f32Bytes, writeFilesAtomically } from './files';
import { toAwqGemm, type QuantizedLinear } from './pack';

const LINEAR_RE = /^(layers\.\d+\.(q|k|v|o|gate|up|down))\.weight$/;

/** Canonical tensor → the HF tensor it was mapped from (matched by file and offset); in-memory sources, and those
 *  that `packed` names (parts of a packed tensor, e.g. Phi-3's row ranges of qkv_proj), are skipped. */
export function hfNamesOf(loaded: LoadedModelSpec, sources: TensorSource[], packed: ReadonlyMap<string, unknown> = new Map()): Map<string, string> {
  const idx = readSafetensorsDir(loaded.dir);
  const byLoc = new Map<string, string>();
  for (const t of idx.tensors.values()) byLoc.set(`${t.file}\0${t.offset}`, t.name);
  const out = new Map<string, string>();
  for (const s of sources) {
    if (s.file === undefined || packed.has(s.name)) continue;
    const hf = byLoc.get(`${s.file}\0${s.offset}`);
    if (!hf) throw new ModelFormatError('cannot find the checkpoint tensor a canonical tensor came from', { file: loaded.dir, tensor: s.name });
    out.set(s.name, hf);
  }
  return out;
}

interface PackedTarget {
  packed: PackedLinear;
  layer: number;
  /** 'weight' or 'bias'. */
  suffix: string;
}

/**
 * Where each in-memory canonical tensor (split from a packed checkpoint tensor, e.g. InternLM2's wqkv) goes back:
 * canonical name → its packed tensor. Throws NotSupportedError for in-memory tensors that no packing covers.
 */
export function packedTargets(loaded: LoadedModelSpec, sources: TensorSource[]): Map<string, PackedTarget> {
  const out = new Map<string, PackedTarget>();
  for (let i = 0; i < loaded.spec.numLayers; i++) {
    for (const packed of loaded.arch.packedLinears?.(loaded.spec, i) ?? []) {
      for (const part of packed.parts) for (const suffix of ['weight', 'bias']) out.set(`layers.${i}.${part}.${suffix}`, { packed, layer: i, suffix });
    }
  }
  for (const s of sources) {
    if (s.file === undefined && !out.has(s.name)) {
      throw new NotSupportedError(`${loaded.spec.hfArchitecture}: auto_awq cannot write ${s.name} back in the checkpoint's layout (a re-laid-out tensor with no packing rule)`);
    }
  }
  return out;
}

/** Row-concatenation helper: the bytes of a typed array. */
const bytesOf = (a: Uint8Array | Float32Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Packs the quantized parts (split q/k/v) into one QuantizedLinear in the checkpoint's row order. */
export function packQuantized(packed: PackedLinear, parts: QuantizedLinear[]): QuantizedLinear {
  const [first] = parts;
  const groups = first.in / first.groupSize;
  for (const p of parts) {
    if (p.in !== first.in || p.groupSize !== first.groupSize || p.bits !== first.bits) throw new QuantConfigError(`internal: ${packed.hfPrefix} parts differ in width or quantization`);
  }
  const scales = packed.pack(parts.map((p) => bytesOf(p.scales)), groups * 4);
  return {
    out: parts.reduce((a, p) => a + p.out, 0),
    in: first.in,
    bits: first.bits,
    groupSize: first.groupSize,
    q: packed.pack(parts.map((p) => p.q), first.in),
    zeros: packed.pack(parts.map((p) => p.zeros), groups),
    scales: new Float32Array(scales.buffer, scales.byteOffset, scales.byteLength / 4),
  };
}

export interface WriteAutoAwqOptions {
  dstDir: string;
  groupSize: number;
}

/**
 * Writes an AutoAWQ GEMM directory: `weights` holds the (AWQ-scaled) fp values of every canonical tensor, `quantized`
 * the quantized linears by canonical prefix (`layers.{i}.{q|k|v|o|gate|up|down}`).
 */
export async function writeAutoAwqDir(
  loaded: LoadedModelSpec, sources: TensorSource[], weights: Map<string, Float32Array>, quantized: Map<string, QuantizedLinear>,
  opts: WriteAutoAwqOptions,
): Promise<void> {
  const targets = packedTargets(loaded, sources);
  const hfNames = hfNamesOf(loaded, sources, targets);
  const tensors: WritableTensor[] = [];
  const sfDtype = loaded.spec.dtype === 'bf16' ? 'BF16' : 'F16';
  const pushAwq = (prefix: string, ql: QuantizedLinear) => {
    const t = toAwqGemm(ql);
    tensors.push({ name: `${prefix}.qweight`, dtype: 'I32', shape: [ql.in, ql.out / 8], data: new Uint8Array(t.qweight.buffer) });
    tensors.push({ name: `${prefix}.qzeros`, dtype: 'I32', shape: [ql.in / ql.groupSize, ql.out / 8], data: new Uint8Array(t.qzeros.buffer) });
    tensors.push({ name: `${prefix}.scales`, dtype: 'F16', shape: [ql.in / ql.groupSize, ql.out], data: new Uint8Array(t.scales.buffer) });
  };
  const quantizedOf = (name: string): QuantizedLinear => {
    const ql = quantized.get(name);
    if (!ql) throw new QuantConfigError(`internal: ${name}.weight was not quantized`);
    return ql;
  };
  const valuesOf = (name: string): Float32Array => {
    const v = weights.get(name);
    if (!v) throw new QuantConfigError(`internal: no values for ${name}`);
    return v;
  };
  const written = new Set<string>();
  for (const s of sources) {
    const target = targets.get(s.name);
    if (target) {
      // the first part of a packed tensor writes the whole packed tensor
      const key = `${target.packed.hfPrefix}.${target.suffix}`;
      if (written.has(key)) continue;
      written.add(key);
      const names = target.packed.parts.map((p) => `layers.${target.layer}.${p}`);
      if (target.suffix === 'weight') {
        pushAwq(target.packed.hfPrefix, packQuantized(target.packed, names.map(quantizedOf)));
      } else {
        const parts = names.map((n) => encodeHalf(valuesOf(`${n}.bias`), loaded.spec.dtype));
        const data = target.packed.pack(parts, 2);
        tensors.push({ name: key, dtype: sfDtype, shape: [data.byteLength / 2], data });
      }
      continue;
    }
    const hf = hfNames.get(s.name)!;
    const m = LINEAR_RE.exec(s.name);
    if (m) pushAwq(hf.replace(/\.weight$/, ''), quantizedOf(m[1]));
    else tensors.push({ name: hf, dtype: sfDtype, shape: [...s.shape], data: encodeHalf(valuesOf(s.name), loaded.spec.dtype) });
  }
  const config = {
    ...loaded.config,
    quantization_config: { quant_method: 'awq', bits: 4, group_size: opts.groupSize, zero_point: true, version: 'gemm', modules_to_not_convert: null },
  };
  await writeFilesAtomically(opts.dstDir, (tmp) => {
    writeSafetensors(path.join(tmp, 'model.safetensors'), tensors, { format: 'pt', quantized_by: 'lmfleet auto_awq' });
    copyAuxFiles(loaded.dir, tmp);
    fs.writeFileSync(path.join(tmp, 'config.json'), JSON.stringify(config, null, 2));
  });
}

export { f32Bytes };
