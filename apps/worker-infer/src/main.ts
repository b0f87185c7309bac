import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { closeOnSignals, loadConfig } from '@lmfleet/platform';
import { InferWorkerModule } from './worker.module';

/**
 * worker-infer: serves every deployment in the `deployments` table (OpenAI requests on `infer-<name>`, loaded with
 * the deployment's options) and runs batch `infer` jobs from the INFER_DEPLOYMENTS queues. One process per GPU.
 */
async function main(): Promise<void> {
  const config = loadConfig();
  const app = await NestFactory.createApplicationContext(InferWorkerModule.forRoot({ config }));
  // Past the grace period plus time to close connections and free the engines, a shutdown is stuck.
  closeOnSignals(app, 'worker-infer', config.worker.shutdownGraceMs + 20_000);
  new Logger('worker-infer').log(`started; batch infer queues: ${config.worker.inferDeployments.join(', ')}; serving the deployments table`);
}

main().catch((err) => {
  // eslint-disable-next-line no-console
  console.error(err);
  process.exit(1);
});
