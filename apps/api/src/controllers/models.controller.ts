import { Body, Controller, Get, Param, ParseUUIDPipe, Post, Query } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { ModelService } from '@lmfleet/platform';
import { PageQuery } from '../dto/common.dto';
import { RegisterModelDto } from '../dto/model.dto';

@ApiTags('models')
@Controller()
export class ModelsController {
  constructor(private readonly models: ModelService) {}

  @Post('models')
  @ApiOperation({ summary: 'Register a Hugging Face model directory (creates the model and its base version)' })
  register(@Body() dto: RegisterModelDto) {
    return this.models.register(dto);
  }

  @Get('models')
  list(@Query() page: PageQuery) {
    return this.models.list(page);
  }

  @Get('models/:id')
  get(@Param('id', ParseUUIDPipe) id: string) {
    return this.models.get(id);
  }

  @Get('models/:id/versions')
  @ApiOperation({ summary: "A model's versions with their lineage (ancestors nearest first, children)" })
  versions(@Param('id', ParseUUIDPipe) id: string) {
    return this.models.versions(id);
  }

  @Get('versions/:id')
  version(@Param('id', ParseUUIDPipe) id: string) {
    return this.models.version(id);
  }
}
