// OpenAI's request bodies, field names verbatim (snake_case). Unknown fields are refused by the validation pipe, so
// an option we do not implement is a 400 naming it rather than silently ignored.
import { applyDecorators } from '@nestjs/common';
import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  IsArray,
  IsBoolean,
  IsInt,
  IsNumber,
  IsObject,
  IsOptional,
  IsString,
  Max,
  Min,
  ValidateBy,
  ValidateNested,
  type ValidationOptions,
} from 'class-validator';
import type { ChatCompletionRequest, CompletionRequest, DetokenizeRequest, EncodeRequest, InteractiveRequest, TokenizeRequest } from '@lmfleet/platform';

function IsStringOrStringArray(opts?: ValidationOptions) {
  return ValidateBy(
    {
      name: 'isStringOrStringArray',
      validator: {
        validate: (v: unknown) => typeof v === 'string' || (Array.isArray(v) && v.every((x) => typeof x === 'string')),
        defaultMessage: (a) => `${a?.property} must be a string or an array of strings`,
      },
    },
    opts,
  );
}

/** A completion prompt's outer shape (a string or an array); parsePrompt checks the entries (a 400 naming prompt). */
function IsStringOrArray(opts?: ValidationOptions) {
  return ValidateBy(
    {
      name: 'isStringOrArray',
      validator: {
        validate: (v: unknown) => typeof v === 'string' || Array.isArray(v),
        defaultMessage: (a) => `${a?.property} must be a string or an array (of strings, of token ids, or of arrays of token ids)`,
      },
    },
    opts,
  );
}

/** response_format (chat and, as vLLM allows, completions); its shape is checked by parseResponseFormat (400 naming the field). */
function ResponseFormatField() {
  return applyDecorators(
    ApiPropertyOptional({
      description: "OpenAI's structured outputs: {type: 'text'}, {type: 'json_object'} or {type: 'json_schema', json_schema: {name, schema, strict?}}; LMDeploy's {type: 'regex_schema', regex_schema}",
      example: { type: 'json_schema', json_schema: { name: 'answer', schema: { type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'] } } },
    }),
    IsOptional(),
    IsObject(),
  );
}

export class StreamOptionsDto {
  @ApiPropertyOptional()
  @IsOptional()
  @IsBoolean()
  include_usage?: boolean;
}

/** Sampling fields shared by the three endpoints (LMDeploy/vLLM extensions: top_k, repetition_penalty, ignore_eos, skip_special_tokens). */
class SamplingDto {
  @ApiPropertyOptional({ minimum: 0, maximum: 2, default: 1 })
  @IsOptional()
  @IsNumber()
  @Min(0)
  @Max(2)
  temperature?: number;

  @ApiPropertyOptional({ minimum: 0, maximum: 1 })
  @IsOptional()
  @IsNumber()
  @Min(0)
  @Max(1)
  top_p?: number;

  @ApiPropertyOptional({ description: '0 or -1: off' })
  @IsOptional()
  @IsInt()
  @Min(-1)
  top_k?: number;

  @ApiPropertyOptional({ minimum: 0, maximum: 1, description: 'vLLM / LMDeploy min_p: keep the tokens whose probability is at least min_p times the most likely one\'s (0: off)' })
  @IsOptional()
  @IsNumber()
  @Min(0)
  @Max(1)
  min_p?: number;

  @ApiPropertyOptional()
  @IsOptional()
  @IsInt()
  @Min(-(2 ** 53 - 1))
  @Max(2 ** 53 - 1)
  seed?: number;

  @ApiPropertyOptional({ description: 'Up to 4 strings; generation stops before the first (matched on the detokenized text)' })
  @IsOptional()
  @IsStringOrStringArray()
  stop?: string | string[];

  @ApiPropertyOptional({ minimum: -2, maximum: 2, description: 'Subtracted once from each token generated so far' })
  @IsOptional()
  @IsNumber()
  @Min(-2)
  @Max(2)
  presence_penalty?: number;

  @ApiPropertyOptional({ minimum: -2, maximum: 2, description: 'Subtracted per occurrence among the tokens generated so far' })
  @IsOptional()
  @IsNumber()
  @Min(-2)
  @Max(2)
  frequency_penalty?: number;

  @ApiPropertyOptional({ minimum: 0.01, maximum: 10 })
  @IsOptional()
  @IsNumber()
  @Min(0.01)
  @Max(10)
  repetition_penalty?: number;

  @ApiPropertyOptional()
  @IsOptional()
  @IsBoolean()
  ignore_eos?: boolean;

  @ApiPropertyOptional()
  @IsOptional()
  @IsBoolean()
  skip_special_tokens?: boolean;

  @ApiPropertyOptional({ description: 'Accepted and ignored' })
  @IsOptional()
  @IsString()
  user?: string;
}

/** Chat and completions' extras: vLLM's guided decoding (one at a time, not beside response_format: parseGuided), and
 *  OpenAI's logit_bias with vLLM's min_tokens / stop_token_ids (parseTokenControls). */
class GuidedSamplingDto extends SamplingDto {
  @ApiPropertyOptional({ minimum: 0, maximum: 20, description: "vLLM's prompt_logprobs (not streamed): each prompt token's log-prob and rank with the top-N, in the response's prompt_logprobs" })
  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(20)
  prompt_logprobs?: number;

  @ApiPropertyOptional({ description: "vLLM's guided_json: the reply fits this JSON Schema (an object or its JSON text)", example: { type: 'object', properties: { ok: { type: 'boolean' } } } })
  @IsOptional() // an object or a string: parseGuided checks it (a 400 naming guided_json)
  guided_json?: unknown;

  @ApiPropertyOptional({ type: [String], description: "vLLM's guided_choice: the reply is exactly one of these strings", example: ['positive', 'negative'] })
  @IsOptional()
  @IsArray()
  guided_choice?: string[];

  @ApiPropertyOptional({ description: "vLLM's guided_grammar: an EBNF grammar (xgrammar's dialect, GBNF-like) whose start rule is root", example: 'root ::= ("yes" | "no") "."' })
  @IsOptional()
  @IsString()
  guided_grammar?: string;

  @ApiPropertyOptional({ description: "vLLM's guided_regex: the whole reply matches this regular expression (xgrammar's regex dialect)", example: '(yes|no), [0-9]+' })
  @IsOptional()
  @IsString()
  guided_regex?: string;

  @ApiPropertyOptional({ description: "OpenAI's logit_bias: token id -> bias from -100 to 100, added to the token's logit before sampling (log-probs stay the model's)", example: { '1234': -100 } })
  @IsOptional() // keys and values: parseTokenControls checks them (a 400 naming logit_bias)
  logit_bias?: Record<string, number>;

  @ApiPropertyOptional({ minimum: 0, description: "vLLM's min_tokens: the model's stop tokens (and stop_token_ids) cannot end the reply before this many tokens" })
  @IsOptional()
  @IsInt()
  @Min(0)
  min_tokens?: number;

  @ApiPropertyOptional({ minimum: 0, description: "LMDeploy's name for min_tokens" })
  @IsOptional()
  @IsInt()
  @Min(0)
  min_new_tokens?: number;

  @ApiPropertyOptional({ type: [Number], description: "vLLM's stop_token_ids: token ids that end the reply besides the model's own stop tokens" })
  @IsOptional()
  @IsArray() // its entries: parseTokenControls checks them (per-entry decorators would send every body down the slow pipe)
  stop_token_ids?: number[];
}

export class ChatCompletionDto extends GuidedSamplingDto implements ChatCompletionRequest {
  @ApiProperty({ description: 'A deployment name (GET /v1/models)' })
  @IsString()
  model!: string;

  @ApiProperty({ type: 'array', items: { type: 'object' }, example: [{ role: 'user', content: 'Hello' }] })
  @IsArray()
  messages!: unknown[];

  @ApiPropertyOptional()
  @IsOptional()
  @IsBoolean()
  stream?: boolean;

  @ApiPropertyOptional({ type: StreamOptionsDto })
  @IsOptional()
  @IsObject()
  @ValidateNested()
  @Type(() => StreamOptionsDto)
  stream_options?: StreamOptionsDto;

  @ApiPropertyOptional({ minimum: 1 })
  @IsOptional()
  @IsInt()
  @Min(1)
  max_tokens?: number;

  @ApiPropertyOptional({ minimum: 1 })
  @IsOptional()
  @IsInt()
  @Min(1)
  max_completion_tokens?: number;

  @ApiPropertyOptional({ minimum: 1, default: 1 })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(128)
  n?: number;

  @ApiPropertyOptional()
  @IsOptional()
  @IsBoolean()
  logprobs?: boolean;

  @ApiPropertyOptional({ minimum: 0, maximum: 20 })
  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(20)
  top_logprobs?: number;

  @ResponseFormatField()
  response_format?: Record<string, unknown>;

  @ApiPropertyOptional({
    type: 'array',
    items: { type: 'object' },
    description: "OpenAI's function tools: [{type: 'function', function: {name, description?, parameters?}}]",
    example: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }],
  })
  @IsOptional()
  @IsArray()
  tools?: unknown[];

  @ApiPropertyOptional({
    description: "'none', 'auto' (the default with tools: the model decides), 'required' (at least one call, by guided decoding), or {type: 'function', function: {name}}",
    oneOf: [{ type: 'string', enum: ['none', 'auto', 'required'] }, { type: 'object' }],
  })
  @IsOptional() // any value here: parseTools checks it (a 400 naming tool_choice)
  tool_choice?: unknown;

  @ApiPropertyOptional({ description: "false: at most one call (tool_choice 'required')", default: true })
  @IsOptional()
  @IsBoolean()
  parallel_tool_calls?: boolean;

  @ApiPropertyOptional({
    type: 'object', additionalProperties: true, example: { enable_thinking: false },
    description: "vLLM's extra chat-template variables, e.g. Qwen3's enable_thinking (messages, tools, add_generation_prompt, bos_token and eos_token are the request's own)",
  })
  @IsOptional() // parseTemplateKwargs checks it (a 400 naming chat_template_kwargs)
  chat_template_kwargs?: Record<string, unknown>;

  @ApiPropertyOptional({ description: "LMDeploy's switch for thinking models (Qwen3): chat_template_kwargs.enable_thinking" })
  @IsOptional()
  @IsBoolean()
  enable_thinking?: boolean;
}

export class CompletionDto extends GuidedSamplingDto implements CompletionRequest {
  @ApiProperty()
  @IsString()
  model!: string;

  @ApiProperty({
    oneOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }, { type: 'array', items: { type: 'integer' } }, { type: 'array', items: { type: 'array', items: { type: 'integer' } } }],
    description: 'Text, texts, or token ids (checked by the service: a 400 naming prompt)',
  })
  @IsStringOrArray()
  prompt!: string | string[] | number[] | number[][];

  @ApiPropertyOptional()
  @IsOptional()
  @IsBoolean()
  stream?: boolean;

  @ApiPropertyOptional({ type: StreamOptionsDto })
  @IsOptional()
  @IsObject()
  @ValidateNested()
  @Type(() => StreamOptionsDto)
  stream_options?: StreamOptionsDto;

  @ApiPropertyOptional({ minimum: 0, default: 16, description: '0 with echo: the prompt only (with logprobs: scored)' })
  @IsOptional()
  @IsInt()
  @Min(0)
  max_tokens?: number;

  @ApiPropertyOptional({ minimum: 1, default: 1 })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(128)
  n?: number;

  @ApiPropertyOptional({ minimum: 0, maximum: 20, description: 'Top-N log-probs per token (OpenAI: up to 5; vLLM: up to 20)' })
  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(20)
  logprobs?: number;

  @ApiPropertyOptional()
  @IsOptional()
  @IsBoolean()
  echo?: boolean;

  @ResponseFormatField()
  response_format?: Record<string, unknown>;
}

/** LMDeploy's GenerateRequest for /v1/chat/interactive. */
export class InteractiveDto extends SamplingDto implements InteractiveRequest {
  @ApiPropertyOptional({ description: 'A deployment name; optional when exactly one is deployed' })
  @IsOptional()
  @IsString()
  model?: string;

  @ApiProperty({ description: "The user's turn" })
  @IsString()
  prompt!: string;

  @ApiPropertyOptional({ description: 'Keeps the KV cache across turns (1..999999; -1: none)', default: -1 })
  @IsOptional()
  @IsInt()
  session_id?: number;

  @ApiPropertyOptional({ description: 'true: keep the session after this turn; false: the session ends with it', default: false })
  @IsOptional()
  @IsBoolean()
  interactive_mode?: boolean;

  @ApiPropertyOptional({ description: 'Newline-delimited JSON, one object per delta' })
  @IsOptional()
  @IsBoolean()
  stream?: boolean;

  @ApiPropertyOptional({ minimum: 1, description: 'max new tokens' })
  @IsOptional()
  @IsInt()
  @Min(1)
  request_output_len?: number;

  @ApiPropertyOptional({ description: 'Close the session (drop its KV cache); with an empty prompt nothing is generated' })
  @IsOptional()
  @IsBoolean()
  end?: boolean;

  @ApiPropertyOptional({ description: "Stop the session's running request (LMDeploy's cancel)" })
  @IsOptional()
  @IsBoolean()
  cancel?: boolean;
}

/** vLLM's POST /tokenize: a prompt, or chat messages (rendered by the deployment's chat template). */
export class TokenizeDto implements TokenizeRequest {
  @ApiPropertyOptional({ description: 'A deployment name; optional when exactly one is deployed' })
  @IsOptional()
  @IsString()
  model?: string;

  @ApiPropertyOptional({ description: 'Text to tokenize (or messages)' })
  @IsOptional()
  @IsString()
  prompt?: string;

  @ApiPropertyOptional({ type: 'array', items: { type: 'object' }, description: 'Chat messages: tokenized as a chat request sends them (chat template, generation prompt)' })
  @IsOptional()
  @IsArray()
  messages?: unknown[];

  @ApiPropertyOptional({ description: "prompt: with the tokenizer's special tokens (BOS)", default: true })
  @IsOptional()
  @IsBoolean()
  add_special_tokens?: boolean;

  @ApiPropertyOptional({ type: 'object', additionalProperties: true, description: 'messages: extra chat-template variables, as for chat completions' })
  @IsOptional()
  @IsObject()
  chat_template_kwargs?: Record<string, unknown>;
}

/** vLLM's POST /detokenize. */
export class DetokenizeDto implements DetokenizeRequest {
  @ApiPropertyOptional({ description: 'A deployment name; optional when exactly one is deployed' })
  @IsOptional()
  @IsString()
  model?: string;

  @ApiProperty({ type: 'array', items: { type: 'integer' }, description: 'Token ids (entries checked by the service: a 400 naming tokens)' })
  @IsArray()
  tokens!: number[];
}

/** LMDeploy's POST /v1/encode. */
export class EncodeDto implements EncodeRequest {
  @ApiPropertyOptional({ description: 'A deployment name; optional when exactly one is deployed' })
  @IsOptional()
  @IsString()
  model?: string;

  @ApiProperty({ oneOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] })
  @IsStringOrStringArray()
  input!: string | string[];

  @ApiPropertyOptional({ description: "Render each input as a user turn through the chat template first", default: false })
  @IsOptional()
  @IsBoolean()
  do_preprocess?: boolean;

  @ApiPropertyOptional({ description: "Add the tokenizer's special tokens (BOS)", default: true })
  @IsOptional()
  @IsBoolean()
  add_bos?: boolean;
}
