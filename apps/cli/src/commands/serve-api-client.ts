// `lmfleet serve api_client URL [--api-key KEY]`: an interactive streaming chat against an OpenAI-compatible
// server (ours or any other). It keeps the conversation's history and sends it whole with each turn through
// POST /v1/chat/completions with `stream: true`, printing tokens as they arrive. `/reset` (or `end`) starts a new
// conversation, `/exit` (or `exit`) quits; Ctrl-C stops the reply being generated.
import * as readline from 'node:readline';
import { CliExit, type CliIO } from '../io';

export interface ApiClientFlags {
  apiKey?: string;
  modelName?: string;
  system?: string;
  temperature?: number;
  topP?: number;
  topK?: number;
  minP?: number;
  maxTokens?: number;
  seed?: number;
}

type Message = { role: 'system' | 'user' | 'assistant'; content: string };

/** Parses an SSE body into its `data:` payloads, as they arrive. */
export async function* sseData(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buf = '';
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    buf += decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = buf.search(/\r?\n\r?\n/)) >= 0) {
      const event = buf.slice(0, end);
      buf = buf.slice(end).replace(/^\r?\n\r?\n/, '');
      const data = event
        .split(/\r?\n/)
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(5).replace(/^ /, ''))
        .join('\n');
      if (data) yield data;
    }
  }
}

/** The message of an OpenAI error body (or the raw text). */
function errorMessage(status: number, text: string): string {
  try {
    const b = JSON.parse(text);
    if (b?.error?.message) return `${status} ${b.error.type ?? ''}: ${b.error.message}`.replace(' :', ':');
    if (b?.message) return `${status}: ${b.message}`;
  } catch {
    /* not JSON */
  }
  return `${status}: ${text.slice(0, 500)}`;
}

export async function apiClientCommand(io: CliIO, url: string, flags: ApiClientFlags): Promise<void> {
  const fetchFn = io.fetch ?? fetch;
  let base: URL;
  try {
    base = new URL(url.endsWith('/') ? url : `${url}/`);
  } catch {
    throw new CliExit(2, `lmfleet serve api_client: not a URL: ${url}`);
  }
  if (!/^https?:$/.test(base.protocol)) throw new CliExit(2, `lmfleet serve api_client: ${url}: only http(s) URLs`);
  // Accept both http://host:port and http://host:port/v1.
  const v1 = new URL(base.pathname.replace(/\/$/, '').endsWith('/v1') ? base.href : new URL('v1/', base).href);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (flags.apiKey) headers.authorization = `Bearer ${flags.apiKey}`;

  const get = async (path: string) => {
    let res: Response;
    try {
      res = await fetchFn(new URL(path, v1), { headers });
    } catch (e) {
      throw new CliExit(1, `error: cannot reach ${v1.href}: ${(e as Error).message}`);
    }
    const text = await res.text();
    if (!res.ok) throw new CliExit(1, `error: GET ${new URL(path, v1).href}: ${errorMessage(res.status, text)}`);
    return JSON.parse(text);
  };

  let model = flags.modelName;
  if (!model) {
    const list = (await get('models')) as { data?: Array<{ id: string }> };
    model = list.data?.[0]?.id;
    if (!model) throw new CliExit(1, `error: ${v1.href}models lists no model: deploy one first (or pass --model-name)`);
  }

  const interactive = io.stdin.isTTY === true;
  const say = (s: string) => io.stdout.write(s);
  const history: Message[] = flags.system ? [{ role: 'system', content: flags.system }] : [];
  if (interactive) say(`lmfleet api_client: ${model} at ${v1.href}. "/reset" starts a new conversation, "/exit" quits.\n\nuser> `);
  const rl = readline.createInterface({ input: io.stdin, terminal: false });
  try {
    for await (const raw of rl) {
      const line = raw.trim();
      if (line === '/exit' || line === 'exit' || line === '/quit') break;
      if (line === '/reset' || line === 'end') {
        history.splice(flags.system ? 1 : 0);
        if (interactive) say('(new conversation)\n\nuser> ');
        continue;
      }
      if (line === '') {
        if (interactive) say('user> ');
        continue;
      }
      history.push({ role: 'user', content: raw });
      if (interactive) say('assistant> ');
      const ac = new AbortController();
      io.onInterrupt?.(() => ac.abort());
      let reply = '';
      let thinking = false;
      try {
        let res: Response;
        try {
          res = await fetchFn(new URL('chat/completions', v1), {
            method: 'POST',
            headers,
            signal: ac.signal,
            body: JSON.stringify({
              model,
              messages: history,
              stream: true,
              ...(flags.temperature !== undefined ? { temperature: flags.temperature } : {}),
              ...(flags.topP !== undefined ? { top_p: flags.topP } : {}),
              ...(flags.topK !== undefined ? { top_k: flags.topK } : {}),
              ...(flags.minP !== undefined ? { min_p: flags.minP } : {}),
              ...(flags.maxTokens !== undefined ? { max_tokens: flags.maxTokens } : {}),
              ...(flags.seed !== undefined ? { seed: flags.seed } : {}),
            }),
          });
        } catch (e) {
          if (ac.signal.aborted) {
            say(' [stopped]\n');
            history.pop();
            continue;
          }
          throw new CliExit(1, `error: cannot reach ${v1.href}: ${(e as Error).message}`);
        }
        if (!res.ok || !res.body) {
          // The turn failed: drop it from the history and let the user go on (a 429 can be retried).
          history.pop();
          io.stderr.write(`error: ${errorMessage(res.status, await res.text())}\n`);
          if (interactive) say('\nuser> ');
          continue;
        }
        try {
          for await (const data of sseData(res.body)) {
            if (data === '[DONE]') break;
            const chunk = JSON.parse(data);
            if (chunk.error) throw new Error(chunk.error.message ?? JSON.stringify(chunk.error));
            // a deployment with a reasoning parser streams the thinking first (reasoning_content): shown between
            // think tags, not kept in the history
            const thought = chunk.choices?.[0]?.delta?.reasoning_content;
            if (typeof thought === 'string' && thought) {
              if (!thinking) say('<think>\n');
              thinking = true;
              say(thought);
            }
            const delta = chunk.choices?.[0]?.delta?.content;
            if (typeof delta === 'string' && delta) {
              if (thinking) say('\n</think>\n\n');
              thinking = false;
              reply += delta;
              say(delta);
            }
          }
          if (thinking) say('\n</think>');
        } catch (e) {
          if (!ac.signal.aborted) {
            history.pop();
            io.stderr.write(`\nerror: the stream broke: ${(e as Error).message}\n`);
            if (interactive) say('\nuser> ');
            continue;
          }
          say(' [stopped]');
        }
      } finally {
        io.onInterrupt?.(undefined);
      }
      history.push({ role: 'assistant', content: reply });
      say('\n');
      if (interactive) say('\nuser> ');
    }
  } finally {
    rl.close();
  }
}
