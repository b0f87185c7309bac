import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { closeOnSignals, loadConfig } from '@lmfleet/platform';
import { createApiApp } from './app';

async function main(): Promise<void> {
  const config = loadConfig();
  const app = await createApiApp({ config });
  closeOnSignals(app, 'api');
  await app.listen(config.port, config.host);
  new Logger('api').log(`listening on ${config.host}:${config.port} (docs at /docs)`);
}

main().catch((err) => {
  // eslint-disable-next-line no-console
  console.error(err);
  process.exit(1);
});
