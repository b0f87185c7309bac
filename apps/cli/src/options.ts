import { InvalidArgumentError, type Command } from 'commander';
import { speculativeOptions, type SpeculativeConfig } from '@lmfleet/engine';
import { parseReasoningParser, type ReasoningParser } from '@lmfleet/platform/serving/reasoning';
import { CliExit } from './io';

/** --reasoning-parser: vLLM's and LMDeploy's names (qwen3, deepseek_r1, deepseek-r1, qwen-qwq) → the API's. */
/** `lmfleet chat --reasoning-parser`: a parser, or none (print the reply as written, even for a Qwen3 model). */
export function parseChatReasoningParserArg(v: string): ReasoningParser | 'none' {
  return v.toLowerCase() === 'none' ? 'none' : parseReasoningParserArg(v);
}

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

/** Speculative decoding's flags: LMDeploy's --speculative-algorithm / --speculative-num-draft-tokens, vLLM's prompt lookup bounds. */
export interface SpeculativeFlags {
  speculativeAlgorithm?: string;
  speculativeNumDraftTokens?: number;
  promptLookupMax?: number;
  promptLookupMin?: number;
}

/**
 * numDraftTokens when only --speculative-algorithm is given: 3, because a step verifying 3 drafts (4 rows) costs ~1.2x
 * a plain decode step on CUDA (Llama-2-7B shape, H100, fp16 and W4A16), while 4 or more pad the step to 8 rows
 * (W4A16 ~1.5x): see test/bench/RESULTS.md, "Session 22".
 */
export const DEFAULT_NUM_DRAFT_TOKENS = 3;

const SPECULATIVE_FLAG_OF: Record<string, string> = {
  numDraftTokens: '--speculative-num-draft-tokens',
  promptLookupMax: '--prompt-lookup-max',
  promptLookupMin: '--prompt-lookup-min',
};

/** Adds the speculative decoding flags to a command (chat, serve api_server, deploy). */
export function speculativeFlags(cmd: Command): Command {
  return cmd
    .option(
      '--speculative-algorithm <name>',
      'speculative decoding: ngram (prompt lookup: drafts are what followed an earlier occurrence of the last tokens in the prompt or output; no draft model). Same output as plain decoding, faster when replies repeat their input (code edits, extraction, RAG)',
    )
    .option('--speculative-num-draft-tokens <n>', `draft tokens verified per step, 1-15 (default ${DEFAULT_NUM_DRAFT_TOKENS}; needs --speculative-algorithm)`, parseIntArg('--speculative-num-draft-tokens', 1))
    .option('--prompt-lookup-max <n>', 'longest n-gram looked up for drafts (default 4; needs --speculative-algorithm)', parseIntArg('--prompt-lookup-max', 1))
    .option('--prompt-lookup-min <n>', 'shortest n-gram looked up for drafts (default 1; needs --speculative-algorithm)', parseIntArg('--prompt-lookup-min', 1));
}

/**
 * The flags as the engine's SpeculativeConfig (undefined: off), checked with the engine's own rules; a CliExit(2) naming
 * the flag otherwise. Only ngram is supported: LMDeploy's draft-model algorithms (eagle, eagle3, deepseek_mtp) are not.
 */
export function speculativeFromFlags(f: SpeculativeFlags, command: string): SpeculativeConfig | undefined {
  const given = ([[f.speculativeNumDraftTokens, 'numDraftTokens'], [f.promptLookupMax, 'promptLookupMax'], [f.promptLookupMin, 'promptLookupMin']] as const)
    .filter(([v]) => v !== undefined)
    .map(([, k]) => SPECULATIVE_FLAG_OF[k]);
  if (f.speculativeAlgorithm === undefined) {
    if (given.length) throw new CliExit(2, `lmfleet ${command}: ${given.join(', ')} without --speculative-algorithm: add --speculative-algorithm ngram to decode speculatively`);
    return undefined;
  }
  if (f.speculativeAlgorithm !== 'ngram') {
    throw new CliExit(
      2,
      `lmfleet ${command}: --speculative-algorithm ${f.speculativeAlgorithm}: only ngram is supported (prompt lookup, no draft model); draft-model algorithms (eagle, eagle3, deepseek_mtp) are not`,
    );
  }
  const sp: SpeculativeConfig = {
    method: 'ngram',
    numDraftTokens: f.speculativeNumDraftTokens ?? DEFAULT_NUM_DRAFT_TOKENS,
    ...(f.promptLookupMax !== undefined ? { promptLookupMax: f.promptLookupMax } : {}),
    ...(f.promptLookupMin !== undefined ? { promptLookupMin: f.promptLookupMin } : {}),
  };
  try {
    speculativeOptions(sp);
  } catch (e) {
    // the engine names its fields (speculative.numDraftTokens); the user typed flags
    const msg = (e as Error).message.replace(/speculative\.(\w+)/g, (m, k: string) => SPECULATIVE_FLAG_OF[k] ?? m);
    throw new CliExit(2, `lmfleet ${command}: ${msg}`);
  }
  return sp;
}
