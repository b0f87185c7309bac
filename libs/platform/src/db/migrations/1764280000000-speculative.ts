import type { MigrationInterface, QueryRunner } from 'typeorm';

// Speculative decoding: a deployment's n-gram speculative setting (null: off, the default as in LMDeploy and vLLM),
// and each finished request's draft tokens verified and accepted (null where its deployment does not speculate).
// Generated from the entities; checked by migrations.test.ts.
export class Speculative1764280000000 implements MigrationInterface {
  name = 'Speculative1764280000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE "deployments" ADD "speculative" jsonb`);
    await q.query(`ALTER TABLE "request_timings" ADD "draft_tokens" integer`);
    await q.query(`ALTER TABLE "request_timings" ADD "accepted_draft_tokens" integer`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE "request_timings" DROP COLUMN "accepted_draft_tokens"`);
    await q.query(`ALTER TABLE "request_timings" DROP COLUMN "draft_tokens"`);
    await q.query(`ALTER TABLE "deployments" DROP COLUMN "speculative"`);
  }
}
