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
  ServingHost,
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
        ServingHost,
        { provide: JOB_PROCESSOR, useClass: InferProcessor },
        {
          provide: WORKER_SPEC,
          inject: [EngineCache, ServingHost],
          useFactory: (engines: EngineCache, serving: ServingHost): WorkerSpec => ({
            kind: 'infer',
            // INFER_DEPLOYMENTS: queues for batch `infer` jobs; the deployments table adds one queue per deployment.
            queues: opts.config.worker.inferDeployments.map(inferQueueName),
            jobs: INFER_JOBS,
            loadedDeployments: () => [...engines.deployments(), ...serving.loaded()],
            onStarted: (host, workerId) => serving.start(host, workerId),
            onStopping: () => serving.stop(),
          }),
        },
        WorkerRegistry,
        JobRunner,
      ],
    };
  }
}
