// The AutoAWQ GEMM checkpoint format: writing one (auto_awq's output). Loading one is models/awq-dequant.ts (engine).
//
// Directory layout (readable by tools that read AutoAWQ checkpoints, and by ours):
//   config.json           the original config plus quantization_config {quant_method: "awq", bits: 4, group_size,
//                         zero_point: true, version: "gemm"}
//   model.safetensors     per quantized linear `<module>.qweight` I32 [in, out/8], `<module>.qzeros` I32
//                         [in/group, out/8], `<module>.scales` F16 [in/group, out]; every other tensor (embeddings,
//                         norms, biases, lm_head) in the model's dtype under its HF name
//   tokenizer / chat template / generation_config files copied from the source model
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ModelFormatError, QuantConfigError } from '../errors';
import { encodeHalf } from '../io/half';
import { readSafetensorsDir, writeSafetensors, type WritableTensor } from '../io/safetensors';
import type { LoadedModelSpec } from '../models/load';
import type { TensorSource } from '../native';
import { copyAuxFiles, f32Bytes, writeFilesAtomically } from './files';
import { toAwqGemm, type QuantizedLinear } from './pack';

const LINEAR_RE = /^(layers\.\d+\.(q|k|v|o|gate|up|down))\.weight$/;

/** Canonical tensor → the HF tensor it was mapped from (matched by file and offset). */
export function hfNamesOf(loaded: LoadedModelSpec, sources: TensorSource[]): Map<string, string> {
  const idx = readSafetensorsDir(loaded.dir);
  const byLoc = new Map<string, string>();
  for (const t of idx.tensors.values()) byLoc.set(`${t.file}\0${t.offset}`, t.name);
  const out = new Map<string, string>();
  for (const s of sources) {
    const hf = s.file !== undefined ? byLoc.get(`${s.file}\0${s.offset}`) : undefined;
    if (!hf) throw new ModelFormatError('cannot find the checkpoint tensor a canonical tensor came from', { file: loaded.dir, tensor: s.name });
    out.set(s.name, hf);
  }
  return out;
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
  const hfNames = hfNamesOf(loaded, sources);
  const tensors: WritableTensor[] = [];
  const sfDtype = loaded.spec.dtype === 'bf16' ? 'BF16' : 'F16';
  for (const s of sources) {
    const hf = hfNames.get(s.name)!;
    const m = LINEAR_RE.exec(s.name);
    if (m) {
      const ql = quantized.get(m[1]);
      if (!ql) throw new QuantConfigError(`internal: ${s.name} was not quantized`);
      const t = toAwqGemm(ql);
      const prefix = hf.replace(/\.weight$/, '');
      tensors.push({ name: `${prefix}.qweight`, dtype: 'I32', shape: [ql.in, ql.out / 8], data: new Uint8Array(t.qweight.buffer) });
      tensors.push({ name: `${prefix}.qzeros`, dtype: 'I32', shape: [ql.in / ql.groupSize, ql.out / 8], data: new Uint8Array(t.qzeros.buffer) });
      tensors.push({ name: `${prefix}.scales`, dtype: 'F16', shape: [ql.in / ql.groupSize, ql.out], data: new Uint8Array(t.scales.buffer) });
    } else {
      const v = weights.get(s.name);
      if (!v) throw new QuantConfigError(`internal: no values for ${s.name}`);
      tensors.push({ name: hf, dtype: sfDtype, shape: [...s.shape], data: encodeHalf(v, loaded.spec.dtype) });
    }
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
