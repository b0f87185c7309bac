// What the platform records when it registers a model directory. Reads config.json, safetensors headers and the
// tokenizer files; loads nothing onto a backend.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { findChatTemplate } from './chat-template/chat-template';
import { ModelFormatError } from './errors';
import { readSafetensorsDir } from './io/safetensors';
import { declaredDtype } from './models/common';
import { assertModelDir, hfArchitectureOf, readHfConfig } from './models/load';
import { ARCHITECTURES, supportedArchitectures } from './models/registry';

// the API validates a deployment's speculative setting with the engine's rules, from this module
export { MAX_DRAFT_TOKENS, speculativeOptions } from './generation/speculative';

export interface ModelInspection {
  dir: string;
  /** HF class name, e.g. 'Qwen2ForCausalLM'. */
  architecture: string;
  /** Our registry key ('qwen2'), or undefined when the architecture is not supported. */
  arch?: string;
  supported: boolean;
  supportedArchitectures: string[];
  modelType: string;
  /** 'float16' | 'bfloat16' | ... (the weights' dtype; config.json's declaration when they disagree is ignored). */
  dtype: string;
  numParams: number;
  /** Bytes of the weight files. */
  sizeBytes: number;
  contextLength: number | null;
  quantization: Record<string, unknown> | null;
  hasTokenizer: boolean;
  hasChatTemplate: boolean;
}

const SF_TO_TORCH: Record<string, string> = { F16: 'float16', BF16: 'bfloat16', F32: 'float32', I32: 'int32' };

export function inspectModel(dir: string): ModelInspection {
  const abs = assertModelDir(dir);
  const config = readHfConfig(abs);
  const cfgFile = path.join(abs, 'config.json');
  const architecture = hfArchitectureOf(config, cfgFile);
  const def = ARCHITECTURES.find((a) => a.hfArchitectures.includes(architecture));
  const weights = readSafetensorsDir(abs);
  let numParams = 0;
  const dtypeCount = new Map<string, number>();
  for (const t of weights.tensors.values()) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    numParams += n;
    dtypeCount.set(t.dtype, (dtypeCount.get(t.dtype) ?? 0) + n);
  }
  const quantization = (config.quantization_config as Record<string, unknown> | undefined) ?? null;
  if (quantization) {
    // AutoAWQ: qweight packs 32/bits values per int32 word; count logical weights, not words.
    const bits = Number(quantization.bits ?? quantization.w_bit ?? 4);
    for (const t of weights.tensors.values()) {
      if (t.name.endsWith('.qweight')) numParams += t.shape.reduce((a, b) => a * b, 1) * (32 / bits - 1);
    }
  }
  const weightDtype = [...dtypeCount.entries()].filter(([d]) => d === 'F16' || d === 'BF16' || d === 'F32').sort((a, b) => b[1] - a[1])[0]?.[0];
  const dtype = weightDtype ? SF_TO_TORCH[weightDtype] : declaredDtype(config) ?? 'unknown';
  const sizeBytes = weights.files.reduce((s, f) => s + fs.statSync(f).size, 0);
  const ctx = config.max_position_embeddings ?? config.seq_length ?? config.max_sequence_length;
  let hasChatTemplate = false;
  try {
    hasChatTemplate = findChatTemplate(abs) !== undefined;
  } catch (e) {
    if (!(e instanceof ModelFormatError)) throw e;
  }
  return {
    dir: abs,
    architecture,
    arch: def?.key,
    supported: def !== undefined,
    supportedArchitectures: supportedArchitectures(),
    modelType: typeof config.model_type === 'string' ? config.model_type : 'unknown',
    dtype,
    numParams,
    sizeBytes,
    contextLength: typeof ctx === 'number' ? ctx : null,
    quantization,
    hasTokenizer: fs.existsSync(path.join(abs, 'tokenizer.json')) || fs.existsSync(path.join(abs, 'tokenizer.model')),
    hasChatTemplate,
  };
}
