import { Controller, DefaultValuePipe, Get, HttpCode, Param, ParseIntPipe, ParseUUIDPipe, Post, Query, Sse, type MessageEvent } from '@nestjs/common';
import { ApiOperation, ApiProduces, ApiTags } from '@nestjs/swagger';
import { map, startWith, type Observable } from 'rxjs';
import { DashboardService, PlatformEventsService } from '@lmfleet/platform';

@ApiTags('dashboard')
@Controller()
export class DashboardController {
  constructor(
    private readonly dashboard: DashboardService,
    private readonly events: PlatformEventsService,
  ) {}

  @Sse('events')
  @ApiProduces('text/event-stream')
  @ApiOperation({ summary: 'Server-sent events: `job` (a job row that changed: status, progress, worker), `workers` (the worker list, when it changed), `ping`' })
  stream(): Observable<MessageEvent> {
    // a ping first: the client knows at once that it is connected
    return this.events.events().pipe(
      startWith({ type: 'ping' as const, at: new Date().toISOString() }),
      map((e) => ({ type: e.type, data: e })),
    );
  }

  @Get('models/:id/tree')
  @ApiOperation({ summary: "A model's lineage as a tree (fp16 → calibrated → AWQ → workspace), each node with its metrics and the job that made it" })
  tree(@Param('id', ParseUUIDPipe) id: string) {
    return this.dashboard.tree(id);
  }

  @Get('jobs/:id/detail')
  @ApiOperation({ summary: 'A job with its log lines, artifacts, pipeline steps, worker and timings' })
  detail(@Param('id', ParseUUIDPipe) id: string) {
    return this.dashboard.jobDetail(id);
  }

  @Post('jobs/:id/retry')
  @HttpCode(201)
  @ApiOperation({ summary: 'Run a failed or cancelled job again as a new job (a pipeline step re-runs its pipeline); 409 otherwise' })
  retry(@Param('id', ParseUUIDPipe) id: string) {
    return this.dashboard.retry(id);
  }

  @Get('dashboard/deployment-stats')
  @ApiOperation({ summary: 'Per deployment over the last `minutes` (default 60): requests, errors, TTFT p50/p95, decode tokens/s p50, tokens in/out (from request_timings)' })
  deploymentStats(@Query('minutes', new DefaultValuePipe(60), ParseIntPipe) minutes: number) {
    return this.dashboard.deploymentStats(Math.min(Math.max(minutes, 1), 7 * 24 * 60));
  }

  @Get('jobs/:id/calibration')
  @ApiOperation({ summary: 'Per-layer activation (absmax, mean |x|, min, max) and K/V ranges from a calibrate job’s calib_stats.safetensors' })
  calibration(@Param('id', ParseUUIDPipe) id: string) {
    return this.dashboard.calibration(id);
  }
}
