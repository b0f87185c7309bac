// Runs one long engine call (evalPpl, calibrate, autoAwq, convert) in a child process, so that
//  - the worker's event loop stays free while the engine tokenizes a corpus or searches AWQ scales in
//    JavaScript: BullMQ lock renewals, heartbeats and SIGTERM handling keep running;
//  - a crash inside the engine (a bad model file that trips native code, out of memory) fails that job with a
//    readable message and the worker keeps running.
// (A worker thread was tried first: the native addon is not safe to load in several threads' environments.)
// This file is both sides: the parent calls runEngineCall(); the same file, forked, runs the call and sends
// progress, logs and the result back. Errors cross as {name, code, message} so bad input stays a 400.
import { fork } from 'node:child_process';
import * as path from 'node:path';

export type EngineCall = 'evalPpl' | 'calibrate' | 'autoAwq' | 'convert';
type Level = 'debug' | 'info' | 'warn' | 'error';

interface CallMessage {
  type: 'call';
  method: EngineCall;
  /** Positional arguments; the last one is the options object (without its callbacks). */
  args: unknown[];
}

type FromChild =
  | { type: 'progress'; args: unknown[] }
  | { type: 'log'; level: Level; message: string }
  | { type: 'result'; value: unknown }
  | { type: 'error'; name: string; code?: string; message: string; stack?: string };

export interface EngineCallHooks {
  onProgress?: (...args: any[]) => void;
  log?: (level: Level, message: string) => void;
}

const CHILD_FLAG = '--lmfleet-engine-call';

/** Runs `engine[method](...args, {...opts, onProgress, log})` in a fresh child process. */
export function runEngineCall<T>(method: EngineCall, args: unknown[], hooks: EngineCallHooks): Promise<T> {
  // Same module: compiled (.js under dist/), or TypeScript through the tests' require hook, which the child
  // inherits with the parent's execArgv.
  const file = path.join(__dirname, `engine-process${path.extname(__filename)}`);
  return new Promise<T>((resolve, reject) => {
    const child = fork(file, [CHILD_FLAG], { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let settled = false;
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      fn();
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    };
    child.on('message', (msg: FromChild) => {
      switch (msg.type) {
        case 'progress':
          try {
            hooks.onProgress?.(...msg.args);
          } catch (err) {
            // The caller gave up on this call (its job was cancelled or lost): stop the child.
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
    child.on('error', (err) => settle(() => reject(err)));
    child.on('exit', (code, signal) =>
      settle(() => reject(new Error(`the engine process for ${method} died (${signal ? `signal ${signal}` : `exit code ${code}`}) before answering`))),
    );
    child.send({ type: 'call', method, args } satisfies CallMessage);
  });
}

async function childMain(msg: CallMessage): Promise<void> {
  const send = (m: FromChild) => new Promise<void>((res) => process.send!(m, undefined, {}, () => res()));
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const engine = require('@lmfleet/engine') as Record<EngineCall, (...a: unknown[]) => Promise<unknown>>;
    const args = [...msg.args];
    const opts = (args.pop() ?? {}) as Record<string, unknown>;
    const value = await engine[msg.method](...args, {
      ...opts,
      onProgress: (...p: unknown[]) => void send({ type: 'progress', args: p }),
      log: (level: Level, message: string) => void send({ type: 'log', level, message }),
    });
    await send({ type: 'result', value });
  } catch (e) {
    const err = e as Error & { code?: unknown };
    await send({ type: 'error', name: err?.name ?? 'Error', code: typeof err?.code === 'string' ? err.code : undefined, message: err?.message ?? String(e), stack: err?.stack });
  }
  process.exit(0);
}

if (process.argv.includes(CHILD_FLAG) && process.send) {
  process.once('message', (m: CallMessage) => void childMain(m));
  // The parent went away: nothing to answer to.
  process.on('disconnect', () => process.exit(1));
}
