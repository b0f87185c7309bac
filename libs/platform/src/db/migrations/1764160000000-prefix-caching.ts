import type { MigrationInterface, QueryRunner } from 'typeorm';

// Prefix caching: a deployment's --enable-prefix-caching (off by default, as in LMDeploy), and each finished request's
// prompt tokens taken from the cache.
// Generated from the entities; checked by migrations.test.ts.
export class PrefixCaching1764160000000 implements MigrationInterface {
  name = 'PrefixCaching1764160000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE "deployments" ADD "enable_prefix_caching" boolean NOT NULL DEFAULT false`);
    await q.query(`ALTER TABLE "request_timings" ADD "cached_tokens" integer NOT NULL DEFAULT '0'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE "request_timings" DROP COLUMN "cached_tokens"`);
    await q.query(`ALTER TABLE "deployments" DROP COLUMN "enable_prefix_caching"`);
  }
}
