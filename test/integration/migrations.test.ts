import { createDataSource, runMigrations } from '@lmfleet/platform';
import { createTestEnv, type TestEnv } from './support/test-env';

const ALL = ['Initial1764072000000', 'Serving1764090000000', 'TensorParallel1764110000000', 'PrefixCaching1764160000000', 'ReasoningParser1764260000000', 'Speculative1764280000000'];

describe('migrations (real Postgres)', () => {
  let env: TestEnv;
  beforeAll(async () => {
    env = await createTestEnv();
  });
  afterAll(async () => {
    await env?.cleanup();
  });

  it('create the schema the entities describe, run once, and revert', async () => {
    const ds = createDataSource(env.databaseUrl);
    await ds.initialize();
    try {
      expect(await runMigrations(ds)).toEqual(ALL);
      expect(await runMigrations(ds)).toEqual([]); // idempotent
      const pending = await ds.driver.createSchemaBuilder().log();
      expect(pending.upQueries.map((q) => q.query)).toEqual([]); // migrations == entities
      const tables = (await ds.query(`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`)).map(
        (r: { table_name: string }) => r.table_name,
      );
      expect(tables).toEqual(['artifacts', 'deployments', 'jobs', 'metrics', 'migrations', 'model_versions', 'models', 'request_timings', 'workers']);
      for (let i = 0; i < ALL.length; i++) await ds.undoLastMigration();
      const after = await ds.query(`SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = 'public' AND table_name <> 'migrations'`);
      expect(after[0].n).toBe(0);
    } finally {
      await ds.destroy();
    }
  });

  it('concurrent runners serialize on the advisory lock', async () => {
    const a = createDataSource(env.databaseUrl);
    const b = createDataSource(env.databaseUrl);
    await Promise.all([a.initialize(), b.initialize()]);
    try {
      const [ra, rb] = await Promise.all([runMigrations(a), runMigrations(b)]);
      expect([...ra, ...rb]).toEqual(ALL);
    } finally {
      await Promise.all([a.destroy(), b.destroy()]);
    }
  });
});
