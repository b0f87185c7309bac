import { Module, type DynamicModule } from '@nestjs/common';
import {
  ArtifactService,
  HealthService,
  JobQueue,
  JobService,
  ModelService,
  PlatformModule,
  WorkerService,
  type PlatformModuleOptions,
} from '@lmfleet/platform';
import { ArtifactsController } from './controllers/artifacts.controller';
import { JobsController } from './controllers/jobs.controller';
import { ModelsController } from './controllers/models.controller';
import { SystemController } from './controllers/system.controller';

@Module({})
export class ApiModule {
  static forRoot(opts: PlatformModuleOptions): DynamicModule {
    return {
      module: ApiModule,
      imports: [PlatformModule.forRoot(opts)],
      controllers: [ModelsController, JobsController, ArtifactsController, SystemController],
      providers: [JobQueue, ModelService, JobService, ArtifactService, WorkerService, HealthService],
    };
  }
}
