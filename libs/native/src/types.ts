// The whole native surface as one type (node-llama-cpp's AddonTypes.ts idea). libs/engine programs against
// this file only; libs/native/src/index.ts loads the addon and returns a NativeModule.
//
// Conventions
// - Tensor names handed to native code are *canonical* (not HF names): the engine's per-architecture weight
//   map translates HF names (and splits packed tensors) into these.
//     embed_tokens.weight            [vocab, hidden]
//     lm_head.weight                 [vocab, hidden]            (absent when tieWordEmbeddings)
//     norm.weight                    [hidden]
//     layers.{i}.input_norm.weight   [hidden]
//     layers.{i}.post_norm.weight    [hidden]
//     layers.{i}.q_norm.weight       [headDim]                  (qkNorm only: Qwen3's per-head norms)
//     layers.{i}.k_norm.weight       [headDim]                  (qkNorm only)
//     layers.{i}.q.weight / .bias    [numHeads*headDim, hidden] / [numHeads*headDim]
//     layers.{i}.k.weight / .bias    [numKvHeads*headDim, hidden]
//     layers.{i}.v.weight / .bias    [numKvHeads*headDim, hidden]
//     layers.{i}.o.weight / .bias    [hidden, numHeads*headDim]
//     layers.{i}.gate.weight         [intermediate, hidden]
//     layers.{i}.up.weight           [intermediate, hidden]
//     layers.{i}.down.weight         [hidden, intermediate]
//   Linear weights are row-major [out, in] exactly as in HF safetensors (y = x W^T + b).
//   W4A16 linears (config.quant set) give, instead of `.weight`, either AutoAWQ's `.qweight` i32 [in, out/8] +
//   `.qzeros` i32 [in/group, out/8] + `.scales` f16 [in/group, out] (converted at load), or the engine's own layout
//   (workspaces): `.qweight` i32 [out/8, kp/128, 128] + `.scales_zeros` f16 [kp/group, out, 2] (libs/native/README.md).
// - Every long or GPU call returns a Promise and runs off the JS thread. Token events arrive through a
//   ThreadSafeFunction from the native batch thread.
// - Errors thrown by native code carry a stable `code` string (see NativeErrorCode) which index.ts maps to
//   the engine's error classes.
//
// Behaviour of the native implementation (libs/native, 2026-11-25; no type changed, these are the semantics):
// - submit() throws at once (E_INVALID_ARGUMENT) for a token id outside [0, vocabSize), an id that is still
//   active, bad sampling values or an engine not started; E_DISPOSED after dispose(). Problems found later
//   arrive as an 'error' event: E_OUT_OF_KV_CACHE when min(prompt + maxNewTokens, sessionLen) tokens need more
//   blocks than the whole cache (the request could never fit), E_INVALID_ARGUMENT when session history +
//   inputIds is longer than sessionLen. An 'error' event ends the request (no 'done' follows).
// - Requests that don't fit *now* wait; running ones may be preempted and recomputed (same tokens).
// - A token in stopIds ends the request with 'stop'; it is counted in completionTokens but not sent in a
//   'tokens' event. 'length' = maxNewTokens reached or sessionLen reached. maxNewTokens 0 = prefill only.
// - cancel() frees the request's blocks at once; a cancelled or failed session request drops its session.
//   Sessions (sessionId > 0) keep their KV blocks between requests; inputIds may be empty for a session turn.
//   Idle sessions are evicted (recomputed on their next turn) when waiting requests need blocks.
// - sampling.seed given: same seed + same inputs = same tokens, whatever else is in the batch (one uniform
//   draw per token from the request's own splitmix64). No seed: a random one. temperature 0 = greedy.
// - logprobs (>= 0): each 'tokens' event carries the sampled token's log-prob under the raw logits (before
//   penalty/temperature) and the top-`logprobs` alternatives.
// - Defaults: maxPrefillTokens = max(sessionLen, 2048) tokens per step; without numBlocks the cpu cache takes
//   cacheMaxEntryCount (default 0.8) of MemAvailable, capped at 2 * maxBatchSize * ceil(sessionLen/blockSize).
// - forward/scoreTokens before load() reject with E_INVALID_ARGUMENT; createEngine needs a loaded model.

export type Backend = 'cpu' | 'cuda';
export type DType = 'f32' | 'f16' | 'bf16' | 'i32' | 'u8';

export type NativeErrorCode =
  | 'E_INVALID_ARGUMENT'
  | 'E_MODEL_FORMAT'
  | 'E_OUT_OF_KV_CACHE'
  | 'E_BACKEND_UNAVAILABLE'
  | 'E_DISPOSED'
  | 'E_CUDA'
  | 'E_INTERNAL';

/** A weight tensor: either a byte range of a file (memory-mapped by native code) or bytes in memory. */
export interface TensorSource {
  name: string;
  dtype: DType;
  shape: number[];
  /** Absolute path of a safetensors (or workspace) file, with the byte offset of the tensor's data. */
  file?: string;
  offset?: number;
  /** Alternative to file/offset: the tensor's bytes (used for tensors the engine had to re-lay-out). */
  data?: Uint8Array;
  /** Every value times this as the tensor is read (f32 / f16 / bf16, rounded back to its dtype): scalars an
   *  architecture folds into its weights (Granite) without copying them in JavaScript. */
  scale?: number;
  /** Added after `scale` (value * scale + add, in f32, as the tensor is read): Gemma's norms, stored as w and applied
   *  as (1 + w), load with add 1. */
  add?: number;
}

export interface RopeConfig {
  /** 'default' | 'linear' | 'dynamic' (NTK) | 'llama3' | 'longrope' (Phi-3 128k, Phi-3.5) | 'yarn' (Qwen2.5 / Qwen3 long context) */
  type: 'default' | 'linear' | 'dynamic' | 'llama3' | 'longrope' | 'yarn';
  theta: number;
  factor?: number;
  /** llama3 */
  lowFreqFactor?: number;
  highFreqFactor?: number;
  originalMaxPositionEmbeddings?: number;
  /** Fraction/number of head dims rotated; full head when absent. */
  rotaryDim?: number;
  /** longrope: per rotary pair, the frequency divisors up to originalMaxPositionEmbeddings tokens and beyond it. */
  shortFactor?: number[];
  longFactor?: number[];
  /** longrope / yarn: HF's cos/sin multiplier (applied as attentionFactor^2 on the attention scale; full rotary heads only). */
  attentionFactor?: number;
  /** yarn: the band of pairs between kept and interpolated frequencies (default 32 / 1 rotations), and whether its ends
   *  round outwards to whole pairs (default true). */
  betaFast?: number;
  betaSlow?: number;
  truncate?: boolean;
  /** The attention softmax scale itself in place of 1/sqrt(headDim) (Granite's attention_multiplier). It travels with
   *  the rope parameters because every path that sets the scale carries them. */
  attentionScale?: number;
}

/** Everything the one native decoder needs to know about an architecture (filled by libs/engine). */
export interface NativeModelConfig {
  backend: Backend;
  /** CPU worker threads (default: all cores). Ignored by cuda. */
  threads?: number;
  /** cuda device ordinal. */
  device?: number;
  /** Tensor parallelism (LMDeploy's --tp): the model is sharded Megatron-style over `tp` ranks driven by this one
   *  process, one thread per rank (attention by heads, MLP by intermediate rows, embedding and lm_head by
   *  vocabulary; all-reduce after o_proj and down_proj, logits all-gathered). cpu: the ranks share the threads and
   *  a shared-memory collective; cuda: rank r on `devices[r]` (default r), NCCL (libnccl.so.2, loaded at run
   *  time) across GPUs, a device-memory collective when every rank is on the same GPU. numHeads,
   *  intermediateSize and vocabSize must divide by tp; numKvHeads must divide by tp or divide it (then each rank
   *  keeps the one KV head its q heads read: replicated). E_INVALID_ARGUMENT names the width that does not.
   *  Default 1 (no sharding: the same code as before). */
  tp?: number;
  /** cuda ordinals of the tp ranks (length tp). */
  devices?: number[];
  /** Compute/storage dtype of activations and fp weights: 'f16' or 'bf16' (cpu computes in f32 internally). */
  dtype: 'f16' | 'bf16';
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  maxPositionEmbeddings: number;
  rope: RopeConfig;
  tieWordEmbeddings: boolean;
  /** Qwen3: every q and k head is RMS-normed over headDim (weights layers.{i}.q_norm / k_norm) before RoPE. */
  qkNorm?: boolean;
  /** Sliding-window attention per layer (numLayers entries; 0 = full attention): layer l's query at position p sees
   *  keys (p - layerWindows[l], p] only (Mistral, Phi-3, Qwen2/3 with use_sliding_window). Absent: full everywhere. */
  layerWindows?: number[];
  /** Layers that apply no RoPE to q and k (SmolLM3's NoPE layers, every 4th); their softmax scale is 1/sqrt(headDim). */
  noRopeLayers?: number[];
  /** Mixture of experts (Mixtral, Qwen3-MoE; cpu backend at any tp, cuda at tp 1): every layer but denseLayers routes each token to
   *  numExpertsPerTok of numExperts SwiGLU experts of width moeIntermediateSize (tensors layers.{i}.router.weight
   *  [numExperts, hidden], layers.{i}.experts.{e}.gate / up / down), weighted by the router's softmax, renormalized over
   *  the chosen experts when normTopkProb (default true). */
  numExperts?: number;
  numExpertsPerTok?: number;
  moeIntermediateSize?: number;
  normTopkProb?: boolean;
  /** Layers that keep a dense MLP (layers.{i}.gate / up / down of intermediateSize) in a mixture-of-experts model. */
  denseLayers?: number[];
  /** The MLP's gate activation: 'silu' (SwiGLU), or GeGLU: 'gelu_tanh' (the tanh approximation: Gemma 2 / 3) or
   *  'gelu' (exact, erf: Gemma 1 configs that say hidden_act "gelu", as transformers computes them). */
  hiddenAct: 'silu' | 'gelu_tanh' | 'gelu';
  /** Embedding rows times this after the lookup (Gemma: sqrt(hiddenSize)); the tied lm_head is not scaled. */
  embedScale?: number;
  /** Gemma 2 / 3's sandwich norms: each layer also has layers.{i}.attn_out_norm.weight and layers.{i}.mlp_out_norm.weight
   *  [hidden], which RMS-norm the attention output (after o) and the MLP output (after down) before their residual adds.
   *  layers.{i}.post_norm stays the norm in front of the MLP. */
  sandwichNorms?: boolean;
  /** Gemma 2's soft-capping (absent / 0: off): attention scores x become attnLogitSoftcap tanh(x / attnLogitSoftcap)
   *  before the softmax, and the final logits alike with finalLogitSoftcap. */
  attnLogitSoftcap?: number;
  finalLogitSoftcap?: number;
  /** The RoPE of the sliding-window layers (layerWindows[l] > 0; Gemma 3's local rope); absent: every layer uses rope. */
  ropeLocal?: RopeConfig;
  /** KV-cache quantization, LMDeploy's quant_policy: 0 (default) float cache, 8 int8, 4 int4; asymmetric with a
   *  (scale, zero) pair per token and KV head, dequantized inside attention. */
  kvQuantPolicy?: 0 | 4 | 8;
  /** Calibrated (scale, zero) per layer, K then V, per KV head: [numLayers, 2, numKvHeads, 2]. Absent: online
   *  (scale and zero from each stored row's min/max). */
  kvQparams?: Float32Array;
  /** W4A16 (AutoAWQ GEMM layout) when set. */
  quant?: { method: 'awq'; bits: 4; groupSize: number };
  tensors: TensorSource[];
}

export interface SamplingParams {
  /** 0 = greedy. */
  temperature?: number;
  topK?: number;
  topP?: number;
  /** min-p in [0, 1]: keep the tokens whose probability is at least minP x the most likely one's (0 = off). */
  minP?: number;
  repetitionPenalty?: number;
  /** OpenAI's presence penalty in [-2, 2]: subtracted once from the logit of every token generated so far. */
  presencePenalty?: number;
  /** OpenAI's frequency penalty in [-2, 2]: subtracted per occurrence among the tokens generated so far. */
  frequencyPenalty?: number;
  /** Seed for this request's own RNG; same seed + same inputs = same tokens. */
  seed?: number;
}

export interface NativeRequest {
  /** Unique per engine, chosen by the caller. */
  id: number;
  /** When set (> 0), the KV cache of this session is kept after the request ends and the next request of the
   *  same session continues from it: its inputIds are appended after the previous turn's tokens. */
  sessionId?: number;
  inputIds: Int32Array;
  maxNewTokens: number;
  stopIds?: number[];
  sampling?: SamplingParams;
  /** Return the log-prob of each sampled token, and the top-N alternatives (0 = none). */
  logprobs?: number;
  /** The log-prob of each prompt token after the first given the ones before it, with the top-N alternatives, on the
   *  request's first event (`promptLogprobs`, one entry per prompt token from the second). The prompt is computed
   *  whole (no prefix-cache reuse), in chunks of at most 256 tokens; not with sessionId. */
  promptLogprobs?: number;
  /** Guided decoding: the first token is sampled only among these (bit t % 32 of word t / 32 allows token t;
   *  ceil(vocabSize / 32) words; xgrammar's Int32Array bitmasks as they are). After each token the request waits,
   *  unscheduled, until setAllowedTokens gives the next token's set. */
  allowedTokens?: Uint32Array | Int32Array;
  /** OpenAI's logit_bias: [tokenId, value] pairs (distinct ids in the vocabulary, finite values) added to the logits
   *  before sampling; log-probs stay the model's. */
  logitBias?: Array<[number, number]>;
  /** vLLM's min_tokens: the stop ids cannot be sampled before this many tokens (not with allowedTokens). */
  minNewTokens?: number;
}

/** A token's log-prob under the raw logits and the top alternatives as [tokenId, logprob] pairs. */
export interface NativeLogprob {
  logprob: number;
  top: [number, number][];
  /** Prompt log-probs: 1 + the number of tokens with a larger logit. */
  rank?: number;
}

export type NativeEvent =
  | { type: 'tokens'; id: number; tokens: number[]; logprobs?: NativeLogprob[]; promptLogprobs?: NativeLogprob[] }
  | {
      type: 'done';
      id: number;
      finishReason: 'stop' | 'length' | 'cancelled';
      promptTokens: number;
      completionTokens: number;
      /** Of promptTokens, how many were taken from the prefix cache (enablePrefixCaching) instead of computed. */
      cachedTokens: number;
      /** Speculative decoding (specDraftTokens): draft tokens verified for this request, and of those accepted. */
      draftTokens?: number;
      acceptedTokens?: number;
      /** Timings measured on the native side. */
      queuedMs: number;
      firstTokenMs: number;
      totalMs: number;
      /** promptLogprobs requests that sampled no token (maxNewTokens 0, or a stop id first). */
      promptLogprobs?: NativeLogprob[];
    }
  | { type: 'error'; id: number; code: NativeErrorCode; message: string };

export interface EngineOptions {
  /** Max sequences in the running batch. */
  maxBatchSize: number;
  /** Tokens per KV block. */
  blockSize: number;
  /** Either an absolute block count or a fraction of free memory (LMDeploy's cache_max_entry_count). */
  numBlocks?: number;
  cacheMaxEntryCount?: number;
  /** Longest sequence (prompt + generated) accepted. */
  sessionLen: number;
  /** Max tokens prefilled in one step (chunked prefill). */
  maxPrefillTokens?: number;
  /**
   * Prefix caching (LMDeploy's --enable-prefix-caching): a request without a session starts from the cached K/V of
   * the longest run of full blocks its prompt shares with earlier requests (a system prompt, a chat's earlier turns).
   * Cached blocks nobody holds are evicted, least recently used first, when blocks run out. Default off.
   */
  enablePrefixCaching?: boolean;
  /**
   * Speculative decoding with n-gram drafts (prompt lookup; vLLM's method "ngram"): a decoding request whose last n
   * tokens (n from specNgramMax down to specNgramMin) occurred earlier in its prompt or output verifies up to this many
   * draft tokens (what followed that occurrence) in the same step, keeping those its own sampling agrees with, so the
   * output is what plain decoding gives. 0-15; default 0 (off). Guided requests do not speculate.
   */
  specDraftTokens?: number;
  /** Longest and shortest n-gram matched (vLLM's prompt_lookup_max / prompt_lookup_min): defaults 4 and 1. */
  specNgramMax?: number;
  specNgramMin?: number;
  /**
   * Hold a step's events until the next step is queued on the device, so handing them to JavaScript overlaps the GPU's
   * work instead of sitting between two steps (order kept). Default: on for cuda, off for cpu (whose steps return only
   * when done); the environment's LMFLEET_HOLD_EVENTS=0/1 sets the default.
   */
  holdEvents?: boolean;
}

export interface EngineStats {
  running: number;
  waiting: number;
  blocksTotal: number;
  /** Blocks a new request can take: free ones and cached prefixes no request holds. */
  blocksFree: number;
  /** Prefix caching: blocks holding a cached prompt prefix (held by requests or evictable). */
  blocksCached: number;
  blockSize: number;
  sessions: number;
  steps: number;
  /** Speculative decoding since the engine started: draft tokens verified, and of those accepted. */
  specDraftTokens: number;
  specAcceptedTokens: number;
}

export interface NativeModel {
  readonly backend: Backend;
  /** Maps the weights and converts them into the backend's layout. Resolves when ready. */
  load(): Promise<void>;
  /** Full-sequence forward without a cache: logits [n, vocab] as f32 (for parity tests; small n). */
  forward(inputIds: Int32Array): Promise<Float32Array>;
  /** Per-position NLL of the next token: returns n-1 values (-log p(ids[t+1] | ids[..t])). For eval ppl. */
  scoreTokens(inputIds: Int32Array): Promise<Float32Array>;
  /** Bytes of weights resident on the backend. */
  weightBytes(): number;
  dispose(): void;
}

export interface NativeEngine {
  /** Starts the native batch thread; `onEvent` is called on the JS thread for every event of every request. */
  start(onEvent: (ev: NativeEvent) => void): void;
  /**
   * Queues a request, or several at once: an array is validated as a whole (one bad request, or an id given twice,
   * queues none) and reaches the batch thread together, so the requests start in the same step (when they fit)
   * whatever the caller's timing.
   */
  submit(req: NativeRequest | NativeRequest[]): void;
  /** Cancels a request: it ends with finishReason 'cancelled' and its KV blocks are freed at once. */
  cancel(id: number): void;
  /** Drops a session's kept KV cache. */
  endSession(sessionId: number): void;
  /** Guided requests: the allowed tokens for the next token of request `id` (see NativeRequest.allowedTokens);
   *  E_INVALID_ARGUMENT for a wrong size or an empty set, ignored once the request has ended. */
  setAllowedTokens(id: number, mask: Uint32Array | Int32Array): void;
  stats(): EngineStats;
  /** Stops the batch thread (cancelling what runs) and frees the cache. Idempotent. */
  dispose(): Promise<void>;
}

export interface BackendInfo {
  backend: Backend;
  available: boolean;
  reason?: string;
  deviceName?: string;
  totalMemoryBytes?: number;
}

/** Op-level entry for kernel specs: runs one op from ops.def on one backend. */
export interface OpTensor {
  dtype: DType;
  shape: number[];
  data: Uint8Array;
}

/** Shape of one decoder layer for the AWQ session (the Llama / Qwen2 block). */
export interface AwqSessionConfig {
  hiddenSize: number;
  intermediateSize: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps?: number;
  maxPositionEmbeddings?: number;
  rope: RopeConfig;
  /** Qwen3's per-head q / k norms (setTensors then takes `q_norm` and `k_norm`, [headDim] each). */
  qkNorm?: boolean;
}

/** Per-column statistics of one tap over the rows a `run({ stats: true })` saw. */
export interface AwqTapStats {
  absmax: Float32Array;
  /** sum |x| per column (f64) */
  abssum: Float64Array;
  min: Float32Array;
  max: Float32Array;
  rows: number;
}

export type AwqTapName = 'attnIn' | 'oIn' | 'mlpIn' | 'downIn' | 'k' | 'v';

/**
 * The AWQ search's per-layer session (engine/awq_session.h): one decoder layer's weights and the samples' layer
 * inputs stay in backend memory (the GPU on cuda); calls answer with small results. Every call is asynchronous and
 * runs under the session's lock; typed arrays passed in must stay unmodified until the call settles. It shares the
 * backend with runOp: do not run ops and session calls at the same time.
 */
export interface NativeAwqSession {
  /** Linear weights `q k v o gate up down` ([out, in] f32), `<linear>.bias`, `input_norm`, `post_norm`. */
  /** `window`: this layer's sliding window (layerWindows; 0: full attention); `rope` false: a NoPE layer
   *  (noRopeLayers). Absent: as set before (0 and true at first). */
  setTensors(tensors: Record<string, Float32Array>, opts?: { window?: number; rope?: boolean }): Promise<void>;
  /** The layer input [tokens, hidden] of sequences of `seqLens` tokens; `append` adds sequences (the first call
   *  reserves `reserveTokens` in all). */
  setInput(x: Float32Array, seqLens: Int32Array, opts?: { append?: boolean; reserveTokens?: number }): Promise<void>;
  /** Runs the layer over every sequence (batches of at most `batchTokens`, default 4096): `stats` returns per-column
   *  statistics of the taps, `taps` keeps the linears' inputs for the searches, `advance` makes the output the input. */
  run(opts: { stats?: boolean; taps?: boolean; advance?: boolean; batchTokens?: number }): Promise<Record<AwqTapName, AwqTapStats> | undefined>;
  /** MSE of the block output per scale candidate (candidates [n, in]) of scaling group 0 (input_norm -> q,k,v: the
   *  attention block over the first `seqs` sequences), 1 (v -> o), 2 (post_norm -> gate,up: the MLP), 3 (up -> down),
   *  1-3 on the kept taps' `rows`. */
  scaleLosses(group: number, candidates: Float32Array, opts: { seqs?: number; rows?: Int32Array; bits?: number; groupSize: number }): Promise<Float64Array>;
  /** awq_clip_search of a linear on its kept tap's `rows`: clip and err [out, in / groupSize]. */
  clipSearch(linear: string, rows: Int32Array, opts: { bits?: number; groupSize: number; nGrid?: number; maxShrink?: number }): Promise<{ clip: Float32Array; err: Float32Array }>;
  /** The final round to nearest of a linear with its clip (awq_fake_quant's codes): codes [out, in], zeros and scales
   *  [out, in / groupSize], with `pack` also the AutoAWQ GEMM tensors; the session's weight becomes the dequantized one. */
  quantize(linear: string, clip: Float32Array | undefined, opts: { bits?: number; groupSize: number; pack?: boolean }): Promise<{
    q: Uint8Array; zeros: Uint8Array; scales: Float32Array;
    /** pack: the AutoAWQ GEMM tensors (qweight i32 [in, out/8], qzeros i32 [in/group, out/8], scales f16 bits
     *  [in/group, out]), packed in C++ off the JS thread. */
    gemm?: { qweight: Int32Array; qzeros: Int32Array; scales: Uint16Array };
  }>;
  /** The current layer input [tokens, hidden]. */
  input(): Promise<Float32Array>;
  dispose(): void;
}

export interface NativeModule {
  readonly backend: Backend;
  /** Version string of the addon build, e.g. 'lmfleet-native 0.1.0 cpu'. */
  readonly version: string;
  backendInfo(): BackendInfo;
  createModel(config: NativeModelConfig): NativeModel;
  createEngine(model: NativeModel, opts: EngineOptions): NativeEngine;
  /** Names of ops in ops.def that this backend implements. */
  listOps(): string[];
  runOp(name: string, inputs: OpTensor[], params: Record<string, number | string>): Promise<OpTensor[]>;
  /** The AWQ per-layer session on this module's backend (absent on test doubles). */
  createAwqSession?(config: AwqSessionConfig): NativeAwqSession;
}
