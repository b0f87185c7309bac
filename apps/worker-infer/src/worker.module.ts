import { Module, type DynamicModule } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import {
  EngineCache,
  INFER_JOBS,
  InferJobsService,
  inferQueueName,
  JOB_PROCESSOR,
  JobRunner,
  PlatformModule,
  WORKER_SPEC,
  WorkerRegistry,
  type PlatformModuleOptions,
  type WorkerSpec,
} from '@lmfleet/platform';
import { InferProcessor } from './infer.processor';

@Module({})
export class InferWorkerModule {
  static forRoot(opts: PlatformModuleOptions): DynamicModule {
    return {
      module: InferWorkerModule,
      imports: [PlatformModule.forRoot(opts), DiscoveryModule],
      providers: [
        EngineCache,
        InferJobsService,
        { provide: JOB_PROCESSOR, useClass: InferProcessor },
        {
          provide: WORKER_SPEC,
          inject: [EngineCache],
          useFactory: (engines: EngineCache): WorkerSpec => ({
            kind: 'infer',
            queues: opts.config.worker.inferDeployments.map(inferQueueName),
            jobs: INFER_JOBS,
            loadedDeployments: () => engines.deployments(),
          }),
        },
        WorkerRegistry,
        JobRunner,
      ],
    };
  }
}
