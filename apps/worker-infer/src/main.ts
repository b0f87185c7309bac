import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { closeOnSignals, loadConfig } from '@lmfleet/platform';
import { InferWorkerModule } from './worker.module';

/** worker-infer: serves the deployments in INFER_DEPLOYMENTS (queues `infer-<id>`). One process per GPU. */
async function main(): Promise<void> {
  const config = loadConfig();
  const app = await NestFactory.createApplicationContext(InferWorkerModule.forRoot({ config }));
  closeOnSignals(app, 'worker-infer');
  new Logger('worker-infer').log(`started; deployments: ${config.worker.inferDeployments.join(', ')}`);
}

main().catch((err) => {
  // eslint-disable-next-line no-console
  console.error(err);
  process.exit(1);
});
