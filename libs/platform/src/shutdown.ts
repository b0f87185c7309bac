import { Logger, type INestApplicationContext } from '@nestjs/common';

let phase = 'closing the app';

/** What shutdown is doing now, named in the log if it overruns its deadline (closeOnSignals). */
export function noteShutdownPhase(what: string): void {
  phase = what;
}

/**
 * SIGTERM/SIGINT: close the app (workers finish or hand back in-flight jobs, connections drain), then exit 0.
 * A second signal exits at once. (Nest's enableShutdownHooks re-raises the signal, which reads as a crash.)
 * `deadlineMs`: a shutdown still running after this long is stuck; it is logged with its phase and the process exits
 * 1, so a supervisor never waits on it forever (a worker's jobs are handed back by then, or retried when stalled).
 */
export function closeOnSignals(app: INestApplicationContext, name: string, deadlineMs?: number): void {
  const logger = new Logger(name);
  let closing = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (closing) {
      logger.warn(`${signal} again: exiting now`);
      process.exit(1);
    }
    closing = true;
    logger.log(`${signal}: shutting down`);
    if (deadlineMs !== undefined) {
      setTimeout(() => {
        logger.error(`shutdown did not finish within ${deadlineMs} ms (stuck ${phase}); exiting`);
        process.exit(1);
      }, deadlineMs).unref();
    }
    app.close().then(
      () => process.exit(0),
      (err) => {
        logger.error(`shutdown failed: ${(err as Error).message}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
