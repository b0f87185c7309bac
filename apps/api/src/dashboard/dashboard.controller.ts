import { Controller, Get, HttpCode, Param, ParseUUIDPipe, Post, Sse, type MessageEvent } from '@nestjs/common';
import { ApiOperation, ApiProduces, ApiTags } from '@nestjs/swagger';
import { map, type Observable } from 'rxjs';
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
    return this.events.events().pipe(map((e) => ({ type: e.type, data: e })));
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

  @Get('jobs/:id/calibration')
  @ApiOperation({ summary: 'Per-layer activation (absmax, mean |x|, min, max) and K/V ranges from a calibrate job’s calib_stats.safetensors' })
  calibration(@Param('id', ParseUUIDPipe) id: string) {
    return this.dashboard.calibration(id);
  }
}
