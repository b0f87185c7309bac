import { Controller, Get, Param, ParseUUIDPipe, StreamableFile } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { ArtifactService } from '@lmfleet/platform';

@ApiTags('artifacts')
@Controller('artifacts')
export class ArtifactsController {
  constructor(private readonly artifacts: ArtifactService) {}

  @Get(':id/download')
  @ApiOperation({ summary: 'Stream an artifact file' })
  async download(@Param('id', ParseUUIDPipe) id: string): Promise<StreamableFile> {
    const { artifact, stream, bytes } = await this.artifacts.open(id);
    return new StreamableFile(stream, {
      type: 'application/octet-stream',
      length: bytes,
      disposition: `attachment; filename="${artifact.name.replace(/["\\\r\n]/g, '_')}"`,
    });
  }
}
