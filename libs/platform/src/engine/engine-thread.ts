// Runs one long engine call (evalPpl, calibrate, autoAwq, convert) on a worker thread, so the worker
// process's event loop stays free while the engine tokenizes a corpus or searches AWQ scales in JavaScript:
// BullMQ lock renewals, heartbeats and SIGTERM handling keep running. This file is both sides: the parent
// calls runEngineCall(); the same file, started as a Worker, runs the call and posts progress, logs and
// the result back. Errors cross as {name, code, message} so the adapter still tells bad input from failure.
import * as path from 'node:path';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

export type EngineCall = 'evalPpl' | 'calibrate' | 'autoAwq' | 'convert';
type Level = 'debug' | 'info' | 'warn' | 'error';

interface CallData {
  method: EngineCall;
  /** Positional arguments; the last one is the options object (without its callbacks). */
  args: unknown[];
}

type FromThread =
  | { type: 'progress'; args: unknown[] }
  | { type: 'log'; level: Level; message: string }
  | { type: 'result'; value: unknown }
  | { type: 'error'; name: string; code?: string; message: string; stack?: string };

export interface EngineCallHooks {
  onProgress?: (...args: any[]) => void;
  log?: (level: Level, message: string) => void;
}

/** Runs `engine[method](...args, {...opts, onProgress, log})` on a fresh worker thread. */
export function runEngineCall<T>(method: EngineCall, args: unknown[], hooks: EngineCallHooks): Promise<T> {
  // Same module, compiled (.js under dist/) or TypeScript through the tests' require hook, which the
  // thread inherits with the parent's execArgv.
  const file = path.join(__dirname, `engine-thread${path.extname(__filename)}`);
  return new Promise<T>((resolve, reject) => {
    const worker = new Worker(file, { workerData: { method, args } satisfies CallData });
    let settled = false;
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      fn();
      void worker.terminate();
    };
    worker.on('message', (msg: FromThread) => {
      switch (msg.type) {
        case 'progress':
          try {
            hooks.onProgress?.(...msg.args);
          } catch (err) {
            // The caller gave up on this call (e.g. its job was cancelled or lost): stop the thread.
            settle(() => reject(err));
          }
          break;
        case 'log':
          hooks.log?.(msg.level, msg.message);
          break;
        case 'result':
          settle(() => resolve(msg.value as T));
          break;
        case 'error': {
          const err = new Error(msg.message) as Error & { code?: string };
          err.name = msg.name;
          if (msg.code) err.code = msg.code;
          if (msg.stack) err.stack = msg.stack;
          settle(() => reject(err));
          break;
        }
      }
    });
    worker.on('error', (err) => settle(() => reject(err)));
    worker.on('exit', (code) => settle(() => reject(new Error(`engine thread for ${method} exited with code ${code} before answering`))));
  });
}

async function threadMain(data: CallData): Promise<void> {
  const port = parentPort!;
  const post = (m: FromThread) => port.postMessage(m);
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const engine = require('@lmfleet/engine') as Record<EngineCall, (...a: unknown[]) => Promise<unknown>>;
    const args = [...data.args];
    const opts = (args.pop() ?? {}) as Record<string, unknown>;
    const value = await engine[data.method](...args, {
      ...opts,
      onProgress: (...p: unknown[]) => post({ type: 'progress', args: p.filter((x) => x === null || typeof x !== 'object' || Array.isArray(x) || isPlain(x)) }),
      log: (level: Level, message: string) => post({ type: 'log', level, message }),
    });
    post({ type: 'result', value: structuredClone(value) });
  } catch (e) {
    const err = e as Error & { code?: unknown };
    post({ type: 'error', name: err?.name ?? 'Error', code: typeof err?.code === 'string' ? err.code : undefined, message: err?.message ?? String(e), stack: err?.stack });
  }
}

function isPlain(x: unknown): boolean {
  const proto = Object.getPrototypeOf(x);
  return proto === Object.prototype || proto === null;
}

if (!isMainThread && parentPort && (workerData as CallData | undefined)?.method) {
  void threadMain(workerData as CallData);
}
