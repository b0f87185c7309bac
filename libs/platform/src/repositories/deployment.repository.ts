import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { DeploymentEntity } from '../db/entities/deployment.entity';
import { ModelVersionEntity } from '../db/entities/model-version.entity';

export type NewDeployment = Pick<DeploymentEntity, 'name' | 'versionId' | 'kvPolicy' | 'cacheMaxEntryCount' | 'maxBatchSize' | 'sessionLen' | 'maxPending' | 'tp' | 'enablePrefixCaching' | 'reasoningParser' | 'speculative'>;

/** deployments: what worker-infer serves behind the OpenAI API. */
@Injectable()
export class DeploymentRepository {
  constructor(private readonly ds: DataSource) {}

  private get rows() {
    return this.ds.getRepository(DeploymentEntity);
  }

  create(d: NewDeployment): Promise<DeploymentEntity> {
    return this.rows.save(this.rows.create(d));
  }

  list(): Promise<DeploymentEntity[]> {
    return this.rows.find({ order: { createdAt: 'ASC' } });
  }

  get(id: string): Promise<DeploymentEntity | null> {
    return this.rows.findOneBy({ id });
  }

  findByName(name: string): Promise<DeploymentEntity | null> {
    return this.rows.findOneBy({ name });
  }

  versionOf(d: Pick<DeploymentEntity, 'versionId'>): Promise<ModelVersionEntity | null> {
    return this.ds.getRepository(ModelVersionEntity).findOneBy({ id: d.versionId });
  }

  async delete(id: string): Promise<boolean> {
    const res = await this.rows.delete({ id });
    return (res.affected ?? 0) > 0;
  }
}
