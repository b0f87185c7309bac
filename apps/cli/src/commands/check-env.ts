// `lmfleet check_env` (LMDeploy's `lmdeploy check_env`) and `lmfleet list` (`lmdeploy list`): what this machine has
// for running LMFleet, and which model architectures the engine takes. Both only read; check_env never fails on a
// missing piece, it says what is missing and what that means.
import { execFile } from 'node:child_process';
import * as os from 'node:os';
import { architectureLimits } from '@lmfleet/engine';
import { binaryPath, loadNative, type Backend, type BackendInfo } from '@lmfleet/engine/native';
import type { CliIO } from '../io';

export const LMFLEET_VERSION = '0.1.0';

/** Runs a tool with a short timeout; its stdout, or null when it is not there or fails. */
export function probeTool(cmd: string, args: string[], timeoutMs = 5000): Promise<string | null> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, windowsHide: true }, (err, stdout) => {
      if (err) return resolve(null);
      resolve(String(stdout));
    });
  });
}

export interface CheckEnvDeps {
  /** backendInfo of one native variant, or the reason it cannot load (default: loadNative). */
  backendInfo?: (backend: Backend) => BackendInfo;
  /** stdout of a tool, or null (default: probeTool). */
  tool?: (cmd: string, args: string[]) => Promise<string | null>;
  /** the addon binary of a variant, or null when it is not built (default: binaryPath). */
  binary?: (backend: Backend) => string | null;
  env?: NodeJS.ProcessEnv;
  /** the platform API to ask for its health (--api / LMFLEET_API), and the fetch to ask with */
  api?: string;
  fetch?: typeof fetch;
}

/** GET {api}/health within a few seconds: the platform's own view of Postgres and Redis. */
async function platformHealth(api: string, f: typeof fetch): Promise<string> {
  const url = `${api.replace(/\/+$/, '')}/health`;
  try {
    const res = await f(url, { signal: AbortSignal.timeout(3000) });
    if (!res.ok) return `${url}: HTTP ${res.status}`;
    const h = (await res.json()) as { status?: string; postgres?: boolean; redis?: boolean };
    return `${url}: ${h.status ?? 'unknown'} (postgres ${h.postgres ? 'up' : 'down'}, redis ${h.redis ? 'up' : 'down'})`;
  } catch (e) {
    return `${url}: unreachable (${(e as Error).message})`;
  }
}

function defaultBackendInfo(backend: Backend): BackendInfo {
  try {
    return loadNative({ backend }).backendInfo();
  } catch (e) {
    return { backend, available: false, reason: (e as Error).message };
  }
}

const GiB = 1024 ** 3;

function nodeOk(version: string): boolean {
  const [maj, min] = version.replace(/^v/, '').split('.').map(Number);
  return maj > 20 || (maj === 20 && min >= 19);
}

/** The report's lines as [label, value] pairs (the command prints them aligned). */
export async function checkEnv(deps: CheckEnvDeps = {}): Promise<Array<[string, string]>> {
  const info = deps.backendInfo ?? defaultBackendInfo;
  const binary = deps.binary ?? binaryPath;
  const tool = deps.tool ?? probeTool;
  const env = deps.env ?? process.env;
  const rows: Array<[string, string]> = [];
  rows.push(['LMFleet', LMFLEET_VERSION]);
  rows.push(['OS', `${os.platform()} ${os.arch()} (${os.release()})`]);
  rows.push(['Node', `${process.version}${nodeOk(process.version) ? '' : ' (LMFleet needs >= 20.19)'}`]);
  const cpus = os.cpus();
  rows.push(['CPU', `${cpus[0]?.model?.trim() || 'unknown'} x ${cpus.length} threads, ${(os.totalmem() / GiB).toFixed(1)} GiB memory`]);
  for (const b of ['cpu', 'cuda'] as Backend[]) {
    const file = binary(b);
    if (!file) {
      rows.push([`backend ${b}`, b === 'cpu' ? 'not built (npm run build:native)' : 'not built (needs a CUDA toolkit with cuBLAS at npm ci / npm run build:native)']);
      continue;
    }
    const i = info(b);
    const what = i.available
      ? `available${i.deviceName ? `: ${i.deviceName}` : ''}${i.totalMemoryBytes ? `, ${(i.totalMemoryBytes / GiB).toFixed(1)} GiB` : ''}`
      : `unavailable: ${i.reason ?? 'no reason given'}`;
    rows.push([`backend ${b}`, `${what} (${file})`]);
  }
  const [smi, nvcc, cmake] = await Promise.all([
    tool('nvidia-smi', ['--query-gpu=index,name,memory.total,driver_version', '--format=csv,noheader']),
    tool('nvcc', ['--version']),
    tool('cmake', ['--version']),
  ]);
  const gpus = (smi ?? '').split('\n').map((l) => l.trim()).filter(Boolean);
  rows.push(['GPUs', gpus.length ? gpus.join('; ') : 'none found (nvidia-smi missing or no NVIDIA GPU): the cpu backend serves']);
  const nvccRelease = nvcc?.match(/release ([0-9.]+)/)?.[1];
  rows.push(['nvcc', nvccRelease ? `CUDA ${nvccRelease}` : 'not found (the cuda backend builds only where a CUDA toolkit with cuBLAS is)']);
  const cmakeVersion = cmake?.match(/cmake version (\S+)/)?.[1];
  rows.push(['cmake', cmakeVersion ?? 'not found (npm ci builds the addon with cmake-js, which needs it)']);
  for (const k of ['LMFLEET_API', 'DATABASE_URL', 'REDIS_URL', 'CUDA_VISIBLE_DEVICES']) if (env[k]) rows.push([k, k === 'DATABASE_URL' ? env[k]!.replace(/\/\/([^:@/]+):[^@]*@/, '//$1:***@') : env[k]!]);
  if (deps.api) rows.push(['platform API', await platformHealth(deps.api, deps.fetch ?? fetch)]);
  return rows;
}

export async function checkEnvCommand(io: CliIO, deps: CheckEnvDeps = {}): Promise<void> {
  const rows = await checkEnv(deps);
  const w = Math.max(...rows.map(([k]) => k.length));
  for (const [k, v] of rows) io.stdout.write(`${k.padEnd(w)}  ${v}\n`);
}

export function listCommand(io: CliIO): void {
  io.stdout.write('Supported architectures (config.json "architectures"; AutoAWQ W4 checkpoints of them too):\n');
  for (const a of architectureLimits()) io.stdout.write(`  ${a.hfArchitecture}${a.limits ? `  (${a.limits})` : ''}\n`);
}
