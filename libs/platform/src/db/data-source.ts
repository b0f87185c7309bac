import { DataSource, type DataSourceOptions } from 'typeorm';
import { ENTITIES } from './entities';
import { MIGRATIONS } from './migrations';

export function dataSourceOptions(databaseUrl: string): DataSourceOptions {
  return {
    type: 'postgres',
    url: databaseUrl,
    entities: ENTITIES,
    migrations: MIGRATIONS,
    migrationsTableName: 'migrations',
    uuidExtension: 'pgcrypto', // gen_random_uuid(): built into Postgres 13+
    synchronize: false,
    migrationsRun: false, // runMigrations() below, under an advisory lock
    extra: { max: 10 },
  };
}

export function createDataSource(databaseUrl: string): DataSource {
  return new DataSource(dataSourceOptions(databaseUrl));
}

// Any constant works; it only has to be the same in every process.
const MIGRATION_LOCK_KEY = 7_142_001;

/**
 * Runs pending migrations. The api and the workers may start together: the advisory lock makes the
 * second process wait and then find nothing to do.
 */
export async function runMigrations(ds: DataSource): Promise<string[]> {
  const qr = ds.createQueryRunner();
  await qr.connect();
  try {
    await qr.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    const done = await ds.runMigrations({ transaction: 'each' });
    return done.map((m) => m.name);
  } finally {
    await qr.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => undefined);
    await qr.release();
  }
}
