import { Module, type DynamicModule } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import {
  JOB_PROCESSOR,
  JobRunner,
  PlatformModule,
  QUANT_JOBS,
  QuantJobsService,
  QueueName,
  WORKER_SPEC,
  WorkerRegistry,
  type PlatformModuleOptions,
  type WorkerSpec,
} from '@lmfleet/platform';
import { QuantProcessor } from './quant.processor';

@Module({})
export class QuantWorkerModule {
  static forRoot(opts: PlatformModuleOptions): DynamicModule {
    const spec: WorkerSpec = { kind: 'quant', queues: [QueueName.Quant], jobs: QUANT_JOBS };
    return {
      module: QuantWorkerModule,
      imports: [PlatformModule.forRoot(opts), DiscoveryModule],
      providers: [
        QuantJobsService,
        { provide: JOB_PROCESSOR, useClass: QuantProcessor },
        { provide: WORKER_SPEC, useValue: spec },
        WorkerRegistry,
        JobRunner,
      ],
    };
  }
}
