// Speculative decoding's settings (EngineConfig.speculative) as the native engine's options. Pure: the API validates a
// deployment's setting with it (through the inspect module) without loading the generation code.
import { InvalidArgumentError } from '../errors';
import type { SpeculativeConfig } from './types';

/**
 * EngineConfig.speculative -> the native engine's options, validated (InvalidArgumentError naming the field). Absent: off.
 */
export function speculativeOptions(sp: SpeculativeConfig | undefined): { specDraftTokens?: number; specNgramMax?: number; specNgramMin?: number } {
  if (sp === undefined) return {};
  if (sp === null || typeof sp !== 'object') throw new InvalidArgumentError('speculative must be an object like {"method": "ngram", "numDraftTokens": 4}');
  if (sp.method !== 'ngram') throw new InvalidArgumentError(`speculative.method must be "ngram" (draft-model methods are not supported); got ${JSON.stringify(sp.method)}`);
  const int = (v: unknown, name: string, lo: number, hi: number) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) throw new InvalidArgumentError(`speculative.${name} must be an integer in [${lo}, ${hi}]; got ${JSON.stringify(v)}`);
    return v;
  };
  const k = int(sp.numDraftTokens, 'numDraftTokens', 1, MAX_DRAFT_TOKENS);
  const max = sp.promptLookupMax === undefined ? 4 : int(sp.promptLookupMax, 'promptLookupMax', 1, 64);
  const min = sp.promptLookupMin === undefined ? Math.min(1, max) : int(sp.promptLookupMin, 'promptLookupMin', 1, max);
  return { specDraftTokens: k, specNgramMax: max, specNgramMin: min };
}

/** The most draft tokens a step verifies per request (the native scheduler's kMaxDraftTokens). */
export const MAX_DRAFT_TOKENS = 15;
