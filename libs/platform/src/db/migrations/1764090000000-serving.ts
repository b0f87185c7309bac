import type { MigrationInterface, QueryRunner } from 'typeorm';

// Serving: deployments (a model version behind the OpenAI API, with its engine options) and request_timings
// (one row per finished serving request). Generated from the entities; checked by migrations.test.ts.
export class Serving1764090000000 implements MigrationInterface {
  name = 'Serving1764090000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE "deployments" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "name" text NOT NULL, "version_id" uuid NOT NULL, "kv_policy" text NOT NULL DEFAULT 'fp16', "cache_max_entry_count" double precision, "max_batch_size" integer NOT NULL, "session_len" integer, "max_pending" integer NOT NULL, "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "UQ_a25006350a8f794b8218cb01b55" UNIQUE ("name"), CONSTRAINT "PK_1e5627acb3c950deb83fe98fc48" PRIMARY KEY ("id"))`);
    await q.query(`CREATE TABLE "request_timings" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "request_id" text NOT NULL, "deployment_id" uuid, "deployment_name" text NOT NULL, "kind" text NOT NULL, "worker_id" uuid, "queued_ms" double precision NOT NULL, "ttft_ms" double precision, "total_ms" double precision NOT NULL, "prompt_tokens" integer NOT NULL, "completion_tokens" integer NOT NULL, "finish_reason" text NOT NULL, "error" text, "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "UQ_5da7ff423f4a355a0d75550dad6" UNIQUE ("request_id"), CONSTRAINT "PK_b212ca59e6723a20e306be7c649" PRIMARY KEY ("id"))`);
    await q.query(`CREATE INDEX "IDX_4a468d431aaf2abe9e5de02510" ON "request_timings" ("deployment_name", "created_at") `);
    await q.query(`ALTER TABLE "deployments" ADD CONSTRAINT "FK_7dcb7715d412cdb52909d9cb5f2" FOREIGN KEY ("version_id") REFERENCES "model_versions"("id") ON DELETE RESTRICT ON UPDATE NO ACTION`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE "deployments" DROP CONSTRAINT "FK_7dcb7715d412cdb52909d9cb5f2"`);
    await q.query(`DROP INDEX "public"."IDX_4a468d431aaf2abe9e5de02510"`);
    await q.query(`DROP TABLE "request_timings"`);
    await q.query(`DROP TABLE "deployments"`);
  }
}
