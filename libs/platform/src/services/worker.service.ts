import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../config';
import type { WorkerEntity, WorkerStatus } from '../db/entities/worker.entity';
import { WorkerRepository } from '../repositories/worker.repository';

@Injectable()
export class WorkerService {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly workers: WorkerRepository,
  ) {}

  /** Lists workers; any whose heartbeat is older than HEARTBEAT_TIMEOUT_MS is marked gone first. */
  async list(status?: WorkerStatus): Promise<WorkerEntity[]> {
    await this.workers.markGone(new Date(Date.now() - this.config.worker.heartbeatTimeoutMs));
    return this.workers.list(status);
  }
}
