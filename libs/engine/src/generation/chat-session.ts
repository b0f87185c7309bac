// A multi-turn chat that keeps its KV cache between turns (LMDeploy's interactive chat). Each turn renders the whole
// conversation with the chat template; when the rendered text extends what the session's cache already holds, only
// the new part is tokenized and sent, otherwise (template rewrites history, stop word cut a turn, session full) the
// session is restarted with the full prompt.
import type { ChatMessage } from '../chat-template/chat-template';
import { EngineError } from '../errors';
import type { Engine } from './engine';
import { pickSampling } from './engine';
import type { FinishReason, GenerationConfig, StreamOutput } from './types';

export interface ChatSessionOptions {
  sessionId?: number;
  /** A system prompt placed first in the conversation. */
  system?: string;
}

export class ChatSession {
  readonly sessionId: number;
  readonly messages: ChatMessage[] = [];
  /** The text the session's KV cache holds (undefined: nothing kept). */
  private kvText: string | undefined;
  /** Tokens the last turn sent (for callers displaying usage). */
  lastInputTokens = 0;

  constructor(private readonly engine: Engine, opts: ChatSessionOptions = {}) {
    this.sessionId = opts.sessionId ?? engine.allocateSessionId();
    if (opts.system) this.messages.push({ role: 'system', content: opts.system });
  }

  /** Sends a user message and streams the reply; the reply is appended to `messages` when the stream ends. */
  async *send(content: string, gen: GenerationConfig = {}): AsyncGenerator<StreamOutput> {
    const engine = this.engine;
    const next: ChatMessage[] = [...this.messages, { role: 'user', content }];
    const full = engine.chatTemplate.render(next, { addGenerationPrompt: true });
    const maxNewTokens = gen.maxNewTokens ?? 512;
    let sendText: string;
    if (this.kvText !== undefined && full.startsWith(this.kvText)) {
      sendText = full.slice(this.kvText.length);
    } else {
      this.restart();
      sendText = full;
    }
    let inputIds = engine.tokenizer.encode(sendText, { addSpecialTokens: false });
    if (this.kvText !== undefined && engine.sessionLength(this.sessionId) + inputIds.length + maxNewTokens > engine.sessionLen) {
      this.restart();
      sendText = full;
      inputIds = engine.tokenizer.encode(sendText, { addSpecialTokens: false });
    }
    if (inputIds.length + maxNewTokens > engine.sessionLen) {
      throw new EngineError(
        `conversation of ${inputIds.length} tokens + maxNewTokens ${maxNewTokens} exceeds sessionLen ${engine.sessionLen}; start a new chat`,
        'E_INVALID_ARGUMENT',
      );
    }
    this.lastInputTokens = inputIds.length;
    const prior = this.kvText;
    const generated: number[] = [];
    let reply = '';
    let finishReason: FinishReason | undefined;
    let stopWord: string | undefined;
    const stopIds = [...(gen.ignoreEos ? [] : engine.defaultStopIds(true)), ...(gen.stopIds ?? [])];
    try {
      for await (const out of engine.createInstance().streamInfer({
        sessionId: this.sessionId,
        inputIds,
        maxNewTokens,
        stopIds,
        stopWords: gen.stopWords,
        sampling: pickSampling(gen),
        logprobs: gen.logprobs,
        signal: gen.signal,
        skipSpecialTokens: gen.skipSpecialTokens,
      })) {
        generated.push(...out.tokenIds);
        reply += out.text;
        if (out.finishReason) finishReason = out.finishReason;
        if (out.stopWord !== undefined) stopWord = out.stopWord;
        yield out;
      }
    } finally {
      this.messages.push({ role: 'user', content }, { role: 'assistant', content: reply });
      this.kvText = undefined;
      if ((finishReason === 'stop' || finishReason === 'length') && stopWord === undefined) {
        const base = (prior ?? '') + sendText + engine.tokenizer.decode(generated, { skipSpecialTokens: false });
        if (finishReason === 'length') {
          this.kvText = base;
        } else {
          // The stop token that ended the turn is in the session's cache but was never streamed (native semantics).
          // Take it to be the one the template writes after the reply; if none fits, start over next turn.
          const rendered = engine.chatTemplate.render(this.messages, { addGenerationPrompt: false });
          if (rendered.startsWith(base)) {
            const cont = rendered.slice(base.length);
            const stopText = stopIds.map((id) => engine.tokenizer.decode([id], { skipSpecialTokens: false })).find((t) => t && cont.startsWith(t));
            if (stopText !== undefined) this.kvText = base + stopText;
          }
        }
      }
      // Cut by a stop word, cancelled, failed or abandoned mid-stream (the native session is gone), or a history
      // the template renders differently: the next turn starts the session over with the full prompt.
      if (this.kvText === undefined) engine.endSession(this.sessionId);
    }
  }

  /** Forgets the conversation (keeps the system prompt) and drops the KV cache. */
  reset(): void {
    const system = this.messages[0]?.role === 'system' ? this.messages[0] : undefined;
    this.messages.length = 0;
    if (system) this.messages.push(system);
    this.restart();
  }

  /** Drops the session's KV cache. */
  end(): void {
    this.restart();
  }

  private restart(): void {
    if (this.kvText !== undefined || this.engine.sessionLength(this.sessionId) > 0) this.engine.endSession(this.sessionId);
    this.kvText = undefined;
  }
}
