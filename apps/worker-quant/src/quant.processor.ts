import { Injectable } from '@nestjs/common';
import { UnrecoverableError } from 'bullmq';
import { JobName, QuantJobsService, type JobContext, type JobProcessor, type JobResult } from '@lmfleet/platform';

/** The quant queue's jobs: one switch, one call per job. */
@Injectable()
export class QuantProcessor implements JobProcessor {
  constructor(private readonly quant: QuantJobsService) {}

  process(name: JobName, ctx: JobContext): Promise<JobResult> {
    switch (name) {
      case JobName.Calibrate:
        return this.quant.calibrate(ctx);
      case JobName.AutoAwq:
        return this.quant.autoAwq(ctx);
      case JobName.Convert:
        return this.quant.convert(ctx);
      case JobName.Eval:
        return this.quant.eval(ctx);
      default:
        throw new UnrecoverableError(`the quant worker does not run "${name}" jobs`);
    }
  }
}
