import { InvalidInputError } from '../errors';
import { ChatChunker, ResponseCollector } from './openai-format';
import { parseGuidedToolCalls, parseHermesToolCalls, parseToolReply, parseTools, ToolCallStream } from './tool-calls';

const weather = { type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } };
const time = { type: 'function', function: { name: 'get_time', description: 'now' } };

function paramOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(InvalidInputError);
    return (e as { details?: { param?: string } }).details?.param;
  }
  throw new Error('no error');
}

describe('parseTools', () => {
  it('takes function tools; tool_choice picks the mode and, for required / named, the guided schema', () => {
    expect(parseTools(undefined, undefined, undefined)).toBeUndefined();
    expect(parseTools([weather, time], undefined, undefined)).toMatchObject({ mode: 'auto', tools: [weather, time] });
    expect(parseTools([weather], 'none', undefined)).toEqual({ tools: [weather] });
    const req = parseTools([weather, time], 'required', false)!;
    expect(req.mode).toBe('required');
    expect(req.responseFormat).toMatchObject({ type: 'json_schema', schema: { type: 'array', minItems: 1, maxItems: 1 } });
    const items = (req.responseFormat as unknown as { schema: { items: { anyOf: Array<{ properties: { name: unknown; arguments: unknown } }> } } }).schema.items.anyOf;
    expect(items.map((i) => i.properties.name)).toEqual([{ const: 'get_weather' }, { const: 'get_time' }]);
    expect(items[0].properties.arguments).toEqual(weather.function.parameters);
    expect(items[1].properties.arguments).toEqual({ type: 'object' });
    const named = parseTools([weather, time], { type: 'function', function: { name: 'get_weather' } }, undefined)!;
    expect(named.mode).toBe('named');
    expect(named.responseFormat).toMatchObject({ schema: { properties: { name: { const: 'get_weather' } }, required: ['name', 'arguments'] } });
  });

  it('a malformed field is a 400 naming it', () => {
    expect(paramOf(() => parseTools({}, undefined, undefined))).toBe('tools');
    expect(paramOf(() => parseTools([], undefined, undefined))).toBe('tools');
    expect(paramOf(() => parseTools([{ type: 'retrieval' }], undefined, undefined))).toBe('tools[0].type');
    expect(paramOf(() => parseTools([{ type: 'function', function: { name: 'a b' } }], undefined, undefined))).toBe('tools[0].function.name');
    expect(paramOf(() => parseTools([weather, weather], undefined, undefined))).toBe('tools[1].function.name');
    expect(paramOf(() => parseTools([{ type: 'function', function: { name: 'x', parameters: [] } }], undefined, undefined))).toBe('tools[0].function.parameters');
    expect(paramOf(() => parseTools([weather], 'sometimes', undefined))).toBe('tool_choice');
    expect(paramOf(() => parseTools([weather], { type: 'function', function: { name: 'nope' } }, undefined))).toBe('tool_choice');
    expect(paramOf(() => parseTools(undefined, 'required', undefined))).toBe('tool_choice');
    expect(paramOf(() => parseTools([weather], undefined, 'yes'))).toBe('parallel_tool_calls');
  });
});

describe('parsing replies', () => {
  it('Hermes blocks become calls; the text around them stays; a block that is not a call stays text', () => {
    const r = parseHermesToolCalls('Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n<tool_call>{"name":"get_time","parameters":{}}</tool_call>');
    expect(r.content).toBe('Let me check.');
    expect(r.calls.map((c) => c.function)).toEqual([
      { name: 'get_weather', arguments: '{"city":"Paris"}' },
      { name: 'get_time', arguments: '{}' },
    ]);
    expect(r.calls[0].id).toMatch(/^call_[0-9a-f]{24}$/);
    expect(r.calls[0].id).not.toBe(r.calls[1].id);
    expect(parseHermesToolCalls('<tool_call>{"name": "f", "arguments": {}}').calls).toHaveLength(1); // cut before its close tag
    expect(parseHermesToolCalls('<tool_call>{"name": "f", "arguments": {}}</tool_call>').content).toBeNull();
    expect(parseHermesToolCalls('no tools here')).toEqual({ content: 'no tools here', calls: [] });
    expect(parseHermesToolCalls('<tool_call>not json</tool_call> ok')).toEqual({ content: '<tool_call>not json</tool_call> ok', calls: [] });
  });

  it('guided replies: an array of calls (required) or one call (named)', () => {
    expect(parseGuidedToolCalls('[{"name": "a", "arguments": {"x": 1}}, {"name": "b", "arguments": {}}]', 'required').map((c) => c.function)).toEqual([
      { name: 'a', arguments: '{"x":1}' },
      { name: 'b', arguments: '{}' },
    ]);
    expect(parseGuidedToolCalls('{"name": "a", "arguments": {}}', 'named')).toHaveLength(1);
    expect(parseGuidedToolCalls('{"name": "a", "argu', 'named')).toEqual([]); // cut by max_tokens
  });

  it('a stream holds back from the first tag (or a prefix of it split over deltas) to the end', () => {
    const s = new ToolCallStream('auto');
    expect(s.push('Sure, ')).toBe('Sure, ');
    expect(s.push('one <to')).toBe('one ');
    expect(s.push('ol_c')).toBe('');
    expect(s.push('all>{"name": "get_time", ')).toBe('');
    expect(s.push('"arguments": {}}</tool_call>')).toBe('');
    const f = s.finish();
    expect(f.calls.map((c) => c.function.name)).toEqual(['get_time']);
    expect(f.content).toBe('');
    const plain = new ToolCallStream('auto');
    expect(plain.push('a <b')).toBe('a <b'); // "<b" cannot start the tag
    expect(plain.push(' <')).toBe(' ');
    expect(plain.push('3')).toBe('<3');
    expect(plain.finish()).toEqual({ content: '', calls: [] });
    const held = new ToolCallStream('named');
    expect(held.push('{"name": "a", "arguments": {}}')).toBe('');
    expect(held.finish().calls).toHaveLength(1);
  });

  it('chunks and whole responses carry tool_calls and finish with tool_calls', () => {
    const meta = { id: 'chatcmpl-1', created: 1, model: 'm' };
    const text = 'ok <tool_call>{"name": "get_time", "arguments": {}}</tool_call>';
    const chunker = new ChatChunker(meta, { includeUsage: false, toolMode: 'auto' });
    const chunks = [
      ...chunker.push({ t: 'delta', i: 0, text: text.slice(0, 7), tokens: 2 }),
      ...chunker.push({ t: 'delta', i: 0, text: text.slice(7), tokens: 9 }),
      ...chunker.push({ t: 'done', i: 0, finishReason: 'stop', completionTokens: 11 }),
    ] as Array<{ choices: Array<{ delta: { content?: string; tool_calls?: Array<{ index: number; id: string; function: { name: string } }> }; finish_reason: string | null }> }>;
    const content = chunks.map((c) => c.choices[0].delta.content ?? '').join('');
    expect(content).toBe('ok ');
    const calls = chunks.flatMap((c) => c.choices[0].delta.tool_calls ?? []);
    expect(calls).toEqual([{ index: 0, id: expect.stringMatching(/^call_/), type: 'function', function: { name: 'get_time', arguments: '{}' } }]);
    expect(chunks[chunks.length - 1].choices[0].finish_reason).toBe('tool_calls');
    const col = new ResponseCollector({ toolMode: 'auto' });
    col.push({ t: 'delta', i: 0, text, tokens: 11 });
    col.push({ t: 'done', i: 0, finishReason: 'stop', completionTokens: 11 });
    const body = col.chatCompletion(meta);
    expect(body.choices[0]).toMatchObject({ message: { role: 'assistant', content: 'ok', tool_calls: [{ type: 'function', function: { name: 'get_time', arguments: '{}' } }] }, finish_reason: 'tool_calls' });
    // cut by max_tokens inside a call: still the call that parsed, finish_reason length
    const cut = new ResponseCollector({ toolMode: 'named' });
    cut.push({ t: 'delta', i: 0, text: '{"name": "get_time", "argu', tokens: 8 });
    cut.push({ t: 'done', i: 0, finishReason: 'length', completionTokens: 8 });
    expect(cut.chatCompletion(meta).choices[0]).toMatchObject({ message: { content: '{"name": "get_time", "argu' }, finish_reason: 'length' });
  });
});

describe("Llama 3.1's JSON convention (auto)", () => {
  const names = ['get_weather', 'get_time'];
  it('a reply that is one JSON call to a known tool is a call; other JSON stays text', () => {
    const r = parseToolReply(' {"name": "get_weather", "parameters": {"city": "Oslo"}}', 'auto', names);
    expect(r.content).toBeNull();
    expect(r.calls.map((c) => c.function)).toEqual([{ name: 'get_weather', arguments: '{"city":"Oslo"}' }]);
    expect(parseToolReply('{"name": "rm_rf", "parameters": {}}', 'auto', names).calls).toEqual([]);
    expect(parseToolReply('{"name": "get_time", "parameters": {}, "why": 1}', 'auto', names).calls).toEqual([]);
    expect(parseToolReply('{"answer": 42}', 'auto', names)).toEqual({ content: '{"answer": 42}', calls: [] });
    expect(parseToolReply('{"name": "get_time", "parameters": {}}', 'auto').calls).toEqual([]); // without the names: text
  });

  it('streamed: a reply that opens with "{" is held to the end; one that opens with text streams as before', () => {
    const s = new ToolCallStream('auto', names);
    expect(s.push('  ')).toBe('');
    expect(s.push('{"name": "get_time", ')).toBe('');
    expect(s.push('"parameters": {}}')).toBe('');
    const f = s.finish();
    expect(f.calls.map((c) => c.function.name)).toEqual(['get_time']);
    const j = new ToolCallStream('auto', names);
    expect(j.push('{"answer"')).toBe('');
    expect(j.push(': 42}')).toBe('');
    expect(j.finish()).toEqual({ content: '{"answer": 42}', calls: [] });
    const t = new ToolCallStream('auto', names);
    expect(t.push('Hello {')).toBe('Hello {');
    expect(t.push('"name": "get_time", "parameters": {}}')).toBe('"name": "get_time", "parameters": {}}'); // mid-reply JSON is text
  });
});
