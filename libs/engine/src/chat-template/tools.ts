// Tool calling in the prompt (OpenAI's `tools`): a template that knows tools (Qwen2.5, Llama 3.1, Hermes, ... all read
// a `tools` variable) gets them, with each assistant tool call's arguments as an object, as Hugging Face's
// apply_chat_template passes them. A template that does not mention tools gets the Hermes convention written into the
// conversation instead (what Qwen2.5's own template writes): the tool list in the system message, calls as
// <tool_call>{"name": ..., "arguments": ...}</tool_call>, results as <tool_response> user turns. Either way the model is
// asked to answer with <tool_call> blocks, which the API parses (libs/platform: tool-calls.ts).
import type { ChatMessage } from './chat-template';

/** OpenAI's function tool: {type: 'function', function: {name, description?, parameters?, strict?}}. */
export interface ToolSpec {
  type: 'function';
  function: { name: string; description?: string; parameters?: Record<string, unknown>; strict?: boolean };
}

/** A call an assistant message made (OpenAI's shape: arguments is a JSON string). */
export interface ToolCallMessage {
  id?: string;
  type?: 'function';
  function: { name: string; arguments: string };
}

/** Whether the template reads a `tools` variable (then it renders tools itself). */
export function templateKnowsTools(source: string): boolean {
  return /\btools\b/.test(source);
}

function argumentsObject(args: string): unknown {
  try {
    return JSON.parse(args);
  } catch {
    return args;
  }
}

/** Messages as a tools-aware template wants them: tool calls with object arguments (HF's convention). */
export function messagesForToolTemplate(messages: readonly ChatMessage[]): Array<Record<string, unknown>> {
  return messages.map((m) => {
    const out: Record<string, unknown> = { ...m };
    if (m.tool_calls?.length) {
      out.tool_calls = m.tool_calls.map((c) => ({
        ...(c.id ? { id: c.id } : {}),
        type: 'function',
        function: { name: c.function.name, arguments: argumentsObject(c.function.arguments) },
      }));
    }
    return out;
  });
}

/** The Hermes tool preamble (the system message's tail). */
export function hermesToolPreamble(tools: readonly ToolSpec[]): string {
  const list = tools.map((t) => JSON.stringify(t)).join('\n');
  return (
    '# Tools\n\nYou may call one or more functions to assist with the user query.\n\n' +
    'You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n' +
    list +
    '\n</tools>\n\nFor each function call, return a json object with function name and arguments within ' +
    '<tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
  );
}

/** A tool call as the Hermes convention writes it. */
export function hermesToolCall(c: ToolCallMessage): string {
  return `<tool_call>\n${JSON.stringify({ name: c.function.name, arguments: argumentsObject(c.function.arguments) })}\n</tool_call>`;
}

/**
 * The conversation rewritten for a template that knows nothing of tools: the preamble joins (or becomes) the system
 * message, assistant tool calls become text after the assistant's content, and each run of tool results becomes one
 * user turn of <tool_response> blocks.
 */
export function messagesWithHermesTools(messages: readonly ChatMessage[], tools: readonly ToolSpec[]): ChatMessage[] {
  const out: Array<ChatMessage & { fromTool?: boolean }> = [];
  const preamble = tools.length ? hermesToolPreamble(tools) : '';
  let rest = messages;
  if (preamble) {
    if (messages[0]?.role === 'system') {
      out.push({ role: 'system', content: `${messages[0].content}\n\n${preamble}` });
      rest = messages.slice(1);
    } else {
      out.push({ role: 'system', content: preamble });
    }
  }
  for (const m of rest) {
    if (m.role === 'tool') {
      const block = `<tool_response>\n${m.content}\n</tool_response>`;
      const last = out[out.length - 1];
      if (last && last.role === 'user' && last.fromTool) last.content += `\n${block}`;
      else out.push({ role: 'user', content: block, fromTool: true });
      continue;
    }
    if (m.role === 'assistant' && m.tool_calls?.length) {
      const calls = m.tool_calls.map(hermesToolCall).join('\n');
      out.push({ role: 'assistant', content: m.content ? `${m.content}\n${calls}` : calls });
      continue;
    }
    out.push({ role: m.role, content: m.content });
  }
  return out.map(({ fromTool: _, ...m }) => m);
}
