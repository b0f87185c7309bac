import { Inject, Injectable } from '@nestjs/common';
import * as path from 'node:path';
import { APP_CONFIG, type AppConfig } from '../config';
import type { ModelEntity } from '../db/entities/model.entity';
import type { ModelVersionEntity } from '../db/entities/model-version.entity';
import { ENGINE_ADAPTER, type EngineAdapter } from '../engine/engine.adapter';
import { NotFoundError } from '../errors';
import { ModelRepository } from '../repositories/model.repository';
import { buildLineage, childrenOf } from './lineage';
import { resolveUnderRoots } from './paths';

export interface VersionView extends ModelVersionEntity {
  /** Ancestor version ids, nearest first. */
  ancestors: string[];
  childIds: string[];
}

@Injectable()
export class ModelService {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly models: ModelRepository,
    @Inject(ENGINE_ADAPTER) private readonly engine: EngineAdapter,
  ) {}

  /** Registers a Hugging Face directory under MODEL_ROOTS: the model and its base version. */
  async register(input: { path: string; name?: string }): Promise<{ model: ModelEntity; version: ModelVersionEntity }> {
    const dir = await resolveUnderRoots(input.path, this.config.modelRoots, 'directory');
    const info = await this.engine.inspectModel(dir);
    return this.models.createWithBaseVersion(
      {
        name: input.name ?? path.basename(dir),
        sourcePath: dir,
        architecture: info.architecture,
        modelType: info.modelType,
        numParams: info.numParams,
        contextLength: info.contextLength,
      },
      {
        parentVersionId: null,
        createdByJobId: null,
        format: info.quantization ? 'autoawq' : 'hf',
        dtype: info.dtype,
        quantization: info.quantization,
        path: dir,
        sizeBytes: info.sizeBytes,
        info: { ...info },
      },
    );
  }

  list(page: { limit: number; offset: number }) {
    return this.models.listModels(page).then(([items, total]) => ({ items, total, ...page }));
  }

  async get(id: string): Promise<ModelEntity> {
    const m = await this.models.findModel(id);
    if (!m) throw new NotFoundError('model', id);
    return m;
  }

  async versions(modelId: string): Promise<VersionView[]> {
    await this.get(modelId);
    const versions = await this.models.listVersions(modelId);
    const lineage = buildLineage(versions);
    const children = childrenOf(versions);
    return versions.map((v) => ({ ...v, ancestors: lineage.get(v.id) ?? [], childIds: children.get(v.id) ?? [] }));
  }

  async version(id: string): Promise<VersionView> {
    const v = await this.models.findVersion(id);
    if (!v) throw new NotFoundError('version', id);
    const all = await this.models.listVersions(v.modelId);
    return { ...v, ancestors: buildLineage(all).get(v.id) ?? [], childIds: childrenOf(all).get(v.id) ?? [] };
  }
}
