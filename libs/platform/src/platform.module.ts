import { DynamicModule, Global, Logger, Module, type Provider } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from './config';
import { dataSourceOptions, runMigrations } from './db/data-source';
import { JobLog } from './events/job-log';
import { ENGINE_ADAPTER, LmfleetEngineAdapter, type EngineAdapter } from './engine/engine.adapter';
import { ArtifactRepository } from './repositories/artifact.repository';
import { JobRepository } from './repositories/job.repository';
import { MetricRepository } from './repositories/metric.repository';
import { ModelRepository } from './repositories/model.repository';
import { WorkerRepository } from './repositories/worker.repository';
import { DeploymentRepository } from './repositories/deployment.repository';
import { RequestTimingRepository } from './repositories/request-timing.repository';
import { TokenStream } from './streams/token-stream';
import { ArtifactStore } from './storage/artifact-store';

export interface PlatformModuleOptions {
  config: AppConfig;
  /** Replaces the engine adapter (tests). */
  engine?: EngineAdapter;
}

const REPOSITORIES = [ModelRepository, JobRepository, ArtifactRepository, MetricRepository, WorkerRepository, DeploymentRepository, RequestTimingRepository];

/**
 * What every process shares: config, Postgres (migrations run at startup under an advisory lock),
 * repositories, the artifact store and the engine adapter.
 */
@Global()
@Module({})
export class PlatformModule {
  static forRoot(opts: PlatformModuleOptions): DynamicModule {
    const providers: Provider[] = [
      { provide: APP_CONFIG, useValue: opts.config },
      opts.engine ? { provide: ENGINE_ADAPTER, useValue: opts.engine } : { provide: ENGINE_ADAPTER, useClass: LmfleetEngineAdapter },
      ArtifactStore,
      TokenStream,
      JobLog,
      ...REPOSITORIES,
    ];
    return {
      module: PlatformModule,
      imports: [
        TypeOrmModule.forRootAsync({
          useFactory: () => dataSourceOptions(opts.config.databaseUrl),
          dataSourceFactory: async (options) => {
            const ds = await new DataSource(options!).initialize();
            if (opts.config.runMigrations) {
              const ran = await runMigrations(ds);
              if (ran.length) new Logger('Migrations').log(`applied ${ran.join(', ')}`);
            }
            return ds;
          },
        }),
      ],
      providers,
      exports: [APP_CONFIG, ENGINE_ADAPTER, ArtifactStore, TokenStream, JobLog, ...REPOSITORIES],
    };
  }
}
