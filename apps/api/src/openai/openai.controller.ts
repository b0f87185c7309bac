import { Body, Controller, Get, Param, Post, Res } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { OpenAIService, type HttpOut } from '@lmfleet/platform';
import { ChatCompletionDto, CompletionDto, DetokenizeDto, EncodeDto, InteractiveDto, TokenizeDto } from '../dto/openai.dto';

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

  @Post('encode')
  @ApiOperation({ summary: "LMDeploy's encode: token ids of a string or strings ({input_ids, length}), by the deployment's tokenizer" })
  encode(@Body() dto: EncodeDto, @Res() res: HttpOut) {
    return this.openai.encode(dto, res);
  }
}

/** vLLM's tokenizer routes (at the root, as vLLM serves them), answered by a worker holding the deployment. */
@ApiTags('openai')
@Controller()
export class TokenizerController {
  constructor(private readonly openai: OpenAIService) {}

  @Post('tokenize')
  @ApiOperation({ summary: "vLLM's tokenize: {count, max_model_len, tokens} of a prompt or of chat messages" })
  tokenize(@Body() dto: TokenizeDto, @Res() res: HttpOut) {
    return this.openai.tokenize(dto, res);
  }

  @Post('detokenize')
  @ApiOperation({ summary: "vLLM's detokenize: {prompt} of token ids (special tokens kept)" })
  detokenize(@Body() dto: DetokenizeDto, @Res() res: HttpOut) {
    return this.openai.detokenize(dto, res);
  }
}
