// Migration CLI: `node dist/libs/platform/src/db/migrate.js [run|revert|show]` (or through test/e2e/register.js
// from the sources). The api and workers also run pending migrations at startup (RUN_MIGRATIONS=true).
import 'reflect-metadata';
import { loadConfig } from '../config';
import { createDataSource, runMigrations } from './data-source';

async function main(cmd = 'run'): Promise<void> {
  const ds = await createDataSource(loadConfig().databaseUrl).initialize();
  try {
    if (cmd === 'run') {
      const ran = await runMigrations(ds);
      console.log(ran.length ? `applied: ${ran.join(', ')}` : 'nothing to apply');
    } else if (cmd === 'revert') {
      await ds.undoLastMigration({ transaction: 'each' });
      console.log('reverted the last migration');
    } else if (cmd === 'show') {
      console.log((await ds.showMigrations()) ? 'pending migrations exist' : 'up to date');
    } else {
      throw new Error(`unknown command "${cmd}" (run | revert | show)`);
    }
  } finally {
    await ds.destroy();
  }
}

main(process.argv[2]).catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
