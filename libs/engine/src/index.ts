// @lmfleet/engine: the TypeScript engine over the native addon. No NestJS, BullMQ, Redis or TypeORM here, and no
// process.env: callers pass options and a logger.
export * from './errors';
export { Engine, EngineInstance } from './generation/engine';
export { ChatSession, type ChatSessionOptions } from './generation/chat-session';
export { PretrainedModel } from './generation/pretrained';
export { selectBackend, type NativeLoader } from './generation/backend';
export type * from './generation/types';
export { evalPpl, pplWindows, pplFromWindowNlls, type EvalPplOptions, type EvalPplResult } from './eval/ppl';
export { inspectModel, type ModelInspection } from './inspect';
export { Tokenizer, type SpecialTokens } from './tokenizer/tokenizer';
export { IncrementalDetokenizer } from './tokenizer/detokenizer';
export { ChatTemplate, loadChatTemplate, findChatTemplate, type ChatMessage, type ChatRole } from './chat-template/chat-template';
export { ARCHITECTURES, getArchitecture, supportedArchitectures } from './models/registry';
export { loadModelSpec, loadModelWeights } from './models/load';
export type { ArchitectureDef, AwqScaleGroup, ModelSpec } from './models/spec';
export { readSafetensorsDir, readSafetensorsHeader, readTensorBytes, writeSafetensors, type TensorInfo, type WritableTensor } from './io/safetensors';
export { encodeHalf, decodeHalf } from './io/half';
export { parseSentencePieceModel, sentencePieceToTokenizerJson } from './tokenizer/sentencepiece';
export { writeTinyModel, writeTinyTokenizer, type TinyModelOptions, type TinyModelInfo } from './testing/tiny-model';
export type * from './native';
