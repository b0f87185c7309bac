// Entry point of the lmfleet CLI (bin/lmfleet.js runs the compiled copy of this file).
import { EngineError } from '@lmfleet/engine';
import { CommanderError } from 'commander';
import { CliExit, type CliIO } from './io';
import { createProgram } from './program';

/** Runs the CLI; resolves to the process exit code. */
export async function run(argv: string[], io: CliIO): Promise<number> {
  const program = createProgram(io);
  program.exitOverride();
  for (const c of program.commands) {
    c.exitOverride();
    for (const s of c.commands) s.exitOverride();
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode; // commander already printed help / the error
    if (e instanceof CliExit) {
      io.stderr.write(`${e.message}\n`);
      return e.exitCode;
    }
    if (e instanceof EngineError) {
      io.stderr.write(`error: ${e.message} [${e.code}]\n`);
      return 1;
    }
    io.stderr.write(`error: ${(e as Error)?.stack ?? String(e)}\n`);
    return 1;
  }
}

if (require.main === module) {
  let interruptHandler: (() => void) | undefined;
  process.on('SIGINT', () => {
    if (interruptHandler) {
      interruptHandler();
      interruptHandler = undefined;
    } else {
      process.exit(130);
    }
  });
  run(process.argv.slice(2), {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    onInterrupt: (h) => (interruptHandler = h),
  }).then((code) => {
    process.exitCode = code;
  });
}
