// Serving overhead: time to first token (TTFT) and per-token latency through the API and queue (HTTP -> BullMQ ->
// worker-infer -> Redis Stream -> SSE) against the same engine called in-process, same model, same engine options,
// same run. Requests go one at a time, alternating between the two paths, so both see the same machine load.
//   node --require ./test/e2e/register.js test/bench/serve-overhead.ts [--model DIR] [--rounds 40] [--tokens 32] [--backend cpu]
// Without --model it writes a tiny random Qwen2 (hidden 64, 2 layers): the engine's own time is then small and the
// difference is the platform's. Needs Postgres and Redis (DATABASE_URL / REDIS_URL or 127.0.0.1 defaults).
// Per request: TTFT = request sent -> first content token received; per-token = (last token - first token) /
// (tokens - 1). In-process TTFT starts before tokenization (the worker tokenizes too), so both count the same work.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { writeTinyModel } from '@lmfleet/engine';
import { LmfleetEngineAdapter, type ServingEngine } from '@lmfleet/platform';
import { createTestEnv, waitFor } from '../integration/support/test-env';
import { freePort, startApp, stopApp, type AppProcess } from '../e2e/support/processes';

const args = process.argv.slice(2);
const opt = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const ROUNDS = Number(opt('rounds', '40'));
const WARMUP = 3;
const TOKENS = Number(opt('tokens', '32'));
const BACKEND = opt('backend', 'cpu') as 'cpu' | 'cuda' | 'auto';
const MAX_BATCH = 4;
const SESSION_LEN = 512;

interface Sample {
  ttftMs: number;
  perTokenMs: number;
  tokens: number;
}

const q = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return NaN;
  const i = (s.length - 1) * p;
  const lo = Math.floor(i);
  return s[lo] + (s[Math.min(lo + 1, s.length - 1)] - s[lo]) * (i - lo);
};

const messages = (k: number) => [{ role: 'user' as const, content: `Write a short note about the number ${k}.` }];

async function inProcess(engine: ServingEngine, k: number): Promise<Sample> {
  const t0 = performance.now();
  const inputIds = engine.encodeChat(messages(k));
  let first = 0;
  let last = 0;
  let tokens = 0;
  for await (const out of engine.stream({ inputIds, maxNewTokens: TOKENS, stopIds: [], sampling: { temperature: 0 } })) {
    const n = out.tokenIds?.length ?? 0;
    if (!n) continue;
    const now = performance.now();
    if (!tokens) first = now;
    last = now;
    tokens += n;
  }
  return { ttftMs: first - t0, perTokenMs: tokens > 1 ? (last - first) / (tokens - 1) : NaN, tokens };
}

async function throughApi(url: string, model: string, k: number): Promise<Sample> {
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: messages(k), max_tokens: TOKENS, temperature: 0, ignore_eos: true, stream: true, stream_options: { include_usage: true } }),
  });
  if (res.status !== 200 || !res.body) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  const decoder = new TextDecoder();
  let buf = '';
  let first = 0;
  let last = 0;
  let usageTokens = 0;
  let deltas = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    const now = performance.now();
    buf += decoder.decode(chunk, { stream: true });
    let i: number;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (!line.startsWith('data: {')) continue;
      const c = JSON.parse(line.slice(6));
      if (c.usage) usageTokens = c.usage.completion_tokens;
      if (typeof c.choices?.[0]?.delta?.content === 'string' && c.choices[0].delta.content.length) {
        if (!deltas) first = now;
        last = now;
        deltas++;
      } else if (c.choices?.[0]?.delta?.content === '' && !deltas) {
        // A token that decodes to no text yet still arrives as a chunk: count its time as the first token's.
      }
    }
  }
  return { ttftMs: first - t0, perTokenMs: usageTokens > 1 ? (last - first) / (usageTokens - 1) : NaN, tokens: usageTokens };
}

async function main(): Promise<void> {
  const env = await createTestEnv({ ENGINE_BACKEND: BACKEND, SERVE_DEPLOYMENT_POLL_MS: '300' });
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmfleet-bench-overhead-'));
  const procs: AppProcess[] = [];
  let engine: ServingEngine | undefined;
  try {
    let modelDir = opt('model', '');
    if (!modelDir) {
      modelDir = path.join(env.modelRoot, 'tiny-qwen2');
      writeTinyModel(modelDir, { arch: 'qwen2', seed: 7, hiddenSize: 64, numLayers: 2, intermediateSize: 128 });
    } else {
      const link = path.join(env.modelRoot, path.basename(modelDir));
      fs.cpSync(path.resolve(modelDir), link, { recursive: true });
      modelDir = link;
    }
    const port = await freePort();
    const base = { ...env.env, PORT: String(port) };
    procs.push(startApp('api', 'api', base, logDir));
    const url = `http://127.0.0.1:${port}`;
    await waitFor(async () => (await fetch(`${url}/health`)).status === 200, 'api', 60_000, 200);
    procs.push(startApp('worker-infer', 'worker-infer', { ...base, WORKER_NAME: 'bench-infer' }, logDir));
    const post = async (p: string, body: unknown) => {
      const r = await fetch(url + p, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const j = (await r.json()) as any;
      if (r.status >= 300) throw new Error(`${p}: ${r.status} ${JSON.stringify(j)}`);
      return j;
    };
    const reg = await post('/models', { path: modelDir });
    const model = 'bench';
    await post('/deployments', { name: model, versionId: reg.version.id, maxBatchSize: MAX_BATCH, sessionLen: SESSION_LEN });
    await waitFor(async () => (((await (await fetch(`${url}/deployments/${model}`)).json()) as any).workers ?? []).some((w: { state: string }) => w.state === 'ready'), 'deployment ready', 300_000, 250);
    engine = await new LmfleetEngineAdapter().loadServing(modelDir, { backend: BACKEND, maxBatchSize: MAX_BATCH, sessionLen: SESSION_LEN });

    const local: Sample[] = [];
    const api: Sample[] = [];
    const httpFloor: number[] = [];
    for (let r = 0; r < WARMUP + ROUNDS; r++) {
      // Alternate which path goes first, so neither always follows the other.
      const order = r % 2 === 0 ? ['local', 'api'] : ['api', 'local'];
      for (const which of order) {
        const s = which === 'local' ? await inProcess(engine, r) : await throughApi(url, model, r);
        if (r >= WARMUP) (which === 'local' ? local : api).push(s);
      }
      // The floor of any request on this machine: an HTTP round trip to the API that touches no queue.
      const h0 = performance.now();
      await (await fetch(`${url}/v1/models`)).text();
      if (r >= WARMUP) httpFloor.push(performance.now() - h0);
    }
    const row = (name: string, xs: Sample[], f: (s: Sample) => number) => {
      const v = xs.map(f).filter(Number.isFinite);
      return { name, p50: q(v, 0.5), p90: q(v, 0.9) };
    };
    const ttftL = row('in-process', local, (s) => s.ttftMs);
    const ttftA = row('API + queue', api, (s) => s.ttftMs);
    const tokL = row('in-process', local, (s) => s.perTokenMs);
    const tokA = row('API + queue', api, (s) => s.perTokenMs);
    const f = (n: number) => n.toFixed(2).padStart(8);
    const lines = [
      `serve overhead: ${ROUNDS} requests per path (after ${WARMUP} warm-up), ${TOKENS} greedy tokens each, one at a time, backend ${BACKEND}, model ${path.basename(modelDir)}, ${os.cpus().length} CPUs`,
      '',
      '| metric (ms)            |   p50    |   p90    |',
      '| ---------------------- | -------- | -------- |',
      `| TTFT in-process        | ${f(ttftL.p50)} | ${f(ttftL.p90)} |`,
      `| TTFT API + queue       | ${f(ttftA.p50)} | ${f(ttftA.p90)} |`,
      `| TTFT added             | ${f(ttftA.p50 - ttftL.p50)} | ${f(ttftA.p90 - ttftL.p90)} |`,
      `| per token in-process   | ${f(tokL.p50)} | ${f(tokL.p90)} |`,
      `| per token API + queue  | ${f(tokA.p50)} | ${f(tokA.p90)} |`,
      `| per token added        | ${f(tokA.p50 - tokL.p50)} | ${f(tokA.p90 - tokL.p90)} |`,
      '',
      `targets at p50: added TTFT < 5 ms: ${ttftA.p50 - ttftL.p50 < 5 ? 'met' : 'NOT met'} (${((ttftA.p50 - ttftL.p50) / 5 * 100).toFixed(0)}% of the limit); ` +
        `added per token < 0.5 ms: ${tokA.p50 - tokL.p50 < 0.5 ? 'met' : 'NOT met'} (${((tokA.p50 - tokL.p50) / 0.5 * 100).toFixed(0)}% of the limit)`,
      `HTTP round trip without the queue (GET /v1/models, one Postgres read): p50 ${q(httpFloor, 0.5).toFixed(2)} ms, p90 ${q(httpFloor, 0.9).toFixed(2)} ms`,
      `tokens per request: in-process ${q(local.map((s) => s.tokens), 0.5)}, API ${q(api.map((s) => s.tokens), 0.5)}`,
    ];
    // Where the API path's first-token time goes: the worker's own timings in request_timings (ms after the API
    // built the request, just before admission and enqueue).
    const pg = new Client({ connectionString: env.databaseUrl });
    await pg.connect();
    const t = (await pg.query<{ queued_ms: number; ttft_ms: number }>('SELECT queued_ms, ttft_ms FROM request_timings WHERE deployment_name = $1 ORDER BY created_at', [model])).rows.slice(WARMUP);
    await pg.end();
    const queued = q(t.map((r) => r.queued_ms), 0.5);
    const wttft = q(t.map((r) => r.ttft_ms), 0.5);
    lines.push(
      `API path breakdown (p50, worker clock = API clock, same host): request built -> worker picked it up ${queued.toFixed(2)} ms ` +
        `(admission + BullMQ add + pickup); -> first token in the worker ${wttft.toFixed(2)} ms; the rest of the client's ${ttftA.p50.toFixed(2)} ms ` +
        `is HTTP + validation before, and the Redis Stream + SSE relay after`,
    );
    console.log(lines.join('\n'));
    console.log(`OVERHEAD_JSON ${JSON.stringify({ rounds: ROUNDS, tokens: TOKENS, backend: BACKEND, ttft: { local: ttftL, api: ttftA }, perToken: { local: tokL, api: tokA } })}`);
  } finally {
    await engine?.dispose();
    await Promise.all(procs.map((p) => stopApp(p)));
    if (process.env.BENCH_SHOW_LOGS) for (const p of procs) console.log(`--- ${p.name}\n${p.log().slice(-4000)}`);
    fs.rmSync(logDir, { recursive: true, force: true });
    await env.cleanup();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
