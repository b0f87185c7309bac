// @lmfleet/engine: the TypeScript engine over the native addon. No NestJS, BullMQ, Redis or TypeORM here, and no
// process.env: callers pass options and a logger.
export * from './errors';
export { Engine, EngineInstance } from './generation/engine';
export { MAX_DRAFT_TOKENS, speculativeOptions } from './generation/speculative';
export { ChatSession, type ChatSessionOptions } from './generation/chat-session';
export { PretrainedModel } from './generation/pretrained';
export { selectBackend, type NativeLoader } from './generation/backend';
export type * from './generation/types';
export { evalPpl, pplWindows, pplFromWindowNlls, type EvalPplOptions, type EvalPplResult } from './eval/ppl';
export { inspectModel, type ModelInspection } from './inspect';
export { Tokenizer, type SpecialTokens } from './tokenizer/tokenizer';
export { IncrementalDetokenizer } from './tokenizer/detokenizer';
export { ChatTemplate, loadChatTemplate, findChatTemplate, type ChatMessage, type ChatRole } from './chat-template/chat-template';
export { type ToolSpec, type ToolCallMessage, hermesToolPreamble } from './chat-template/tools';
export { ARCHITECTURES, architectureLimits, getArchitecture, supportedArchitectures } from './models/registry';
export { loadModelSpec, loadModelWeights } from './models/load';
export type { ArchitectureDef, AwqScaleGroup, ModelSpec } from './models/spec';
export { readSafetensorsDir, readSafetensorsHeader, readTensorBytes, writeSafetensors, type TensorInfo, type WritableTensor } from './io/safetensors';
export { encodeHalf, decodeHalf } from './io/half';
export { parseSentencePieceModel, sentencePieceToTokenizerJson } from './tokenizer/sentencepiece';
export { writeTinyModel, writeTinyTokenizer, type TinyModelOptions, type TinyModelInfo } from './testing/tiny-model';
export type * from './native';
// Quantization pipeline (LMDeploy's lite calibrate / auto_awq / convert). Each step takes options with
// onProgress(fraction 0..1, message) and writes its results with write-then-rename.
export {
  calibrate, loadCalibration, hasCalibration, type CalibrateOptions, type CalibrationResult, type CalibManifest, type ChannelStats,
} from './quant/calibrate';
export { BUILTIN_CALIB_DATASETS, isBuiltinCalibDataset, readCalibText, type BuiltinCalibDataset } from './quant/datasets';
export { kvQparamsFromCalibration, parseQuantPolicy, type KvQparams, type KvQuantPolicy } from './quant/kv-qparams';
export { autoAwq, type AutoAwqOptions, type AutoAwqResult, type LayerReport } from './quant/awq';
export {
  AWQ_PACK_ORDER, quantizeLinear, dequantizeLinear, packAwqInt4, unpackAwqInt4, toAwqGemm, fromAwqGemm, type QuantizedLinear, type AwqGemmTensors,
} from './quant/pack';
export { convert, type ConvertOptions, type ConvertResult, type WorkspaceManifest } from './workspace/convert';
export { isWorkspace, loadWorkspace, readWorkspaceManifest } from './workspace/load';
