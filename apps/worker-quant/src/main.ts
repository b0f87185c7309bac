import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { closeOnSignals, loadConfig } from '@lmfleet/platform';
import { QuantWorkerModule } from './worker.module';

/** worker-quant: calibrate, auto_awq, convert, eval from the `quant` queue. One process per GPU. */
async function main(): Promise<void> {
  const config = loadConfig();
  const app = await NestFactory.createApplicationContext(QuantWorkerModule.forRoot({ config }));
  // Past the grace period plus time to close connections and free the engines, a shutdown is stuck.
  closeOnSignals(app, 'worker-quant', config.worker.shutdownGraceMs + 20_000);
  new Logger('worker-quant').log('started');
}

main().catch((err) => {
  // eslint-disable-next-line no-console
  console.error(err);
  process.exit(1);
});
