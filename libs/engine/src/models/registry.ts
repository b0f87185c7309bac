// One line per architecture. Adding one: write models/<arch>.ts and add it here.
import { UnsupportedArchitectureError } from '../errors';
import { gemma } from './gemma';
import { gemma2 } from './gemma2';
import { gemma3, gemma3Multimodal } from './gemma3';
import { granite } from './granite';
import { internlm } from './internlm';
import { internlm2 } from './internlm2';
import { llama } from './llama';
import { mistral } from './mistral';
import { mixtral, qwen3Moe } from './moe';
import { phi3 } from './phi3';
import { qwen2 } from './qwen2';
import { qwen3 } from './qwen3';
import { smollm3 } from './smollm3';
import type { ArchitectureDef } from './spec';

export const ARCHITECTURES: readonly ArchitectureDef[] = [
  llama,
  mistral,
  qwen2,
  qwen3,
  phi3,
  smollm3,
  granite,
  gemma,
  gemma2,
  gemma3,
  gemma3Multimodal,
  internlm,
  internlm2,
  mixtral,
  qwen3Moe,
];

export function supportedArchitectures(): string[] {
  return ARCHITECTURES.flatMap((a) => a.hfArchitectures);
}

/** Every supported HF class name with what the platform cannot do with it yet (ArchitectureDef.limits), if anything. */
export function architectureLimits(): Array<{ hfArchitecture: string; limits?: string }> {
  return ARCHITECTURES.flatMap((a) => a.hfArchitectures.map((h) => ({ hfArchitecture: h, ...(a.limits ? { limits: a.limits } : {}) })));
}

/** Finds the architecture for an HF class name (config.json `architectures[0]`). */
export function getArchitecture(hfArchitecture: string, where?: string): ArchitectureDef {
  const def = ARCHITECTURES.find((a) => a.hfArchitectures.includes(hfArchitecture));
  if (!def) throw new UnsupportedArchitectureError(hfArchitecture, supportedArchitectures(), where);
  return def;
}
