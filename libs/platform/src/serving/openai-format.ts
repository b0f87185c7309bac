// OpenAI's response shapes, built from the worker's stream events (pure: unit-tested beside this file).
import type { FinishReason, PromptLogprob, StreamEvent, StreamLogprob } from './protocol';
import { ReasoningStream, splitReasoning, type ReasoningParser } from './reasoning';
import { parseToolReply, ToolCallStream, type ToolMode } from './tool-calls';

export interface ChatLogprobContent {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: Array<{ token: string; logprob: number; bytes: number[] }>;
}

export interface CompletionLogprobs {
  tokens: string[];
  /** null for an echoed prompt's first token */
  token_logprobs: Array<number | null>;
  top_logprobs: Array<Record<string, number> | null> | null;
  text_offset: number[];
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** Deployments with prefix caching: prompt tokens whose KV came from the cache (OpenAI's cached_tokens). */
  prompt_tokens_details?: { cached_tokens: number };
}

/** 'cancelled' never reaches a client that is still there except through shutdown: report it as OpenAI does an abort. */
export function openAIFinish(f: FinishReason): 'stop' | 'length' {
  return f === 'length' ? 'length' : 'stop';
}

export function usageOf(promptTokens: number, completionTokens: number, cachedTokens?: number): Usage {
  const u: Usage = { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
  if (cachedTokens !== undefined) u.prompt_tokens_details = { cached_tokens: cachedTokens };
  return u;
}

function usageOfEnd(ev: Extract<StreamEvent, { t: 'end' }>): Usage {
  return usageOf(ev.promptTokens, ev.completionTokens, ev.cachedTokens);
}

export function chatLogprobs(lps: StreamLogprob[], topN: number): ChatLogprobContent[] {
  // (chat never carries prompt log-probs: every entry has a logprob)
  return lps.map((lp) => ({ token: lp.token, logprob: lp.logprob ?? 0, bytes: lp.bytes, top_logprobs: lp.top.slice(0, topN) }));
}

/** Completion logprobs of one delta; `offset` is the text offset of the delta's first token. */
export function completionLogprobs(lps: StreamLogprob[], topN: number, offset: number): CompletionLogprobs {
  const out: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: topN > 0 ? [] : null, text_offset: [] };
  let at = offset;
  for (const lp of lps) {
    out.tokens.push(lp.token);
    out.token_logprobs.push(lp.logprob);
    out.text_offset.push(at);
    at += lp.token.length;
    if (out.top_logprobs) out.top_logprobs.push(lp.logprob === null ? null : Object.fromEntries(lp.top.slice(0, topN).map((a) => [a.token, a.logprob])));
  }
  return out;
}

function mergeCompletionLogprobs(a: CompletionLogprobs | null, b: CompletionLogprobs): CompletionLogprobs {
  if (!a) return b;
  return {
    tokens: [...a.tokens, ...b.tokens],
    token_logprobs: [...a.token_logprobs, ...b.token_logprobs],
    top_logprobs: a.top_logprobs && b.top_logprobs ? [...a.top_logprobs, ...b.top_logprobs] : a.top_logprobs,
    text_offset: [...a.text_offset, ...b.text_offset],
  };
}

interface Meta {
  id: string;
  created: number;
  model: string;
}

/** A finished choice's finish_reason: 'tool_calls' when it ended by itself with calls. */
function chatFinish(f: FinishReason, calls: number): 'stop' | 'length' | 'tool_calls' {
  return calls > 0 && f === 'stop' ? 'tool_calls' : openAIFinish(f);
}

/**
 * Turns stream events into chat.completion.chunk objects (one per delta; role first; usage chunk last). With a
 * reasoning parser the text first goes through a ReasoningStream (deltas of reasoning_content, then of content); with a
 * tool mode the content goes through a ToolCallStream: calls go out as one tool_calls delta before the finish chunk.
 */
export class ChatChunker {
  private readonly started = new Set<number>();
  private readonly toolStreams = new Map<number, ToolCallStream>();
  private readonly reasoningStreams = new Map<number, ReasoningStream>();

  constructor(
    private readonly meta: Meta,
    private readonly opts: { logprobs?: number; includeUsage: boolean; toolMode?: ToolMode; toolNames?: string[]; reasoning?: ReasoningParser },
  ) {}

  private reasoningStream(i: number): ReasoningStream | undefined {
    if (!this.opts.reasoning) return undefined;
    let r = this.reasoningStreams.get(i);
    if (!r) {
      r = new ReasoningStream(this.opts.reasoning);
      this.reasoningStreams.set(i, r);
    }
    return r;
  }

  private toolStream(i: number): ToolCallStream | undefined {
    if (!this.opts.toolMode) return undefined;
    let t = this.toolStreams.get(i);
    if (!t) {
      t = new ToolCallStream(this.opts.toolMode, this.opts.toolNames);
      this.toolStreams.set(i, t);
    }
    return t;
  }

  private chunk(choices: unknown[], usage?: Usage | null) {
    return {
      id: this.meta.id,
      object: 'chat.completion.chunk' as const,
      created: this.meta.created,
      model: this.meta.model,
      system_fingerprint: null,
      choices,
      ...(this.opts.includeUsage ? { usage: usage ?? null } : {}),
    };
  }

  /** The chunks one event produces. */
  push(ev: StreamEvent): object[] {
    const out: object[] = [];
    if (ev.t === 'delta' || ev.t === 'done') {
      if (!this.started.has(ev.i)) {
        this.started.add(ev.i);
        out.push(this.chunk([{ index: ev.i, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]));
      }
    }
    if (ev.t === 'delta') {
      const parts = this.reasoningStream(ev.i)?.push(ev.text) ?? { reasoning: '', content: ev.text };
      const ts = this.toolStream(ev.i);
      const text = ts ? ts.push(parts.content) : parts.content;
      if (text || parts.reasoning || ev.logprobs?.length) {
        const logprobs = this.opts.logprobs !== undefined && ev.logprobs ? { content: chatLogprobs(ev.logprobs, this.opts.logprobs), refusal: null } : null;
        // reasoning_content while thinking; content once there is some (or when there is no reasoning at all)
        const delta: { reasoning_content?: string; content?: string } = {};
        if (parts.reasoning) delta.reasoning_content = parts.reasoning;
        if (text || !parts.reasoning) delta.content = text;
        out.push(this.chunk([{ index: ev.i, delta, logprobs, finish_reason: null }]));
      }
    } else if (ev.t === 'done') {
      const rest = this.reasoningStream(ev.i)?.finish();
      if (rest?.reasoning) out.push(this.chunk([{ index: ev.i, delta: { reasoning_content: rest.reasoning }, logprobs: null, finish_reason: null }]));
      const ts = this.toolStream(ev.i);
      let tail = rest?.content ?? '';
      if (ts && tail) tail = ts.push(tail);
      if (tail) out.push(this.chunk([{ index: ev.i, delta: { content: tail }, logprobs: null, finish_reason: null }]));
      const f = ts?.finish();
      if (f?.content) out.push(this.chunk([{ index: ev.i, delta: { content: f.content }, logprobs: null, finish_reason: null }]));
      if (f?.calls.length) {
        const tool_calls = f.calls.map((c, k) => ({ index: k, id: c.id, type: c.type, function: c.function }));
        out.push(this.chunk([{ index: ev.i, delta: { tool_calls }, logprobs: null, finish_reason: null }]));
      }
      out.push(this.chunk([{ index: ev.i, delta: {}, logprobs: null, finish_reason: chatFinish(ev.finishReason, f?.calls.length ?? 0) }]));
    } else if (ev.t === 'end' && this.opts.includeUsage) {
      out.push(this.chunk([], usageOfEnd(ev)));
    }
    return out;
  }
}

export class CompletionChunker {
  private readonly offsets = new Map<number, number>();

  constructor(
    private readonly meta: Meta,
    private readonly opts: { logprobs?: number; includeUsage: boolean },
  ) {}

  private chunk(choices: unknown[], usage?: Usage | null) {
    return {
      id: this.meta.id,
      object: 'text_completion' as const,
      created: this.meta.created,
      model: this.meta.model,
      system_fingerprint: null,
      choices,
      ...(this.opts.includeUsage ? { usage: usage ?? null } : {}),
    };
  }

  push(ev: StreamEvent): object[] {
    if (ev.t === 'delta') {
      if (!ev.text && !ev.logprobs?.length) return [];
      const at = this.offsets.get(ev.i) ?? 0;
      this.offsets.set(ev.i, at + ev.text.length);
      const logprobs = this.opts.logprobs !== undefined && ev.logprobs ? completionLogprobs(ev.logprobs, this.opts.logprobs, at) : null;
      return [this.chunk([{ index: ev.i, text: ev.text, logprobs, finish_reason: null }])];
    }
    if (ev.t === 'done') return [this.chunk([{ index: ev.i, text: '', logprobs: null, finish_reason: openAIFinish(ev.finishReason) }])];
    if (ev.t === 'end' && this.opts.includeUsage) return [this.chunk([], usageOfEnd(ev))];
    return [];
  }
}

interface ChoiceAcc {
  text: string;
  finish: FinishReason;
  chatLogprobs: ChatLogprobContent[] | null;
  completionLogprobs: CompletionLogprobs | null;
  promptLogprobs: Array<PromptLogprob | null> | null;
}

/** vLLM's prompt_logprobs: per prompt token (the first: null) a map token id -> {logprob, rank, decoded_token} holding
 *  the prompt token itself (its rank in the vocabulary) and the top-N (ranks 1..N). */
export type VllmPromptLogprobs = Array<Record<string, { logprob: number; rank: number; decoded_token: string }> | null>;

export function vllmPromptLogprobs(list: Array<PromptLogprob | null>): VllmPromptLogprobs {
  return list.map((e) =>
    e === null
      ? null
      : Object.fromEntries([
          ...e.top.map((t, j) => [String(t.tokenId), { logprob: t.logprob, rank: j + 1, decoded_token: t.token }] as const),
          [String(e.tokenId), { logprob: e.logprob, rank: e.rank, decoded_token: e.token }] as const,
        ]),
  );
}

/** Collects a whole response (stream: false). */
export class ResponseCollector {
  private readonly choices = new Map<number, ChoiceAcc>();
  usage: Usage = usageOf(0, 0);

  constructor(private readonly opts: { logprobs?: number; toolMode?: ToolMode; toolNames?: string[]; promptLogprobs?: boolean; reasoning?: ReasoningParser }) {}

  private acc(i: number): ChoiceAcc {
    let a = this.choices.get(i);
    if (!a) {
      a = { text: '', finish: 'length', chatLogprobs: null, completionLogprobs: null, promptLogprobs: null };
      this.choices.set(i, a);
    }
    return a;
  }

  push(ev: StreamEvent): void {
    if (ev.t === 'delta') {
      const a = this.acc(ev.i);
      if (this.opts.logprobs !== undefined && ev.logprobs) {
        (a.chatLogprobs ??= []).push(...chatLogprobs(ev.logprobs, this.opts.logprobs));
        a.completionLogprobs = mergeCompletionLogprobs(a.completionLogprobs, completionLogprobs(ev.logprobs, this.opts.logprobs, a.text.length));
      }
      if (ev.promptLogprobs) a.promptLogprobs = ev.promptLogprobs;
      a.text += ev.text;
    } else if (ev.t === 'done') {
      this.acc(ev.i).finish = ev.finishReason;
    } else if (ev.t === 'end') {
      this.usage = usageOfEnd(ev);
    }
  }

  private sorted(): Array<[number, ChoiceAcc]> {
    return [...this.choices.entries()].sort((a, b) => a[0] - b[0]);
  }

  chatCompletion(meta: Meta) {
    return {
      id: meta.id,
      object: 'chat.completion' as const,
      created: meta.created,
      model: meta.model,
      system_fingerprint: null,
      choices: this.sorted().map(([index, a]) => {
        // reasoning models: the think block is reasoning_content (null when the reply had none), tools read the rest
        const split = this.opts.reasoning ? splitReasoning(a.text, this.opts.reasoning) : undefined;
        const text = split ? split.content : a.text;
        const r = this.opts.toolMode ? parseToolReply(text, this.opts.toolMode, this.opts.toolNames) : { content: text, calls: [] };
        return {
          index,
          message: {
            role: 'assistant' as const,
            content: r.content,
            ...(split ? { reasoning_content: split.reasoning } : {}),
            refusal: null,
            ...(r.calls.length ? { tool_calls: r.calls } : {}),
          },
          logprobs: this.opts.logprobs !== undefined ? { content: a.chatLogprobs ?? [], refusal: null } : null,
          finish_reason: chatFinish(a.finish, r.calls.length),
        };
      }),
      usage: this.usage,
      // vLLM's prompt_logprobs: one prompt for the whole response
      ...(this.opts.promptLogprobs ? { prompt_logprobs: vllmPromptLogprobs(this.choices.get(0)?.promptLogprobs ?? []) } : {}),
    };
  }

  completion(meta: Meta) {
    return {
      id: meta.id,
      object: 'text_completion' as const,
      created: meta.created,
      model: meta.model,
      system_fingerprint: null,
      choices: this.sorted().map(([index, a]) => ({
        index,
        text: a.text,
        logprobs: this.opts.logprobs !== undefined ? (a.completionLogprobs ?? { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] }) : null,
        finish_reason: openAIFinish(a.finish),
        ...(this.opts.promptLogprobs ? { prompt_logprobs: vllmPromptLogprobs(a.promptLogprobs ?? []) } : {}),
      })),
      usage: this.usage,
    };
  }

  /** LMDeploy's /v1/chat/interactive response. */
  interactive(inputTokens: number, historyTokens: number) {
    const a = this.choices.get(0);
    return {
      text: a?.text ?? '',
      tokens: this.usage.completion_tokens,
      input_tokens: inputTokens,
      history_tokens: historyTokens,
      finish_reason: a ? openAIFinish(a.finish) : 'stop',
    };
  }
}
