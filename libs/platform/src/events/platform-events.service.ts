import { Inject, Injectable, Logger, Optional, type OnModuleDestroy } from '@nestjs/common';
import { Observable, Subject, share } from 'rxjs';
import { DataSource } from 'typeorm';
import { JobEntity } from '../db/entities/job.entity';
import { WorkerEntity } from '../db/entities/worker.entity';
import { changedRows, type Signature } from './changes';

/** One server-sent event: a job row that changed, or the worker list when any worker changed. */
export type PlatformEvent =
  | { type: 'job'; job: JobEntity }
  | { type: 'workers'; workers: WorkerEntity[] }
  | { type: 'ping'; at: string };

/** Poll periods (ms): jobs carry progress, so they are polled faster than workers. */
export interface EventTimings {
  jobsMs: number;
  workersMs: number;
  pingMs: number;
}
export const EVENT_TIMINGS = Symbol('EVENT_TIMINGS');
export const DEFAULT_EVENT_TIMINGS: EventTimings = { jobsMs: 400, workersMs: 2000, pingMs: 15000 };

/**
 * Live changes of jobs and workers for the dashboard. Every process (API, workers) writes job state to
 * Postgres, so Postgres is the one place that sees all of it: while anyone listens, one poller per API
 * process reads the rows updated lately (a window wider than the poll, since a row written by a
 * transaction that began earlier carries that earlier time) and publishes each row whose state changed.
 * Nothing runs while nobody listens.
 */
@Injectable()
export class PlatformEventsService implements OnModuleDestroy {
  private readonly logger = new Logger(PlatformEventsService.name);
  private readonly jobSigs = new Map<string, Signature>();
  private workerSig = '';
  private readonly stream: Observable<PlatformEvent>;
  private closed = new Subject<void>();

  private readonly timings: EventTimings;

  constructor(
    private readonly ds: DataSource,
    @Optional() @Inject(EVENT_TIMINGS) timings?: EventTimings,
  ) {
    this.timings = timings ?? DEFAULT_EVENT_TIMINGS;
    this.stream = new Observable<PlatformEvent>((sub) => {
      let stopped = false;
      let jobsTimer: NodeJS.Timeout | undefined;
      let workersTimer: NodeJS.Timeout | undefined;
      const pingTimer = setInterval(() => sub.next({ type: 'ping', at: new Date().toISOString() }), this.timings.pingMs);
      const loop = (fn: () => Promise<void>, ms: number, set: (t: NodeJS.Timeout) => void) => {
        const tick = async () => {
          try {
            await fn();
          } catch (err) {
            this.logger.warn(`event poll: ${(err as Error).message}`);
          }
          if (!stopped) set(setTimeout(tick, ms));
        };
        void tick();
      };
      // A fresh poller publishes only changes from now on: clients load the current state over REST first.
      this.jobSigs.clear();
      this.workerSig = '';
      let primed = false;
      loop(
        async () => {
          const jobs = await this.recentJobs();
          const changed = changedRows(jobs, this.jobSigs, jobSignature);
          if (primed) for (const job of changed) sub.next({ type: 'job', job });
          primed = true;
        },
        this.timings.jobsMs,
        (t) => (jobsTimer = t),
      );
      loop(
        async () => {
          const workers = await this.ds.getRepository(WorkerEntity).find({ order: { startedAt: 'DESC' }, take: 200 });
          const sig = workers.map((w) => `${w.id}|${w.status}|${w.activeJobs}|${w.lastHeartbeatAt?.toISOString()}|${JSON.stringify(w.loadedDeployments)}`).join(';');
          if (sig !== this.workerSig) {
            this.workerSig = sig;
            sub.next({ type: 'workers', workers });
          }
        },
        this.timings.workersMs,
        (t) => (workersTimer = t),
      );
      const closedSub = this.closed.subscribe(() => sub.complete());
      return () => {
        stopped = true;
        clearTimeout(jobsTimer);
        clearTimeout(workersTimer);
        clearInterval(pingTimer);
        closedSub.unsubscribe();
      };
    }).pipe(share());
  }

  /** The shared live feed (subscribing starts the pollers; the last unsubscribe stops them). */
  events(): Observable<PlatformEvent> {
    return this.stream;
  }

  /** Jobs written in the last few seconds (and, bounded, the unfinished ones, whose progress moves). */
  private recentJobs(): Promise<JobEntity[]> {
    const windowMs = Math.max(5000, this.timings.jobsMs * 10);
    return this.ds
      .getRepository(JobEntity)
      .createQueryBuilder('j')
      .where(`j.updated_at > now() - make_interval(secs => :secs)`, { secs: windowMs / 1000 })
      .orderBy('j.updated_at', 'ASC')
      .take(500)
      .getMany();
  }

  onModuleDestroy(): void {
    this.closed.next();
    this.closed.complete();
    this.closed = new Subject<void>();
  }
}

export function jobSignature(j: JobEntity): Signature {
  return `${j.status}|${j.progress}|${j.workerId ?? ''}|${j.attempts}|${j.error ?? ''}|${j.updatedAt?.getTime?.() ?? ''}`;
}
