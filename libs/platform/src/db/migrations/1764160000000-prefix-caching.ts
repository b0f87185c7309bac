import type { MigrationInterface, QueryRunner } from 'typeorm';

// Prefix caching: a deployment's --enable-prefix-caching (off by default, as in LMDeploy).
// Generated from the entities; checked by migrations.test.ts.
export class PrefixCaching1764160000000 implements MigrationInterface {
  name = 'PrefixCaching1764160000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE "deployments" ADD "enable_prefix_caching" boolean NOT NULL DEFAULT false`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE "deployments" DROP COLUMN "enable_prefix_caching"`);
  }
}
