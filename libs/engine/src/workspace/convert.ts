// convert: a Hugging Face (fp16/bf16) or AutoAWQ directory → the engine workspace (LMDeploy's `convert` to a
// TurboMind workspace). A workspace is:
//   lmfleet.json   what the engine needs without the source directory: architecture, the HF config it was parsed
//                  from, dtype, quantization, KV-cache policy, tokenizer files, and the tensor index (canonical names,
//                  dtype, shape, byte offset into weights.bin)
//   weights.bin    every canonical tensor back to back, each starting on a 64-byte boundary, so native code can
//                  memory-map it (TensorSource { file, offset }); re-laid-out tensors (InternLM2's split wqkv) are
//                  stored in their final layout; a tensor the loader reads as value + add (Gemma's norms, stored w
//                  and applied as 1 + w) keeps its bytes and its `add`. AWQ linears are converted from the AutoAWQ GEMM layout to the
//                  engine's W4A16 layout (libs/native/README.md): `<p>.qweight` i32 [out/8, kp/128, 128] and
//                  `<p>.scales_zeros` f16 [kp/group, out, 2], which the CUDA kernels read as they are.
//   tokenizer, chat-template and generation files copied from the source.
// The whole folder is written next to dstPath and renamed into place when complete.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError, QuantConfigError } from '../errors';
import type { Logger } from '../generation/types';
import { mapAwqTriples } from '../models/awq-triples';
import { loadModelSpec, loadModelWeights } from '../models/load';
import { readSourceBytes } from '../models/source-bytes';
import { ARCHITECTURES } from '../models/registry';
import { toNativeArchConfig, type NativeArchConfig } from '../models/spec';
import type { DType, TensorSource } from '../native';
import { copyAuxFiles, writeDirAtomically } from '../quant/files';
import { awqGemmToW4a16 } from '../quant/pack';
import { kvQparamsFromCalibration, parseQuantPolicy } from '../quant/kv-qparams';

export const WORKSPACE_FILE = 'lmfleet.json';
export const WORKSPACE_WEIGHTS = 'weights.bin';
export const WORKSPACE_FORMAT = 'lmfleet-workspace-v1';
export const WORKSPACE_ALIGNMENT = 64;

export interface WorkspaceTensor {
  name: string;
  dtype: DType;
  shape: number[];
  /** Byte offset in weights.bin (a multiple of 64). */
  offset: number;
  bytes: number;
  /** Added to every value as it loads (TensorSource.add: Gemma's norms hold w and load as 1 + w). */
  add?: number;
}

export interface WorkspaceManifest {
  format: typeof WORKSPACE_FORMAT;
  modelName: string;
  /** HF class name, e.g. Qwen2ForCausalLM, and the registry key. */
  architecture: string;
  arch: string;
  dtype: 'f16' | 'bf16';
  /** layout 'lmfleet-w4a16' (written since the W4A16 kernels); 'autoawq-gemm' workspaces (older) load too. */
  quantization: { method: 'awq'; bits: 4; groupSize: number; layout: 'lmfleet-w4a16' | 'autoawq-gemm' } | null;
  /** The KV cache the workspace is served with: `quantPolicy` (convert --quant-policy; 0 when absent) and, when
   *  convert was given a calibration (--kv-calib-dir), the calibrated (scale, zero) values
   *  [numLayers, 2, numKvHeads, 2] for that policy. */
  kvCache: { dtype: 'f16' | 'bf16' | 'f32'; quantPolicy?: 0 | 4 | 8; qparams?: { source: string; values: number[] } };
  native: NativeArchConfig;
  /** The config.json the spec is parsed from (the architecture file reads it again at load). */
  hfConfig: Record<string, unknown>;
  tokenizerFiles: string[];
  weights: { file: string; alignment: number; bytes: number; tensors: WorkspaceTensor[] };
  source: string;
  createdAt: string;
}

export interface ConvertOptions {
  /** 'hf': fp16/bf16 safetensors; 'awq': an AutoAWQ GEMM checkpoint. */
  modelFormat?: 'hf' | 'awq';
  /** AWQ group size; when given it must match the checkpoint's quantization_config. */
  groupSize?: number;
  /** KV-cache quantization the workspace is served with (LMDeploy's --quant-policy 0|4|8); recorded in lmfleet.json. */
  quantPolicy?: 0 | 4 | 8;
  /** A `lite calibrate` work dir: record its K/V statistics as calibrated KV scales/zero points (needs quantPolicy 4/8). */
  kvCalibDir?: string;
  dstPath: string;
  onProgress?: (fraction: number, message: string) => void;
  log?: Logger;
}

export interface ConvertResult {
  dstPath: string;
  manifest: WorkspaceManifest;
  seconds: number;
}

/** AutoAWQ triples (`<p>.qweight/.qzeros/.scales`) → the engine's `<p>.qweight` + `<p>.scales_zeros`; others unchanged. */
export function toW4a16Sources(tensors: readonly TensorSource[], groupSize: number): TensorSource[] {
  return mapAwqTriples(tensors, ({ prefix, inp, out, gemm }) => {
    const w = awqGemmToW4a16(gemm, out, inp, groupSize, prefix);
    return [
      { name: `${prefix}.qweight`, dtype: 'i32', shape: [out / 8, w.kp / 128, 128], data: new Uint8Array(w.qweight.buffer) },
      { name: `${prefix}.scales_zeros`, dtype: 'f16', shape: [w.kp / groupSize, out, 2], data: new Uint8Array(w.scalesZeros.buffer) },
    ];
  });
}

export async function convert(modelName: string, modelDir: string, opts: ConvertOptions): Promise<ConvertResult> {
  const t0 = Date.now();
  const format = opts.modelFormat ?? 'hf';
  if (format !== 'hf' && format !== 'awq') throw new InvalidArgumentError(`model format must be hf or awq, got ${JSON.stringify(format)}`);
  if (!opts.dstPath) throw new InvalidArgumentError('dstPath is required');
  const progress = opts.onProgress ?? (() => {});
  const log = opts.log ?? (() => {});
  const loaded = loadModelSpec(modelDir);
  const { spec, arch } = loaded;
  const named = ARCHITECTURES.find((a) => a.key === modelName.toLowerCase());
  if (named && named.key !== arch.key) {
    throw new InvalidArgumentError(`model name "${modelName}" names the ${named.key} architecture, but ${loaded.dir} is ${spec.hfArchitecture} (${arch.key})`);
  }
  if (!named) log('info', `model name "${modelName}": recorded as given; the architecture comes from config.json (${spec.hfArchitecture})`);
  if (format === 'awq' && !spec.quant) {
    throw new QuantConfigError(`${loaded.dir}: --model-format awq, but config.json has no AWQ quantization_config`);
  }
  if (format === 'hf' && spec.quant) {
    throw new QuantConfigError(`${loaded.dir} is an AWQ checkpoint (group size ${spec.quant.groupSize}): use --model-format awq`);
  }
  if (spec.quant && opts.groupSize && opts.groupSize !== spec.quant.groupSize) {
    throw new QuantConfigError(`--group-size ${opts.groupSize} does not match the checkpoint's group_size ${spec.quant.groupSize}`);
  }
  const quantPolicy = parseQuantPolicy(opts.quantPolicy ?? 0, '--quant-policy');
  if (opts.kvCalibDir && quantPolicy === 0) throw new InvalidArgumentError('--kv-calib-dir needs --quant-policy 4 or 8');
  const qparams = opts.kvCalibDir && quantPolicy !== 0 ? kvQparamsFromCalibration(opts.kvCalibDir, quantPolicy, spec) : undefined;
  const loadedTensors = loadModelWeights(loaded).tensors;
  const tensors = spec.quant ? toW4a16Sources(loadedTensors, spec.quant.groupSize) : loadedTensors;
  const abs = path.resolve(opts.dstPath);
  const manifest = await writeDirAtomically(abs, async (tmp) => {
    const index: WorkspaceTensor[] = [];
    const fd = fs.openSync(path.join(tmp, WORKSPACE_WEIGHTS), 'w');
    let pos = 0;
    try {
      for (let i = 0; i < tensors.length; i++) {
        const t = tensors[i];
        const pad = (WORKSPACE_ALIGNMENT - (pos % WORKSPACE_ALIGNMENT)) % WORKSPACE_ALIGNMENT;
        if (pad) {
          fs.writeSync(fd, new Uint8Array(pad));
          pos += pad;
        }
        // (an add stays an add: 1 + w rounded to bf16 would lose w's low bits)
        const bytes = readSourceBytes({ ...t, add: undefined });
        fs.writeSync(fd, bytes);
        index.push({ name: t.name, dtype: t.dtype, shape: [...t.shape], offset: pos, bytes: bytes.byteLength, ...(t.add ? { add: t.add } : {}) });
        pos += bytes.byteLength;
        if (i % 16 === 0) progress((0.95 * (i + 1)) / tensors.length, `${t.name}`);
      }
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    const tokenizerFiles = copyAuxFiles(loaded.dir, tmp);
    const m: WorkspaceManifest = {
      format: WORKSPACE_FORMAT,
      modelName,
      architecture: spec.hfArchitecture,
      arch: arch.key,
      dtype: spec.dtype,
      quantization: spec.quant ? { method: 'awq', bits: 4, groupSize: spec.quant.groupSize, layout: 'lmfleet-w4a16' } : null,
      kvCache: {
        dtype: spec.dtype,
        quantPolicy,
        ...(qparams ? { qparams: { source: path.resolve(qparams.source), values: Array.from(qparams.values) } } : {}),
      },
      native: toNativeArchConfig(spec),
      hfConfig: loaded.config,
      tokenizerFiles,
      weights: { file: WORKSPACE_WEIGHTS, alignment: WORKSPACE_ALIGNMENT, bytes: pos, tensors: index },
      source: loaded.dir,
      createdAt: new Date().toISOString(),
    };
    fs.writeFileSync(path.join(tmp, WORKSPACE_FILE), JSON.stringify(m, null, 2));
    return m;
  });
  progress(1, `workspace written to ${abs}`);
  return { dstPath: abs, manifest, seconds: (Date.now() - t0) / 1000 };
}
