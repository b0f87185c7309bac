// Chat templates: chat_template.jinja, else tokenizer_config.json `chat_template` (a string, or a list of
// { name, template } where we take "default"), else the architecture's built-in template. Rendered with
// @huggingface/jinja.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Template } from '@huggingface/jinja';
import { InvalidArgumentError, ModelFormatError } from '../errors';
import { readJson } from '../io/json';
import type { ToolCallMessage, ToolSpec } from './tools';
import { messagesForToolTemplate, messagesWithHermesTools, templateKnowsTools } from './tools';

export type ChatRole = 'system' | 'user' | 'assistant' | 'tool' | (string & {});

export interface ChatMessage {
  role: ChatRole;
  content: string;
  /** assistant: the tool calls it made (OpenAI's shape, arguments a JSON string). */
  tool_calls?: ToolCallMessage[];
  /** tool: the call this message answers. */
  tool_call_id?: string;
  /** tool: the function's name, where the client gave it. */
  name?: string;
  /** assistant: its thinking, as a reasoning parser returned it (Qwen3's template puts it back for the current turn). */
  reasoning_content?: string;
}

export interface RenderOptions {
  addGenerationPrompt?: boolean;
  /** Extra variables for the template (documents, Qwen3's enable_thinking, ...: vLLM's chat_template_kwargs). They
   *  cannot replace messages, tools, add_generation_prompt, bos_token or eos_token. */
  extra?: Record<string, unknown>;
  /** OpenAI's tools: passed as `tools` to a template that reads it, else written in the Hermes convention (tools.ts). */
  tools?: readonly ToolSpec[];
}

export type ChatTemplateSource = 'chat_template.jinja' | 'tokenizer_config.json' | 'builtin';

export class ChatTemplate {
  private readonly template: Template;
  /** The template reads `tools` (renders them itself). */
  readonly knowsTools: boolean;

  constructor(
    readonly source: string,
    readonly origin: ChatTemplateSource,
    private readonly specials: { bosToken?: string; eosToken?: string } = {},
    file?: string,
  ) {
    this.knowsTools = templateKnowsTools(source);
    try {
      this.template = new Template(source);
    } catch (e) {
      throw new ModelFormatError(`cannot parse chat template: ${(e as Error).message}`, { file: file ?? origin }, { cause: e });
    }
  }

  /** Renders a conversation. Errors raised by the template (`raise_exception`) become InvalidArgumentError. */
  render(messages: readonly ChatMessage[], opts: RenderOptions = {}): string {
    const withTools = opts.tools !== undefined || messages.some((m) => m.role === 'tool' || m.tool_calls?.length);
    let msgs: Array<Record<string, unknown>>;
    let tools: Record<string, unknown> = {};
    if (!withTools) msgs = messages.map((m) => ({ ...m }));
    else if (this.knowsTools) {
      msgs = messagesForToolTemplate(messages);
      if (opts.tools?.length) tools = { tools: opts.tools };
    } else msgs = messagesWithHermesTools(messages, opts.tools ?? []).map((m) => ({ ...m }));
    try {
      return this.template.render({
        ...opts.extra,
        ...tools,
        messages: msgs,
        add_generation_prompt: opts.addGenerationPrompt ?? true,
        bos_token: this.specials.bosToken ?? '',
        eos_token: this.specials.eosToken ?? '',
      });
    } catch (e) {
      throw new InvalidArgumentError(`chat template (${this.origin}) refused the conversation: ${(e as Error).message}`, { cause: e });
    }
  }
}

/** The template a model directory ships, if any (text and where it came from). */
export function findChatTemplate(dir: string): { source: string; origin: ChatTemplateSource; file: string } | undefined {
  const abs = path.resolve(dir);
  const jinja = path.join(abs, 'chat_template.jinja');
  if (fs.existsSync(jinja)) return { source: fs.readFileSync(jinja, 'utf8'), origin: 'chat_template.jinja', file: jinja };
  const cfgFile = path.join(abs, 'tokenizer_config.json');
  const cfg = readJson<Record<string, unknown>>(cfgFile, true);
  const ct = cfg?.chat_template;
  if (typeof ct === 'string') return { source: ct, origin: 'tokenizer_config.json', file: cfgFile };
  if (Array.isArray(ct)) {
    const named = ct as Array<{ name?: string; template?: string }>;
    const pick = named.find((t) => t.name === 'default') ?? named[0];
    if (pick && typeof pick.template === 'string') return { source: pick.template, origin: 'tokenizer_config.json', file: cfgFile };
    throw new ModelFormatError('chat_template list has no usable template', { file: cfgFile, expected: '[{name, template}]' });
  }
  return undefined;
}

/** Loads the model's chat template, falling back to `builtin` (the architecture's default) when none ships. */
export function loadChatTemplate(dir: string, builtin: string, specials: { bosToken?: string; eosToken?: string }): ChatTemplate {
  const found = findChatTemplate(dir);
  if (found) return new ChatTemplate(found.source, found.origin, specials, found.file);
  return new ChatTemplate(builtin, 'builtin', specials);
}
