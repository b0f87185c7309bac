import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { MetricEntity } from '../db/entities/metric.entity';

export interface NewMetric {
  name: string;
  value: number;
  unit?: string | null;
  jobId: string;
  versionId?: string | null;
}

/** metrics. */
@Injectable()
export class MetricRepository {
  constructor(private readonly ds: DataSource) {}

  private get metrics() {
    return this.ds.getRepository(MetricEntity);
  }

  /** Keyed by (job_id, name): a re-run job overwrites its measurement. */
  async upsertForJob(m: NewMetric): Promise<void> {
    await this.ds.query(
      `INSERT INTO metrics (name, value, unit, job_id, version_id) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (job_id, name) WHERE job_id IS NOT NULL
       DO UPDATE SET value = EXCLUDED.value, unit = EXCLUDED.unit, version_id = EXCLUDED.version_id, created_at = now()`,
      [m.name, m.value, m.unit ?? null, m.jobId, m.versionId ?? null],
    );
  }

  listByJob(jobId: string): Promise<MetricEntity[]> {
    return this.metrics.find({ where: { jobId }, order: { name: 'ASC' } });
  }
}
