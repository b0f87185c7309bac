export * from './model.entity';
export * from './model-version.entity';
export * from './job.entity';
export * from './artifact.entity';
export * from './metric.entity';
export * from './worker.entity';
export * from './deployment.entity';
export * from './request-timing.entity';
import { ModelEntity } from './model.entity';
import { ModelVersionEntity } from './model-version.entity';
import { JobEntity } from './job.entity';
import { ArtifactEntity } from './artifact.entity';
import { MetricEntity } from './metric.entity';
import { WorkerEntity } from './worker.entity';
import { DeploymentEntity } from './deployment.entity';
import { RequestTimingEntity } from './request-timing.entity';

export const ENTITIES = [ModelEntity, ModelVersionEntity, JobEntity, ArtifactEntity, MetricEntity, WorkerEntity, DeploymentEntity, RequestTimingEntity];
