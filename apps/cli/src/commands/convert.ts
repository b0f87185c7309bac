import { convert } from '@lmfleet/engine';
import { CliExit, type CliIO } from '../io';
import { progressBar, stderrLog } from './calibrate';

export interface ConvertFlags {
  /** --quant-policy (KV cache int8/int4) and --kv-calib-dir (calibrated KV scales). */
  quantPolicy?: '0' | '4' | '8';
  kvCalibDir?: string;
  modelFormat: 'hf' | 'awq';
  groupSize: number;
  dstPath: string;
  tp: number;
}

export async function convertCommand(io: CliIO, modelName: string, modelDir: string, flags: ConvertFlags): Promise<void> {
  if (flags.tp !== 1) throw new CliExit(2, `lmfleet convert: --tp ${flags.tp}: tensor parallelism is not supported yet (use --tp 1)`);
  const r = await convert(modelName, modelDir, {
    modelFormat: flags.modelFormat,
    groupSize: flags.groupSize > 0 ? flags.groupSize : undefined,
    dstPath: flags.dstPath,
    ...(flags.quantPolicy !== undefined ? { quantPolicy: Number(flags.quantPolicy) as 0 | 4 | 8 } : {}),
    ...(flags.kvCalibDir !== undefined ? { kvCalibDir: flags.kvCalibDir } : {}),
    log: stderrLog(io),
    onProgress: progressBar(io, 'convert'),
  });
  const kv = r.manifest.kvCache;
  const q = (r.manifest.quantization ? `AWQ w4 g${r.manifest.quantization.groupSize}` : r.manifest.dtype) +
    (kv.quantPolicy ? `, KV int${kv.quantPolicy} ${kv.qparams ? 'calibrated' : 'online'}` : '');
  io.stdout.write(
    `workspace for ${r.manifest.architecture} (${q}, ${r.manifest.weights.tensors.length} tensors, ${(r.manifest.weights.bytes / 2 ** 20).toFixed(1)} MiB) written to ${r.dstPath}\n`,
  );
}
