// `lmfleet chat MODEL_DIR`: a streaming terminal chat. The KV cache is kept between turns (one engine session);
// `end` (or `reset`) starts a new conversation, `exit` quits. Ctrl-C stops the reply being generated. A reasoning
// model's thinking is printed apart from its answer (./chat-reasoning.ts).
import * as fs from 'node:fs';
import * as readline from 'node:readline';
import { Engine, type SpeculativeConfig } from '@lmfleet/engine';
import type { ReasoningParser } from '@lmfleet/platform/serving/reasoning';
import { CliExit, type CliIO } from '../io';
import { chatReasoningParser, ReplyPrinter } from './chat-reasoning';

export interface ChatFlags {
  /** --quant-policy (KV cache int8/int4) and --kv-calib-dir (calibrated KV scales). */
  quantPolicy?: '0' | '4' | '8';
  kvCalibDir?: string;
  backend: 'auto' | 'cpu' | 'cuda';
  sessionLen?: number;
  cacheMaxEntryCount?: number;
  maxBatchSize?: number;
  tp?: number;
  threads?: number;
  system?: string;
  chatTemplate?: string;
  temperature: number;
  topP: number;
  topK: number;
  minP?: number;
  repetitionPenalty: number;
  seed?: number;
  maxNewTokens: number;
  stopWords?: string[];
  /** --reasoning-parser: how the reply's <think> block is told apart (default: qwen3 for Qwen3ForCausalLM; none: off). */
  reasoningParser?: ReasoningParser | 'none';
  /** --speculative-algorithm ngram and its counts (options.ts speculativeFromFlags); absent: plain decoding. */
  speculative?: SpeculativeConfig;
  verbose?: boolean;
}

export async function chatCommand(io: CliIO, modelDir: string, flags: ChatFlags): Promise<void> {
  let chatTemplate: string | undefined;
  if (flags.chatTemplate !== undefined) {
    try {
      chatTemplate = fs.readFileSync(flags.chatTemplate, 'utf8');
    } catch (e) {
      throw new CliExit(2, `--chat-template ${flags.chatTemplate}: ${(e as Error).message}`);
    }
  }
  const engine = await Engine.fromPretrained(modelDir, {
    chatTemplate,
    backend: flags.backend,
    sessionLen: flags.sessionLen,
    cacheMaxEntryCount: flags.cacheMaxEntryCount,
    maxBatchSize: flags.maxBatchSize ?? 1,
    threads: flags.threads,
    ...(flags.tp !== undefined && flags.tp !== 1 ? { tp: flags.tp } : {}),
    ...(flags.quantPolicy !== undefined ? { quantPolicy: Number(flags.quantPolicy) as 0 | 4 | 8 } : {}),
    ...(flags.kvCalibDir !== undefined ? { kvCalibDir: flags.kvCalibDir } : {}),
    ...(flags.speculative ? { speculative: flags.speculative } : {}),
    native: io.native,
    log: (level, msg) => {
      if (level !== 'debug' || flags.verbose) io.stderr.write(`[${level}] ${msg}\n`);
    },
  });
  const interactive = io.stdin.isTTY === true;
  const reasoning = chatReasoningParser(flags.reasoningParser, engine.spec.hfArchitecture);
  const tty = io.stdout.isTTY === true;
  const chat = engine.createChat({ system: flags.system });
  const rl = readline.createInterface({ input: io.stdin, terminal: false });
  const say = (s: string) => io.stdout.write(s);
  if (interactive) {
    say(`lmfleet chat: ${engine.spec.hfArchitecture} on ${engine.backend}, session length ${engine.sessionLen}. ` +
      `${reasoning ? `Reasoning parser ${reasoning}. ` : ''}Type "end" to start a new conversation, "exit" to quit.\n`);
  }
  let turn = 0;
  try {
    if (interactive) say('\nuser> ');
    for await (const raw of rl) {
      const line = raw.trim();
      if (line === 'exit' || line === 'quit') break;
      if (line === 'end' || line === 'reset') {
        chat.reset();
        if (interactive) say('(new conversation)\n\nuser> ');
        continue;
      }
      if (line === '') {
        if (interactive) say('user> ');
        continue;
      }
      turn++;
      if (interactive) say('assistant> ');
      const ac = new AbortController();
      io.onInterrupt?.(() => ac.abort());
      // only what is printed changes: the session keeps the reply's text as the model wrote it
      const printer = new ReplyPrinter(reasoning, tty);
      try {
        for await (const out of chat.send(line, {
          maxNewTokens: flags.maxNewTokens,
          temperature: flags.temperature,
          topP: flags.topP,
          topK: flags.topK,
          ...(flags.minP !== undefined ? { minP: flags.minP } : {}),
          repetitionPenalty: flags.repetitionPenalty,
          seed: flags.seed !== undefined ? flags.seed + turn : undefined,
          stopWords: flags.stopWords,
          signal: ac.signal,
        })) {
          say(printer.push(out.text));
          if (out.finishReason) say(printer.finish());
          if (out.finishReason && flags.verbose && out.usage) {
            io.stderr.write(
              `\n[${out.finishReason}] ${out.usage.promptTokens} prompt + ${out.usage.completionTokens} generated tokens, ` +
                `first token ${out.usage.firstTokenMs.toFixed(1)} ms, total ${out.usage.totalMs.toFixed(1)} ms` +
                (out.usage.draftTokens !== undefined ? `, ${out.usage.acceptedDraftTokens ?? 0} of ${out.usage.draftTokens} draft tokens accepted` : '') +
                '\n',
            );
          }
          if (out.finishReason === 'cancelled') say(' [stopped]');
        }
      } finally {
        io.onInterrupt?.(undefined);
      }
      say('\n');
      if (interactive) say('\nuser> ');
    }
  } finally {
    rl.close();
    chat.end();
    await engine.dispose();
  }
}
