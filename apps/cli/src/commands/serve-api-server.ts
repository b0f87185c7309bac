// `lmfleet serve api_server MODEL_OR_WORKSPACE --server-port 23333`: the whole platform on one machine, LMDeploy's
// one-command server. It makes sure Postgres and Redis are there (scripts/services.sh: DATABASE_URL/REDIS_URL when
// set, else servers on 127.0.0.1:5432/6379, else it starts them), starts the API and one worker-infer as child
// processes, registers the model over REST, deploys it with the flags' options, waits until the worker serves it,
// and prints the URL and an example curl. Ctrl-C stops what it started (children first, then services it started).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { isDeepStrictEqual, promisify } from 'node:util';
import type { SpeculativeConfig } from '@lmfleet/engine';
import { CliExit, type CliIO } from '../io';
import { ApiClient, resolveVersion } from '../remote';

export interface ApiServerFlags {
  backend: 'auto' | 'cpu' | 'cuda';
  serverName: string;
  serverPort: number;
  modelName?: string;
  sessionLen?: number;
  cacheMaxEntryCount?: number;
  maxBatchSize?: number;
  tp: number;
  /** LMDeploy's --enable-prefix-caching. */
  enablePrefixCaching?: boolean;
  /** vLLM's / LMDeploy's --reasoning-parser (normalized by the option parser). */
  reasoningParser?: string;
  /** --speculative-algorithm ngram and its counts (options.ts speculativeFromFlags). */
  speculative?: SpeculativeConfig;
  quantPolicy: number;
  apiKeys?: string[];
  logDir?: string;
  readyTimeout?: number;
  /** Also start a worker-quant, so that `lmfleet lite ... --api URL` jobs run on this platform. */
  withQuant?: boolean;
}

/** LMDeploy's --quant-policy: 0 fp16 KV cache, 4 int4, 8 int8. */
export function kvPolicyOf(quantPolicy: number): 'fp16' | 'int4' | 'int8' {
  if (quantPolicy === 0) return 'fp16';
  if (quantPolicy === 4) return 'int4';
  if (quantPolicy === 8) return 'int8';
  throw new CliExit(2, `--quant-policy must be 0, 4 or 8, got ${quantPolicy}`);
}

/** The OpenAI model id: --model-name, else the directory's name made safe ([A-Za-z0-9_-], 64 chars). */
export function deploymentNameOf(modelDir: string, modelName?: string): string {
  const name = modelName ?? path.basename(path.resolve(modelDir)).replace(/[^A-Za-z0-9_-]+/g, '-').replace(/^-+|-+$/g, '');
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(name)) throw new CliExit(2, `--model-name must match [A-Za-z0-9_-]{1,64}, got "${name}"`);
  return name;
}

/** A Hugging Face / AutoAWQ directory (config.json) or an engine workspace (lmfleet.json, from `lmfleet convert`). */
export function isServable(dir: string): boolean {
  return fs.existsSync(path.join(dir, 'config.json')) || fs.existsSync(path.join(dir, 'lmfleet.json'));
}

/** The curl that the server prints once ready. */
export function exampleCurl(url: string, model: string, apiKey?: string): string {
  const auth = apiKey ? ` \\\n  -H "Authorization: Bearer ${apiKey}"` : '';
  return (
    `curl ${url}/v1/chat/completions -H "Content-Type: application/json"${auth} \\\n` +
    `  -d '{"model": "${model}", "messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 64, "stream": true}'`
  );
}

/** Where this file's siblings live: compiled (dist/…/*.js) or from sources under the TS register hook (tests). */
function appEntry(app: 'api' | 'worker-infer' | 'worker-quant'): { args: string[] } {
  const ext = path.extname(__filename); // .js when built, .ts from sources
  const entry = path.resolve(__dirname, `../../../${app}/src/main${ext}`);
  if (!fs.existsSync(entry)) throw new CliExit(1, `error: cannot find the ${app} entry point at ${entry} (run \`npm run build\`)`);
  if (ext === '.ts') {
    const register = findUp('test/e2e/register.js');
    return { args: ['--require', register, entry] };
  }
  return { args: [entry] };
}

function findUp(rel: string): string {
  let dir = __dirname;
  for (;;) {
    const p = path.join(dir, rel);
    if (fs.existsSync(p)) return p;
    const up = path.dirname(dir);
    if (up === dir) throw new CliExit(1, `error: cannot find ${rel} above ${__dirname}`);
    dir = up;
  }
}

function listening(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
    s.setTimeout(1000, () => done(false));
  });
}

interface Services {
  databaseUrl: string;
  redisUrl: string;
  /** Stops the servers this run started (none when they were already there). */
  stop(): Promise<void>;
}

/** scripts/services.sh: the same logic as the quickstart. */
async function ensureServices(io: CliIO, env: NodeJS.ProcessEnv): Promise<Services> {
  if (env.DATABASE_URL && env.REDIS_URL) return { databaseUrl: env.DATABASE_URL, redisUrl: env.REDIS_URL, stop: async () => undefined };
  const hadPg = !!env.DATABASE_URL || (await listening(5432));
  const hadRedis = !!env.REDIS_URL || (await listening(6379));
  const script = findUp('scripts/services.sh');
  let out: string;
  try {
    out = (await promisify(execFile)('bash', [script], { env, maxBuffer: 1 << 20 })).stdout;
  } catch (e) {
    throw new CliExit(1, `error: could not get Postgres and Redis (scripts/services.sh): ${(e as { stderr?: string }).stderr || (e as Error).message}`);
  }
  const get = (k: string) => out.split('\n').find((l) => l.startsWith(`${k}=`))?.slice(k.length + 1).trim();
  const databaseUrl = env.DATABASE_URL ?? get('DATABASE_URL');
  const redisUrl = env.REDIS_URL ?? get('REDIS_URL');
  if (!databaseUrl || !redisUrl) throw new CliExit(1, `error: scripts/services.sh printed no URLs:\n${out}`);
  const started = [!hadPg && 'Postgres', !hadRedis && 'Redis'].filter(Boolean);
  if (started.length) io.stderr.write(`[serve] started ${started.join(' and ')} (stopped again on exit)\n`);
  return {
    databaseUrl,
    redisUrl,
    async stop() {
      const run = (cmd: string, args: string[]) => promisify(execFile)(cmd, args).catch(() => undefined);
      if (!hadRedis) await run('redis-cli', ['-p', '6379', 'shutdown', 'nosave']);
      if (!hadPg) {
        const versions = fs.existsSync('/etc/postgresql') ? fs.readdirSync('/etc/postgresql').sort() : [];
        const v = versions[versions.length - 1];
        if (v) await run('pg_ctlcluster', [v, 'main', 'stop']);
      }
    },
  };
}

interface Child {
  name: string;
  proc: ChildProcess;
  logFile: string;
  exited: Promise<number | null>;
}

function startChild(name: string, app: 'api' | 'worker-infer' | 'worker-quant', env: NodeJS.ProcessEnv, logDir: string): Child {
  const logFile = path.join(logDir, `${name}.log`);
  const fd = fs.openSync(logFile, 'a');
  // Own process group: the terminal's Ctrl-C reaches only us, and we stop the children in order.
  const proc = spawn(process.execPath, appEntry(app).args, { env, stdio: ['ignore', fd, fd], detached: true });
  fs.closeSync(fd);
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  return { name, proc, logFile, exited };
}

async function stopChild(c: Child, graceMs: number): Promise<void> {
  if (c.proc.exitCode !== null || c.proc.signalCode !== null) return;
  c.proc.kill('SIGTERM');
  const t = setTimeout(() => c.proc.kill('SIGKILL'), graceMs);
  await c.exited;
  clearTimeout(t);
}

function tail(file: string, n = 30): string {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-n).join('\n');
  } catch {
    return '';
  }
}

export async function apiServerCommand(io: CliIO, modelDir: string, flags: ApiServerFlags, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  if (!Number.isInteger(flags.tp) || flags.tp < 1) throw new CliExit(2, `--tp ${flags.tp}: must be a positive integer`);
  const kvPolicy = kvPolicyOf(flags.quantPolicy);
  const abs = path.resolve(modelDir);
  if (!isServable(abs)) throw new CliExit(2, `lmfleet serve api_server: ${abs} is not a model directory or workspace (no config.json or lmfleet.json)`);
  const name = deploymentNameOf(abs, flags.modelName);
  for (const k of flags.apiKeys ?? []) {
    if (!/^[\x21-\x7e]{8,}$/.test(k)) throw new CliExit(2, '--api-keys: each key needs at least 8 printable characters without spaces');
  }
  if (await listening(flags.serverPort)) throw new CliExit(1, `error: port ${flags.serverPort} is already in use (--server-port)`);

  const say = (s: string) => io.stderr.write(`[serve] ${s}\n`);
  const services = await ensureServices(io, env);
  const logDir = flags.logDir ?? fs.mkdtempSync(path.join(os.tmpdir(), `lmfleet-serve-${flags.serverPort}-`));
  fs.mkdirSync(logDir, { recursive: true });
  const real = fs.realpathSync(abs);
  const roots = [...new Set([path.dirname(real), ...(env.MODEL_ROOTS ?? '').split(',').map((s) => s.trim()).filter(Boolean)])];
  const childEnv: NodeJS.ProcessEnv = {
    ...env,
    DATABASE_URL: services.databaseUrl,
    REDIS_URL: services.redisUrl,
    MODEL_ROOTS: roots.join(','),
    PORT: String(flags.serverPort),
    API_HOST: flags.serverName,
    ENGINE_BACKEND: flags.backend,
    ARTIFACT_DIR: env.ARTIFACT_DIR ?? path.join(logDir, 'artifacts'),
    ...(flags.apiKeys?.length ? { API_KEYS: flags.apiKeys.join(',') } : {}),
  };
  const children: Child[] = [];
  let stopping: Promise<void> | undefined;
  const stopAll = () =>
    (stopping ??= (async () => {
      // Workers first (they hand unfinished requests back), then the API, then services this run started.
      for (const c of [...children].reverse()) await stopChild(c, 10_000);
      await services.stop();
    })());
  const killOnExit = () => children.forEach((c) => c.proc.exitCode === null && c.proc.kill('SIGKILL'));
  process.once('exit', killOnExit);

  let interrupted!: () => void;
  const interruptedP = new Promise<'interrupt'>((resolve) => (interrupted = () => resolve('interrupt')));
  io.onInterrupt?.(interrupted);
  type Died = { died: { c: Child; code: number | null } };
  const childDied = (): Promise<Died> => Promise.race(children.map((c) => c.exited.then((code) => ({ died: { c, code } }))));

  try {
    say(`logs in ${logDir}`);
    children.push(startChild('api', 'api', childEnv, logDir));
    const hostForUrl = flags.serverName === '0.0.0.0' || flags.serverName === '::' ? '127.0.0.1' : flags.serverName;
    const url = `http://${hostForUrl.includes(':') ? `[${hostForUrl}]` : hostForUrl}:${flags.serverPort}`;
    const api = new ApiClient(url, io.fetch ?? fetch, flags.apiKeys?.[0]);
    const waitUntil = async <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> => {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const v = await probe().catch(() => undefined);
        if (v !== undefined) return v;
        const r: 'tick' | 'interrupt' | Died = await Promise.race([new Promise<'tick'>((res) => setTimeout(() => res('tick'), 250)), interruptedP, childDied()]);
        if (r === 'interrupt') throw new CliExit(130, '[serve] interrupted');
        if (r !== 'tick') {
          throw new CliExit(1, `error: ${r.died.c.name} exited (code ${r.died.code}) while waiting for ${what}; its log (${r.died.c.logFile}):\n${tail(r.died.c.logFile)}`);
        }
        if (Date.now() > end) throw new CliExit(1, `error: timed out waiting for ${what}; logs in ${logDir}`);
      }
    };
    await waitUntil('the API', async () => ((await api.request('GET', '/health')).status === 200 ? true : undefined), 120_000);
    children.push(startChild('worker-infer', 'worker-infer', { ...childEnv, WORKER_NAME: env.WORKER_NAME ?? `serve-${flags.serverPort}-infer` }, logDir));
    if (flags.withQuant) children.push(startChild('worker-quant', 'worker-quant', { ...childEnv, WORKER_NAME: `serve-${flags.serverPort}-quant` }, logDir));
    say(`API up at ${url}; registering ${abs}`);
    const versionId = await resolveVersion(api, abs, undefined);
    const want = {
      name,
      versionId,
      kvPolicy,
      tp: flags.tp,
      enablePrefixCaching: flags.enablePrefixCaching === true,
      reasoningParser: flags.reasoningParser ?? null,
      speculative: flags.speculative ?? null,
      ...(flags.cacheMaxEntryCount !== undefined ? { cacheMaxEntryCount: flags.cacheMaxEntryCount } : {}),
      ...(flags.maxBatchSize !== undefined ? { maxBatchSize: flags.maxBatchSize } : {}),
      ...(flags.sessionLen !== undefined ? { sessionLen: flags.sessionLen } : {}),
    };
    const existing = await api.request('GET', `/deployments/${name}`);
    const same = existing.status === 200 && Object.entries(want).every(([k, v]) => isDeepStrictEqual(existing.body[k], v));
    if (existing.status === 200 && !same) {
      say(`replacing deployment ${name} (another version or other options)`);
      await api.call('DELETE', `/deployments/${name}`);
    }
    if (!same) await api.call('POST', '/deployments', want);
    say(`deployed ${name} (version ${versionId}, kv ${kvPolicy}${flags.tp > 1 ? `, tp ${flags.tp}` : ''}${flags.speculative ? `, speculative ngram x${flags.speculative.numDraftTokens}` : ''}); waiting for the worker to load it`);
    await waitUntil(
      'the deployment to be ready',
      async () => {
        const d = (await api.request('GET', `/deployments/${name}`)).body as { workers?: Array<{ state?: string; error?: string }> };
        const failed = d.workers?.find((w) => w.state === 'failed');
        if (failed) throw new CliExit(1, `error: the worker could not load ${name}: ${failed.error ?? 'unknown error'}`);
        return d.workers?.some((w) => w.state === 'ready') ? true : undefined;
      },
      (flags.readyTimeout ?? 1800) * 1000,
    ).catch((e) => {
      throw e instanceof CliExit ? e : new CliExit(1, String(e));
    });
    io.stdout.write(
      `LMFleet OpenAI-compatible server for ${name} on ${url} (Ctrl-C stops it)\n` +
        `  GET  ${url}/v1/models   POST ${url}/v1/chat/completions   POST ${url}/v1/completions   GET ${url}/metrics\n` +
        `  try: lmfleet serve api_client ${url}${flags.apiKeys?.length ? ' --api-key <key>' : ''}\n` +
        (flags.withQuant ? `  quantize on it: ${flags.apiKeys?.length ? 'LMFLEET_API_KEY=<key> ' : ''}lmfleet --api ${url} lite auto_awq MODEL_DIR ...\n` : '') +
        `\n${exampleCurl(url, name, flags.apiKeys?.length ? '<key>' : undefined)}\n`,
    );
    const r: 'interrupt' | Died = await Promise.race([interruptedP, childDied()]);
    if (r !== 'interrupt') throw new CliExit(1, `error: ${r.died.c.name} exited (code ${r.died.code}); its log (${r.died.c.logFile}):\n${tail(r.died.c.logFile)}`);
    say('stopping');
  } finally {
    io.onInterrupt?.(undefined);
    await stopAll();
    process.removeListener('exit', killOnExit);
  }
  say('stopped');
}
