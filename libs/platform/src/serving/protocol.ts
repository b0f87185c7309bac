// What the API and worker-infer say to each other about one serving request: the BullMQ job on the deployment's
// queue (the request itself: serving requests are ephemeral, so unlike platform jobs their payload is not a row id),
// and the events the worker appends to the request's Redis stream.
import type { ServingMessage, ServingResponseFormat, ServingSampling, ServingTool } from '../engine/engine.adapter';

/** BullMQ job name of a serving request on `infer-<deployment>` (platform jobs there are named `infer`). */
export const SERVE_JOB = 'generate';

export type ServeKind = 'chat' | 'completion' | 'interactive' | 'tokenize';

/** tokenize: vLLM's /tokenize (a text, or chat messages through the chat template) and /detokenize (decode), LMDeploy's
 * /v1/encode. Runs on a worker that holds the deployment, with the tokenizer and template its requests use. */
export interface TokenizeSpec {
  texts?: string[];
  /** Conversations, each encoded as a chat request's prompt (chat template, generation prompt). */
  chats?: ServingMessage[][];
  /** chats: extra chat-template variables (vLLM's chat_template_kwargs). */
  templateKwargs?: Record<string, unknown>;
  /** texts: with the tokenizer's special tokens (BOS). Default true. */
  addSpecialTokens?: boolean;
  /** Token ids to turn into text (special tokens kept). */
  decode?: number[];
}

export interface ServeRequest {
  /** chatcmpl-… / cmpl-… / interactive-…: the response id, the BullMQ job id and the stream key suffix. */
  requestId: string;
  deploymentId: string;
  deploymentName: string;
  kind: ServeKind;
  /** chat, and interactive with messages. */
  messages?: ServingMessage[];
  /** completion: one entry per prompt (choices are prompt-major: index = prompt * n + i); interactive: one. */
  prompts?: string[];
  /** completion: prompts given as token ids (OpenAI's array-of-integers prompt), instead of `prompts`. */
  promptIds?: number[][];
  /** The engine's prompt log-probs (top-N): for completion's echo with logprobs (they lead each choice's logprobs)
   *  and for vLLM's prompt_logprobs (promptLogprobsField). */
  promptLogprobs?: number;
  /** vLLM's prompt_logprobs (top-N): the response carries the prompt tokens' log-probs in a field of their own. */
  promptLogprobsField?: number;
  /** Choices per prompt. */
  n: number;
  /** Unset: whatever the session length leaves after the prompt. */
  maxTokens?: number;
  stop?: string[];
  sampling: ServingSampling;
  /** Top-N log-probs per token (0: the sampled token's only; unset: none). */
  logprobs?: number;
  ignoreEos?: boolean;
  skipSpecialTokens?: boolean;
  /** completion: prefix each choice's text with its prompt (OpenAI's `echo`). */
  echo?: boolean;
  /** chat and completion: OpenAI's response_format (guided decoding), validated by the API; for chat also what
   * tool_choice 'required' or a named function asks for (the calls as JSON). */
  responseFormat?: ServingResponseFormat;
  /** The request field responseFormat came from (response_format, or vLLM's guided_json / guided_choice /
   * guided_grammar): the param of a 400 when the worker cannot compile it. Default response_format. */
  responseFormatParam?: string;
  /** chat and completion: OpenAI's logit_bias (token id -> value), vLLM's min_tokens and stop_token_ids. */
  logitBias?: Record<number, number>;
  minNewTokens?: number;
  stopTokenIds?: number[];
  /** chat: OpenAI's tools (validated by the API), rendered by the chat template (engine: chat-template/tools.ts). */
  tools?: ServingTool[];
  /** chat on a deployment with a reasoning parser: responseFormat applies once the output contains this text
   *  ('</think>'), so the model thinks freely first. */
  guideAfter?: string;
  /** With guideAfter, qwen3: the reply may skip its thinking, so its first token either opens it (this text,
   *  '<think>') or starts the formatted answer. */
  guideOpener?: string;
  /** chat: extra chat-template variables (vLLM's chat_template_kwargs; LMDeploy's enable_thinking lands here). */
  templateKwargs?: Record<string, unknown>;
  tokenize?: TokenizeSpec;
  /** interactive: LMDeploy's session_id (1..999999) and interactive_mode; `end` closes the session. */
  sessionId?: number;
  interactiveMode?: boolean;
  end?: boolean;
  /** Epoch ms when the API enqueued it. */
  enqueuedAt: number;
}

export interface StreamLogprob {
  token: string;
  /** null: a prompt's first token (echo with logprobs), which nothing before it predicts. */
  logprob: number | null;
  bytes: number[];
  top: Array<{ token: string; logprob: number; bytes: number[] }>;
}

/** A prompt token's log-prob as vLLM's prompt_logprobs gives it: with its rank and the top-N alternatives. */
export interface PromptLogprob {
  tokenId: number;
  token: string;
  logprob: number;
  rank: number;
  top: Array<{ tokenId: number; token: string; logprob: number }>;
}

export type FinishReason = 'stop' | 'length' | 'cancelled';

export type StreamEvent =
  /** The worker took the request and tokenized it: the prompt fits. */
  | { t: 'start'; promptTokens: number; workerId: string; historyTokens?: number }
  | { t: 'delta'; i: number; text: string; tokens: number; logprobs?: StreamLogprob[]; promptLogprobs?: Array<PromptLogprob | null> }
  | { t: 'done'; i: number; finishReason: FinishReason; completionTokens: number }
  /** tokenize: one id list per text (or the messages'), or decode's text; maxModelLen is the deployment's session length. */
  | { t: 'tokens'; ids: number[][]; text?: string; maxModelLen: number }
  // cachedTokens: of promptTokens, how many came from the prefix cache (deployments with enablePrefixCaching only);
  // draftTokens / acceptedDraftTokens: speculative decoding's drafts verified and accepted, over the choices (deployments with speculative only)
  | { t: 'end'; promptTokens: number; completionTokens: number; historyTokens?: number; cachedTokens?: number; draftTokens?: number; acceptedDraftTokens?: number }
  | { t: 'error'; status: number; message: string; param?: string; code?: string };

/** Key names (under the BullMQ prefix, so a test's prefix cleans them up). */
export const serveKeys = {
  stream: (prefix: string, requestId: string) => `${prefix}:serve:stream:${requestId}`,
  cancelled: (prefix: string, requestId: string) => `${prefix}:serve:cancelled:${requestId}`,
  cancelChannel: (prefix: string) => `${prefix}:serve:cancel`,
  admission: (prefix: string, deploymentName: string) => `${prefix}:serve:admit:${deploymentName}`,
  session: (prefix: string, deploymentName: string, sessionId: number) => `${prefix}:serve:session:${deploymentName}:${sessionId}`,
  /** The request a session is running now (for LMDeploy's `cancel`). */
  sessionRequest: (prefix: string, deploymentName: string, sessionId: number) => `${prefix}:serve:session-req:${deploymentName}:${sessionId}`,
  /** A serving worker's liveness (a WorkerLiveness value), refreshed every heartbeat, expiring after HEARTBEAT_TIMEOUT_MS. */
  workerAlive: (prefix: string, workerId: string) => `${prefix}:serve:worker:${workerId}`,
};

/** A worker's own queue for a deployment: requests of sessions whose KV cache it holds (sticky routing). */
export function sessionQueueName(deploymentName: string, workerId: string): string {
  return `infer-${deploymentName}.${workerId}`;
}

export type WorkerLiveness = 'serving' | 'draining';
