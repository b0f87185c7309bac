import { Injectable } from '@nestjs/common';
import { DataSource, In, Not, type FindOptionsWhere } from 'typeorm';
import { FINISHED_STATUSES, JobEntity, type JobStatus } from '../db/entities/job.entity';
import type { JobName } from '../queue/jobs';

export type NewJob = Pick<JobEntity, 'id' | 'type' | 'params' | 'queueName' | 'bullJobId'> &
  Partial<Pick<JobEntity, 'versionId' | 'parentJobId' | 'flowId'>>;

export interface JobFilter {
  status?: JobStatus;
  type?: JobName;
  versionId?: string;
  flowId?: string;
  workerId?: string;
  limit: number;
  offset: number;
}

type Patch = Partial<Omit<JobEntity, 'id' | 'createdAt' | 'updatedAt'>>;

/** jobs. */
@Injectable()
export class JobRepository {
  constructor(private readonly ds: DataSource) {}

  private get jobs() {
    return this.ds.getRepository(JobEntity);
  }

  /** Inserts rows in one transaction (a pipeline's steps appear together or not at all). */
  async createMany(rows: NewJob[]): Promise<JobEntity[]> {
    return this.ds.transaction(async (tx) => {
      const repo = tx.getRepository(JobEntity);
      const saved: JobEntity[] = [];
      for (const r of rows) saved.push(await repo.save(repo.create({ ...r, status: 'queued' })));
      return saved;
    });
  }

  get(id: string): Promise<JobEntity | null> {
    return this.jobs.findOneBy({ id });
  }

  list(f: JobFilter): Promise<[JobEntity[], number]> {
    const where: FindOptionsWhere<JobEntity> = {};
    if (f.status) where.status = f.status;
    if (f.type) where.type = f.type;
    if (f.versionId) where.versionId = f.versionId;
    if (f.flowId) where.flowId = f.flowId;
    if (f.workerId) where.workerId = f.workerId;
    return this.jobs.findAndCount({ where, order: { createdAt: 'DESC', id: 'ASC' }, take: f.limit, skip: f.offset });
  }

  listFlow(flowId: string): Promise<JobEntity[]> {
    return this.jobs.find({ where: { flowId }, order: { createdAt: 'ASC' } });
  }

  /** The steps that ran before this one in its flow (BullMQ children). */
  children(parentJobId: string): Promise<JobEntity[]> {
    return this.jobs.find({ where: { parentJobId }, order: { createdAt: 'ASC' } });
  }

  /** Updates a job unless it has already finished; returns whether a row changed. */
  async updateUnfinished(id: string, patch: Patch): Promise<boolean> {
    const res = await this.jobs.update({ id, status: Not(In([...FINISHED_STATUSES])) }, patch);
    return (res.affected ?? 0) > 0;
  }

  /**
   * Updates a job that is unfinished AND held by `workerId`. A worker that lost its BullMQ lock (its event
   * loop was blocked past the lock duration, and another worker took the job over) must not write over the
   * new holder's row.
   */
  async updateIfOwned(id: string, workerId: string, patch: Patch): Promise<boolean> {
    const res = await this.jobs.update({ id, workerId, status: Not(In([...FINISHED_STATUSES])) }, patch);
    return (res.affected ?? 0) > 0;
  }

  /** Marks every unfinished job of `ids` with `patch`; returns the ids that changed. */
  async finishUnfinished(ids: string[], patch: Patch & { status: JobStatus }): Promise<string[]> {
    if (!ids.length) return [];
    const res = await this.jobs
      .createQueryBuilder()
      .update()
      .set(patch)
      .where('id IN (:...ids)', { ids })
      .andWhere('status NOT IN (:...finished)', { finished: [...FINISHED_STATUSES] })
      .returning(['id'])
      .execute();
    return (res.raw as Array<{ id: string }>).map((r) => r.id);
  }

  /** Ids of this job's BullMQ ancestors (parent, grandparent, ...), nearest first. */
  async ancestors(id: string): Promise<JobEntity[]> {
    const rows: JobEntity[] = await this.ds.query(
      `WITH RECURSIVE up AS (
         SELECT j.* , 1 AS depth FROM jobs j WHERE j.id = (SELECT parent_job_id FROM jobs WHERE id = $1)
         UNION ALL
         SELECT j.*, up.depth + 1 FROM jobs j JOIN up ON j.id = up.parent_job_id WHERE up.depth < 64
       ) SELECT id FROM up ORDER BY depth`,
      [id],
    );
    if (!rows.length) return [];
    const found = await this.jobs.findBy({ id: In(rows.map((r) => r.id)) });
    const byId = new Map(found.map((j) => [j.id, j]));
    return rows.map((r) => byId.get(r.id)!).filter(Boolean);
  }

  /**
   * The perplexity a completed eval job measured for `versionId` on the same text and settings (as the evaluated
   * version or as the baseline of a derived one), newest first; undefined when there is none.
   */
  async findEvalPpl(
    versionId: string,
    s: { datasetFile: string; seqlen: number; defaultSeqlen: number; maxWindows: number | null; quantPolicy?: number | null; kvCalibDir?: string | null; kvCalibJobId?: string | null },
  ): Promise<number | undefined> {
    const rows: Array<{ ppl: number | null }> = await this.ds.query(
      `SELECT CASE WHEN result->>'versionId' = $1 THEN (result->>'ppl')::float8 ELSE (result->'baseline'->>'ppl')::float8 END AS ppl
         FROM jobs
        WHERE type = 'eval' AND status = 'completed'
          AND (result->>'versionId' = $1 OR result->'baseline'->>'versionId' = $1)
          AND params->>'datasetFile' = $2
          AND COALESCE((params->>'seqlen')::int, $4) = $3
          AND (params->>'maxWindows')::int IS NOT DISTINCT FROM $5::int
          AND COALESCE((params->>'quantPolicy')::int, 0) = COALESCE($6::int, 0)
          AND params->>'kvCalibDir' IS NOT DISTINCT FROM $7::text
          AND params->>'kvCalibJobId' IS NOT DISTINCT FROM $8::text
        ORDER BY finished_at DESC
        LIMIT 1`,
      [versionId, s.datasetFile, s.seqlen, s.defaultSeqlen, s.maxWindows, s.quantPolicy ?? null, s.kvCalibDir ?? null, s.kvCalibJobId ?? null],
    );
    const ppl = rows[0]?.ppl;
    return typeof ppl === 'number' && Number.isFinite(ppl) ? ppl : undefined;
  }

  /** Every job Postgres says is unfinished (to re-enqueue after a Redis loss). */
  unfinished(): Promise<JobEntity[]> {
    return this.jobs.find({ where: { status: In(['queued', 'running']) }, order: { createdAt: 'ASC' } });
  }
}
