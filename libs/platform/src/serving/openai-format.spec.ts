import { ChatChunker, CompletionChunker, ResponseCollector, completionLogprobs, vllmPromptLogprobs } from './openai-format';
import { toOpenAIErrorBody, isOpenAIPath } from './openai-errors';
import { parseGuided, parseMessages, parsePrompt, parseResponseFormat, parseTemplateKwargs, parseTokenControls } from './openai.service';
import { checkLength } from './serving-host';
import type { StreamEvent, StreamLogprob } from './protocol';

const meta = { id: 'chatcmpl-1', created: 1700000000, model: 'm' };
const lp = (token: string, logprob: number): StreamLogprob => ({ token, logprob, bytes: [...Buffer.from(token)], top: [{ token, logprob, bytes: [...Buffer.from(token)] }, { token: 'x', logprob: -9, bytes: [120] }] });
const events: StreamEvent[] = [
  { t: 'start', promptTokens: 5, workerId: 'w' },
  { t: 'delta', i: 0, text: 'He', tokens: 1, logprobs: [lp('He', -0.5)] },
  { t: 'delta', i: 0, text: 'llo', tokens: 1, logprobs: [lp('llo', -0.25)] },
  { t: 'done', i: 0, finishReason: 'length', completionTokens: 2 },
  { t: 'end', promptTokens: 5, completionTokens: 2 },
];

describe('OpenAI chunks and bodies', () => {
  it('chat stream: role chunk first, content deltas, finish chunk, usage chunk (choices []) when asked', () => {
    const c = new ChatChunker(meta, { includeUsage: true });
    const chunks = events.flatMap((e) => c.push(e)) as Array<{ choices: Array<{ delta: { role?: string; content?: string }; finish_reason: string | null }>; usage: unknown }>;
    expect(chunks.map((x) => x.choices[0]?.delta)).toEqual([{ role: 'assistant', content: '' }, { content: 'He' }, { content: 'llo' }, {}, undefined]);
    expect(chunks[3].choices[0].finish_reason).toBe('length');
    expect(chunks.slice(0, 4).every((x) => x.usage === null)).toBe(true);
    expect(chunks[4]).toMatchObject({ object: 'chat.completion.chunk', id: 'chatcmpl-1', choices: [], usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 } });
  });

  it('chat stream without include_usage has no usage key', () => {
    const c = new ChatChunker(meta, { includeUsage: false });
    const chunks = events.flatMap((e) => c.push(e));
    expect(chunks).toHaveLength(4);
    expect(chunks.every((x) => !('usage' in x))).toBe(true);
  });

  it('non-streamed bodies collect text, logprobs and usage; cancelled reads as stop', () => {
    const r = new ResponseCollector({ logprobs: 1 });
    for (const e of events) r.push(e);
    const chat = r.chatCompletion(meta);
    expect(chat.choices[0]).toMatchObject({ index: 0, message: { role: 'assistant', content: 'Hello' }, finish_reason: 'length' });
    expect(chat.choices[0].logprobs!.content.map((x) => [x.token, x.logprob, x.top_logprobs.length])).toEqual([['He', -0.5, 1], ['llo', -0.25, 1]]);
    expect(chat.usage).toEqual({ prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 });
    const cmpl = r.completion({ ...meta, id: 'cmpl-1' });
    expect(cmpl.choices[0].logprobs).toEqual({ tokens: ['He', 'llo'], token_logprobs: [-0.5, -0.25], top_logprobs: [{ He: -0.5 }, { llo: -0.25 }], text_offset: [0, 2] });
    const c2 = new ResponseCollector({});
    c2.push({ t: 'done', i: 0, finishReason: 'cancelled', completionTokens: 0 });
    expect(c2.chatCompletion(meta).choices[0].finish_reason).toBe('stop');
    expect(c2.chatCompletion(meta).choices[0].logprobs).toBeNull();
  });

  it('completion chunks carry text offsets across deltas', () => {
    const c = new CompletionChunker({ ...meta, id: 'cmpl-1' }, { logprobs: 0, includeUsage: false });
    const chunks = events.flatMap((e) => c.push(e)) as Array<{ choices: Array<{ text: string; logprobs: { text_offset: number[]; top_logprobs: unknown } | null }> }>;
    expect(chunks.map((x) => x.choices[0].text)).toEqual(['He', 'llo', '']);
    expect(chunks[1].choices[0].logprobs!.text_offset).toEqual([2]);
    expect(chunks[0].choices[0].logprobs!.top_logprobs).toBeNull();
    expect(completionLogprobs([lp('a', -1), lp('bc', -2)], 1, 10).text_offset).toEqual([10, 11]);
  });

  it('error bodies: OpenAI shape with type, param and code', () => {
    expect(toOpenAIErrorBody({ statusCode: 400, error: 'Bad Request', message: 'temperature: too big', details: [{ field: 'temperature', errors: ['too big'] }] })).toEqual({
      error: { message: 'temperature: too big', type: 'invalid_request_error', param: 'temperature', code: null },
    });
    expect(toOpenAIErrorBody({ statusCode: 404, error: 'Not Found', message: 'model x not found', details: { param: 'model', code: 'model_not_found' } }).error).toMatchObject({ param: 'model', code: 'model_not_found' });
    expect(toOpenAIErrorBody({ statusCode: 429, error: '', message: 'busy' }).error).toMatchObject({ type: 'rate_limit_error', code: 'rate_limit_exceeded' });
    expect(toOpenAIErrorBody({ statusCode: 500, error: '', message: 'internal error' }).error.type).toBe('server_error');
    expect([isOpenAIPath('/v1/chat/completions'), isOpenAIPath('/v1'), isOpenAIPath('/v10'), isOpenAIPath('/models')]).toEqual([true, true, false, false]);
  });

  it('completion prompts: text, texts, token ids or arrays of them; anything else is a 400 naming prompt', () => {
    expect(parsePrompt('hi')).toEqual({ texts: ['hi'] });
    expect(parsePrompt(['a', 'b'])).toEqual({ texts: ['a', 'b'] });
    expect(parsePrompt([5, 0, 7])).toEqual({ ids: [[5, 0, 7]] });
    expect(parsePrompt([[1, 2], [3]])).toEqual({ ids: [[1, 2], [3]] });
    for (const bad of [[], [1, 'a'], [[1], []], [-1], [1.5], [[1], 'a'], {}, null])
      expect(() => parsePrompt(bad)).toThrow(expect.objectContaining({ status: 400, details: expect.objectContaining({ param: 'prompt' }) }));
  });

  it('completion logprobs with an echoed prompt: its first token has null log-prob and alternatives', () => {
    const lp = (token: string, logprob: number | null) => ({ token, logprob, bytes: [], top: logprob === null ? [] : [{ token, logprob, bytes: [] }] });
    const c = new CompletionChunker({ id: 'x', created: 0, model: 'm' }, { logprobs: 1, includeUsage: false });
    const [chunk] = c.push({ t: 'delta', i: 0, text: 'ab', tokens: 0, logprobs: [lp('a', null), lp('b', -0.5)] }) as Array<{ choices: Array<{ logprobs: unknown }> }>;
    expect(chunk.choices[0].logprobs).toEqual({ tokens: ['a', 'b'], token_logprobs: [null, -0.5], top_logprobs: [null, { b: -0.5 }], text_offset: [0, 1] });
  });

  it("vLLM's prompt_logprobs: null first, then token id -> {logprob, rank, decoded_token} with the prompt token and the top-N", () => {
    const pl = { tokenId: 7, token: 'b', logprob: -2, rank: 3, top: [{ tokenId: 4, token: 'x', logprob: -0.5 }, { tokenId: 9, token: 'y', logprob: -1 }] };
    expect(vllmPromptLogprobs([null, pl])).toEqual([
      null,
      { '7': { logprob: -2, rank: 3, decoded_token: 'b' }, '4': { logprob: -0.5, rank: 1, decoded_token: 'x' }, '9': { logprob: -1, rank: 2, decoded_token: 'y' } },
    ]);
    // the prompt token among the top: one entry, its own rank
    expect(vllmPromptLogprobs([{ ...pl, tokenId: 4, token: 'x', logprob: -0.5, rank: 1 }])[0]).toEqual({ '4': { logprob: -0.5, rank: 1, decoded_token: 'x' }, '9': { logprob: -1, rank: 2, decoded_token: 'y' } });
  });

  it('messages: strings or text parts; anything else is a 400 naming the message', () => {
    expect(parseMessages([{ role: 'developer', content: 'be brief' }, { role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] }])).toEqual([
      { role: 'system', content: 'be brief' },
      { role: 'user', content: 'ab' },
    ]);
    expect(() => parseMessages([])).toThrow(/non-empty/);
    // an assistant turn's reasoning_content (or vLLM's newer `reasoning`) goes back to the template; elsewhere ignored
    expect(parseMessages([{ role: 'assistant', content: 'a', reasoning_content: 'r' }, { role: 'user', content: 'u', reasoning_content: 'x' }, { role: 'assistant', content: 'b', reasoning: 's' }])).toEqual([
      { role: 'assistant', content: 'a', reasoning_content: 'r' },
      { role: 'user', content: 'u' },
      { role: 'assistant', content: 'b', reasoning_content: 's' },
    ]);
    // chat_template_kwargs (vLLM) and enable_thinking (LMDeploy)
    expect(parseTemplateKwargs({})).toBeUndefined();
    expect(parseTemplateKwargs({ enable_thinking: false })).toEqual({ enable_thinking: false });
    expect(parseTemplateKwargs({ chat_template_kwargs: { enable_thinking: true, documents: ['d'] }, enable_thinking: false })).toEqual({ enable_thinking: true, documents: ['d'] });
    expect(() => parseTemplateKwargs({ chat_template_kwargs: [1] })).toThrow(/chat_template_kwargs must be an object/);
    expect(() => parseTemplateKwargs({ chat_template_kwargs: { messages: [] } })).toThrow(/cannot set messages/);
    expect(() => parseTemplateKwargs({ enable_thinking: 'no' })).toThrow(/enable_thinking must be a boolean/);
    expect(() => parseMessages([{ role: 'wizard', content: 'x' }])).toThrow(/messages\[0\]\.role/);
    expect(() => parseMessages([{ role: 'user', content: [{ type: 'image_url', image_url: {} }] }])).toThrow(/only text parts/);
  });

  it('response_format: text is none, json_object and json_schema pass on; a malformed one is a 400 naming the field', () => {
    const schema = { type: 'object', properties: { ok: { type: 'boolean' } } };
    expect(parseResponseFormat(undefined)).toBeUndefined();
    expect(parseResponseFormat({ type: 'text' })).toBeUndefined();
    expect(parseResponseFormat({ type: 'json_object' })).toEqual({ type: 'json_object' });
    expect(parseResponseFormat({ type: 'json_schema', json_schema: { name: 'answer', schema, strict: true } })).toEqual({ type: 'json_schema', schema, strict: true, name: 'answer' });
    const bad = (raw: unknown) => {
      try {
        parseResponseFormat(raw);
      } catch (e) {
        return [(e as Error).message, (e as { details?: { param?: string } }).details?.param];
      }
      return undefined;
    };
    expect(bad('json')).toEqual(['response_format must be an object', 'response_format']);
    expect(bad({ type: 'xml' })).toEqual(['response_format.type must be one of text, json_object, json_schema, regex_schema', 'response_format.type']);
    expect(bad({ type: 'json_schema' })?.[1]).toBe('response_format.json_schema');
    expect(bad({ type: 'json_schema', json_schema: { name: 'a b', schema } })?.[1]).toBe('response_format.json_schema.name');
    expect(bad({ type: 'json_schema', json_schema: { name: 'a', schema: [] } })?.[1]).toBe('response_format.json_schema.schema');
    expect(bad({ type: 'json_schema', json_schema: { schema, strict: 'yes' } })?.[1]).toBe('response_format.json_schema.strict');
  });

  it("vLLM's guided_json / guided_choice / guided_grammar / guided_regex and LMDeploy's regex_schema: one at a time, each checked", () => {
    const schema = { type: 'object', properties: { ok: { type: 'boolean' } } };
    expect(parseGuided({})).toBeUndefined();
    expect(parseGuided({ response_format: { type: 'json_object' } })).toEqual({ format: { type: 'json_object' }, param: 'response_format' });
    expect(parseGuided({ guided_json: schema })).toEqual({ format: { type: 'json_schema', schema }, param: 'guided_json' });
    expect(parseGuided({ guided_json: JSON.stringify(schema) })).toEqual({ format: { type: 'json_schema', schema }, param: 'guided_json' });
    expect(parseGuided({ guided_choice: ['yes', 'no'] })).toEqual({ format: { type: 'choice', choices: ['yes', 'no'] }, param: 'guided_choice' });
    expect(parseGuided({ guided_grammar: 'root ::= "a"' })).toEqual({ format: { type: 'grammar', grammar: 'root ::= "a"' }, param: 'guided_grammar' });
    const bad = (body: Parameters<typeof parseGuided>[0]) => {
      try {
        parseGuided(body);
      } catch (e) {
        return [(e as Error).message, (e as { details?: { param?: string } }).details?.param];
      }
      return undefined;
    };
    expect(parseGuided({ guided_regex: '[0-9]+' })).toEqual({ format: { type: 'regex', pattern: '[0-9]+' }, param: 'guided_regex' });
    expect(parseGuided({ response_format: { type: 'regex_schema', regex_schema: 'a|b' } })).toEqual({ format: { type: 'regex', pattern: 'a|b' }, param: 'response_format' });
    expect(bad({ guided_regex: '' })).toEqual(['guided_regex must be a regular expression (a non-empty string)', 'guided_regex']);
    expect(bad({ response_format: { type: 'regex_schema' } })?.[1]).toBe('response_format.regex_schema');
    expect(bad({ guided_regex: 'a', guided_choice: ['a'] })?.[1]).toBe('guided_regex');
    expect(bad({ guided_json: schema, guided_choice: ['a'] })).toEqual(['use one kind of guided decoding at a time: guided_json and guided_choice were both given', 'guided_choice']);
    expect(bad({ response_format: { type: 'json_object' }, guided_grammar: 'root ::= "a"' })?.[1]).toBe('guided_grammar');
    expect(bad({ guided_json: '{"type":' })).toEqual([expect.stringMatching(/^guided_json is not valid JSON/), 'guided_json']);
    expect(bad({ guided_json: [1] })?.[1]).toBe('guided_json');
    expect(bad({ guided_choice: [] })).toEqual(['guided_choice must be a non-empty array of non-empty strings', 'guided_choice']);
    expect(bad({ guided_choice: ['a', ''] })?.[1]).toBe('guided_choice');
    expect(bad({ guided_grammar: '  ' })?.[1]).toBe('guided_grammar');
  });

  it('logit_bias, min_tokens / min_new_tokens and stop_token_ids: checked, zero biases dropped', () => {
    expect(parseTokenControls({})).toEqual({});
    expect(parseTokenControls({ logit_bias: { '5': 100, '7': -2.5, '9': 0 }, min_tokens: 3, stop_token_ids: [11] })).toEqual({
      logitBias: { 5: 100, 7: -2.5 },
      minNewTokens: 3,
      stopTokenIds: [11],
    });
    expect(parseTokenControls({ min_new_tokens: 2 })).toEqual({ minNewTokens: 2 });
    const bad = (body: Parameters<typeof parseTokenControls>[0], guided?: Parameters<typeof parseTokenControls>[1]) => {
      try {
        parseTokenControls(body, guided);
      } catch (e) {
        return [(e as Error).message, (e as { details?: { param?: string } }).details?.param];
      }
      return undefined;
    };
    expect(bad({ logit_bias: [1] })?.[1]).toBe('logit_bias');
    expect(bad({ logit_bias: { abc: 1 } })?.[0]).toMatch(/keys must be token ids/);
    expect(bad({ logit_bias: { '3': 101 } })).toEqual(['logit_bias[3] must be a number from -100 to 100', 'logit_bias']);
    expect(bad({ logit_bias: Object.fromEntries(Array.from({ length: 1025 }, (_, i) => [String(i), 1])) })?.[0]).toMatch(/at most 1024/);
    expect(bad({ min_tokens: 2, min_new_tokens: 3 })?.[1]).toBe('min_new_tokens');
    expect(bad({ stop_token_ids: [1, -2] })).toEqual(['stop_token_ids must be an array of token ids (non-negative integers)', 'stop_token_ids']);
    expect(bad({ stop_token_ids: ['3'] as unknown as number[] })?.[1]).toBe('stop_token_ids');
    expect(bad({ min_tokens: 2 }, { type: 'json_object' })).toEqual([expect.stringMatching(/cannot be combined with guided decoding/), 'min_tokens']);
  });

  it('length check: the numbers in the message, or what the session leaves', () => {
    expect(checkLength(256, 40, 200, 'prompt')).toBe(200);
    expect(checkLength(256, 40, undefined, 'prompt')).toBe(216);
    expect(() => checkLength(256, 40, 250, 'prompt')).toThrow("prompt of 40 tokens + max_tokens 250 = 290 exceeds this deployment's session length 256");
    expect(() => checkLength(256, 256, undefined, 'messages')).toThrow(/256 tokens.*leaves no room/);
  });

  it('reasoning parser: the think block goes out as reasoning_content, streamed and whole; tools read the rest', () => {
    const meta = { id: 'chatcmpl-x', created: 1, model: 'm' };
    const evs: StreamEvent[] = ['<think>\nplan', ' it\n</th', 'ink>\n\n<tool_call>{"name": "f", "arguments": {}}</tool_call>'].map((text) => ({ t: 'delta', i: 0, text, tokens: 1 }) as StreamEvent);
    evs.push({ t: 'done', i: 0, finishReason: 'stop', completionTokens: 3 } as StreamEvent);
    const chunker = new ChatChunker(meta, { includeUsage: false, reasoning: 'qwen3', toolMode: 'auto', toolNames: ['f'] });
    const deltas = evs.flatMap((e) => chunker.push(e)).map((c) => (c as { choices: Array<{ delta: Record<string, unknown>; finish_reason: string | null }> }).choices[0]);
    expect(deltas.map((d) => d.delta.reasoning_content ?? '').join('')).toBe('plan it');
    expect(deltas.map((d) => d.delta.content ?? '').join('')).toBe('');
    expect(deltas.flatMap((d) => (d.delta.tool_calls as Array<{ function: { name: string } }> | undefined) ?? []).map((c) => c.function.name)).toEqual(['f']);
    expect(deltas[deltas.length - 1].finish_reason).toBe('tool_calls');
    const col = new ResponseCollector({ reasoning: 'qwen3', toolMode: 'auto', toolNames: ['f'] });
    evs.forEach((e) => col.push(e));
    const msg = col.chatCompletion(meta).choices[0].message as Record<string, unknown>;
    expect(msg).toMatchObject({ reasoning_content: 'plan it', content: null });
    expect((msg.tool_calls as unknown[]).length).toBe(1);
    // no think block (thinking off): null reasoning, the text as content
    const off = new ResponseCollector({ reasoning: 'qwen3' });
    off.push({ t: 'delta', i: 0, text: 'Hello', tokens: 1 } as StreamEvent);
    expect(off.chatCompletion(meta).choices[0].message).toMatchObject({ content: 'Hello', reasoning_content: null });
  });
});
