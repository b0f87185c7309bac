// OpenAI tool calling on the API side (pure: unit-tested beside this file). The request's `tools` / `tool_choice` /
// `parallel_tool_calls` are checked here (a 400 naming the field); the worker renders the tools into the prompt
// (engine: chat-template/tools.ts, the Hermes convention where the template has none). What comes back is parsed
// here into `tool_calls`:
//   - tool_choice 'auto' (the default with tools): <tool_call>{"name": ..., "arguments": ...}</tool_call> blocks in the
//     text (Hermes / Qwen2.5 style; a streamed reply holds back from the first block, or a tag's prefix, to the end),
//     or a reply that is one JSON object {"name": <one of the tools>, "parameters" | "arguments": ...} (Llama 3.1's
//     JSON convention; a streamed reply that starts with "{" is held back to the end);
//   - 'required' or a named function: guided decoding (the request's response_format) makes the reply one JSON value,
//     an array of {name, arguments} or one such object, which becomes the calls;
//   - 'none': the tools stay in the prompt, the reply is plain text.
import { randomUUID } from 'node:crypto';
import type { ServingResponseFormat, ServingTool } from '../engine/engine.adapter';
import { InvalidInputError } from '../errors';

export type ToolMode = 'auto' | 'required' | 'named';

export interface ToolPlan {
  tools: ServingTool[];
  /** How the reply is parsed (undefined: tool_choice 'none', plain text). */
  mode?: ToolMode;
  /** The guided-decoding format for 'required' / 'named'. */
  responseFormat?: ServingResponseFormat;
}

export interface ToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

/** OpenAI's names (functions, json_schema): 1-64 letters, digits, _ or -. */
export const OPENAI_NAME = /^[A-Za-z0-9_-]{1,64}$/;

function bad(message: string, param: string): never {
  throw new InvalidInputError(message, { param });
}

/** Checks OpenAI's tools / tool_choice / parallel_tool_calls; undefined when there are no tools. */
export function parseTools(rawTools: unknown, rawChoice: unknown, parallel: unknown): ToolPlan | undefined {
  if (parallel !== undefined && parallel !== null && typeof parallel !== 'boolean') bad('parallel_tool_calls must be a boolean', 'parallel_tool_calls');
  if (rawTools === undefined || rawTools === null) {
    if (rawChoice !== undefined && rawChoice !== null && rawChoice !== 'none') bad('tool_choice needs tools', 'tool_choice');
    return undefined;
  }
  if (!Array.isArray(rawTools)) bad('tools must be an array of {type: "function", function: {...}}', 'tools');
  if (rawTools.length === 0) bad('tools must not be empty (leave it out instead)', 'tools');
  if (rawTools.length > 128) bad('tools holds at most 128 functions', 'tools');
  const names = new Set<string>();
  const tools = rawTools.map((t, i): ServingTool => {
    const param = `tools[${i}]`;
    if (!t || typeof t !== 'object' || Array.isArray(t)) bad(`${param} must be an object`, param);
    const { type, function: fn } = t as { type?: unknown; function?: unknown };
    if (type !== 'function') bad(`${param}.type must be "function"`, `${param}.type`);
    if (!fn || typeof fn !== 'object' || Array.isArray(fn)) bad(`${param}.function must be an object`, `${param}.function`);
    const { name, description, parameters, strict } = fn as Record<string, unknown>;
    if (typeof name !== 'string' || !OPENAI_NAME.test(name)) bad(`${param}.function.name must be 1-64 letters, digits, _ or -`, `${param}.function.name`);
    if (names.has(name)) bad(`${param}.function.name ${name} is given twice`, `${param}.function.name`);
    names.add(name);
    if (description !== undefined && typeof description !== 'string') bad(`${param}.function.description must be a string`, `${param}.function.description`);
    if (parameters !== undefined && (!parameters || typeof parameters !== 'object' || Array.isArray(parameters))) {
      bad(`${param}.function.parameters must be a JSON Schema object`, `${param}.function.parameters`);
    }
    if (strict !== undefined && strict !== null && typeof strict !== 'boolean') bad(`${param}.function.strict must be a boolean`, `${param}.function.strict`);
    return {
      type: 'function',
      function: {
        name,
        ...(description !== undefined ? { description: description as string } : {}),
        ...(parameters !== undefined ? { parameters: parameters as Record<string, unknown> } : {}),
      },
    };
  });
  const one = parallel === false;
  if (rawChoice === undefined || rawChoice === null || rawChoice === 'auto') return { tools, mode: 'auto' };
  if (rawChoice === 'none') return { tools };
  if (rawChoice === 'required') {
    const item = { anyOf: tools.map(callSchema) };
    return { tools, mode: 'required', responseFormat: { type: 'json_schema', schema: { type: 'array', items: item, minItems: 1, ...(one ? { maxItems: 1 } : {}) } } };
  }
  if (typeof rawChoice === 'object' && !Array.isArray(rawChoice)) {
    const { type, function: fn } = rawChoice as { type?: unknown; function?: unknown };
    const name = (fn as { name?: unknown } | undefined)?.name;
    if (type !== 'function' || typeof name !== 'string') bad('tool_choice must be "none", "auto", "required" or {type: "function", function: {name}}', 'tool_choice');
    const tool = tools.find((t) => t.function.name === name);
    if (!tool) bad(`tool_choice names ${name}, which is not among tools`, 'tool_choice');
    return { tools, mode: 'named', responseFormat: { type: 'json_schema', schema: callSchema(tool) } };
  }
  return bad('tool_choice must be "none", "auto", "required" or {type: "function", function: {name}}', 'tool_choice');
}

/** {"name": <this function>, "arguments": <its parameters>} as a JSON Schema. */
function callSchema(t: ServingTool): Record<string, unknown> {
  return {
    type: 'object',
    properties: { name: { const: t.function.name }, arguments: t.function.parameters ?? { type: 'object' } },
    required: ['name', 'arguments'],
    additionalProperties: false,
  };
}

export function toolCallId(): string {
  return `call_${randomUUID().replace(/-/g, '').slice(0, 24)}`;
}

/** {name, arguments | parameters} -> a call (arguments as a JSON string); undefined when it is not one. */
function asCall(v: unknown): ToolCall | undefined {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return undefined;
  const { name, arguments: args, parameters } = v as Record<string, unknown>;
  if (typeof name !== 'string' || !name) return undefined;
  const a = args !== undefined ? args : parameters !== undefined ? parameters : {};
  return { id: toolCallId(), type: 'function', function: { name, arguments: typeof a === 'string' ? a : JSON.stringify(a) } };
}

const OPEN = '<tool_call>';
const CLOSE = '</tool_call>';

/** <tool_call> blocks out of a whole reply: the calls, and the text around them (null when only calls remain). */
export function parseHermesToolCalls(text: string): { content: string | null; calls: ToolCall[] } {
  const calls: ToolCall[] = [];
  let content = '';
  let at = 0;
  for (;;) {
    const open = text.indexOf(OPEN, at);
    if (open < 0) break;
    const close = text.indexOf(CLOSE, open + OPEN.length);
    const body = text.slice(open + OPEN.length, close < 0 ? text.length : close);
    let call: ToolCall | undefined;
    try {
      call = asCall(JSON.parse(body.trim()));
    } catch {
      call = undefined;
    }
    const end = close < 0 ? text.length : close + CLOSE.length;
    if (call) {
      calls.push(call);
      content += text.slice(at, open);
    } else {
      content += text.slice(at, end); // not a call: the model's text as it was
    }
    at = end;
  }
  content += text.slice(at);
  if (!calls.length) return { content: text, calls };
  const trimmed = content.trim();
  return { content: trimmed ? trimmed : null, calls };
}

/** The reply of a 'required' / 'named' request (guided: one JSON value) as calls; none if it does not parse. */
export function parseGuidedToolCalls(text: string, mode: 'required' | 'named'): ToolCall[] {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return [];
  }
  const items = mode === 'required' ? (Array.isArray(v) ? v : []) : [v];
  return items.map(asCall).filter((c): c is ToolCall => c !== undefined);
}

/** A reply that is one JSON call {"name": <a known tool>, "parameters" | "arguments": {...}} (Llama 3.1). */
export function parseJsonToolCall(text: string, names: readonly string[]): ToolCall | undefined {
  const t = text.trim();
  if (!t.startsWith('{')) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(t);
  } catch {
    return undefined;
  }
  const o = v as Record<string, unknown>;
  if (!o || typeof o !== 'object' || !names.includes(o.name as string)) return undefined;
  if (Object.keys(o).some((k) => k !== 'name' && k !== 'parameters' && k !== 'arguments')) return undefined;
  return asCall(o);
}

/** A whole reply under a tool mode: the message's content and calls (`names`: the tools, for the JSON convention). */
export function parseToolReply(text: string, mode: ToolMode, names: readonly string[] = []): { content: string | null; calls: ToolCall[] } {
  if (mode === 'auto') {
    const r = parseHermesToolCalls(text);
    if (r.calls.length || !names.length) return r;
    const call = parseJsonToolCall(text, names);
    return call ? { content: null, calls: [call] } : r;
  }
  const calls = parseGuidedToolCalls(text, mode);
  return calls.length ? { content: null, calls } : { content: text, calls };
}

/**
 * A streamed reply under a tool mode: push() returns the text that can go out as content now; finish() the calls and
 * whatever text was held back. 'auto' holds back from the first "<tool_call>" (or a trailing prefix of it) to the
 * end; 'required' / 'named' hold back everything (the reply is the calls' JSON).
 */
export class ToolCallStream {
  private held = '';
  private inCall = false;
  private sent = false;

  constructor(
    private readonly mode: ToolMode,
    private readonly names: readonly string[] = [],
  ) {}

  push(text: string): string {
    if (this.mode !== 'auto' || this.inCall) {
      this.held += text;
      return '';
    }
    const s = this.held + text;
    if (!this.sent && this.names.length) {
      // nothing sent yet: a reply that opens with "{" may be a JSON call (held to the end); blank text waits to see
      const lead = s.trimStart();
      if (!lead || lead.startsWith('{')) {
        this.held = s;
        if (lead) this.inCall = true;
        return '';
      }
    }
    const open = s.indexOf(OPEN);
    if (open >= 0) {
      this.inCall = true;
      this.held = s.slice(open);
      if (open > 0) this.sent = true;
      return s.slice(0, open);
    }
    // keep a tail that could be the start of "<tool_call>"
    let keep = 0;
    for (let k = Math.min(OPEN.length - 1, s.length); k > 0; k--) {
      if (OPEN.startsWith(s.slice(s.length - k))) {
        keep = k;
        break;
      }
    }
    this.held = s.slice(s.length - keep);
    const out = s.slice(0, s.length - keep);
    if (out) this.sent = true;
    return out;
  }

  /** The calls (if any) and the text still to send as content (the held-back text when it held no call). */
  finish(): { content: string; calls: ToolCall[] } {
    const rest = this.held;
    this.held = '';
    if (!rest) return { content: '', calls: [] };
    const r = parseToolReply(rest, this.mode, this.names);
    if (!r.calls.length) return { content: rest, calls: [] };
    return { content: r.content ?? '', calls: r.calls };
  }
}
