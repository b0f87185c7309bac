// The quantization pipeline steps (LMDeploy's lite: calibrate, auto_awq) and formats.
export { calibrate, loadCalibration, hasCalibration, type CalibrateOptions, type CalibrationResult, type CalibManifest, type ChannelStats, type ProgressFn } from './calibrate';
export { BUILTIN_CALIB_DATASETS, isBuiltinCalibDataset, readCalibText, type BuiltinCalibDataset } from './datasets';
export { autoAwq, type AutoAwqOptions, type AutoAwqResult, type LayerReport } from './awq';
export { writeAutoAwqDir } from './autoawq';
export { BlockForward } from './block-forward';
export {
  AWQ_PACK_ORDER, quantizeLinear, dequantizeLinear, fakeQuantize, packAwqInt4, unpackAwqInt4, toAwqGemm, fromAwqGemm,
  dequantizeAwqGemmToF16, type QuantizedLinear, type AwqGemmTensors,
} from './pack';
