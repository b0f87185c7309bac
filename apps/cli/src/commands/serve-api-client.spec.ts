import { ApiClient } from '../remote';
import { apiClientCommand, sseData } from './serve-api-client';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { deploymentNameOf, exampleCurl, isServable, kvPolicyOf } from './serve-api-server';
import { captureIO } from '../testing/capture-io';

function sse(chunks: object[]): string {
  return chunks.map((c) => `data: ${JSON.stringify(c)}\n\n`).join('') + 'data: [DONE]\n\n';
}

/** An OpenAI-compatible server in a function: records requests, answers from a script. */
function fakeServer(replies: Array<{ status?: number; body: string }>) {
  const requests: Array<{ url: string; headers: Record<string, string>; body?: any }> = [];
  const fetchFn = (async (url: URL | string, init?: RequestInit) => {
    const headers = (init?.headers ?? {}) as Record<string, string>;
    requests.push({ url: String(url), headers, body: init?.body ? JSON.parse(String(init.body)) : undefined });
    if (String(url).endsWith('/v1/models')) return new Response(JSON.stringify({ object: 'list', data: [{ id: 'tiny' }] }), { status: 200 });
    const r = replies.shift()!;
    // Split the body in small pieces so that events straddle reads.
    const bytes = new TextEncoder().encode(r.body);
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < bytes.length; i += 7) c.enqueue(bytes.slice(i, i + 7));
        c.close();
      },
    });
    return new Response(stream, { status: r.status ?? 200 });
  }) as typeof fetch;
  return { fetchFn, requests };
}

const io = (lines: string[], fetchFn: typeof fetch) => captureIO({ stdin: lines.map((l) => l + '\n'), fetch: fetchFn });

describe('serve api_client', () => {
  it('streams replies, keeps the history, sends the key, /reset and /exit', async () => {
    const delta = (content: string) => ({ choices: [{ index: 0, delta: { content } }] });
    const server = fakeServer([
      { body: sse([{ choices: [{ index: 0, delta: { role: 'assistant' } }] }, delta('Hel'), delta('lo!')]) },
      { body: sse([delta('Fine.')]) },
      { status: 429, body: JSON.stringify({ error: { message: 'busy', type: 'rate_limit_error', param: null, code: null } }) },
      { body: sse([delta('New.')]) },
    ]);
    const h = io(['hi', 'how are you?', 'third', '/reset', 'again', '/exit', 'never sent'], server.fetchFn);
    await apiClientCommand(h.io, 'http://server:23333', { apiKey: 'sk-secret-1', temperature: 0, maxTokens: 32 });
    expect(h.out()).toBe('Hello!\nFine.\nNew.\n');
    expect(h.err()).toContain('error: 429 rate_limit_error: busy');
    const chats = server.requests.filter((r) => r.url.endsWith('/v1/chat/completions'));
    expect(chats).toHaveLength(4);
    expect(chats.every((r) => r.headers.authorization === 'Bearer sk-secret-1')).toBe(true);
    expect(chats[0].body).toMatchObject({ model: 'tiny', stream: true, temperature: 0, max_tokens: 32, messages: [{ role: 'user', content: 'hi' }] });
    expect(chats[1].body.messages).toEqual([
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: 'Hello!' },
      { role: 'user', content: 'how are you?' },
    ]);
    // The refused turn is not kept; /reset empties the history.
    expect(chats[3].body.messages).toEqual([{ role: 'user', content: 'again' }]);
  });

  it("shows a reasoning model's thinking (reasoning_content) between think tags and keeps only the answer in the history", async () => {
    const d = (delta: Record<string, string>) => ({ choices: [{ index: 0, delta }] });
    const server = fakeServer([{ body: sse([d({ reasoning_content: 'add ' }), d({ reasoning_content: 'them' }), d({ content: '4' })]) }, { body: sse([d({ content: 'ok' })]) }]);
    const h = io(['2+2?', 'thanks', '/exit'], server.fetchFn);
    await apiClientCommand(h.io, 'http://server:23333', {});
    expect(h.out()).toBe('<think>\nadd them\n</think>\n\n4\nok\n');
    const chats = server.requests.filter((r) => r.url.endsWith('/v1/chat/completions'));
    expect(chats[1].body.messages).toEqual([{ role: 'user', content: '2+2?' }, { role: 'assistant', content: '4' }, { role: 'user', content: 'thanks' }]);
  });

  it('accepts a URL ending in /v1 and exits 1 when no model is deployed', async () => {
    const fetchFn = (async () => new Response(JSON.stringify({ object: 'list', data: [] }), { status: 200 })) as typeof fetch;
    const h = io([], fetchFn);
    await expect(apiClientCommand(h.io, 'http://server:1/v1', {})).rejects.toThrow(/lists no model/);
  });

  it('sseData splits events across reads and CRLF', async () => {
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new TextEncoder().encode('data: {"a"'));
        c.enqueue(new TextEncoder().encode(':1}\r\n\r\n: comment\n\ndata: [DONE]\n\n'));
        c.close();
      },
    });
    const got: string[] = [];
    for await (const d of sseData(body)) got.push(d);
    expect(got).toEqual(['{"a":1}', '[DONE]']);
  });
});

describe('serve api_server helpers', () => {
  it('maps LMDeploy flags', () => {
    expect([0, 4, 8].map(kvPolicyOf)).toEqual(['fp16', 'int4', 'int8']);
    expect(() => kvPolicyOf(2)).toThrow(/0, 4 or 8/);
    expect(deploymentNameOf('/models/Qwen2.5-0.5B Instruct/')).toBe('Qwen2-5-0-5B-Instruct');
    expect(deploymentNameOf('/x', 'my_model')).toBe('my_model');
    expect(() => deploymentNameOf('/x', 'bad name')).toThrow(/--model-name/);
    expect(exampleCurl('http://127.0.0.1:23333', 'm', '<key>')).toContain('-H "Authorization: Bearer <key>"');
  });
  it('serves HF directories and workspaces', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmfleet-servable-'));
    try {
      expect(isServable(dir)).toBe(false);
      fs.writeFileSync(path.join(dir, 'lmfleet.json'), '{}');
      expect(isServable(dir)).toBe(true);
      fs.rmSync(path.join(dir, 'lmfleet.json'));
      fs.writeFileSync(path.join(dir, 'config.json'), '{}');
      expect(isServable(dir)).toBe(true);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('ApiClient (the CLI\'s --api mode, and api_server\'s REST calls)', () => {
  it('sends the API key as a bearer token when given one, and nothing otherwise', async () => {
    const seen: Array<Record<string, string>> = [];
    const f = (async (_u: URL, init: RequestInit) => {
      seen.push(init.headers as Record<string, string>);
      return new Response('{}', { status: 200 });
    }) as unknown as typeof fetch;
    await new ApiClient('http://x:1', f, 'sk-cli-key-1').request('POST', '/models', { path: '/m' });
    await new ApiClient('http://x:1', f).request('GET', '/models');
    expect(seen[0]).toEqual({ 'content-type': 'application/json', authorization: 'Bearer sk-cli-key-1' });
    expect(seen[1]).toEqual({});
  });
});
