// A BullMQ Worker that starts a job taken from an idle queue at once.
//
// BullMQ's main loop (bullmq 5) fetches jobs in sequence while it has room (concurrency > 1): after taking a job it
// asks Redis for the next one before it starts the job it has. From an idle queue that next ask is a non-blocking
// moveToActive whose answer ("nothing") the loop awaits, so every job taken from an idle queue, which is every
// serving request of a quiet deployment, waited one more Redis round trip before its handler ran. When the loop
// believes the queue drained, its next ask is a blocking wait on the queue's marker instead, which the loop does not
// await before it starts the job it has. So: after each job taken, say drained. Nothing is lost by it: BullMQ adds the
// marker whenever a job becomes available (add, promotion, resume) and again with every job taken (moveToActive's
// prepareJobForProcessing), so the wait returns at once while jobs wait, and a burst is still taken, at one marker
// wake-up more per job. `worker-pickup.test.ts` checks the order (handler started before the next ask returned) and
// that a burst of jobs runs concurrently.
import { Worker, type Job } from 'bullmq';

export class PromptWorker<D = any, R = any, N extends string = string> extends Worker<D, R, N> {
  protected override async nextJobFromJobData(...args: Parameters<Worker<D, R, N>['nextJobFromJobData']>): Promise<Job<D, R, N>> {
    const job = await super.nextJobFromJobData(...args);
    // `drained` is private in bullmq's typings; the field and its meaning are those of bullmq 5's Worker.
    if (job) (this as unknown as { drained: boolean }).drained = true;
    return job;
  }
}
