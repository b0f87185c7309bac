// CliIO for specs that run commands in-process: stdout / stderr captured, stdin from the given chunks (as they are:
// pass lines with their '\n'), and the optional native module / fetch a command should use.
import { Readable } from 'node:stream';
import type { CliIO } from '../io';

export interface CapturedIO {
  io: CliIO;
  out(): string;
  err(): string;
}

export function captureIO(opts: { stdin?: string[]; native?: CliIO['native']; fetch?: typeof fetch } = {}): CapturedIO {
  const out: string[] = [];
  const err: string[] = [];
  return {
    io: {
      stdout: { write: (s: string) => out.push(s) },
      stderr: { write: (s: string) => err.push(s) },
      stdin: Readable.from(opts.stdin ?? []) as unknown as NodeJS.ReadableStream,
      native: opts.native,
      fetch: opts.fetch,
    },
    out: () => out.join(''),
    err: () => err.join(''),
  };
}
