import type { MigrationInterface, QueryRunner } from 'typeorm';

// The initial schema: models, model_versions, jobs, artifacts, metrics, workers. Written once from the
// entities (TypeORM's schema builder output) and checked against them by
// test/integration/migrations.test.ts, so entities and migrations cannot drift apart silently.
export class Initial1764072000000 implements MigrationInterface {
  name = 'Initial1764072000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE EXTENSION IF NOT EXISTS pgcrypto`);
    await q.query(`CREATE TABLE "models" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "name" text NOT NULL, "source_path" text NOT NULL, "architecture" text NOT NULL, "model_type" text NOT NULL, "num_params" bigint NOT NULL, "context_length" integer, "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "UQ_9e2e4b3d74dce7004fa7f11ec3b" UNIQUE ("source_path"), CONSTRAINT "PK_ef9ed7160ea69013636466bf2d5" PRIMARY KEY ("id"))`);
    await q.query(`CREATE TABLE "model_versions" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "model_id" uuid NOT NULL, "parent_version_id" uuid, "created_by_job_id" uuid, "format" text NOT NULL, "dtype" text NOT NULL, "quantization" jsonb, "path" text NOT NULL, "size_bytes" bigint NOT NULL, "metrics" jsonb NOT NULL DEFAULT '{}'::jsonb, "info" jsonb NOT NULL DEFAULT '{}'::jsonb, "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "UQ_675b5433a62b93c4578e04d8a50" UNIQUE ("created_by_job_id"), CONSTRAINT "PK_77c0256872dcc26394dba4b87ec" PRIMARY KEY ("id"))`);
    await q.query(`CREATE TABLE "jobs" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "type" text NOT NULL, "params" jsonb NOT NULL DEFAULT '{}'::jsonb, "status" text NOT NULL DEFAULT 'queued', "progress" double precision NOT NULL DEFAULT '0', "attempts" integer NOT NULL DEFAULT '0', "queue_name" text NOT NULL, "bull_job_id" text NOT NULL, "version_id" uuid, "worker_id" uuid, "parent_job_id" uuid, "flow_id" uuid, "error" text, "result" jsonb, "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), "updated_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), "started_at" TIMESTAMP WITH TIME ZONE, "finished_at" TIMESTAMP WITH TIME ZONE, CONSTRAINT "UQ_c4d5be6b05a866caadf3fb4f063" UNIQUE ("bull_job_id"), CONSTRAINT "PK_cf0a6c42b72fcc7f7c237def345" PRIMARY KEY ("id"))`);
    await q.query(`CREATE INDEX "IDX_fd1f7aa1fab7e952f8038148db" ON "jobs" ("version_id")`);
    await q.query(`CREATE INDEX "IDX_f54b46f02b61d80ce068b988cf" ON "jobs" ("worker_id")`);
    await q.query(`CREATE INDEX "IDX_fa73608a7abffdba04ceb01db8" ON "jobs" ("parent_job_id")`);
    await q.query(`CREATE INDEX "IDX_fa8ca15327df58be29ae43272f" ON "jobs" ("flow_id")`);
    await q.query(`CREATE INDEX "IDX_c2130d1d7e7f4408202a36e4f1" ON "jobs" ("status", "created_at")`);
    await q.query(`CREATE TABLE "artifacts" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "job_id" uuid NOT NULL, "version_id" uuid, "kind" text NOT NULL, "name" text NOT NULL, "path" text NOT NULL, "bytes" bigint NOT NULL, "sha256" character(64) NOT NULL, "metadata" jsonb NOT NULL DEFAULT '{}'::jsonb, "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "uq_artifacts_job_name" UNIQUE ("job_id", "name"), CONSTRAINT "PK_6516bbed3c129918e05c5012edb" PRIMARY KEY ("id"))`);
    await q.query(`CREATE INDEX "IDX_145c6edf912d244ec998d3ddc0" ON "artifacts" ("job_id")`);
    await q.query(`CREATE INDEX "IDX_1ec0319c6832962554cc5d7050" ON "artifacts" ("version_id")`);
    await q.query(`CREATE TABLE "metrics" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "name" text NOT NULL, "value" double precision NOT NULL, "unit" text, "job_id" uuid, "version_id" uuid, "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "PK_5283cad666a83376e28a715bf0e" PRIMARY KEY ("id"))`);
    await q.query(`CREATE INDEX "IDX_b69b7e3cc632e9cfa22dd87cc3" ON "metrics" ("version_id")`);
    await q.query(`CREATE UNIQUE INDEX "uq_metrics_job_name" ON "metrics" ("job_id", "name") WHERE job_id IS NOT NULL`);
    await q.query(`CREATE TABLE "workers" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "name" text NOT NULL, "kind" text NOT NULL, "host" text NOT NULL, "pid" integer NOT NULL, "gpu" text, "gpu_memory_bytes" bigint, "memory_bytes" bigint NOT NULL, "queues" text array NOT NULL DEFAULT '{}', "status" text NOT NULL DEFAULT 'online', "last_heartbeat_at" TIMESTAMP WITH TIME ZONE NOT NULL, "loaded_deployments" jsonb NOT NULL DEFAULT '[]'::jsonb, "active_jobs" integer NOT NULL DEFAULT '0', "started_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "PK_e950c9aba3bd84a4f193058d838" PRIMARY KEY ("id"))`);
    await q.query(`CREATE INDEX "IDX_2aa2021ace8583f566edbbe18d" ON "workers" ("status")`);
    await q.query(`ALTER TABLE "model_versions" ADD CONSTRAINT "FK_fead214f52c09e2c599ec3a8444" FOREIGN KEY ("model_id") REFERENCES "models"("id") ON DELETE CASCADE ON UPDATE NO ACTION`);
    await q.query(`ALTER TABLE "model_versions" ADD CONSTRAINT "FK_8b22a563ff9ed93fe49b0ad6b81" FOREIGN KEY ("parent_version_id") REFERENCES "model_versions"("id") ON DELETE SET NULL ON UPDATE NO ACTION`);
    await q.query(`ALTER TABLE "model_versions" ADD CONSTRAINT "FK_675b5433a62b93c4578e04d8a50" FOREIGN KEY ("created_by_job_id") REFERENCES "jobs"("id") ON DELETE SET NULL ON UPDATE NO ACTION`);
    await q.query(`ALTER TABLE "artifacts" ADD CONSTRAINT "FK_145c6edf912d244ec998d3ddc04" FOREIGN KEY ("job_id") REFERENCES "jobs"("id") ON DELETE CASCADE ON UPDATE NO ACTION`);
    await q.query(`ALTER TABLE "artifacts" ADD CONSTRAINT "FK_1ec0319c6832962554cc5d70503" FOREIGN KEY ("version_id") REFERENCES "model_versions"("id") ON DELETE SET NULL ON UPDATE NO ACTION`);
    await q.query(`ALTER TABLE "metrics" ADD CONSTRAINT "FK_ccee8dbf31eb6fdb2cc226c0017" FOREIGN KEY ("job_id") REFERENCES "jobs"("id") ON DELETE CASCADE ON UPDATE NO ACTION`);
    await q.query(`ALTER TABLE "metrics" ADD CONSTRAINT "FK_b69b7e3cc632e9cfa22dd87cc3d" FOREIGN KEY ("version_id") REFERENCES "model_versions"("id") ON DELETE CASCADE ON UPDATE NO ACTION`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE "metrics" DROP CONSTRAINT "FK_b69b7e3cc632e9cfa22dd87cc3d"`);
    await q.query(`ALTER TABLE "metrics" DROP CONSTRAINT "FK_ccee8dbf31eb6fdb2cc226c0017"`);
    await q.query(`ALTER TABLE "artifacts" DROP CONSTRAINT "FK_1ec0319c6832962554cc5d70503"`);
    await q.query(`ALTER TABLE "artifacts" DROP CONSTRAINT "FK_145c6edf912d244ec998d3ddc04"`);
    await q.query(`ALTER TABLE "model_versions" DROP CONSTRAINT "FK_675b5433a62b93c4578e04d8a50"`);
    await q.query(`ALTER TABLE "model_versions" DROP CONSTRAINT "FK_8b22a563ff9ed93fe49b0ad6b81"`);
    await q.query(`ALTER TABLE "model_versions" DROP CONSTRAINT "FK_fead214f52c09e2c599ec3a8444"`);
    await q.query(`DROP INDEX "public"."IDX_2aa2021ace8583f566edbbe18d"`);
    await q.query(`DROP TABLE "workers"`);
    await q.query(`DROP INDEX "public"."uq_metrics_job_name"`);
    await q.query(`DROP INDEX "public"."IDX_b69b7e3cc632e9cfa22dd87cc3"`);
    await q.query(`DROP TABLE "metrics"`);
    await q.query(`DROP INDEX "public"."IDX_1ec0319c6832962554cc5d7050"`);
    await q.query(`DROP INDEX "public"."IDX_145c6edf912d244ec998d3ddc0"`);
    await q.query(`DROP TABLE "artifacts"`);
    await q.query(`DROP INDEX "public"."IDX_c2130d1d7e7f4408202a36e4f1"`);
    await q.query(`DROP INDEX "public"."IDX_fa8ca15327df58be29ae43272f"`);
    await q.query(`DROP INDEX "public"."IDX_fa73608a7abffdba04ceb01db8"`);
    await q.query(`DROP INDEX "public"."IDX_f54b46f02b61d80ce068b988cf"`);
    await q.query(`DROP INDEX "public"."IDX_fd1f7aa1fab7e952f8038148db"`);
    await q.query(`DROP TABLE "jobs"`);
    await q.query(`DROP TABLE "model_versions"`);
    await q.query(`DROP TABLE "models"`);
  }
}
