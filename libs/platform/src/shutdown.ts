import { Logger, type INestApplicationContext } from '@nestjs/common';

/**
 * SIGTERM/SIGINT: close the app (workers finish or hand back in-flight jobs, connections drain), then exit 0.
 * A second signal exits at once. (Nest's enableShutdownHooks re-raises the signal, which reads as a crash.)
 */
export function closeOnSignals(app: INestApplicationContext, name: string): void {
  const logger = new Logger(name);
  let closing = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (closing) {
      logger.warn(`${signal} again: exiting now`);
      process.exit(1);
    }
    closing = true;
    logger.log(`${signal}: shutting down`);
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
