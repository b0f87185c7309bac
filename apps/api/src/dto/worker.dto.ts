import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsOptional } from 'class-validator';
import type { WorkerStatus } from '@lmfleet/platform';

export class ListWorkersQuery {
  @ApiPropertyOptional({ enum: ['online', 'draining', 'stopped', 'gone'] })
  @IsOptional()
  @IsIn(['online', 'draining', 'stopped', 'gone'])
  status?: WorkerStatus;
}
