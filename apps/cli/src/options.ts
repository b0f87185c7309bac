import { InvalidArgumentError } from 'commander';
import { parseReasoningParser, type ReasoningParser } from '@lmfleet/platform/serving/reasoning';

/** --reasoning-parser: vLLM's and LMDeploy's names (qwen3, deepseek_r1, deepseek-r1, qwen-qwq) → the API's. */
export function parseReasoningParserArg(v: string): ReasoningParser {
  try {
    return parseReasoningParser(v, '--reasoning-parser');
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

export function parseIntArg(name: string, min = 0): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min}`);
    return n;
  };
}

export function parseFloatArg(name: string, min = -Infinity, max = Infinity): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be a number in [${min}, ${max}]`);
    return n;
  };
}

export function parseBackend(v: string): 'auto' | 'cpu' | 'cuda' {
  if (v === 'auto' || v === 'cpu' || v === 'cuda') return v;
  if (v === 'turbomind') return 'auto'; // LMDeploy's name for its native engine
  throw new InvalidArgumentError('backend must be auto, cpu or cuda');
}
