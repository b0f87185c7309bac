import { Body, Controller, Delete, Get, Param, Post, Query } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { DeploymentService } from '@lmfleet/platform';
import { PageQuery } from '../dto/common.dto';
import { CreateDeploymentDto } from '../dto/deployment.dto';

@ApiTags('deployments')
@Controller('deployments')
export class DeploymentsController {
  constructor(private readonly deployments: DeploymentService) {}

  @Post()
  @ApiOperation({ summary: 'Deploy a model version behind the OpenAI API (every worker-infer loads it)' })
  create(@Body() dto: CreateDeploymentDto) {
    return this.deployments.create(dto);
  }

  @Get()
  @ApiOperation({ summary: 'Deployments, with the workers serving each (load state, running requests, KV blocks)' })
  list() {
    return this.deployments.list();
  }

  @Get(':idOrName')
  get(@Param('idOrName') idOrName: string) {
    return this.deployments.get(idOrName);
  }

  @Get(':idOrName/requests')
  @ApiOperation({ summary: 'Recent finished requests with their timings (queued, TTFT, total ms; tokens in/out; finish reason), newest first' })
  requests(@Param('idOrName') idOrName: string, @Query() page: PageQuery) {
    return this.deployments.requests(idOrName, page);
  }

  @Delete(':idOrName')
  @ApiOperation({ summary: 'Undeploy: workers stop taking its requests, finish running ones and unload it' })
  remove(@Param('idOrName') idOrName: string) {
    return this.deployments.delete(idOrName);
  }
}
