import type { NativeModule } from '@lmfleet/engine';

/** What a command may touch, injected so specs can run commands in-process. */
export interface CliIO {
  stdout: { write(s: string): unknown; isTTY?: boolean };
  stderr: { write(s: string): unknown; isTTY?: boolean };
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  /** Tests pass a fake native module; the real CLI loads @lmfleet/native. */
  native?: NativeModule;
  /** Remote mode's HTTP client (specs pass a fake; default: global fetch). */
  fetch?: typeof fetch;
  /** Lets the chat loop abort a generation on Ctrl-C (main wires SIGINT to it). */
  onInterrupt?: (handler: (() => void) | undefined) => void;
}

/** Thrown by commands to exit with a code and a message (printed by main). */
export class CliExit extends Error {
  constructor(readonly exitCode: number, message: string) {
    super(message);
  }
}
