import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsObject, IsOptional, IsUUID } from 'class-validator';
import { JOB_NAMES, JOB_STATUSES, JobName, type JobStatus } from '@lmfleet/platform';
import { PageQuery } from './common.dto';

export class CreateJobDto {
  @ApiProperty({ enum: JOB_NAMES, example: JobName.Eval })
  @IsIn(JOB_NAMES)
  type!: JobName;

  @ApiProperty({
    type: 'object',
    additionalProperties: true,
    description:
      'Typed by `type` (unknown fields are refused):\n' +
      '- calibrate: {versionId, calibDataset (a built-in set: cmake-docs, or an absolute .txt/.jsonl path under MODEL_ROOTS), calibSamples?, calibSeqlen?}\n' +
      '- auto_awq: {versionId, calibDataset?, calibSamples?, calibSeqlen?, wBits?: 4, wGroupSize?: 32|64|128, searchScale?, searchClip?}\n' +
      '- convert: {versionId, format?: "workspace"}\n' +
      '- eval: {versionId, datasetFile, seqlen?, maxWindows?, compareToBase?: true}\n' +
      '- infer: {versionId, prompts: string[], deploymentId?, maxNewTokens?, temperature?, topP?, topK?, minP?, seed?}',
    example: { versionId: '00000000-0000-0000-0000-000000000000', datasetFile: '/models/wiki.txt', seqlen: 512, maxWindows: 8 },
  })
  @IsObject()
  params!: Record<string, unknown>;
}

export class ListJobsQuery extends PageQuery {
  @ApiPropertyOptional({ enum: JOB_STATUSES })
  @IsOptional()
  @IsIn(JOB_STATUSES)
  status?: JobStatus;

  @ApiPropertyOptional({ enum: JOB_NAMES })
  @IsOptional()
  @IsIn(JOB_NAMES)
  type?: JobName;

  @ApiPropertyOptional({ format: 'uuid' })
  @IsOptional()
  @IsUUID('all')
  versionId?: string;

  @ApiPropertyOptional({ format: 'uuid' })
  @IsOptional()
  @IsUUID('all')
  flowId?: string;

  @ApiPropertyOptional({ format: 'uuid' })
  @IsOptional()
  @IsUUID('all')
  workerId?: string;
}

export class QuantizePipelineDto {
  @ApiProperty({ format: 'uuid', description: 'The version to quantize' })
  @IsUUID('all')
  versionId!: string;

  @ApiProperty({ type: 'object', additionalProperties: true, description: 'calibrate params (calibDataset: built-in cmake-docs or an absolute file path, calibSamples?, calibSeqlen?)' })
  @IsObject()
  calibrate!: Record<string, unknown>;

  @ApiPropertyOptional({ type: 'object', additionalProperties: true, description: 'auto_awq params (wBits?: 4, wGroupSize?: 32|64|128, searchScale?, searchClip?)' })
  @IsOptional()
  @IsObject()
  autoAwq?: Record<string, unknown>;

  @ApiPropertyOptional({ type: 'object', additionalProperties: true, description: 'convert params (format?)' })
  @IsOptional()
  @IsObject()
  convert?: Record<string, unknown>;

  @ApiProperty({ type: 'object', additionalProperties: true, description: 'eval params (datasetFile, seqlen?, maxWindows?, compareToBase?: true — also the base version\'s perplexity)' })
  @IsObject()
  eval!: Record<string, unknown>;
}
