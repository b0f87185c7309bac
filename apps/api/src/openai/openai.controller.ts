import { Body, Controller, Get, Param, Post, Res } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { OpenAIService, type HttpOut } from '@lmfleet/platform';
import { ChatCompletionDto, CompletionDto, InteractiveDto } from '../dto/openai.dto';

/** OpenAI-compatible routes (errors in OpenAI's `{error: {...}}` shape) and LMDeploy's /v1/chat/interactive. */
@ApiTags('openai')
@Controller('v1')
export class OpenAIController {
  constructor(private readonly openai: OpenAIService) {}

  @Get('models')
  @ApiOperation({ summary: 'The deployments, as OpenAI models' })
  models() {
    return this.openai.models();
  }

  @Get('models/:model')
  model(@Param('model') model: string) {
    return this.openai.model(model);
  }

  @Post('chat/completions')
  @ApiOperation({ summary: 'Chat completion; stream: true answers with SSE chunks and data: [DONE]' })
  chat(@Body() dto: ChatCompletionDto, @Res() res: HttpOut) {
    return this.openai.chat(dto, res);
  }

  @Post('completions')
  @ApiOperation({ summary: 'Text completion; stream: true answers with SSE chunks and data: [DONE]' })
  completions(@Body() dto: CompletionDto, @Res() res: HttpOut) {
    return this.openai.completion(dto, res);
  }

  @Post('chat/interactive')
  @ApiOperation({ summary: "LMDeploy's interactive chat: session_id + interactive_mode keep the KV cache between turns" })
  interactive(@Body() dto: InteractiveDto, @Res() res: HttpOut) {
    return this.openai.interactive(dto, res);
  }
}
