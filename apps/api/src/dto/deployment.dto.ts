import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import {
  IsBoolean, IsIn, IsInt, IsNumber, IsOptional, IsString, IsUUID, Matches, Max, Min, Validate, ValidatorConstraint,
  type ValidationArguments, type ValidatorConstraintInterface,
} from 'class-validator';
import { KV_POLICIES, speculativeProblem, type KvPolicy, type ServingSpeculative } from '@lmfleet/platform';

/** `speculative`: the engine's own rules (speculativeProblem), its sentence as the field's error. */
@ValidatorConstraint({ name: 'isSpeculativeConfig' })
export class IsSpeculativeConfig implements ValidatorConstraintInterface {
  validate(value: unknown): boolean {
    return speculativeProblem(value) === undefined;
  }

  defaultMessage(args: ValidationArguments): string {
    return speculativeProblem(args.value) ?? 'speculative is invalid';
  }
}

export class CreateDeploymentDto {
  @ApiProperty({ description: 'The OpenAI `model` id clients use; [A-Za-z0-9_-]{1,64}', example: 'qwen2-awq' })
  @IsString()
  @Matches(/^[A-Za-z0-9_-]{1,64}$/, { message: 'name must match [A-Za-z0-9_-]{1,64}' })
  name!: string;

  @ApiProperty({ format: 'uuid', description: 'The model version to serve (hf, autoawq or workspace)' })
  @IsUUID('all')
  versionId!: string;

  @ApiPropertyOptional({ enum: KV_POLICIES, default: 'auto', description: "KV-cache storage (LMDeploy's quant_policy 0/8/4); auto: a workspace's recorded policy, else fp16" })
  @IsOptional()
  @IsIn(KV_POLICIES)
  kvPolicy?: KvPolicy;

  @ApiPropertyOptional({ description: "LMDeploy's --cache-max-entry-count: fraction of free memory for the KV cache", minimum: 0.01, maximum: 0.99 })
  @IsOptional()
  @IsNumber()
  @Min(0.01)
  @Max(0.99)
  cacheMaxEntryCount?: number;

  @ApiPropertyOptional({ description: 'Running batch slots per worker (BullMQ concurrency)', default: 8, minimum: 1, maximum: 512 })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(512)
  maxBatchSize?: number;

  @ApiPropertyOptional({ description: 'Longest prompt + completion (default: the engine default for the model)', minimum: 16 })
  @IsOptional()
  @IsInt()
  @Min(16)
  @Max(1_048_576)
  sessionLen?: number;

  @ApiPropertyOptional({ description: 'Requests admitted at once (waiting + running) before 429; default 4 x maxBatchSize', minimum: 1 })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(100_000)
  maxPending?: number;

  @ApiPropertyOptional({
    description: "LMDeploy's --tp: shard the model over this many GPUs of each worker's host (Megatron-style; cpu workers: threads). The model's heads, intermediate size and vocabulary must divide by it; a worker that cannot load it reports the reason as its deployment state",
    default: 1,
    minimum: 1,
    maximum: 64,
  })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(64)
  tp?: number;

  @ApiPropertyOptional({
    description:
      "LMDeploy's --enable-prefix-caching: a request starts from the cached KV of the full blocks its prompt shares with earlier ones (a system prompt, a conversation resent with its reply); usage.prompt_tokens_details.cached_tokens says how many",
    default: false,
  })
  @IsOptional()
  @IsBoolean()
  enablePrefixCaching?: boolean;

  @ApiPropertyOptional({
    description:
      "vLLM's / LMDeploy's --reasoning-parser for reasoning models: chat replies' <think> blocks come back as message.reasoning_content (streamed: delta.reasoning_content). qwen3: a reply that opens with <think> (Qwen3); deepseek_r1 (also deepseek-r1, qwen-qwq): the prompt opened the block (DeepSeek-R1, QwQ, *-Thinking). Default none",
    enum: ['qwen3', 'deepseek_r1', 'deepseek-r1', 'qwen-qwq'],
  })
  @IsOptional()
  @IsString()
  reasoningParser?: string;

  @ApiPropertyOptional({
    description:
      "Speculative decoding with n-gram drafts (prompt lookup; LMDeploy's --speculative-algorithm / --speculative-num-draft-tokens, vLLM's speculative_config method ngram): a decoding request whose last promptLookupMax..promptLookupMin tokens occurred earlier in its prompt or output verifies up to numDraftTokens of what followed there in one step. Outputs are what plain decoding gives; faster where replies repeat their input (code edits, extraction, RAG). Default null: off",
    type: 'object',
    nullable: true,
    properties: {
      method: { type: 'string', enum: ['ngram'] },
      numDraftTokens: { type: 'integer', minimum: 1, maximum: 15 },
      promptLookupMax: { type: 'integer', minimum: 1, maximum: 64, default: 4 },
      promptLookupMin: { type: 'integer', minimum: 1, default: 1 },
    },
    required: ['method', 'numDraftTokens'],
    example: { method: 'ngram', numDraftTokens: 4 },
  })
  @IsOptional()
  @Validate(IsSpeculativeConfig)
  speculative?: ServingSpeculative | null;
}
