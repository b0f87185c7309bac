// Load: a loopback load generator at several times a deployment's queue bound (maxPending). C connections each send
// non-streaming /v1/completions back to back for D seconds; every request carries its own id (`user` field and a
// prompt naming it, echoed back) so that lost, mixed or duplicated requests show. Counts 200 / 429 / 5xx / other /
// network errors, checks every 200 answered its own prompt with a unique response id, that Postgres'
// request_timings holds exactly one row per 200 (no lost, no duplicated requests), and probes GET /health every
// 50 ms during the load (the API's responsiveness).
//   node --require ./test/e2e/register.js test/bench/serve-load.ts [--model DIR] [--seconds 20] [--conns 64]
//        [--max-pending 16] [--max-batch 8] [--tokens 16] [--backend cpu]
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

const q = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return NaN;
  const i = (s.length - 1) * p;
  const lo = Math.floor(i);
  return s[lo] + (s[Math.min(lo + 1, s.length - 1)] - s[lo]) * (i - lo);
};

async function main(): Promise<void> {
  const env = await createTestEnv({ ENGINE_BACKEND: BACKEND, SERVE_DEPLOYMENT_POLL_MS: '300' });
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

    const counts: Record<string, number> = { '200': 0, '429': 0, '5xx': 0, other: 0, network: 0 };
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

    const conn = async () => {
      while (Date.now() < end) {
        const mine = `req-${process.pid}-${++seq}`;
        const prompt = `request ${mine}:`;
        const t0 = performance.now();
        try {
          const r = await fetch(`${url}/v1/completions`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ model, prompt, max_tokens: TOKENS, temperature: 0, ignore_eos: true, echo: true, user: mine }),
          });
          const body = (await r.json()) as any;
          if (r.status === 200) {
            counts['200']++;
            latencies200.push(performance.now() - t0);
            if (ids.has(body.id)) problems.push(`duplicate response id ${body.id}`);
            ids.set(body.id, mine);
            if (!String(body.choices?.[0]?.text ?? '').startsWith(prompt)) problems.push(`${mine}: answer does not echo its own prompt`);
            if (body.usage?.completion_tokens !== TOKENS) problems.push(`${mine}: ${body.usage?.completion_tokens} tokens, asked ${TOKENS}`);
          } else if (r.status === 429) {
            counts['429']++;
            if (!r.headers.get('retry-after')) retryAfterMissing++;
          } else if (r.status >= 500) {
            counts['5xx']++;
            if (problems.length < 20) problems.push(`${mine}: ${r.status} ${JSON.stringify(body).slice(0, 200)}`);
          } else {
            counts.other++;
            if (problems.length < 20) problems.push(`${mine}: ${r.status} ${JSON.stringify(body).slice(0, 200)}`);
          }
        } catch (e) {
          counts.network++;
          if (problems.length < 20) problems.push(`${mine}: ${(e as Error).message}`);
        }
      }
    };
    const started = performance.now();
    await Promise.all([...Array.from({ length: CONNS }, conn), probe]);
    const elapsedS = (performance.now() - started) / 1000;

    // Postgres: exactly one request_timings row per answered request, none for others.
    await new Promise((r) => setTimeout(r, 1000));
    const pg = new Client({ connectionString: env.databaseUrl });
    await pg.connect();
    const rows = (await pg.query<{ request_id: string; n: string }>(`SELECT request_id, count(*) AS n FROM request_timings WHERE deployment_name = $1 GROUP BY request_id`, [model])).rows;
    await pg.end();
    const inDb = new Set(rows.map((r) => r.request_id));
    const dupRows = rows.filter((r) => Number(r.n) > 1).length;
    const missing = [...ids.keys()].filter((id) => !inDb.has(id)).length;
    const extra = [...inDb].filter((id) => !ids.has(id)).length;
    const total = Object.values(counts).reduce((a, b) => a + b, 0);

    const f = (n: number, d = 1) => n.toFixed(d);
    const lines = [
      `serve load: ${CONNS} connections for ${SECONDS} s against maxPending ${MAX_PENDING} (${(CONNS / MAX_PENDING).toFixed(1)}x the bound), maxBatchSize ${MAX_BATCH}, ` +
        `${TOKENS} tokens per request, backend ${BACKEND}, ${os.cpus().length} CPUs`,
      '',
      '| outcome | count | share |',
      '| --- | --- | --- |',
      ...Object.entries(counts).map(([k, v]) => `| ${k} | ${v} | ${f((v / Math.max(1, total)) * 100)}% |`),
      `| total | ${total} | ${f(total / elapsedS)} req/s |`,
      '',
      `200s: ${f(counts['200'] / elapsedS)} req/s, ${f((counts['200'] * TOKENS) / elapsedS)} generated tok/s, latency p50 ${f(q(latencies200, 0.5))} ms, p90 ${f(q(latencies200, 0.9))} ms`,
      `integrity: unique response ids ${ids.size}/${counts['200']}, request_timings rows ${rows.length} (missing ${missing}, extra ${extra}, duplicated ${dupRows}), ` +
        `429 without Retry-After ${retryAfterMissing}, problems ${problems.length}`,
      `GET /health during load: ${healthMs.length} probes, p50 ${f(q(healthMs, 0.5))} ms, p99 ${f(q(healthMs, 0.99))} ms, max ${f(Math.max(...healthMs))} ms, failures ${healthFailures} ` +
        `(idle before: p50 ${f(q(idleHealthMs, 0.5))} ms, p99 ${f(q(idleHealthMs, 0.99))} ms)`,
      ...problems.slice(0, 10).map((p) => `  problem: ${p}`),
    ];
    const ok = counts['5xx'] === 0 && counts.other === 0 && counts.network === 0 && missing === 0 && extra === 0 && dupRows === 0 && problems.length === 0 && ids.size === counts['200'];
    lines.push(`verdict: ${ok ? 'only 200s and 429s, nothing lost or duplicated' : 'FAILED (see above)'}`);
    console.log(lines.join('\n'));
    console.log(`LOAD_JSON ${JSON.stringify({ conns: CONNS, seconds: SECONDS, maxPending: MAX_PENDING, counts, healthMs: { p50: q(healthMs, 0.5), p99: q(healthMs, 0.99), max: Math.max(...healthMs) }, missing, extra, dupRows, ok })}`);
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
