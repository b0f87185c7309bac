import { Injectable } from '@nestjs/common';
import type { ReadStream } from 'node:fs';
import type { ArtifactEntity } from '../db/entities/artifact.entity';
import { NotFoundError } from '../errors';
import { ArtifactRepository } from '../repositories/artifact.repository';
import { ArtifactStore } from '../storage/artifact-store';

@Injectable()
export class ArtifactService {
  constructor(
    private readonly artifacts: ArtifactRepository,
    private readonly store: ArtifactStore,
  ) {}

  async get(id: string): Promise<ArtifactEntity> {
    const a = await this.artifacts.get(id);
    if (!a) throw new NotFoundError('artifact', id);
    return a;
  }

  async open(id: string): Promise<{ artifact: ArtifactEntity; stream: ReadStream; bytes: number }> {
    const artifact = await this.get(id);
    const { stream, bytes } = await this.store.open(artifact.path);
    return { artifact, stream, bytes };
  }
}
