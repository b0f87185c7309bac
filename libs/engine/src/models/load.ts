// Model directory → architecture, ModelSpec and canonical tensors.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ModelFormatError } from '../errors';
import { readJson } from '../io/json';
import { readSafetensorsDir, toNativeDType, type SafetensorsIndex } from '../io/safetensors';
import type { TensorSource } from '../native';
import { getArchitecture } from './registry';
import type { ArchitectureDef, HfConfig, ModelSpec } from './spec';

export interface LoadedModelSpec {
  dir: string;
  config: HfConfig;
  arch: ArchitectureDef;
  spec: ModelSpec;
}

export function assertModelDir(dir: string): string {
  const abs = path.resolve(dir);
  if (!fs.existsSync(abs)) throw new ModelFormatError('model directory does not exist', { file: abs });
  if (!fs.statSync(abs).isDirectory()) throw new ModelFormatError('model path is not a directory', { file: abs });
  return abs;
}

export function readHfConfig(dir: string): HfConfig {
  const abs = assertModelDir(dir);
  const file = path.join(abs, 'config.json');
  if (!fs.existsSync(file)) {
    throw new ModelFormatError('not a Hugging Face model directory: config.json is missing', { file });
  }
  return readJson<HfConfig>(file);
}

export function hfArchitectureOf(config: HfConfig, file: string): string {
  const archs = config.architectures;
  if (!Array.isArray(archs) || typeof archs[0] !== 'string') {
    throw new ModelFormatError('config.json has no "architectures" list', { file, expected: '["<Name>ForCausalLM"]', found: JSON.stringify(archs) });
  }
  return archs[0];
}

/** Parses config.json of a model directory into the architecture's ModelSpec. */
export function loadModelSpec(dir: string): LoadedModelSpec {
  const abs = assertModelDir(dir);
  const config = readHfConfig(abs);
  const file = path.join(abs, 'config.json');
  const arch = getArchitecture(hfArchitectureOf(config, file), file);
  const spec = arch.parseConfig(config, file);
  return { dir: abs, config, arch, spec };
}

/** Sets spec.dtype from the weights (the embedding's dtype); only F16 and BF16 checkpoints are accepted. */
export function resolveWeightDtype(loaded: LoadedModelSpec, weights: SafetensorsIndex): void {
  const embedName = [...weights.tensors.keys()].find((n) => /(^|\.)(embed_tokens|tok_embeddings|wte)\.weight$/.test(n));
  const t = embedName ? weights.tensors.get(embedName)! : weights.tensors.values().next().value;
  if (!t) throw new ModelFormatError('no tensors in the safetensors files', { file: loaded.dir });
  const dt = toNativeDType(t.dtype);
  if (dt !== 'f16' && dt !== 'bf16') {
    throw new ModelFormatError('unsupported weight dtype (only fp16 and bf16 checkpoints are supported)', {
      file: t.file, tensor: t.name, expected: 'F16 or BF16', found: t.dtype,
    });
  }
  loaded.spec.dtype = dt;
}

/** Full load: spec + canonical tensor list, validated against the spec. */
export function loadModelWeights(loaded: LoadedModelSpec): { weights: SafetensorsIndex; tensors: TensorSource[] } {
  const weights = readSafetensorsDir(loaded.dir);
  resolveWeightDtype(loaded, weights);
  const tensors = loaded.arch.mapWeights({ spec: loaded.spec, weights, dir: loaded.dir });
  return { weights, tensors };
}
