import { Injectable } from '@nestjs/common';
import { UnrecoverableError } from 'bullmq';
import { InferJobsService, JobName, type JobContext, type JobProcessor, type JobResult } from '@lmfleet/platform';

/** The infer queues' jobs: one switch, one call per job. */
@Injectable()
export class InferProcessor implements JobProcessor {
  constructor(private readonly infer: InferJobsService) {}

  process(name: JobName, ctx: JobContext): Promise<JobResult> {
    switch (name) {
      case JobName.Infer:
        return this.infer.infer(ctx);
      default:
        throw new UnrecoverableError(`the infer worker does not run "${name}" jobs`);
    }
  }
}
