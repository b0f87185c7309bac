// Starts the apps as real child processes (TypeScript through ./register.js, no build step) and keeps
// their output in log files that a failing test prints.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '../../..');
const REGISTER = path.join(ROOT, 'test/e2e/register.js');

export const APPS = {
  api: 'apps/api/src/main.ts',
  'worker-quant': 'apps/worker-quant/src/main.ts',
  'worker-infer': 'apps/worker-infer/src/main.ts',
} as const;

export interface AppProcess {
  name: string;
  child: ChildProcess;
  pid: number;
  logFile: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  log(): string;
}

/** `root`: another checkout of this repository to run the app from (benchmarks compare against a baseline commit). */
export function startApp(app: keyof typeof APPS, name: string, env: Record<string, string>, logDir: string, root = ROOT): AppProcess {
  const logFile = path.join(logDir, `${name}.log`);
  const out = fs.openSync(logFile, 'a');
  const child = spawn(process.execPath, ['--require', root === ROOT ? REGISTER : path.join(root, 'test/e2e/register.js'), path.join(root, APPS[app])], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', NO_COLOR: '1', ...env },
    stdio: ['ignore', out, out],
  });
  fs.closeSync(out);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return { name, child, pid: child.pid!, logFile, exited, log: () => fs.readFileSync(logFile, 'utf8') };
}

/** Stops what we started, by pid: SIGTERM, then SIGKILL after a grace period. */
export async function stopApp(p: AppProcess, graceMs = 8000): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill('SIGTERM');
  const t = setTimeout(() => p.child.kill('SIGKILL'), graceMs);
  await p.exited;
  clearTimeout(t);
}

/**
 * Call inside a describe: `.failed` tells whether any test or hook of the file failed, an assertion or a timeout
 * (./environment.js counts them), for stopApps to print the apps' logs; set it yourself for other failures.
 */
export function noteFailures(): { failed: boolean } {
  let marked = false;
  return {
    get failed() {
      return marked || ((globalThis as { __e2eFailures?: number }).__e2eFailures ?? 0) > 0;
    },
    set failed(v: boolean) {
      marked = v;
    },
  };
}

/**
 * The end of an e2e file: stops every app, prints the tail of each one's log when a test failed (or E2E_SHOW_LOGS is
 * set), then removes the log directory.
 */
export async function stopApps(procs: Array<AppProcess | undefined>, opts: { failed: boolean; logDir?: string; tail?: number }): Promise<void> {
  const started = procs.filter((p): p is AppProcess => !!p);
  await Promise.all(started.map((p) => stopApp(p)));
  if (opts.failed || process.env.E2E_SHOW_LOGS) for (const p of started) console.log(`----- ${p.name} -----\n${p.log().slice(-(opts.tail ?? 6000))}`);
  if (opts.logDir) fs.rmSync(opts.logDir, { recursive: true, force: true });
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

/** Shared objects mapped into a process (Linux): used to prove the API never loads the native addon. */
export function mappedFiles(pid: number): string[] {
  try {
    return [...new Set(fs.readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n').map((l) => l.split(/\s+/)[5]).filter(Boolean))];
  } catch {
    return [];
  }
}
