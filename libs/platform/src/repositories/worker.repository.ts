import { Injectable } from '@nestjs/common';
import { DataSource, In, LessThan } from 'typeorm';
import { WorkerEntity, type LoadedDeployment, type WorkerStatus } from '../db/entities/worker.entity';

export type NewWorker = Pick<WorkerEntity, 'name' | 'kind' | 'host' | 'pid' | 'gpu' | 'gpuMemoryBytes' | 'memoryBytes' | 'queues'>;

/** workers: registration and heartbeats. */
@Injectable()
export class WorkerRepository {
  constructor(private readonly ds: DataSource) {}

  private get workers() {
    return this.ds.getRepository(WorkerEntity);
  }

  register(w: NewWorker): Promise<WorkerEntity> {
    return this.workers.save(this.workers.create({ ...w, status: 'online', lastHeartbeatAt: new Date(), loadedDeployments: [], activeJobs: 0 }));
  }

  async heartbeat(id: string, beat: { activeJobs: number; loadedDeployments: LoadedDeployment[]; queues?: string[]; status?: WorkerStatus }): Promise<void> {
    await this.workers.update({ id }, { lastHeartbeatAt: new Date(), ...beat, status: beat.status ?? 'online' });
  }

  async setStatus(id: string, status: WorkerStatus): Promise<void> {
    await this.workers.update({ id }, { status, ...(status === 'stopped' ? { activeJobs: 0, loadedDeployments: [] } : {}) });
  }

  /** Workers that stopped sending heartbeats are gone; returns how many were marked. */
  async markGone(olderThan: Date): Promise<number> {
    const res = await this.workers.update(
      { status: In(['online', 'draining']), lastHeartbeatAt: LessThan(olderThan) },
      { status: 'gone', activeJobs: 0, loadedDeployments: [] },
    );
    return res.affected ?? 0;
  }

  list(status?: WorkerStatus): Promise<WorkerEntity[]> {
    return this.workers.find({ where: status ? { status } : {}, order: { startedAt: 'DESC' } });
  }
}
