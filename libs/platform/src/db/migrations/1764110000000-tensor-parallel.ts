import type { MigrationInterface, QueryRunner } from 'typeorm';

// Tensor parallelism (issue 8): a deployment's --tp, the GPUs of one worker's host it is sharded over (1: none).
// Generated from the entities; checked by migrations.test.ts.
export class TensorParallel1764110000000 implements MigrationInterface {
  name = 'TensorParallel1764110000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE "deployments" ADD "tp" integer NOT NULL DEFAULT '1'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE "deployments" DROP COLUMN "tp"`);
  }
}
