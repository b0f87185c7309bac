// The one place the engine touches @lmfleet/native: type re-exports and the loader. Everything else in the engine
// imports native types from here. Importing @lmfleet/native loads no binary; loadNative() does.
export type {
  Backend,
  DType,
  NativeErrorCode,
  TensorSource,
  RopeConfig,
  NativeModelConfig,
  SamplingParams,
  NativeRequest,
  NativeEvent,
  NativeLogprob,
  EngineOptions as NativeEngineOptions,
  EngineStats,
  NativeModel,
  NativeEngine,
  BackendInfo,
  NativeModule,
  NativeAwqSession,
  AwqTapStats,
  AwqTapName,
} from '@lmfleet/native';
export { binaryPath, loadNative } from '@lmfleet/native';
