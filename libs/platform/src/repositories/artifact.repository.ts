import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { ArtifactEntity } from '../db/entities/artifact.entity';

export type NewArtifact = Omit<ArtifactEntity, 'id' | 'createdAt' | 'job' | 'version'>;

/** artifacts. */
@Injectable()
export class ArtifactRepository {
  constructor(private readonly ds: DataSource) {}

  private get artifacts() {
    return this.ds.getRepository(ArtifactEntity);
  }

  /** Keyed by (job_id, name): a re-run job replaces its file's record instead of adding one. */
  async upsert(a: NewArtifact): Promise<ArtifactEntity> {
    await this.artifacts
      .createQueryBuilder()
      .insert()
      .values(a)
      .orUpdate(['version_id', 'kind', 'path', 'bytes', 'sha256', 'metadata'], ['job_id', 'name'])
      .execute();
    return this.artifacts.findOneByOrFail({ jobId: a.jobId, name: a.name });
  }

  get(id: string): Promise<ArtifactEntity | null> {
    return this.artifacts.findOneBy({ id });
  }

  listByJob(jobId: string): Promise<ArtifactEntity[]> {
    return this.artifacts.find({ where: { jobId }, order: { createdAt: 'ASC', name: 'ASC' } });
  }
}
