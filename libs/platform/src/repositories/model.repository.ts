import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { ModelEntity } from '../db/entities/model.entity';
import { ModelVersionEntity } from '../db/entities/model-version.entity';
import { ConflictError } from '../errors';
import { pgCode, PG_UNIQUE_VIOLATION } from './pg-errors';

export type NewModel = Omit<ModelEntity, 'id' | 'createdAt' | 'versions'>;
export type NewVersion = Omit<ModelVersionEntity, 'id' | 'createdAt' | 'model' | 'modelId' | 'parentVersion' | 'createdByJob' | 'metrics'> & {
  metrics?: Record<string, number>;
};

/** models + model_versions. */
@Injectable()
export class ModelRepository {
  constructor(private readonly ds: DataSource) {}

  private get models() {
    return this.ds.getRepository(ModelEntity);
  }
  private get versions() {
    return this.ds.getRepository(ModelVersionEntity);
  }

  /** Creates a model and its base version atomically; a second registration of the path is a conflict. */
  async createWithBaseVersion(model: NewModel, base: NewVersion): Promise<{ model: ModelEntity; version: ModelVersionEntity }> {
    try {
      return await this.ds.transaction(async (tx) => {
        const m = await tx.getRepository(ModelEntity).save(tx.getRepository(ModelEntity).create(model));
        const v = await tx
          .getRepository(ModelVersionEntity)
          .save(tx.getRepository(ModelVersionEntity).create({ ...base, modelId: m.id, metrics: base.metrics ?? {} }));
        return { model: m, version: v };
      });
    } catch (err) {
      if (pgCode(err) === PG_UNIQUE_VIOLATION) {
        const existing = await this.findModelBySourcePath(model.sourcePath);
        throw new ConflictError(`a model is already registered from ${model.sourcePath}`, existing ? { modelId: existing.id } : undefined);
      }
      throw err;
    }
  }

  findModel(id: string): Promise<ModelEntity | null> {
    return this.models.findOneBy({ id });
  }
  findModelBySourcePath(sourcePath: string): Promise<ModelEntity | null> {
    return this.models.findOneBy({ sourcePath });
  }
  listModels(page: { limit: number; offset: number }): Promise<[ModelEntity[], number]> {
    return this.models.findAndCount({ order: { createdAt: 'DESC', id: 'ASC' }, take: page.limit, skip: page.offset });
  }
  findVersion(id: string): Promise<ModelVersionEntity | null> {
    return this.versions.findOneBy({ id });
  }
  listVersions(modelId: string): Promise<ModelVersionEntity[]> {
    return this.versions.find({ where: { modelId }, order: { createdAt: 'ASC', id: 'ASC' } });
  }

  /**
   * The version a job produced. Keyed by created_by_job_id: a job re-run after a crash updates its version
   * instead of adding a second one.
   */
  async upsertVersionForJob(jobId: string, modelId: string, v: NewVersion): Promise<ModelVersionEntity> {
    await this.versions
      .createQueryBuilder()
      .insert()
      .values({ ...v, modelId, createdByJobId: jobId, metrics: v.metrics ?? {} })
      .orUpdate(['parent_version_id', 'format', 'dtype', 'quantization', 'path', 'size_bytes', 'info'], ['created_by_job_id'])
      .execute();
    return this.versions.findOneByOrFail({ createdByJobId: jobId });
  }

  /** Latest value per metric name, merged into model_versions.metrics. */
  async mergeVersionMetrics(versionId: string, metrics: Record<string, number>): Promise<void> {
    await this.ds.query(`UPDATE model_versions SET metrics = metrics || $2::jsonb WHERE id = $1`, [versionId, JSON.stringify(metrics)]);
  }
}
