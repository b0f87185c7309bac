import { Module, type DynamicModule } from '@nestjs/common';
import {
  ArtifactService,
  DashboardService,
  DeploymentService,
  OpenAIService,
  ServingEvents,
  ServingMetrics,
  HealthService,
  JobQueue,
  JobService,
  ModelService,
  PlatformEventsService,
  PlatformModule,
  WorkerService,
  type PlatformModuleOptions,
} from '@lmfleet/platform';
import { ArtifactsController } from './controllers/artifacts.controller';
import { DeploymentsController } from './controllers/deployments.controller';
import { OpenAIController, TokenizerController } from './openai/openai.controller';
import { JobsController } from './controllers/jobs.controller';
import { MetricsController } from './controllers/metrics.controller';
import { ModelsController } from './controllers/models.controller';
import { SystemController } from './controllers/system.controller';
import { DashboardController } from './dashboard/dashboard.controller';

@Module({})
export class ApiModule {
  static forRoot(opts: PlatformModuleOptions): DynamicModule {
    return {
      module: ApiModule,
      imports: [PlatformModule.forRoot(opts)],
      controllers: [ModelsController, JobsController, ArtifactsController, SystemController, DeploymentsController, OpenAIController, TokenizerController, MetricsController, DashboardController],
      providers: [JobQueue, ModelService, JobService, ArtifactService, WorkerService, HealthService, DeploymentService, ServingEvents, OpenAIService, ServingMetrics, DashboardService, PlatformEventsService],
      exports: [ServingEvents],
    };
  }
}
