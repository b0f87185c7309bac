import type { MigrationInterface, QueryRunner } from 'typeorm';

// Reasoning models: a deployment's --reasoning-parser (none by default, as in vLLM and LMDeploy).
// Generated from the entities; checked by migrations.test.ts.
export class ReasoningParser1764260000000 implements MigrationInterface {
  name = 'ReasoningParser1764260000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE "deployments" ADD "reasoning_parser" text`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE "deployments" DROP COLUMN "reasoning_parser"`);
  }
}
