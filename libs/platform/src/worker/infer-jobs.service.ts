import { Injectable } from '@nestjs/common';
import { InvalidInputError } from '../errors';
import { validateJobParams } from '../jobs/job-params';
import { JobName } from '../queue/jobs';
import { ArtifactRepository } from '../repositories/artifact.repository';
import { MetricRepository } from '../repositories/metric.repository';
import { ModelRepository } from '../repositories/model.repository';
import { ArtifactStore } from '../storage/artifact-store';
import { EngineCache } from './engine-cache';
import type { JobContext, JobResult } from './job-context';
import { OnJob } from './on-job.decorator';

/** Batch generation: the job's prompts through the version's engine, written as a JSONL artifact. */
@Injectable()
export class InferJobsService {
  constructor(
    private readonly engines: EngineCache,
    private readonly models: ModelRepository,
    private readonly metrics: MetricRepository,
    private readonly artifacts: ArtifactRepository,
    private readonly store: ArtifactStore,
  ) {}

  @OnJob(JobName.Infer)
  async infer(ctx: JobContext): Promise<JobResult> {
    const p = validateJobParams(JobName.Infer, ctx.job.params);
    const version = await this.models.findVersion(p.versionId);
    if (!version) throw new InvalidInputError(`version ${p.versionId} does not exist`);
    ctx.progress(0);
    const started = Date.now();
    const engine = await this.engines.get(version.id, version.path, p.deploymentId ?? 'default');
    const outputs = await engine.generate(p.prompts, {
      maxNewTokens: p.maxNewTokens,
      temperature: p.temperature,
      topP: p.topP,
      topK: p.topK,
      minP: p.minP,
      seed: p.seed,
    });
    if (outputs.length !== p.prompts.length) throw new Error(`engine returned ${outputs.length} outputs for ${p.prompts.length} prompts`);
    const seconds = (Date.now() - started) / 1000;
    const lines = p.prompts.map((prompt, index) => JSON.stringify({ index, prompt, ...outputs[index] }) + '\n');
    const stored = await this.store.write(`jobs/${ctx.job.id}/generations.jsonl`, lines);
    const artifact = await this.artifacts.upsert({
      jobId: ctx.job.id,
      versionId: version.id,
      kind: 'generations',
      name: 'generations.jsonl',
      ...stored,
      metadata: { prompts: p.prompts.length },
    });
    await this.metrics.upsertForJob({ jobId: ctx.job.id, versionId: version.id, name: 'infer_seconds', value: seconds, unit: 's' });
    return { versionId: version.id, count: outputs.length, seconds, artifactId: artifact.id };
  }
}
