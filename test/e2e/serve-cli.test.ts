// `lmfleet serve api_server` and `lmfleet serve api_client` as real processes (from sources): the server starts
// the API and a worker-infer, registers and deploys a tiny random Qwen2 on the CPU engine, prints the URL and a
// curl; the client chats with it over streaming /v1/chat/completions with an API key; Ctrl-C (SIGINT) on the server
// stops every process it started.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeTinyModel } from '@lmfleet/engine';
import { createTestEnv, waitFor, type TestEnv } from '../integration/support/test-env';
import { freePort } from './support/processes';

jest.setTimeout(180_000);

const ROOT = path.resolve(__dirname, '../..');
const CLI = ['--require', path.join(ROOT, 'test/e2e/register.js'), path.join(ROOT, 'apps/cli/src/main.ts')];

function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('e2e: lmfleet serve api_server / api_client', () => {
  let env: TestEnv;
  let server: ChildProcess | undefined;
  let serverOut = '';
  let serverErr = '';
  let logDir: string;
  let modelDir: string;
  let port: number;
  const KEY = 'sk-serve-cli-test-1';

  beforeAll(async () => {
    env = await createTestEnv({ SERVE_DEPLOYMENT_POLL_MS: '300' });
    modelDir = path.join(env.modelRoot, 'tiny-qwen2');
    writeTinyModel(modelDir, { arch: 'qwen2', seed: 3, hiddenSize: 64, numLayers: 2, intermediateSize: 128 });
    logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmfleet-e2e-serve-cli-'));
    port = await freePort();
  });
  afterAll(async () => {
    if (server && server.exitCode === null) server.kill('SIGKILL');
    fs.rmSync(logDir, { recursive: true, force: true });
    await env?.cleanup();
  });

  it('api_server starts the platform, deploys the model and prints the URL and a curl', async () => {
    server = spawn(
      process.execPath,
      [...CLI, 'serve', 'api_server', modelDir, '--server-port', String(port), '--server-name', '127.0.0.1', '--backend', 'cpu', '--max-batch-size', '4', '--session-len', '256', '--api-keys', KEY, '--log-dir', logDir, '--with-quant', '--enable-prefix-caching', '--speculative-algorithm', 'ngram', '--speculative-num-draft-tokens', '3'],
      { cwd: ROOT, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', NO_COLOR: '1', ...env.env, MODEL_ROOTS: '' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    server.stdout!.on('data', (d) => (serverOut += d));
    server.stderr!.on('data', (d) => (serverErr += d));
    try {
      await waitFor(async () => serverOut.includes('curl ') || server!.exitCode !== null, 'the server to print its curl', 150_000, 250);
    } finally {
      if (!serverOut.includes('curl ')) console.log(`stdout:\n${serverOut}\nstderr:\n${serverErr}`);
    }
    expect(server.exitCode).toBeNull();
    expect(serverOut).toContain(`http://127.0.0.1:${port}`);
    expect(serverOut).toContain('"model": "tiny-qwen2"');
    expect(serverOut).toContain('Authorization: Bearer <key>');
    const models = await fetch(`http://127.0.0.1:${port}/v1/models`, { headers: { authorization: `Bearer ${KEY}` } });
    expect(models.status).toBe(200);
    expect(((await models.json()) as { data: Array<{ id: string }> }).data.map((m) => m.id)).toEqual(['tiny-qwen2']);
    const refused = await fetch(`http://127.0.0.1:${port}/v1/models`);
    expect(refused.status).toBe(401);
    const workers = (await (await fetch(`http://127.0.0.1:${port}/workers`, { headers: { authorization: `Bearer ${KEY}` } })).json()) as Array<{ kind: string }>;
    expect(workers.map((w) => w.kind).sort()).toEqual(['infer', 'quant']);
    const dep = (await (await fetch(`http://127.0.0.1:${port}/deployments/tiny-qwen2`, { headers: { authorization: `Bearer ${KEY}` } })).json()) as Record<string, unknown>;
    expect(dep).toMatchObject({ maxBatchSize: 4, sessionLen: 256, enablePrefixCaching: true, speculative: { method: 'ngram', numDraftTokens: 3 } });
  });

  it('api_client chats with streaming replies, keeping the conversation', async () => {
    const client = spawn(process.execPath, [...CLI, 'serve', 'api_client', `http://127.0.0.1:${port}`, '--api-key', KEY, '--temperature', '0', '--max-tokens', '6'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', NO_COLOR: '1' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    client.stdout!.on('data', (d) => (out += d));
    client.stderr!.on('data', (d) => (err += d));
    client.stdin!.end('Hello there\nAnd again\n/exit\n');
    const code = await new Promise<number | null>((resolve) => client.once('exit', resolve));
    expect({ code, err }).toEqual({ code: 0, err: '' });
    const replies = out.split('\n').filter(Boolean);
    expect(replies).toHaveLength(2); // one line per turn (a tiny random model: any text, but some)
    expect(replies.every((r) => r.length > 0)).toBe(true);
  });

  it('a wrong key makes api_client exit 1 with the server\'s reason', async () => {
    const client = spawn(process.execPath, [...CLI, 'serve', 'api_client', `http://127.0.0.1:${port}`, '--api-key', 'sk-wrong-key-1'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let err = '';
    client.stderr!.on('data', (d) => (err += d));
    client.stdin!.end('hi\n');
    const code = await new Promise<number | null>((resolve) => client.once('exit', resolve));
    expect(code).toBe(1);
    expect(err).toMatch(/401.*invalid API key/);
  });

  it('Ctrl-C stops the API and the workers it started, then exits 0', async () => {
    const kids = childPids(server!.pid!);
    expect(kids.length).toBe(3); // api + worker-infer + worker-quant
    server!.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => (server!.exitCode !== null ? resolve(server!.exitCode) : server!.once('exit', resolve)));
    expect(code).toBe(0);
    expect(serverErr).toContain('[serve] stopped');
    await waitFor(async () => kids.every((p) => !alive(p)), 'children to be gone', 5000, 100);
  });
});
