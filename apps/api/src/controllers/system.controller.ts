import { Controller, Get, Query } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import { HealthService, Public, WorkerService } from '@lmfleet/platform';
import { ListWorkersQuery } from '../dto/worker.dto';

@ApiTags('system')
@Controller()
export class SystemController {
  constructor(
    private readonly workers: WorkerService,
    private readonly health: HealthService,
  ) {}

  @Get('workers')
  listWorkers(@Query() q: ListWorkersQuery) {
    return this.workers.list(q.status);
  }

  @Public()
  @Get('health')
  check() {
    return this.health.check();
  }
}
