import { Body, Controller, Get, HttpCode, Param, ParseUUIDPipe, Post, Query } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { JobService } from '@lmfleet/platform';
import { CreateJobDto, ListJobsQuery, QuantizePipelineDto } from '../dto/job.dto';

@ApiTags('jobs')
@Controller()
export class JobsController {
  constructor(private readonly jobs: JobService) {}

  @Post('jobs')
  @ApiOperation({ summary: 'Create and enqueue one job' })
  create(@Body() dto: CreateJobDto) {
    return this.jobs.create(dto.type, dto.params);
  }

  @Post('pipelines/quantize')
  @ApiOperation({ summary: 'calibrate → auto_awq → convert → eval as one flow' })
  quantize(@Body() dto: QuantizePipelineDto) {
    return this.jobs.createQuantizePipeline(dto);
  }

  @Post('jobs/requeue')
  @HttpCode(200)
  @ApiOperation({ summary: 'After Redis lost its data: re-enqueue every unfinished standalone job from Postgres (idempotent)' })
  requeue() {
    return this.jobs.reenqueueUnfinished();
  }

  @Get('jobs')
  list(@Query() q: ListJobsQuery) {
    return this.jobs.list(q);
  }

  @Get('jobs/:id')
  get(@Param('id', ParseUUIDPipe) id: string) {
    return this.jobs.get(id);
  }

  @Post('jobs/:id/cancel')
  @HttpCode(200)
  @ApiOperation({ summary: 'Cancel an unfinished job (a flow step cancels its whole flow); 409 if it already finished' })
  cancel(@Param('id', ParseUUIDPipe) id: string) {
    return this.jobs.cancel(id);
  }

  @Get('jobs/:id/artifacts')
  artifacts(@Param('id', ParseUUIDPipe) id: string) {
    return this.jobs.artifactsOf(id);
  }
}
