// The official `openai` npm client, unmodified, against the API and one worker-infer running as real processes
// (tiny random Qwen2 on the CPU engine): chat and completions, streaming and not, errors as the client's own error
// classes; then LMDeploy's /v1/chat/interactive, backpressure, and request timings in Postgres.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import OpenAI from 'openai';
import { Queue } from 'bullmq';
import { Client } from 'pg';
import { createRedis } from '@lmfleet/platform';
import { Tokenizer, writeTinyModel } from '@lmfleet/engine';
import { client } from '../integration/support/http';
import { createTestEnv, waitFor, type TestEnv } from '../integration/support/test-env';
import { freePort, noteFailures, startApp, stopApps, type AppProcess } from './support/processes';

jest.setTimeout(120_000);

describe('e2e: OpenAI API (official client) against api + worker-infer processes', () => {
  let env: TestEnv;
  let logDir: string;
  let http: ReturnType<typeof client>;
  let apiUrl: string;
  let openai: OpenAI;
  const procs: AppProcess[] = [];
  const run = noteFailures();
  const model = 'tiny-chat';

  beforeAll(async () => {
    env = await createTestEnv({ ENGINE_BACKEND: 'cpu', SERVE_DEPLOYMENT_POLL_MS: '300' });
    logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmfleet-e2e-openai-logs-'));
    const modelDir = path.join(env.modelRoot, 'tiny-qwen2');
    writeTinyModel(modelDir, { arch: 'qwen2', seed: 11, hiddenSize: 64, numLayers: 2, intermediateSize: 128 });
    const port = await freePort();
    const base = { ...env.env, PORT: String(port) };
    procs.push(startApp('api', 'api', base, logDir));
    apiUrl = `http://127.0.0.1:${port}`;
    http = client(apiUrl, 30_000);
    await waitFor(async () => (await http('GET', '/health')).body?.status === 'ok', 'api health', 60_000, 250);
    procs.push(startApp('worker-infer', 'worker-infer-1', { ...base, WORKER_NAME: 'infer-1' }, logDir));
    const reg = await http('POST', '/models', { path: modelDir });
    expect(reg.status).toBe(201);
    const dep = await http('POST', '/deployments', { name: model, versionId: reg.body.version.id, maxBatchSize: 4, sessionLen: 256, maxPending: 6 });
    expect(dep.status).toBe(201);
    await waitFor(
      async () => ((await http('GET', `/deployments/${model}`)).body.workers as Array<{ state: string }>)?.some((w) => w.state === 'ready'),
      'deployment ready on the worker',
      60_000,
      250,
    );
    openai = new OpenAI({ baseURL: `${apiUrl}/v1`, apiKey: 'unused', maxRetries: 0 });
  });

  afterAll(async () => {
    await stopApps(procs, { failed: run.failed, logDir });
    await env?.cleanup();
  });

  it('lists deployments as models', async () => {
    const models = await openai.models.list();
    expect(models.data.map((m) => m.id)).toEqual([model]);
  });

  it('chat completion, not streamed: seeded sampling is reproducible, usage and finish_reason are set', async () => {
    const ask = () =>
      openai.chat.completions.create({ model, messages: [{ role: 'user', content: 'hello there' }], max_tokens: 8, temperature: 0.9, seed: 42, ignore_eos: true } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    const a = await ask();
    const b = await ask();
    expect(a.object).toBe('chat.completion');
    expect(a.id).toMatch(/^chatcmpl-/);
    expect(a.model).toBe(model);
    expect(a.choices).toHaveLength(1);
    expect(a.choices[0].message.role).toBe('assistant');
    expect(a.choices[0].finish_reason).toBe('length');
    expect(a.usage!.completion_tokens).toBe(8);
    expect(a.usage!.prompt_tokens).toBeGreaterThan(3);
    expect(a.usage!.total_tokens).toBe(a.usage!.prompt_tokens + 8);
    expect(b.choices[0].message.content).toBe(a.choices[0].message.content);
  });

  it('chat completion, streamed: role chunk, content deltas, finish chunk, usage chunk, [DONE]; same text as not streamed', async () => {
    const params = { model, messages: [{ role: 'user' as const, content: 'hello there' }], max_tokens: 8, temperature: 0.9, seed: 42, ignore_eos: true };
    const whole = await openai.chat.completions.create(params as OpenAI.ChatCompletionCreateParamsNonStreaming);
    const stream = await openai.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } } as OpenAI.ChatCompletionCreateParamsStreaming);
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const c of stream) chunks.push(c);
    expect(chunks[0].choices[0].delta.role).toBe('assistant');
    expect(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0].id)).toBe(true);
    const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
    expect(text).toBe(whole.choices[0].message.content);
    const finish = chunks.find((c) => c.choices[0]?.finish_reason);
    expect(finish?.choices[0].finish_reason).toBe('length');
    const last = chunks[chunks.length - 1];
    expect(last.choices).toEqual([]);
    expect(last.usage).toMatchObject({ completion_tokens: 8, prompt_tokens: whole.usage!.prompt_tokens });
  });

  it('completions, streamed and not, with n, stop strings and logprobs', async () => {
    const base = { model, prompt: 'the quick brown', max_tokens: 6, temperature: 0, ignore_eos: true };
    const c = await openai.completions.create({ ...base, n: 2, logprobs: 2 } as OpenAI.CompletionCreateParamsNonStreaming);
    expect(c.object).toBe('text_completion');
    expect(c.choices.map((x) => x.index)).toEqual([0, 1]);
    expect(c.choices[1].text).toBe(c.choices[0].text); // greedy: both choices alike
    const lp = c.choices[0].logprobs!;
    expect(lp.tokens).toHaveLength(6);
    expect(lp.token_logprobs!.every((x) => x <= 0)).toBe(true);
    expect(Object.keys(lp.top_logprobs![0]).length).toBeGreaterThanOrEqual(1);
    expect(lp.tokens!.join('')).toBe(c.choices[0].text);
    expect(c.usage!.completion_tokens).toBe(12);

    const s = await openai.completions.create({ ...base, stream: true } as OpenAI.CompletionCreateParamsStreaming);
    let text = '';
    let finish: string | null = null;
    for await (const chunk of s) {
      text += chunk.choices[0]?.text ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(text).toBe(c.choices[0].text);
    expect(finish).toBe('length');

    // A stop string cut from the greedy text: the output ends right before it, finish_reason stop.
    const cut = c.choices[0].text.slice(2, 4);
    if (cut.trim().length > 0) {
      const stopped = await openai.completions.create({ ...base, stop: [cut] } as OpenAI.CompletionCreateParamsNonStreaming);
      expect(stopped.choices[0].finish_reason).toBe('stop');
      expect(c.choices[0].text.startsWith(stopped.choices[0].text + cut)).toBe(true);
    }
  });

  it('presence/frequency penalties steer greedy decoding away from tokens it already generated', async () => {
    const base = { model, prompt: 'the', max_tokens: 24, temperature: 0, ignore_eos: true, logprobs: 0 } as OpenAI.CompletionCreateParamsNonStreaming;
    const plain = (await openai.completions.create(base)).choices[0].logprobs!.tokens!;
    const penalized = (await openai.completions.create({ ...base, presence_penalty: 2, frequency_penalty: 2 })).choices[0].logprobs!.tokens!;
    expect(new Set(plain).size).toBeLessThan(plain.length); // a tiny random model repeats itself...
    expect(new Set(penalized).size).toBeGreaterThan(new Set(plain).size); // ...less with the penalties
  });

  it('min_p (vLLM / LMDeploy): at 1 only the most likely token is left, so a sampled reply is the greedy one; outside [0, 1] is a 400', async () => {
    const base = { model, prompt: 'the fleet', max_tokens: 16, ignore_eos: true };
    const greedy = await http('POST', '/v1/completions', { ...base, temperature: 0 });
    const sampled = await Promise.all([1, 2, 3].map((seed) => http('POST', '/v1/completions', { ...base, temperature: 1.5, seed, min_p: 1 })));
    expect(sampled.map((r) => r.body.choices[0].text)).toEqual(Array(3).fill(greedy.body.choices[0].text));
    const free = await Promise.all([1, 2, 3].map((seed) => http('POST', '/v1/completions', { ...base, temperature: 1.5, seed })));
    expect(free.some((r) => r.body.choices[0].text !== greedy.body.choices[0].text)).toBe(true); // the same seeds without it wander
    const bad = await http('POST', '/v1/chat/completions', { model, messages: [{ role: 'user', content: 'hi' }], min_p: 1.5 });
    expect(bad.status).toBe(400);
    expect(bad.body.error.param).toBe('min_p');
  });

  it("tokenizer routes: vLLM's /tokenize and /detokenize, LMDeploy's /v1/encode, with the worker's own tokenizer and chat template", async () => {
    const tok = Tokenizer.fromDir(path.join(env.modelRoot, 'tiny-qwen2'));
    const plain = await http('POST', '/tokenize', { model, prompt: 'the fleet sails' });
    expect(plain.status).toBe(200);
    expect(plain.body).toEqual({ count: plain.body.tokens.length, max_model_len: 256, tokens: tok.encode('the fleet sails', { addSpecialTokens: true }) });
    const back = await http('POST', '/detokenize', { model, tokens: plain.body.tokens });
    expect(back.body).toEqual({ prompt: tok.decode(plain.body.tokens, { skipSpecialTokens: false }) });
    expect(back.body.prompt).toContain('the fleet sails');
    // messages: the ids a chat request with them sends (its usage counts the same prompt)
    const messages = [{ role: 'user', content: 'count these tokens' }];
    const chatIds = await http('POST', '/tokenize', { model, messages });
    const chat = await http('POST', '/v1/chat/completions', { model, messages, max_tokens: 8, ignore_eos: true }); // (8: the request_timings test counts chat rows of 8)
    expect(chatIds.body.count).toBe(chat.body.usage.prompt_tokens);
    // chat_template_kwargs (vLLM) / enable_thinking (LMDeploy) reach the template: the tiny template, like Qwen3's, closes
    // an empty think block when thinking is off, and the chat request sends exactly those ids
    const noThink = await http('POST', '/tokenize', { model, messages, chat_template_kwargs: { enable_thinking: false } });
    expect(noThink.body.tokens.slice(0, chatIds.body.count)).toEqual(chatIds.body.tokens);
    expect(tok.decode(noThink.body.tokens.slice(chatIds.body.count), { skipSpecialTokens: false })).toBe('<think>\n\n</think>\n\n');
    const chatNoThink = await http('POST', '/v1/chat/completions', { model, messages, enable_thinking: false, max_tokens: 8, ignore_eos: true });
    expect(chatNoThink.body.usage.prompt_tokens).toBe(noThink.body.count);
    const badKw = await http('POST', '/v1/chat/completions', { model, messages, chat_template_kwargs: { add_generation_prompt: false } });
    expect(badKw.status).toBe(400);
    expect(badKw.body.error).toMatchObject({ param: 'chat_template_kwargs' });
    expect(badKw.body.error.message).toMatch(/cannot set add_generation_prompt/);
    // LMDeploy: a list gives lists; do_preprocess renders each input as a user turn
    const enc = await http('POST', '/v1/encode', { model, input: ['the fleet', 'sails'], add_bos: false });
    expect(enc.body).toEqual({ input_ids: [tok.encode('the fleet', { addSpecialTokens: false }), tok.encode('sails', { addSpecialTokens: false })], length: [enc.body.input_ids[0].length, enc.body.input_ids[1].length] });
    const pre = await http('POST', '/v1/encode', { model, input: 'count these tokens', do_preprocess: true });
    expect(pre.body).toEqual({ input_ids: chatIds.body.tokens, length: chatIds.body.count });
    // bad input: 400s in OpenAI's error shape, naming the field
    const outside = await http('POST', '/detokenize', { model, tokens: [99999999] });
    expect(outside.status).toBe(400);
    expect(outside.body.error).toMatchObject({ type: 'invalid_request_error', param: 'tokens' });
    const both = await http('POST', '/tokenize', { model, prompt: 'a', messages });
    expect(both.status).toBe(400);
    expect(both.body.error.message).toMatch(/either prompt or messages/);
    expect((await http('POST', '/v1/encode', { model, input: [] })).status).toBe(400);
    expect((await http('POST', '/tokenize', { model: 'no-such-model', prompt: 'a' })).status).toBe(404);
  });

  it("echo + logprobs scores the prompt, as lm-evaluation-harness's loglikelihood requests need: token-id prompts, max_tokens 1 or 0", async () => {
    const tok = Tokenizer.fromDir(path.join(env.modelRoot, 'tiny-qwen2'));
    const ids = tok.encode('the fleet sails at dawn', { addSpecialTokens: false });
    // as lm-eval sends it: the prompt as token ids, echo, logprobs 1, max_tokens 1, greedy
    const r = await http('POST', '/v1/completions', { model, prompt: ids, echo: true, logprobs: 1, max_tokens: 1, temperature: 0 });
    expect(r.status).toBe(200);
    const lp = r.body.choices[0].logprobs;
    expect(lp.tokens).toHaveLength(ids.length + 1);
    expect(lp.tokens.slice(0, ids.length)).toEqual(ids.map((t) => tok.decode([t], { skipSpecialTokens: false })));
    expect(lp.token_logprobs[0]).toBeNull(); // nothing predicts the first token
    expect(lp.top_logprobs[0]).toBeNull();
    for (let k = 1; k <= ids.length; k++) {
      expect(lp.token_logprobs[k]).toBeLessThanOrEqual(0);
      expect(Math.max(...(Object.values(lp.top_logprobs[k]) as number[]))).toBeGreaterThanOrEqual(lp.token_logprobs[k] - 1e-5);
    }
    expect(r.body.choices[0].text.startsWith(tok.decode(ids, { skipSpecialTokens: false }))).toBe(true);
    expect(r.body.usage).toMatchObject({ prompt_tokens: ids.length, completion_tokens: 1 });
    // token k + 1's log-prob is what a request for the prefix reports when it is made to generate that token
    const k = 3;
    const forced = await http('POST', '/v1/completions', { model, prompt: ids.slice(0, k + 1), max_tokens: 1, temperature: 0, logprobs: 0, logit_bias: { [String(ids[k + 1])]: 100 } });
    expect(forced.body.choices[0].logprobs.token_logprobs[0]).toBeCloseTo(lp.token_logprobs[k + 1], 3);
    // max_tokens 0: the same prompt log-probs, nothing generated; without logprobs only the echo
    const scored = await http('POST', '/v1/completions', { model, prompt: ids, echo: true, logprobs: 1, max_tokens: 0 });
    expect(scored.status).toBe(200);
    expect(scored.body.choices[0].logprobs.token_logprobs).toEqual(lp.token_logprobs.slice(0, ids.length));
    expect(scored.body.usage.completion_tokens).toBe(0);
    const echoed = await http('POST', '/v1/completions', { model, prompt: ['the fleet', 'sails'], echo: true, max_tokens: 0 });
    expect(echoed.body.choices.map((c: { text: string }) => c.text)).toEqual(['the fleet', 'sails']);
    // several token-id prompts at once
    const two = await http('POST', '/v1/completions', { model, prompt: [ids, ids.slice(0, 3)], echo: true, logprobs: 0, max_tokens: 0 });
    expect(two.body.choices.map((c: { logprobs: { tokens: string[] } }) => c.logprobs.tokens.length)).toEqual([ids.length, 3]);
    // vLLM's prompt_logprobs: the same log-probs in a field of their own, keyed by token id, with ranks
    const v = await http('POST', '/v1/completions', { model, prompt: ids, max_tokens: 0, prompt_logprobs: 2 });
    expect(v.status).toBe(200);
    const pl = v.body.choices[0].prompt_logprobs as Array<Record<string, { logprob: number; rank: number; decoded_token: string }> | null>;
    expect(pl).toHaveLength(ids.length);
    expect(pl[0]).toBeNull();
    for (let k = 1; k < ids.length; k++) {
      const own = pl[k]![String(ids[k])];
      expect(own.logprob).toBeCloseTo(lp.token_logprobs[k], 5);
      expect(own.decoded_token).toBe(lp.tokens[k]);
      expect(Object.values(pl[k]!).map((e) => e.rank).sort()).toContain(2); // the top 2 are there
      // rank = 1 + the tokens above it: exactly its place when the top 2 do not both beat it
      const greater = Object.values(pl[k]!).filter((e) => e.logprob > own.logprob).length;
      if (greater < 2) expect(own.rank).toBe(greater + 1);
      else expect(own.rank).toBeGreaterThan(2);
    }
    expect(v.body.choices[0].logprobs).toBeNull(); // no echo asked
    // chat: one prompt_logprobs for the response, as long as the templated prompt
    const chatPl = await http('POST', '/v1/chat/completions', { model, messages: [{ role: 'user', content: 'score me' }], max_tokens: 8, ignore_eos: true, prompt_logprobs: 0 }); // (8: see request_timings)
    expect(chatPl.status).toBe(200);
    expect(chatPl.body.prompt_logprobs).toHaveLength(chatPl.body.usage.prompt_tokens);
    const streamed = await http('POST', '/v1/completions', { model, prompt: ids, max_tokens: 1, prompt_logprobs: 1, stream: true });
    expect([streamed.status, streamed.body.error?.param]).toEqual([400, 'prompt_logprobs']);
    // bad input: 400s naming the field
    for (const [body, param] of [
      [{ prompt: ids, max_tokens: 0 }, 'max_tokens'],
      [{ prompt: [1, 'a'] }, 'prompt'],
      [{ prompt: [] }, 'prompt'],
      [{ prompt: [99999999] }, 'prompt'],
    ] as const) {
      const bad = await http('POST', '/v1/completions', { model, ...body });
      expect([bad.status, bad.body.error?.param]).toEqual([400, param]);
    }
  });

  it('errors surface as the client error classes with OpenAI error bodies', async () => {
    await expect(openai.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] })).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    const bad = await openai.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }], temperature: 7 }).catch((e) => e);
    expect(bad).toBeInstanceOf(OpenAI.BadRequestError);
    expect(bad.error).toMatchObject({ type: 'invalid_request_error', param: 'temperature' });
    const long = await openai.completions.create({ model, prompt: 'word '.repeat(40), max_tokens: 250 }).catch((e) => e);
    expect(long).toBeInstanceOf(OpenAI.BadRequestError);
    expect(long.message).toMatch(/exceeds this deployment's session length 256/);
    expect(long.error).toMatchObject({ param: 'max_tokens', code: 'context_length_exceeded' });
    // stop: more than OpenAI's 4 (lm-eval's `until` lists), up to 32
    const stops = (n: number) => Array.from({ length: n }, (_, i) => `<stop ${i}>`);
    expect((await http('POST', '/v1/completions', { model, prompt: 'the', max_tokens: 2, stop: stops(6) })).status).toBe(200);
    const tooMany = await http('POST', '/v1/completions', { model, prompt: 'the', max_tokens: 2, stop: stops(33) });
    expect([tooMany.status, tooMany.body.error.param]).toEqual([400, 'stop']);
    const raw = await http('POST', '/v1/chat/completions', { model, messages: [] });
    expect(raw.status).toBe(400);
    expect(raw.body).toEqual({ error: { message: expect.any(String), type: 'invalid_request_error', param: 'messages', code: null } });
  });

  it('response_format: the reply is JSON that fits the schema (streamed and not, sampled too); a schema xgrammar cannot use is a 400', async () => {
    const schema = {
      type: 'object',
      properties: { ok: { type: 'boolean' }, color: { enum: ['red', 'green', 'blue'] } },
      required: ['ok', 'color'],
    };
    const response_format = { type: 'json_schema' as const, json_schema: { name: 'answer', schema, strict: true } };
    const messages = [{ role: 'user' as const, content: 'is the sky blue?' }];
    const greedy = await openai.chat.completions.create({ model, messages, max_tokens: 64, temperature: 0, response_format });
    expect(greedy.choices[0].finish_reason).toBe('stop'); // the grammar allows only the stop token once the object closes
    const parsed = JSON.parse(greedy.choices[0].message.content!);
    expect(Object.keys(parsed).sort()).toEqual(['color', 'ok']);
    expect(typeof parsed.ok).toBe('boolean');
    expect(['red', 'green', 'blue']).toContain(parsed.color);
    // Streamed: the same text in deltas.
    let streamed = '';
    for await (const chunk of await openai.chat.completions.create({ model, messages, max_tokens: 64, temperature: 0, response_format, stream: true })) {
      streamed += chunk.choices[0]?.delta?.content ?? '';
    }
    expect(streamed).toBe(greedy.choices[0].message.content);
    // Sampled (three choices at a high temperature): each one fits; json_object gives some JSON object.
    const sampled = await openai.chat.completions.create({ model, messages, max_tokens: 64, temperature: 1.5, seed: 3, n: 3, response_format });
    for (const c of sampled.choices) expect(Object.keys(JSON.parse(c.message.content!)).sort()).toEqual(['color', 'ok']);
    const obj = await openai.chat.completions.create({ model, messages, max_tokens: 48, temperature: 0, response_format: { type: 'json_object' } });
    if (obj.choices[0].finish_reason === 'stop') expect(JSON.parse(obj.choices[0].message.content!)).toEqual(expect.any(Object));
    else expect(obj.choices[0].message.content!.startsWith('{')).toBe(true); // cut by max_tokens: cut JSON, as with OpenAI
    // A schema type xgrammar does not know: 400 naming response_format, from the worker, before any token.
    const bad = await openai.chat.completions
      .create({ model, messages, response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'tensor' } } } })
      .catch((e) => e);
    expect(bad).toBeInstanceOf(OpenAI.BadRequestError);
    expect(bad.error).toMatchObject({ type: 'invalid_request_error', param: 'response_format' });
    const shape = await http('POST', '/v1/chat/completions', { model, messages, response_format: { type: 'yaml' } });
    expect(shape.status).toBe(400);
    expect(shape.body.error.param).toBe('response_format.type');
    // Completions take it too (as vLLM's do): each of two prompts' choices fits.
    const comp = await http('POST', '/v1/completions', { model, prompt: ['the sky', 'a cat'], max_tokens: 64, temperature: 0, response_format });
    expect(comp.status).toBe(200);
    for (const c of comp.body.choices) expect(Object.keys(JSON.parse(c.text)).sort()).toEqual(['color', 'ok']);
  });

  it("logit_bias (OpenAI's), min_tokens and stop_token_ids (vLLM's): they steer the tokens; ids outside the vocabulary are 400s", async () => {
    const messages = [{ role: 'user', content: 'hello' }];
    const free = await http('POST', '/v1/completions', { model, prompt: 'the fleet', max_tokens: 6, temperature: 0, logprobs: 0 });
    expect(free.status).toBe(200);
    // token 65 ('A' on the byte-level tiny tokenizer) at +100: every greedy token is it
    const forced = await http('POST', '/v1/completions', { model, prompt: 'the fleet', max_tokens: 6, temperature: 0, logit_bias: { '65': 100 } });
    expect(forced.status).toBe(200);
    expect(forced.body.choices[0].text).toBe('AAAAAA');
    // the greedy first token as a stop token id: the reply ends at once, or after min_tokens with it banned until then
    const tok = Tokenizer.fromDir(path.join(env.modelRoot, 'tiny-qwen2'));
    const ids = tok.encode(free.body.choices[0].logprobs.tokens[0], { addSpecialTokens: false });
    expect(ids).toHaveLength(1);
    const stopped = await http('POST', '/v1/completions', { model, prompt: 'the fleet', max_tokens: 8, temperature: 0, stop_token_ids: ids });
    expect(stopped.body.choices[0]).toMatchObject({ text: '', finish_reason: 'stop' });
    const held = await http('POST', '/v1/completions', { model, prompt: 'the fleet', max_tokens: 8, temperature: 0, stop_token_ids: ids, min_tokens: 3, logprobs: 0 });
    expect(held.status).toBe(200);
    expect(held.body.usage.completion_tokens).toBeGreaterThanOrEqual(3);
    expect(held.body.choices[0].logprobs.tokens.slice(0, 3)).not.toContain(free.body.choices[0].logprobs.tokens[0]);
    const outside = await http('POST', '/v1/chat/completions', { model, messages, logit_bias: { '99999999': 5 } });
    expect(outside.status).toBe(400);
    expect(outside.body.error.param).toBe('logit_bias');
    const badStop = await http('POST', '/v1/chat/completions', { model, messages, stop_token_ids: [99999999] });
    expect(badStop.status).toBe(400);
    expect(badStop.body.error.param).toBe('stop_token_ids');
    const range = await http('POST', '/v1/chat/completions', { model, messages, logit_bias: { '5': 500 } });
    expect(range.status).toBe(400);
    expect(range.body.error.param).toBe('logit_bias');
  });

  it("vLLM's guided_choice / guided_grammar / guided_json / guided_regex (extra_body): replies follow them; bad ones are 400s naming the field", async () => {
    const messages = [{ role: 'user', content: 'is the sky blue?' }];
    const choices = ['yes', 'no', 'it depends'];
    const sampled = await http('POST', '/v1/chat/completions', { model, messages, max_tokens: 16, temperature: 1.2, seed: 5, n: 4, guided_choice: choices });
    expect(sampled.status).toBe(200);
    for (const c of sampled.body.choices) {
      expect(choices).toContain(c.message.content);
      expect(c.finish_reason).toBe('stop');
    }
    const grammar = 'root ::= answer "\\n" answer\nanswer ::= ("yes" | "no") "."';
    const g = await http('POST', '/v1/completions', { model, prompt: 'the sky', max_tokens: 16, temperature: 0.8, seed: 2, guided_grammar: grammar });
    expect(g.status).toBe(200);
    expect(g.body.choices[0].text).toMatch(/^(yes|no)\.\n(yes|no)\.$/);
    const j = await http('POST', '/v1/chat/completions', { model, messages, max_tokens: 48, temperature: 0, guided_json: { type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'] } });
    expect(j.status).toBe(200);
    expect(typeof JSON.parse(j.body.choices[0].message.content).ok).toBe('boolean');
    // From the worker (xgrammar cannot parse it): 400 naming guided_grammar; and the API's own checks.
    const badGrammar = await http('POST', '/v1/chat/completions', { model, messages, guided_grammar: 'root ::= "a" |' });
    expect(badGrammar.status).toBe(400);
    expect(badGrammar.body.error).toMatchObject({ param: 'guided_grammar', message: expect.stringMatching(/^the grammar is invalid/) });
    // guided_regex, and LMDeploy's response_format regex_schema: the whole reply matches
    const regex = await http('POST', '/v1/completions', { model, prompt: 'x', max_tokens: 16, temperature: 0.9, seed: 4, n: 3, guided_regex: '(yes|no)-[0-9][0-9]?' });
    expect(regex.status).toBe(200);
    for (const c of regex.body.choices) expect(c.text).toMatch(/^(yes|no)-[0-9][0-9]?$/);
    const rs = await http('POST', '/v1/chat/completions', { model, messages, max_tokens: 16, temperature: 0, response_format: { type: 'regex_schema', regex_schema: '[A-Z][a-z][a-z]?' } });
    expect(rs.status).toBe(200);
    expect(rs.body.choices[0].message.content).toMatch(/^[A-Z][a-z][a-z]?$/);
    const badRegex = await http('POST', '/v1/completions', { model, prompt: 'x', guided_regex: '((' });
    expect(badRegex.status).toBe(400);
    expect(badRegex.body.error).toMatchObject({ param: 'guided_regex', message: expect.stringMatching(/^the regular expression is invalid/) });
    const two = await http('POST', '/v1/chat/completions', { model, messages, guided_choice: ['a'], response_format: { type: 'json_object' } });
    expect(two.status).toBe(400);
    expect(two.body.error.message).toMatch(/one kind of guided decoding/);
  });

  it('tools: a named function or "required" gives tool_calls that fit the parameters; the results go back in; bad tools are 400s', async () => {
    // The tool list goes into the prompt (the Hermes convention: this template has no tools), so a longer session.
    const dep = await http('POST', '/deployments', { name: 'tiny-tools', versionId: (await http('GET', `/deployments/${model}`)).body.versionId, maxBatchSize: 2, sessionLen: 2048 });
    expect(dep.status).toBe(201);
    await waitFor(async () => ((await http('GET', '/deployments/tiny-tools')).body.workers as Array<{ state: string }>)?.some((w) => w.state === 'ready'), 'tools deployment ready', 60_000, 250);
    const tools = [
      { type: 'function' as const, function: { name: 'get_weather', description: 'The weather in a city', parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 12 } }, required: ['city'], additionalProperties: false } } },
      { type: 'function' as const, function: { name: 'get_time', parameters: { type: 'object', properties: {}, additionalProperties: false } } },
    ];
    const messages = [{ role: 'user' as const, content: 'weather in Paris?' }];
    const named = await openai.chat.completions.create({ model: 'tiny-tools', messages, tools, tool_choice: { type: 'function', function: { name: 'get_weather' } }, max_tokens: 120, temperature: 0 });
    const choice = named.choices[0];
    expect(choice.finish_reason).toBe('tool_calls');
    expect(choice.message.content).toBeNull();
    expect(choice.message.tool_calls).toHaveLength(1);
    const call = choice.message.tool_calls![0] as unknown as { id: string; type: string; function: { name: string; arguments: string } };
    expect(call).toMatchObject({ id: expect.stringMatching(/^call_/), type: 'function', function: { name: 'get_weather' } });
    const args = JSON.parse(call.function.arguments);
    expect(Object.keys(args)).toEqual(['city']);
    expect(typeof args.city).toBe('string');
    // required, streamed, one call at most: the call arrives as one tool_calls delta before the finish chunk
    const calls: Array<{ index: number; id?: string; function?: { name?: string; arguments?: string } }> = [];
    let finish: string | null = null;
    let content = '';
    for await (const chunk of await openai.chat.completions.create({ model: 'tiny-tools', messages, tools, tool_choice: 'required', parallel_tool_calls: false, max_tokens: 120, temperature: 0, stream: true })) {
      const c = chunk.choices[0];
      if (!c) continue;
      calls.push(...(c.delta.tool_calls ?? []));
      content += c.delta.content ?? '';
      finish = c.finish_reason ?? finish;
    }
    expect(finish).toBe('tool_calls');
    expect(content).toBe('');
    expect(calls).toHaveLength(1);
    expect(['get_weather', 'get_time']).toContain(calls[0].function?.name);
    expect(JSON.parse(calls[0].function!.arguments!)).toEqual(expect.any(Object));
    // The conversation goes on with the call and its result; auto (the default) parses <tool_call> blocks if the
    // model writes any (this random one writes text).
    const next = await openai.chat.completions.create({
      model: 'tiny-tools',
      messages: [...messages, choice.message, { role: 'tool', tool_call_id: call.id, content: '{"temp": 21}' }],
      tools,
      max_tokens: 8,
      temperature: 0,
    });
    expect(['stop', 'length', 'tool_calls']).toContain(next.choices[0].finish_reason);
    expect(next.usage!.prompt_tokens).toBeGreaterThan(named.usage!.prompt_tokens); // the call and its result are in the prompt
    // Bad input: 400 naming the field.
    const bad = async (body: object) => (await http('POST', '/v1/chat/completions', { model: 'tiny-tools', messages, ...body })).body.error?.param;
    expect(await bad({ tools: [{ type: 'retrieval' }] })).toBe('tools[0].type');
    expect(await bad({ tools, tool_choice: { type: 'function', function: { name: 'nope' } } })).toBe('tool_choice');
    expect(await bad({ tool_choice: 'required' })).toBe('tool_choice');
    expect(await bad({ tools, tool_choice: 'required', response_format: { type: 'json_object' } })).toBe('response_format');
    expect(await bad({ messages: [...messages, { role: 'tool', content: 'x' }] })).toBe('messages[1].tool_call_id');
    expect(await bad({ messages: [{ role: 'user', content: 'x', tool_calls: [] }] })).toBe('messages[0].tool_calls');
    expect((await http('DELETE', '/deployments/tiny-tools')).status).toBeLessThan(300);
  });

  it('interactive: session_id keeps the conversation on the worker across turns; end closes it', async () => {
    const turn = async (prompt: string, extra: object = {}) =>
      (await http('POST', '/v1/chat/interactive', { prompt, session_id: 7, interactive_mode: true, request_output_len: 4, temperature: 0, ignore_eos: true, ...extra })).body;
    const t1 = await turn('hi');
    expect(t1).toMatchObject({ tokens: 4, history_tokens: 0, finish_reason: 'length' });
    const t2 = await turn('and again');
    expect(t2.history_tokens).toBe(t1.input_tokens + 4); // the first turn stayed in the KV cache
    expect(t2.input_tokens).toBeLessThan(t1.input_tokens + 4 + 10);
    const end = await http('POST', '/v1/chat/interactive', { prompt: '', session_id: 7, end: true });
    expect(end.status).toBe(200);
    const t3 = await turn('hi');
    expect(t3.history_tokens).toBe(0);
    expect(t3.text).toBe(t1.text);
    // Without request_output_len the default budget leaves room for the next turn: the history is kept.
    const d1 = (await http('POST', '/v1/chat/interactive', { prompt: 'hi', session_id: 9, interactive_mode: true, temperature: 0, ignore_eos: true })).body;
    expect(d1.tokens).toBe(64); // sessionLen 256 / 4
    const d2 = (await http('POST', '/v1/chat/interactive', { prompt: 'more', session_id: 9, interactive_mode: true, temperature: 0, request_output_len: 2 })).body;
    expect(d2.history_tokens).toBe(d1.input_tokens + 64);
    // Streamed: newline-delimited JSON objects.
    const res = await fetch(`${apiUrl}/v1/chat/interactive`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'x', session_id: 8, stream: true, request_output_len: 3, ignore_eos: true }) });
    const lines = (await res.text()).trim().split('\n').map((l) => JSON.parse(l));
    expect(lines[lines.length - 1]).toMatchObject({ finish_reason: 'length', tokens: 3 });
  });

  describe('concurrency, disconnects and backpressure', () => {
    const deploy = async (name: string, opts: object) => {
      const versionId = (await http('GET', `/deployments/${model}`)).body.versionId;
      const r = await http('POST', '/deployments', { name, versionId, ...opts });
      expect(r.status).toBe(201);
      await waitFor(async () => ((await http('GET', `/deployments/${name}`)).body.workers as Array<{ state: string }>)?.some((w) => w.state === 'ready'), `${name} ready`, 60_000, 200);
    };
    const workerView = async (name: string) => ((await http('GET', `/deployments/${name}`)).body.workers as Array<{ activeRequests: number; engine?: { blocksFree: number; blocksTotal: number; running: number } }>)[0];
    const chatParams = (i: number) => ({
      messages: [{ role: 'user' as const, content: `request number ${i} says ${'ab'.repeat(i % 5)}` }],
      max_tokens: 12,
      temperature: 1,
      top_k: 20,
      seed: 1000 + i,
      ignore_eos: true,
    });
    const streamText = async (m: string, i: number) => {
      const s = await openai.chat.completions.create({ model: m, ...chatParams(i), stream: true } as OpenAI.ChatCompletionCreateParamsStreaming);
      let text = '';
      let finish: string | null = null;
      for await (const c of s) {
        text += c.choices[0]?.delta?.content ?? '';
        finish = c.choices[0]?.finish_reason ?? finish;
      }
      return { text, finish };
    };

    it('64 concurrent streaming chats on one worker: each the same text as when it ran alone', async () => {
      await deploy('tiny-64', { maxBatchSize: 64, maxPending: 64, sessionLen: 256 });
      const alone: string[] = [];
      for (let i = 0; i < 64; i++) {
        const r = await openai.chat.completions.create({ model: 'tiny-64', ...chatParams(i) } as OpenAI.ChatCompletionCreateParamsNonStreaming);
        alone.push(r.choices[0].message.content ?? '');
      }
      expect(new Set(alone).size).toBeGreaterThan(32); // different seeds and prompts: mostly different texts
      const together = await Promise.all(Array.from({ length: 64 }, (_, i) => streamText('tiny-64', i)));
      expect(together.map((t) => t.finish)).toEqual(Array(64).fill('length'));
      expect(together.map((t) => t.text)).toEqual(alone);
    });

    it('a client that disconnects frees its batch slot and KV blocks; the next request gets the slot', async () => {
      await deploy('tiny-1slot', { maxBatchSize: 1, maxPending: 2, sessionLen: 60000 });
      const idle = await workerView('tiny-1slot');
      const ac = new AbortController();
      const long = await openai.chat.completions.create(
        { model: 'tiny-1slot', messages: [{ role: 'user', content: 'go on forever' }], max_tokens: 59000, ignore_eos: true, stream: true } as OpenAI.ChatCompletionCreateParamsStreaming,
        { signal: ac.signal },
      );
      let got = 0;
      for await (const c of long) {
        if (c.choices[0]?.delta?.content) got++;
        if (got >= 3) break; // leaving the loop aborts the HTTP response
      }
      ac.abort();
      // The only slot comes back: a short request completes although the long one had 59000 tokens to go.
      const t0 = Date.now();
      const next = await openai.chat.completions.create({ model: 'tiny-1slot', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4, ignore_eos: true } as OpenAI.ChatCompletionCreateParamsNonStreaming);
      expect(next.choices[0].finish_reason).toBe('length');
      expect(Date.now() - t0).toBeLessThan(20_000);
      await waitFor(async () => {
        const v = await workerView('tiny-1slot');
        return v.activeRequests === 0 && v.engine?.running === 0 && v.engine?.blocksFree === idle.engine?.blocksFree;
      }, 'slot and KV blocks freed', 10_000, 100);
      const db = new Client({ connectionString: env.databaseUrl });
      await db.connect();
      try {
        const row = await waitFor(async () => (await db.query(`SELECT * FROM request_timings WHERE deployment_name = 'tiny-1slot' AND finish_reason = 'cancelled'`)).rows[0], 'cancelled row');
        expect(row.completion_tokens).toBeLessThan(59000);
      } finally {
        await db.end();
      }
    });

    it('beyond maxPending: 429 with Retry-After and an OpenAI error body (RateLimitError in the client)', async () => {
      const acs = [new AbortController(), new AbortController()];
      const long = { model: 'tiny-1slot', messages: [{ role: 'user', content: 'long' }], max_tokens: 59000, ignore_eos: true, stream: true } as OpenAI.ChatCompletionCreateParamsStreaming;
      const streams = acs.map((ac) => openai.chat.completions.create(long, { signal: ac.signal }).catch((e) => e));
      await waitFor(async () => (await workerView('tiny-1slot')).activeRequests === 1, 'first request running', 20_000, 100);
      await new Promise((r) => setTimeout(r, 300));
      // The first is running, the second waits for the slot (its headers wait for the worker): both admitted.
      const third = await http('POST', '/v1/chat/completions', { model: 'tiny-1slot', messages: [{ role: 'user', content: 'x' }], max_tokens: 2 });
      expect(third.status).toBe(429);
      expect(third.headers.get('retry-after')).toBe('1');
      expect(third.body.error).toMatchObject({ type: 'rate_limit_error', code: 'rate_limit_exceeded' });
      await expect(openai.chat.completions.create({ model: 'tiny-1slot', messages: [{ role: 'user', content: 'x' }], max_tokens: 2 })).rejects.toBeInstanceOf(OpenAI.RateLimitError);
      for (const ac of acs) ac.abort();
      await Promise.all(streams);
      await waitFor(async () => (await workerView('tiny-1slot')).activeRequests === 0, 'slots freed', 20_000, 100);
      const after = await openai.chat.completions.create({ model: 'tiny-1slot', messages: [{ role: 'user', content: 'x' }], max_tokens: 2, ignore_eos: true } as OpenAI.ChatCompletionCreateParamsNonStreaming);
      expect(after.choices[0].finish_reason).toBe('length');
    });
  });

  it('a deployment with an int8 KV cache serves too', async () => {
    const versionId = (await http('GET', `/deployments/${model}`)).body.versionId;
    expect((await http('POST', '/deployments', { name: 'tiny-kv8', versionId, kvPolicy: 'int8', maxBatchSize: 2, sessionLen: 256 })).status).toBe(201);
    await waitFor(async () => ((await http('GET', '/deployments/tiny-kv8')).body.workers as Array<{ state: string }>)?.some((w) => w.state === 'ready'), 'kv8 ready', 60_000, 200);
    // Each worker reports the KV cache it serves the deployment with.
    expect((await http('GET', '/deployments/tiny-kv8')).body.workers[0]).toMatchObject({ state: 'ready', kvCache: 'int8 online' });
    expect((await http('GET', `/deployments/${model}`)).body.workers[0]).toMatchObject({ kvCache: 'float' });
    const r = await openai.completions.create({ model: 'tiny-kv8', prompt: 'the quick brown', max_tokens: 5, temperature: 0, ignore_eos: true } as OpenAI.CompletionCreateParamsNonStreaming);
    expect(r.choices[0].finish_reason).toBe('length');
    expect(r.usage!.completion_tokens).toBe(5);
  });

  it("a deployment with a reasoning parser returns the think block as reasoning_content (vLLM's / LMDeploy's --reasoning-parser)", async () => {
    const versionId = (await http('GET', `/deployments/${model}`)).body.versionId;
    const bad = await http('POST', '/deployments', { name: 'tiny-think', versionId, reasoningParser: 'gpt' });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).toMatch(/reasoningParser must be one of .*qwen3/);
    // LMDeploy's name for QwQ: the prompt opened the think block, so the whole reply is reasoning until </think>,
    // which this random model never writes
    expect((await http('POST', '/deployments', { name: 'tiny-think', versionId, maxBatchSize: 2, sessionLen: 256, reasoningParser: 'qwen-qwq' })).status).toBe(201);
    await waitFor(async () => ((await http('GET', '/deployments/tiny-think')).body.workers as Array<{ state: string }>)?.some((w) => w.state === 'ready'), 'tiny-think ready', 60_000, 200);
    expect((await http('GET', '/deployments/tiny-think')).body.reasoningParser).toBe('deepseek_r1');
    const req = { messages: [{ role: 'user', content: 'think about it' }], max_tokens: 8, temperature: 0, ignore_eos: true }; // (8: see the request_timings test)
    const plain = await http('POST', '/v1/chat/completions', { model, ...req });
    const think = await http('POST', '/v1/chat/completions', { model: 'tiny-think', ...req });
    expect(think.status).toBe(200);
    const text = plain.body.choices[0].message.content as string;
    expect(plain.body.choices[0].message.reasoning_content).toBeUndefined(); // no parser: no field
    expect(think.body.choices[0].message).toMatchObject({ role: 'assistant', content: '', reasoning_content: text.replace(/^\n+/, '').replace(/\n+$/, '') });
    // streamed: reasoning_content deltas, and no content
    let reasoning = '';
    let content = '';
    const s = await openai.chat.completions.create({ model: 'tiny-think', ...req, stream: true } as OpenAI.ChatCompletionCreateParamsStreaming);
    for await (const c of s) {
      const d = c.choices[0]?.delta as { content?: string; reasoning_content?: string } | undefined;
      reasoning += d?.reasoning_content ?? '';
      content += d?.content ?? '';
    }
    expect(reasoning).toBe(think.body.choices[0].message.reasoning_content);
    expect(content).toBe('');
    // response_format applies only after </think>: this model never writes it, so its thinking stays free text (the
    // same tokens as without a format), not JSON
    // (without ignore_eos: a format needs the stop token to end its output)
    const base = { messages: req.messages, max_tokens: 8, temperature: 0 };
    const unguided = await http('POST', '/v1/chat/completions', { model: 'tiny-think', ...base });
    const guided = await http('POST', '/v1/chat/completions', { model: 'tiny-think', ...base, response_format: { type: 'json_object' } });
    expect(guided.status).toBe(200);
    expect(guided.body.choices[0].message.reasoning_content).toBe(unguided.body.choices[0].message.reasoning_content);
    expect(guided.body.choices[0].message.reasoning_content.length).toBeGreaterThan(0);
  });

  it('a deployment with prefix caching starts a request from the cached KV of the prompt it shares with an earlier one (usage says how much), with the same text', async () => {
    const versionId = (await http('GET', `/deployments/${model}`)).body.versionId;
    expect((await http('POST', '/deployments', { name: 'tiny-prefix', versionId, maxBatchSize: 2, sessionLen: 256, enablePrefixCaching: true })).status).toBe(201);
    await waitFor(async () => ((await http('GET', '/deployments/tiny-prefix')).body.workers as Array<{ state: string }>)?.some((w) => w.state === 'ready'), 'tiny-prefix ready', 60_000, 200);
    expect((await http('GET', '/deployments/tiny-prefix')).body.enablePrefixCaching).toBe(true);
    const system = 'You answer questions about the standard library in one short sentence. '.repeat(3);
    const ask = (m: string, question: string) =>
      openai.chat.completions.create({ model: m, messages: [{ role: 'system', content: system }, { role: 'user', content: question }], max_tokens: 8, temperature: 0, ignore_eos: true } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    const first = await ask('tiny-prefix', 'what does os.path.join do?');
    expect(first.usage!.prompt_tokens).toBeGreaterThan(64); // at least one full KV block (64 tokens) of shared prompt
    expect(first.usage!.prompt_tokens_details).toEqual({ cached_tokens: 0 });
    const second = await ask('tiny-prefix', 'and shutil.copy?');
    const cached = second.usage!.prompt_tokens_details!.cached_tokens!;
    expect(cached).toBeGreaterThan(0);
    expect(cached % 64).toBe(0); // whole blocks
    expect(cached).toBeLessThan(second.usage!.prompt_tokens);
    const plain = await ask(model, 'and shutil.copy?');
    expect(plain.usage!.prompt_tokens_details).toBeUndefined(); // a deployment without prefix caching says nothing
    expect(second.choices[0].message.content).toBe(plain.choices[0].message.content);
    // Streamed: the usage chunk says it too.
    const s = await openai.chat.completions.create({
      model: 'tiny-prefix', messages: [{ role: 'system', content: system }, { role: 'user', content: 'and glob?' }], max_tokens: 4, ignore_eos: true, stream: true, stream_options: { include_usage: true },
    } as OpenAI.ChatCompletionCreateParamsStreaming);
    let usage: OpenAI.CompletionUsage | undefined | null;
    for await (const c of s) usage = c.usage ?? usage;
    expect(usage!.prompt_tokens_details!.cached_tokens).toBe(cached);
    // Recorded per request (request_timings.cached_tokens) and summed in the dashboard's deployment stats.
    const rows = await waitFor(async () => {
      const r = (await http('GET', '/deployments/tiny-prefix/requests?limit=10')).body as Array<{ cachedTokens: number }>;
      return r.length >= 3 ? r : null;
    }, 'three timings rows');
    expect(rows.map((r) => r.cachedTokens).sort((x, y) => x - y)).toEqual([0, cached, cached]);
    const stats = (await http('GET', '/dashboard/deployment-stats')).body.deployments.find((d: { deploymentName: string }) => d.deploymentName === 'tiny-prefix');
    expect(stats).toMatchObject({ requests: 3, cachedPromptTokens: 2 * cached });
    // Prometheus: the cached share of the prompt tokens.
    const metrics = await (await fetch(`${apiUrl}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`^lmfleet_prompt_tokens_cached_total\\{deployment="tiny-prefix"\\} ${2 * cached}$`, 'm'));
    // The worker's heartbeat reports the blocks holding cached prefixes.
    await waitFor(async () => ((await http('GET', '/deployments/tiny-prefix')).body.workers[0]?.engine?.blocksCached ?? 0) > 0, 'blocksCached in the heartbeat');
  });

  it('a deployment with speculative decoding streams the same text as plain decoding (greedy and seeded sampling), and counts its drafts', async () => {
    const versionId = (await http('GET', `/deployments/${model}`)).body.versionId;
    expect((await http('POST', '/deployments', { name: 'tiny-spec', versionId, maxBatchSize: 4, sessionLen: 256, speculative: { method: 'ngram', numDraftTokens: 4 } })).status).toBe(201);
    await waitFor(async () => ((await http('GET', '/deployments/tiny-spec')).body.workers as Array<{ state: string }>)?.some((w) => w.state === 'ready'), 'tiny-spec ready', 60_000, 200);
    const text = async (m: string, extra: object) => {
      const s = await openai.completions.create({ model: m, prompt: 'def f(x):\n    return x + 1\n\ndef f(x):\n    return', max_tokens: 24, ignore_eos: true, stream: true, ...extra } as OpenAI.CompletionCreateParamsStreaming);
      const out: string[] = [];
      for await (const c of s) for (const ch of c.choices) out[ch.index] = (out[ch.index] ?? '') + ch.text;
      return out;
    };
    for (const extra of [{ temperature: 0 }, { temperature: 0.9, top_p: 0.95, seed: 11, n: 2, frequency_penalty: 0.3 }]) {
      expect(await text('tiny-spec', extra)).toEqual(await text(model, extra));
    }
    const rows = await waitFor(async () => {
      const r = (await http('GET', '/deployments/tiny-spec/requests?limit=10')).body as Array<{ draftTokens: number | null; acceptedDraftTokens: number | null }>;
      return r.length >= 2 ? r : null;
    }, 'two timings rows');
    const drafts = rows.reduce((a, r) => a + r.draftTokens!, 0);
    expect(drafts).toBeGreaterThan(0);
    const metrics = await (await fetch(`${apiUrl}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`^lmfleet_spec_draft_tokens_total\\{deployment="tiny-spec"\\} ${drafts}$`, 'm'));
    expect((await http('DELETE', '/deployments/tiny-spec')).status).toBe(200);
  });

  it('a deployment the worker cannot load reports failed with the reason, and its requests get 503', async () => {
    const dir = path.join(env.modelRoot, 'doomed');
    writeTinyModel(dir, { arch: 'qwen2', seed: 3, hiddenSize: 64, numLayers: 1, intermediateSize: 128 });
    const reg = await http('POST', '/models', { path: dir });
    expect(reg.status).toBe(201);
    fs.rmSync(dir, { recursive: true, force: true });
    expect((await http('POST', '/deployments', { name: 'doomed', versionId: reg.body.version.id, maxBatchSize: 1 })).status).toBe(201);
    const w = await waitFor(async () => ((await http('GET', '/deployments/doomed')).body.workers as Array<{ state: string; error?: string }>)?.find((x) => x.state === 'failed'), 'failed state', 30_000, 200);
    expect(w.error).toBeTruthy();
    const r = await openai.completions.create({ model: 'doomed', prompt: 'x', max_tokens: 2 }).catch((e) => e);
    expect(r).toBeInstanceOf(OpenAI.InternalServerError); // 503
    expect(r.status).toBe(503);
    expect((await http('DELETE', '/deployments/doomed')).status).toBe(200);
  });

  it('deleting a ready deployment unloads it from the worker; its name then answers 404', async () => {
    const versionId = (await http('GET', `/deployments/${model}`)).body.versionId;
    const created = (await http('POST', '/deployments', { name: 'tiny-del', versionId, maxBatchSize: 1, sessionLen: 128 })).body;
    await waitFor(async () => ((await http('GET', '/deployments/tiny-del')).body.workers as Array<{ state: string }>)?.some((w) => w.state === 'ready'), 'tiny-del ready', 60_000, 200);
    const ok = await openai.completions.create({ model: 'tiny-del', prompt: 'x', max_tokens: 2, ignore_eos: true } as OpenAI.CompletionCreateParamsNonStreaming);
    expect(ok.choices[0].finish_reason).toBe('length');
    expect((await http('DELETE', '/deployments/tiny-del')).status).toBe(200);
    await waitFor(
      async () => {
        const workers = (await http('GET', '/workers')).body as Array<{ kind: string; queues: string[]; loadedDeployments: Array<{ deploymentId: string }> }>;
        const infer = workers.filter((w) => w.kind === 'infer');
        return infer.length > 0 && infer.every((w) => !w.loadedDeployments.some((d) => d.deploymentId === created.id) && !w.queues.includes('infer-tiny-del'));
      },
      'worker unloaded tiny-del and left its queue',
      20_000,
      200,
    );
    await expect(openai.completions.create({ model: 'tiny-del', prompt: 'x', max_tokens: 2 })).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('records each finished request in request_timings', async () => {
    const db = new Client({ connectionString: env.databaseUrl });
    await db.connect();
    try {
      const rows = await waitFor(async () => {
        const r = await db.query(`SELECT * FROM request_timings WHERE deployment_name = $1 AND finish_reason = 'length' AND kind = 'chat'`, [model]);
        return r.rows.length >= 3 ? r.rows : null;
      }, 'timings rows');
      const viaRest = (await http('GET', `/deployments/${model}/requests?limit=500`)).body as Array<{ requestId: string; ttftMs: number; finishReason: string }>;
      expect(viaRest.length).toBeGreaterThanOrEqual(rows.length);
      expect(viaRest.find((x) => x.requestId === rows[0].request_id)).toMatchObject({ finishReason: 'length', ttftMs: rows[0].ttft_ms });
      for (const r of rows) {
        expect(r.deployment_name).toBe(model);
        expect(r.completion_tokens).toBe(8);
        expect(r.prompt_tokens).toBeGreaterThan(0);
        expect(r.ttft_ms).toBeGreaterThanOrEqual(r.queued_ms);
        expect(r.total_ms).toBeGreaterThanOrEqual(r.ttft_ms);
      }
    } finally {
      await db.end();
    }
  });
  it('a generate job without an admission slot (the API enqueued it beside an admission that failed, then answered 429) is dropped: a 503 on its stream, no timings row', async () => {
    const redis = createRedis(env.config.redisUrl);
    const q = new Queue(`infer-${model}`, { connection: redis, prefix: env.config.queuePrefix });
    const deps = (await http('GET', `/deployments/${model}`)).body;
    const requestId = `chatcmpl-ghost${Date.now()}`;
    const req = { requestId, deploymentId: deps.id, deploymentName: model, kind: 'chat', messages: [{ role: 'user', content: 'hi' }], n: 1, maxTokens: 200, ignoreEos: true, sampling: { temperature: 0 }, enqueuedAt: Date.now() };
    try {
      await q.add('generate', req, { jobId: requestId, attempts: 1, removeOnComplete: true, removeOnFail: true });
      const key = `${env.config.queuePrefix}:serve:stream:${requestId}`;
      const events = await waitFor(async () => {
        const entries = await redis.xrange(key, '-', '+');
        const evs = entries.flatMap(([, f]) => f.filter((_, i) => i % 2 === 1).map((e) => JSON.parse(e)));
        return evs.some((e) => e.t === 'error' || e.t === 'end') ? evs : null;
      }, 'the worker to answer the job', 20_000);
      // Stopped when its check comes back (the check runs beside tokenization, off the critical path), with a 503; on
      // this tiny model the whole request can be done by then, and then it just ends. Either way: no timings row.
      const last = events[events.length - 1];
      if (last.t === 'error') expect(last).toMatchObject({ status: 503, message: expect.stringMatching(/no admission slot/) });
      else expect(last.t).toBe('end');
      await new Promise((r) => setTimeout(r, 500));
      const db = new Client({ connectionString: env.databaseUrl });
      await db.connect();
      try {
        expect((await db.query('SELECT 1 FROM request_timings WHERE request_id = $1', [requestId])).rows).toHaveLength(0);
      } finally {
        await db.end();
      }
    } finally {
      await q.close();
      redis.disconnect();
    }
  });

  it('with two workers, every turn of an interactive session runs on the worker that holds its KV cache', async () => {
    const port = new URL(apiUrl).port;
    procs.push(startApp('worker-infer', 'worker-infer-2', { ...env.env, PORT: port, WORKER_NAME: 'infer-2' }, logDir));
    await waitFor(
      async () => ((await http('GET', `/deployments/${model}`)).body.workers as Array<{ state: string }>)?.filter((w) => w.state === 'ready').length === 2,
      'second worker ready',
      60_000,
      200,
    );
    for (const sid of [21, 22, 23]) {
      let history = 0;
      for (let turn = 0; turn < 4; turn++) {
        const r = (await http('POST', '/v1/chat/interactive', { model, prompt: `turn ${turn}`, session_id: sid, interactive_mode: true, request_output_len: 3, temperature: 0, ignore_eos: true })).body;
        expect(r.history_tokens).toBe(history); // a turn on the other worker would start from 0
        history += r.input_tokens + 3;
      }
    }
  });
  it("interactive cancel stops the session's running request; the next turn works", async () => {
    const body = { model: 'tiny-1slot', prompt: 'talk', session_id: 30, interactive_mode: true, request_output_len: 50000, ignore_eos: true, stream: true };
    const res = await fetch(`${apiUrl}/v1/chat/interactive`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    let rest = Buffer.from((await reader.read()).value!).toString(); // it is running
    const c = await http('POST', '/v1/chat/interactive', { model: 'tiny-1slot', prompt: '', session_id: 30, cancel: true });
    expect(c.body).toEqual({ text: '', tokens: 0, input_tokens: 0, history_tokens: 0, finish_reason: 'stop' });
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      rest += Buffer.from(value).toString();
    }
    const last = JSON.parse(rest.trim().split('\n').pop()!);
    if (last.finish_reason !== 'stop') console.log(`interactive cancel: ${rest.length} bytes, last line ${JSON.stringify(last)}`);
    expect(last.finish_reason).toBe('stop');
    expect(last.tokens).toBeLessThan(50000);
    const next = (await http('POST', '/v1/chat/interactive', { model: 'tiny-1slot', prompt: 'again', session_id: 30, interactive_mode: true, request_output_len: 2, ignore_eos: true })).body;
    expect(next).toMatchObject({ tokens: 2, finish_reason: 'length' });
  });

  /** A streamed chat on tiny-1slot long enough to outlive its worker, once its first chunk is in; drain() reads the rest. */
  async function longStream() {
    const stream = await openai.chat.completions.create(
      { model: 'tiny-1slot', messages: [{ role: 'user', content: 'long' }], max_tokens: 59000, ignore_eos: true, stream: true } as OpenAI.ChatCompletionCreateParamsStreaming,
    );
    const it = stream[Symbol.asyncIterator]();
    await it.next();
    return {
      async drain(): Promise<{ error: unknown; finish: string | null }> {
        let finish: string | null = null;
        try {
          for (;;) {
            const n = await it.next();
            if (n.done) return { error: undefined, finish };
            finish = n.value.choices[0]?.finish_reason ?? finish;
          }
        } catch (error) {
          return { error, finish };
        }
      },
    };
  }

  it('a worker shut down mid-stream ends the stream with an error, not a normal finish', async () => {
    // Heartbeats lag: wait until they show the previous test's request gone, so the busy worker below is ours.
    const active = async () => ((await http('GET', '/deployments/tiny-1slot')).body.workers as Array<{ activeRequests: number }>).reduce((a, w) => a + w.activeRequests, 0);
    await waitFor(async () => (await active()) === 0, 'no request running on tiny-1slot', 10_000, 100);
    const stream = await longStream();
    const busy = await waitFor(
      async () => ((await http('GET', '/deployments/tiny-1slot')).body.workers as Array<{ workerName: string; activeRequests: number }>).find((w) => w.activeRequests > 0),
      'the worker running it',
      10_000,
      100,
    );
    const proc = procs.find((p) => p.name === (busy.workerName === 'infer-1' ? 'worker-infer-1' : 'worker-infer-2'))!;
    proc.child.kill('SIGTERM'); // SHUTDOWN_GRACE_MS is 2 s in tests
    const { error, finish } = await stream.drain();
    expect(finish).toBeNull();
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect(String((error as Error).message)).toMatch(/shut down during the request/);
    // A clean exit: a stuck shutdown exits 1 after SHUTDOWN_GRACE_MS + 20 s, naming the phase it was stuck in.
    expect(await proc.exited).toEqual({ code: 0, signal: null });
  });

  it('a worker killed mid-stream (no goodbye) ends the stream with an error once its heartbeat expires, not after SERVE_STREAM_TIMEOUT_MS', async () => {
    const live = procs.filter((p) => p.name.startsWith('worker-infer') && p.child.exitCode === null && p.child.signalCode === null);
    expect(live).toHaveLength(1);
    const stream = await longStream();
    live[0].child.kill('SIGKILL');
    const { error, finish } = await stream.drain();
    // HEARTBEAT_TIMEOUT_MS is 3 s here; SERVE_STREAM_TIMEOUT_MS (10 min) would run into the test's timeout.
    expect(finish).toBeNull();
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect(String((error as Error).message)).toMatch(/stopped \(its heartbeat expired\); retry the request/);
    await live[0].exited;
  });
});
