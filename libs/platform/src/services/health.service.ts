import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { JobQueue } from '../queue/job-queue';

export interface Health {
  status: 'ok' | 'degraded';
  postgres: boolean;
  redis: boolean;
}

@Injectable()
export class HealthService {
  constructor(
    private readonly ds: DataSource,
    private readonly queue: JobQueue,
  ) {}

  async check(): Promise<Health> {
    const [postgres, redis] = await Promise.all([
      this.ds.query('SELECT 1').then(() => true, () => false),
      this.queue.ping(),
    ]);
    return { status: postgres && redis ? 'ok' : 'degraded', postgres, redis };
  }
}
