import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../config';
import type { LoadedDeployment } from '../db/entities/worker.entity';
import { ENGINE_ADAPTER, type EngineAdapter, type LoadedEngine } from '../engine/engine.adapter';

const MAX_LOADED = 2;

/** Engines loaded by worker-infer, one per version, least recently used unloaded first. */
@Injectable()
export class EngineCache implements OnApplicationShutdown {
  private readonly logger = new Logger(EngineCache.name);
  private readonly loaded = new Map<string, { engine: Promise<LoadedEngine>; deploymentId: string }>();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(ENGINE_ADAPTER) private readonly adapter: EngineAdapter,
  ) {}

  get(versionId: string, dir: string, deploymentId: string): Promise<LoadedEngine> {
    const hit = this.loaded.get(versionId);
    if (hit) {
      this.loaded.delete(versionId);
      this.loaded.set(versionId, { ...hit, deploymentId });
      return hit.engine;
    }
    const engine = this.adapter.load(dir, { backend: this.config.worker.engineBackend });
    engine.catch(() => this.loaded.delete(versionId));
    this.loaded.set(versionId, { engine, deploymentId });
    while (this.loaded.size > MAX_LOADED) {
      const [oldest, entry] = this.loaded.entries().next().value as [string, { engine: Promise<LoadedEngine> }];
      this.loaded.delete(oldest);
      void entry.engine.then((e) => e.dispose()).catch((err) => this.logger.warn(`dispose ${oldest}: ${err}`));
    }
    return engine;
  }

  deployments(): LoadedDeployment[] {
    return [...this.loaded.entries()].map(([versionId, e]) => ({ versionId, deploymentId: e.deploymentId }));
  }

  async onApplicationShutdown(): Promise<void> {
    const all = [...this.loaded.values()];
    this.loaded.clear();
    await Promise.allSettled(all.map((e) => e.engine.then((x) => x.dispose())));
  }
}
