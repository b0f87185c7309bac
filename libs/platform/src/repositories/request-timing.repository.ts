import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { RequestTimingEntity } from '../db/entities/request-timing.entity';

export type NewRequestTiming = Omit<RequestTimingEntity, 'id' | 'createdAt'>;

/** request_timings: one row per finished serving request (written by the worker that ran it). */
@Injectable()
export class RequestTimingRepository {
  constructor(private readonly ds: DataSource) {}

  private get rows() {
    return this.ds.getRepository(RequestTimingEntity);
  }

  /** Idempotent on requestId (a re-delivered job does not add a second row). */
  async record(t: NewRequestTiming): Promise<void> {
    await this.rows.createQueryBuilder().insert().values(t).orIgnore().execute();
  }

  get(requestId: string): Promise<RequestTimingEntity | null> {
    return this.rows.findOneBy({ requestId });
  }

  list(opts: { deploymentName?: string; limit: number; offset: number }): Promise<RequestTimingEntity[]> {
    return this.rows.find({
      where: opts.deploymentName ? { deploymentName: opts.deploymentName } : {},
      order: { createdAt: 'DESC' },
      take: opts.limit,
      skip: opts.offset,
    });
  }
}
