import type { ResponseFormat } from './grammar';
import type { SamplingParams } from '../native';
import type { ChatMessage } from '../chat-template/chat-template';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type Logger = (level: LogLevel, message: string) => void;

export type BackendChoice = 'auto' | 'cpu' | 'cuda';

export interface LoadOptions {
  /** 'auto' (default) tries CUDA and falls back to CPU, logging why; 'cuda' fails if CUDA cannot load. */
  backend?: BackendChoice;
  /** CPU worker threads (default: all cores). */
  threads?: number;
  /** CUDA device ordinal. */
  device?: number;
  /** Tensor parallelism, LMDeploy's `--tp`: shard the model over this many ranks (GPUs of this host on cuda:
   *  `devices`, default 0..tp-1; threads on cpu). Default 1. See NativeModelConfig.tp for what divides. */
  tp?: number;
  /** CUDA ordinals of the tp ranks (default 0..tp-1). */
  devices?: number[];
  log?: Logger;
  /** AWQ checkpoints and workspaces: 'native' (default) hands the W4A16 tensors to the backend (cuda keeps them 4-bit
   *  and runs the W4A16 kernels; cpu dequantizes them once, natively, into its f32 GEMM layout); 'dequantize' expands
   *  AutoAWQ tensors to fp16 in TypeScript first (the fp16 counterpart, for comparisons). */
  awq?: 'native' | 'dequantize';
  /** A Jinja chat template that replaces the model's own (LMDeploy's --chat-template). */
  chatTemplate?: string;
  /** KV-cache quantization, LMDeploy's `quant_policy`: 0 (fp16/f32 cache, default), 8 (int8), 4 (int4). K and V are
   *  quantized when stored (asymmetric, a scale and zero point per token and KV head) and dequantized inside
   *  attention. Default: the workspace's recorded policy (`convert --quant-policy`), else 0. */
  quantPolicy?: 0 | 4 | 8;
  /** A `lite calibrate` work dir: use its K/V statistics as fixed per-layer, per-head scales/zero points
   *  (LMDeploy's kv_qparams) instead of online per-token ones. Needs quantPolicy 4 or 8. Default: the
   *  workspace's recorded parameters when it has them for the policy in use, else online. */
  kvCalibDir?: string;
  /** A loaded native module to use instead of loading `@lmfleet/native` (tests, or a host sharing one addon). */
  native?: import('../native').NativeModule;
}

export interface EngineConfig extends LoadOptions {
  /** Max sequences in the running batch (default 8 on cpu, 64 on cuda). */
  maxBatchSize?: number;
  /** Fraction of free memory for the KV cache (LMDeploy's cache_max_entry_count; cuda default 0.8). */
  cacheMaxEntryCount?: number;
  /** Absolute KV block count (overrides cacheMaxEntryCount). */
  numBlocks?: number;
  /** Tokens per KV block (default 64). */
  blockSize?: number;
  /** Longest sequence, prompt + generated, over all turns of a session (default: the model's max positions; on cpu at
   *  most 4096). */
  sessionLen?: number;
  /** Max tokens prefilled per step (chunked prefill). */
  maxPrefillTokens?: number;
  /** Reuse the KV cache of prompt prefixes shared with earlier requests (LMDeploy's --enable-prefix-caching; default
   *  off). Requests with a sessionId keep their own history instead. */
  enablePrefixCaching?: boolean;
  /** Speculative decoding (LMDeploy's --speculative-algorithm, vLLM's speculative_config); default off. */
  speculative?: SpeculativeConfig;
}

/**
 * Speculative decoding without a draft model. 'ngram' (prompt lookup, vLLM's method "ngram"): when a request's last n
 * tokens occurred earlier in its prompt or output, the tokens that followed there are verified as drafts in the same
 * step, and each is kept while the request's own sampling agrees with it, so the output is the one plain decoding gives.
 * Faster where outputs quote or repeat their input (code edits, extraction, RAG answers); a wash on free text.
 */
export interface SpeculativeConfig {
  method: 'ngram';
  /** Draft tokens per step, 1-15 (LMDeploy's --speculative-num-draft-tokens, vLLM's num_speculative_tokens). */
  numDraftTokens: number;
  /** Longest n-gram matched (vLLM's prompt_lookup_max; default 4). */
  promptLookupMax?: number;
  /** Shortest n-gram matched (vLLM's prompt_lookup_min; default 1). */
  promptLookupMin?: number;
}

export type FinishReason = 'stop' | 'length' | 'cancelled';

export interface Usage {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
  /** Of promptTokens, how many came from the prefix cache (enablePrefixCaching). */
  cachedTokens: number;
  /** Speculative decoding: draft tokens verified for this request, and of those accepted (present when it is on). */
  draftTokens?: number;
  acceptedDraftTokens?: number;
  queuedMs: number;
  firstTokenMs: number;
  totalMs: number;
}

export interface TokenLogprob {
  tokenId: number;
  logprob: number;
  top: Array<{ tokenId: number; logprob: number }>;
  /** Prompt log-probs: the token's rank in the vocabulary (1 = the most likely). */
  rank?: number;
}

export interface StreamInferParams {
  /** Keeps the KV cache between calls with the same id (> 0): the next call's inputIds continue the session. */
  sessionId?: number;
  inputIds: ArrayLike<number>;
  maxNewTokens: number;
  /** Token ids that end generation (default: the tokenizer's eos ids; pass [] for none). */
  stopIds?: number[];
  /** Strings that end generation when they appear in the text; the text is cut before them. */
  stopWords?: string[];
  sampling?: SamplingParams;
  /** Log-probs of sampled tokens with the top-N alternatives (0: the sampled token only; unset: none). */
  logprobs?: number;
  /** Log-probs of the prompt's tokens (each given the ones before it; the first has none) with the top-N alternatives,
   *  on the first output (unset: none). The whole prompt is computed (no prefix-cache reuse); not with sessionId. */
  promptLogprobs?: number;
  signal?: AbortSignal;
  /** Default true. */
  skipSpecialTokens?: boolean;
  /** OpenAI's response_format: the output follows a JSON schema, or is any JSON object (guided decoding: each
   *  token is sampled only among those the grammar allows next; xgrammar decides them). Unset or 'text': free text. */
  responseFormat?: ResponseFormat;
  /** responseFormat applies only once the output contains this text (a reasoning model's '</think>': it thinks
   *  freely, then answers in the format, as vLLM does with a reasoning parser). Unset: from the first token. */
  guideAfter?: string;
  /** With guideAfter: the text that opens the thinking ('<think>' for Qwen3, whose reply may skip it). The first token
   *  is then either a token whose text is this opener (free until guideAfter, as above) or the start of the formatted
   *  answer (responseFormat from that token on). Unset: free from the first token until guideAfter (the prompt
   *  already opened the thinking). */
  guideOpener?: string;
  /** OpenAI's logit_bias: token id -> value added to its logit before sampling (-100..100 in OpenAI's API; the
   *  engine takes any finite value). Log-probs stay the model's. */
  logitBias?: Record<number, number>;
  /** vLLM's min_tokens (LMDeploy's min_new_tokens): stopIds cannot end the output before this many tokens. Not with
   *  responseFormat (the grammar decides the end). */
  minNewTokens?: number;
}

export type { ResponseFormat };

export interface StreamOutput {
  /** Token ids generated since the previous output. */
  tokenIds: number[];
  /** Text delta since the previous output (never a broken UTF-8 character). */
  text: string;
  logprobs?: TokenLogprob[];
  /** promptLogprobs: on the first output, one entry per prompt token from the second. */
  promptLogprobs?: TokenLogprob[];
  /** Set on the last output of the stream. */
  finishReason?: FinishReason;
  /** Set on the last output of the stream. */
  usage?: Usage;
  /** On the last output, when a stop word ended the stream (finishReason 'stop'). */
  stopWord?: string;
}

export interface GenerationConfig extends SamplingParams {
  maxNewTokens?: number;
  stopWords?: string[];
  /** Extra stop token ids (added to eos ids unless ignoreEos). */
  stopIds?: number[];
  ignoreEos?: boolean;
  skipSpecialTokens?: boolean;
  logprobs?: number;
  signal?: AbortSignal;
}

export interface GenerateResult {
  text: string;
  tokenIds: number[];
  finishReason: FinishReason;
  usage: Usage;
  logprobs?: TokenLogprob[];
}

export type Prompt = string | ChatMessage[];
