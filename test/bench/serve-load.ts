// Load: a loopback load generator at several times a deployment's queue bound (maxPending). C connections each send
// non-streaming /v1/completions back to back for D seconds; every request carries its own id (`user` field and a
// prompt naming it, echoed back) so that lost, mixed or duplicated requests show. Counts 200 / 429 / 5xx / other /
// network errors, checks every 200 answered its own prompt with a unique response id, that Postgres'
// request_timings holds exactly one row per 200 (no lost, no duplicated requests), and probes GET /health every
// 50 ms during the load (the API's responsiveness).
// --stream: streaming chats instead (SSE, usage chunk, [DONE] checked); --abort F: that fraction of the streams is
// dropped by the client after its first token, and each such request must end up recorded as cancelled (its batch
// slot freed) while the others go on.
//   node --require ./test/e2e/register.js test/bench/serve-load.ts [--model DIR] [--seconds 20] [--conns 64]
//        [--max-pending 16] [--max-batch 8] [--tokens 16] [--backend cpu] [--stream] [--abort 0.1]
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { writeTinyModel } from '@lmfleet/engine';
import { createTestEnv, waitFor } from '../integration/support/test-env';
import { freePort, startApp, stopApp, type AppProcess } from '../e2e/support/processes';

const args = process.argv.slice(2);
const opt = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const SECONDS = Number(opt('seconds', '20'));
const CONNS = Number(opt('conns', '64'));
const MAX_PENDING = Number(opt('max-pending', '16'));
const MAX_BATCH = Number(opt('max-batch', '8'));
const TOKENS = Number(opt('tokens', '16'));
const BACKEND = opt('backend', 'cpu');
const STREAM = args.includes('--stream');
const ABORT = Number(opt('abort', '0'));
const STREAM_TIMEOUT_MS = 20_000;
const CLIENT_TIMEOUT_MS = STREAM_TIMEOUT_MS + 10_000;

const stage = (m: string) => process.stderr.write(`[serve-load] ${m}\n`);

const q = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return NaN;
  const i = (s.length - 1) * p;
  const lo = Math.floor(i);
  return s[lo] + (s[Math.min(lo + 1, s.length - 1)] - s[lo]) * (i - lo);
};

async function main(): Promise<void> {
  const env = await createTestEnv({ ENGINE_BACKEND: BACKEND, SERVE_DEPLOYMENT_POLL_MS: '300', SERVE_STREAM_TIMEOUT_MS: String(STREAM_TIMEOUT_MS) });
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmfleet-bench-load-'));
  const procs: AppProcess[] = [];
  try {
    let modelDir = opt('model', '');
    if (!modelDir) {
      modelDir = path.join(env.modelRoot, 'tiny-qwen2');
      writeTinyModel(modelDir, { arch: 'qwen2', seed: 9, hiddenSize: 64, numLayers: 2, intermediateSize: 128 });
    } else {
      const copy = path.join(env.modelRoot, path.basename(modelDir));
      fs.cpSync(path.resolve(modelDir), copy, { recursive: true });
      modelDir = copy;
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
    const model = 'load';
    await post('/deployments', { name: model, versionId: reg.version.id, maxBatchSize: MAX_BATCH, sessionLen: 256, maxPending: MAX_PENDING });
    await waitFor(async () => (((await (await fetch(`${url}/deployments/${model}`)).json()) as any).workers ?? []).some((w: { state: string }) => w.state === 'ready'), 'deployment ready', 300_000, 250);

    // /health when idle, for comparison.
    const idleHealthMs: number[] = [];
    for (let i = 0; i < 40; i++) {
      const t0 = performance.now();
      await (await fetch(`${url}/health`)).text();
      idleHealthMs.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, 20));
    }

    stage(`deployment ready; idle /health probes, then ${SECONDS} s of load`);
    const counts: Record<string, number> = { '200': 0, '429': 0, '5xx': 0, other: 0, network: 0, timeout: 0 };
    const latencies200: number[] = [];
    const ids = new Map<string, string>(); // response id -> our id
    const problems: string[] = [];
    let retryAfterMissing = 0;
    let seq = 0;
    const end = Date.now() + SECONDS * 1000;

    const healthMs: number[] = [];
    let healthFailures = 0;
    const probe = (async () => {
      while (Date.now() < end) {
        const t0 = performance.now();
        try {
          const r = await fetch(`${url}/health`);
          await r.text();
          if (r.status !== 200) healthFailures++;
        } catch {
          healthFailures++;
        }
        healthMs.push(performance.now() - t0);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();

    const aborted = new Set<string>(); // response ids of streams the client dropped
    const one = async (mine: string): Promise<void> => {
      const prompt = `request ${mine}:`;
      const t0 = performance.now();
      const body = STREAM
        ? { model, messages: [{ role: 'user', content: prompt }], max_tokens: TOKENS, temperature: 0, ignore_eos: true, stream: true, stream_options: { include_usage: true }, user: mine }
        : { model, prompt, max_tokens: TOKENS, temperature: 0, ignore_eos: true, echo: true, user: mine };
      const ac = new AbortController();
      // A request that gets no answer within the server's stream timeout + 10 s counts as lost (a timeout).
      const timer = setTimeout(() => {
        counts.timeout++;
        if (problems.length < 20) problems.push(`${mine}: no complete answer after ${CLIENT_TIMEOUT_MS} ms`);
        ac.abort();
        void (ac as AbortController & { reader?: ReadableStreamDefaultReader }).reader?.cancel().catch(() => undefined);
      }, CLIENT_TIMEOUT_MS);
      try {
        await once(mine, body, ac, t0, prompt);
      } finally {
        clearTimeout(timer);
      }
    };
    const once = async (mine: string, body: object, ac: AbortController, t0: number, prompt: string): Promise<void> => {
      const r = await fetch(`${url}/v1/${STREAM ? 'chat/completions' : 'completions'}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: ac.signal });
      if (r.status === 429) {
        counts['429']++;
        if (!r.headers.get('retry-after')) retryAfterMissing++;
        await r.text();
        return;
      }
      if (r.status !== 200) {
        counts[r.status >= 500 ? '5xx' : 'other']++;
        if (problems.length < 20) problems.push(`${mine}: ${r.status} ${(await r.text()).slice(0, 200)}`);
        return;
      }
      let id: string;
      let tokens: number | undefined;
      if (!STREAM) {
        const j = (await r.json()) as any;
        id = j.id;
        tokens = j.usage?.completion_tokens;
        if (!String(j.choices?.[0]?.text ?? '').startsWith(prompt)) problems.push(`${mine}: answer does not echo its own prompt`);
      } else {
        const drop = Math.random() < ABORT;
        const decoder = new TextDecoder();
        // An explicit reader: cancelling it closes the connection at once (aborting the fetch after the body started
        // does not always end a pending read on Node 20).
        const reader = r.body!.getReader();
        (ac as AbortController & { reader?: ReadableStreamDefaultReader }).reader = reader;
        let buf = '';
        let done = false;
        let dropped = false;
        id = '';
        try {
          read: for (;;) {
            const { value, done: eof } = await reader.read();
            if (eof) break;
            buf += decoder.decode(value, { stream: true });
            let i: number;
            while ((i = buf.indexOf('\n\n')) >= 0) {
              const line = buf.slice(0, i);
              buf = buf.slice(i + 2);
              if (line === 'data: [DONE]') done = true;
              else if (line.startsWith('data: {')) {
                const c = JSON.parse(line.slice(6));
                id ||= c.id;
                if (c.usage) tokens = c.usage.completion_tokens;
                if (c.error) problems.push(`${mine}: error chunk ${JSON.stringify(c.error).slice(0, 200)}`);
                if (drop && c.choices?.[0]?.delta?.content) {
                  dropped = true;
                  break read;
                }
              }
            }
          }
        } catch (e) {
          if (!ac.signal.aborted) throw e;
        }
        if (dropped) {
          aborted.add(id);
          await reader.cancel().catch(() => undefined);
          ac.abort();
          return;
        }
        if (ac.signal.aborted) return; // dropped on purpose (checked in Postgres below) or timed out (counted)
        if (!done) problems.push(`${mine}: stream ended without [DONE]`);
      }
      counts['200']++;
      latencies200.push(performance.now() - t0);
      if (ids.has(id)) problems.push(`duplicate response id ${id}`);
      ids.set(id, mine);
      if (tokens !== TOKENS) problems.push(`${mine}: ${tokens} tokens, asked ${TOKENS}`);
    };
    const conn = async () => {
      while (Date.now() < end) {
        const mine = `req-${process.pid}-${++seq}`;
        try {
          await one(mine);
        } catch (e) {
          if ((e as Error).name === 'AbortError') continue; // a timeout, already counted
          counts.network++;
          if (problems.length < 20) problems.push(`${mine}: ${(e as Error).message}`);
        }
      }
    };
    const started = performance.now();
    await Promise.all([...Array.from({ length: CONNS }, conn), probe]);
    const elapsedS = (performance.now() - started) / 1000;
    stage(`load done in ${elapsedS.toFixed(1)} s; checking Postgres`);

    // Postgres: exactly one request_timings row per answered request, none for others.
    await new Promise((r) => setTimeout(r, 1000));
    const pg = new Client({ connectionString: env.databaseUrl });
    await pg.connect();
    await waitFor(async () => {
      const n = Number((await pg.query('SELECT count(*) AS n FROM request_timings WHERE deployment_name = $1', [model])).rows[0].n);
      return n >= ids.size + aborted.size;
    }, 'request_timings to catch up', 10_000, 200).catch(() => undefined);
    const rows = (await pg.query<{ request_id: string; n: string; finish: string }>(
      `SELECT request_id, count(*) AS n, max(finish_reason) AS finish FROM request_timings WHERE deployment_name = $1 GROUP BY request_id`,
      [model],
    )).rows;
    await pg.end();
    const inDb = new Set(rows.map((r) => r.request_id));
    const dupRows = rows.filter((r) => Number(r.n) > 1).length;
    const missing = [...ids.keys()].filter((id) => !inDb.has(id)).length;
    const extra = [...inDb].filter((id) => !ids.has(id) && !aborted.has(id)).length;
    const abortedRows = rows.filter((r) => aborted.has(r.request_id));
    const abortedCancelled = abortedRows.filter((r) => r.finish === 'cancelled').length;
    const abortedMissing = aborted.size - abortedRows.length;
    const total = Object.values(counts).reduce((a, b) => a + b, 0) + aborted.size;

    const f = (n: number, d = 1) => n.toFixed(d);
    const lines = [
      `serve load: ${CONNS} connections for ${SECONDS} s against maxPending ${MAX_PENDING} (${(CONNS / MAX_PENDING).toFixed(1)}x the bound), maxBatchSize ${MAX_BATCH}, ` +
        `${TOKENS} tokens per request, ${STREAM ? `streaming chats${ABORT ? `, ${ABORT * 100}% dropped after the first token` : ''}` : 'non-streaming completions'}, backend ${BACKEND}, ${os.cpus().length} CPUs`,
      '',
      '| outcome | count | share |',
      '| --- | --- | --- |',
      ...Object.entries(counts).map(([k, v]) => `| ${k} | ${v} | ${f((v / Math.max(1, total)) * 100)}% |`),
      ...(STREAM && ABORT ? [`| dropped by the client | ${aborted.size} | ${f((aborted.size / Math.max(1, total)) * 100)}% |`] : []),
      `| total | ${total} | ${f(total / elapsedS)} req/s |`,
      '',
      `200s: ${f(counts['200'] / elapsedS)} req/s, ${f((counts['200'] * TOKENS) / elapsedS)} generated tok/s, latency p50 ${f(q(latencies200, 0.5))} ms, p90 ${f(q(latencies200, 0.9))} ms`,
      `integrity: unique response ids ${ids.size}/${counts['200']}, request_timings rows ${rows.length} (missing ${missing}, extra ${extra}, duplicated ${dupRows}), ` +
        `429 without Retry-After ${retryAfterMissing}, problems ${problems.length}`,
      `GET /health during load: ${healthMs.length} probes, p50 ${f(q(healthMs, 0.5))} ms, p99 ${f(q(healthMs, 0.99))} ms, max ${f(Math.max(...healthMs))} ms, failures ${healthFailures} ` +
        `(idle before: p50 ${f(q(idleHealthMs, 0.5))} ms, p99 ${f(q(idleHealthMs, 0.99))} ms)`,
      ...(aborted.size ? [`dropped streams: ${aborted.size}, recorded ${abortedRows.length} (cancelled ${abortedCancelled}, finished before the cancel reached the worker ${abortedRows.length - abortedCancelled}), not recorded ${abortedMissing}`] : []),
      ...problems.slice(0, 10).map((p) => `  problem: ${p}`),
    ];
    const ok =
      counts['5xx'] === 0 && counts.other === 0 && counts.network === 0 && counts.timeout === 0 && missing === 0 && extra === 0 && dupRows === 0 && problems.length === 0 && ids.size === counts['200'] && abortedMissing === 0;
    lines.push(`verdict: ${ok ? 'only 200s and 429s, nothing lost or duplicated' : 'FAILED (see above)'}`);
    console.log(lines.join('\n'));
    console.log(`LOAD_JSON ${JSON.stringify({ conns: CONNS, seconds: SECONDS, maxPending: MAX_PENDING, stream: STREAM, counts, aborted: aborted.size, abortedCancelled, healthMs: { p50: q(healthMs, 0.5), p99: q(healthMs, 0.99), max: Math.max(...healthMs) }, missing, extra, dupRows, ok })}`);
    if (!ok) process.exitCode = 1;
  } finally {
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
