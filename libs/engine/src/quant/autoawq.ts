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
// What an architecture folds into its canonical tensors as they load (TensorSource scale and add: Granite's multipliers,
// Gemma's 1 + w norms) is taken back out of what is written ((value - add) / scale), so that the checkpoint holds the
// model's own values and means what the in-memory quantized model meant to every reader that applies the fold at run
// time (transformers, our loader): an AWQ-scaled Gemma norm is written as (1 + w) / s - 1, as AutoAWQ writes it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ModelFormatError, NotSupportedError, QuantConfigError } from '../errors';
import { encodeHalf, f16BitsToF32, f32ToF16Bits, roundHalf } from '../io/half';
import { readSafetensorsDir, writeSafetensors, type WritableTensor } from '../io/safetensors';
import type { LoadedModelSpec } from '../models/load';
import type { PackedLinear } from '../models/spec';
import type { TensorSource } from '../native';
import { copyAuxFiles, f32Bytes, writeFilesAtomically } from './files';
import { toAwqGemm, type QuantizedLinear } from './pack';

const LINEAR_RE = /^(layers\.\d+\.(q|k|v|o|gate|up|down|experts\.\d+\.(gate|up|down)))\.weight$/;

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

const roundF16 = (x: number): number => f16BitsToF32(f32ToF16Bits(x));

/** The factor the loader multiplies a canonical tensor by as it reads it (TensorSource.scale, in f32 as it applies
 *  it): 1 for a checkpoint's own values. */
export function foldFactor(src: TensorSource | undefined): number {
  return src?.scale === undefined ? 1 : Math.fround(src.scale);
}

/** Values as the checkpoint must hold them: the folded (loaded) values, value * scale + add, unfolded. */
export function unfoldValues(v: Float32Array, src: TensorSource | undefined): Float32Array {
  const k = foldFactor(src);
  const add = Math.fround(src?.add ?? 0);
  return k === 1 && add === 0 ? v : v.map((x) => (x - add) / k);
}

/** Values as the loader will read them back once written in `dtype`: unfolded, rounded, folded again (in f32). */
export function roundAsWritten(v: Float32Array, src: TensorSource | undefined, dtype: 'f16' | 'bf16'): Float32Array {
  const k = foldFactor(src);
  const add = Math.fround(src?.add ?? 0);
  return unfoldValues(v, src).map((x) => Math.fround(roundHalf(x, dtype) * k) + add);
}

/** A quantized linear of folded weights as the checkpoint must hold it: the codes and zeros as they are, every
 *  per-group scale divided by the fold factor (the nearest f16; the loader multiplies it back). */
export function unfoldQuantized(ql: QuantizedLinear, k: number): QuantizedLinear {
  if (k === 1) return ql;
  const out: QuantizedLinear = { ...ql, scales: ql.scales.map((s) => roundF16(s / k)) };
  if (ql.gemm) out.gemm = { ...ql.gemm, scales: ql.gemm.scales.map((b) => f32ToF16Bits(f16BitsToF32(b) / k)) };
  return out;
}

export interface WriteAutoAwqOptions {
  dstDir: string;
  groupSize: number;
}

/**
 * Writes an AutoAWQ GEMM directory: `weights` holds the (AWQ-scaled) fp values of every canonical tensor, `quantized`
 * the quantized linears by canonical prefix (`layers.{i}.{q|k|v|o|gate|up|down}`), both as loaded, i.e. with the
 * sources' folds in (scale and add, see unfoldValues): what is written has them taken out. Two canonical tensors read from the
 * same checkpoint tensor (a tied lm_head that the architecture loads as its own copy, Granite's) write it once, and
 * must agree once unfolded.
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
  const byName = new Map(sources.map((s) => [s.name, s]));
  const quantizedOf = (name: string): QuantizedLinear => {
    const ql = quantized.get(name);
    if (!ql) throw new QuantConfigError(`internal: ${name}.weight was not quantized`);
    return unfoldQuantized(ql, foldFactor(byName.get(`${name}.weight`)));
  };
  const valuesOf = (name: string): Float32Array => {
    const v = weights.get(name);
    if (!v) throw new QuantConfigError(`internal: no values for ${name}`);
    return unfoldValues(v, byName.get(name));
  };
  const written = new Set<string>();
  const plain = new Map<string, { from: string; data: Uint8Array }>(); // HF name → what was written under it
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
    if (m) {
      pushAwq(hf.replace(/\.weight$/, ''), quantizedOf(m[1]));
      continue;
    }
    const data = encodeHalf(valuesOf(s.name), loaded.spec.dtype);
    const prev = plain.get(hf);
    if (prev) {
      if (!Buffer.from(prev.data).equals(Buffer.from(data))) {
        throw new QuantConfigError(`internal: ${prev.from} and ${s.name} both come from ${hf} but differ once their folded scalars are divided out`);
      }
      continue;
    }
    plain.set(hf, { from: s.name, data });
    tensors.push({ name: hf, dtype: sfDtype, shape: [...s.shape], data });
  }
  // a mixture of experts' router stays fp16: modules_to_not_convert names its module path within a layer (Mixtral's
  // "block_sparse_moe.gate", Qwen3-MoE's "mlp.gate"), which loaders match as a substring of module names: not of the
  // experts' ("...experts.0.gate_proj"), so they stay quantized
  const router = sources.find((s) => /^layers\.\d+\.router\.weight$/.test(s.name));
  const notConverted = router ? [hfNames.get(router.name)!.replace(/^.*\.layers\.\d+\./, '').replace(/\.weight$/, '')] : null;
  const config = {
    ...loaded.config,
    quantization_config: { quant_method: 'awq', bits: 4, group_size: opts.groupSize, zero_point: true, version: 'gemm', modules_to_not_convert: notConverted },
  };
  await writeFilesAtomically(opts.dstDir, (tmp) => {
    writeSafetensors(path.join(tmp, 'model.safetensors'), tensors, { format: 'pt', quantized_by: 'lmfleet auto_awq' });
    copyAuxFiles(loaded.dir, tmp);
    fs.writeFileSync(path.join(tmp, 'config.json'), JSON.stringify(config, null, 2));
  });
}

export { f32Bytes };
