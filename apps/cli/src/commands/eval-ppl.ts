import { evalPpl } from '@lmfleet/engine';
import type { CliIO } from '../io';
import { ProgressBar } from '../progress';

export interface EvalPplFlags {
  /** --quant-policy (KV cache int8/int4) and --kv-calib-dir (calibrated KV scales). */
  quantPolicy?: '0' | '4' | '8';
  kvCalibDir?: string;
  dataset: string;
  seqlen: number;
  maxWindows?: number;
  json?: boolean;
  backend: 'auto' | 'cpu' | 'cuda';
  threads?: number;
  tp?: number;
}

export async function evalPplCommand(io: CliIO, modelDir: string, flags: EvalPplFlags): Promise<void> {
  const bar = new ProgressBar(io.stderr, 'eval ppl');
  const r = await evalPpl(modelDir, {
    datasetFile: flags.dataset,
    seqlen: flags.seqlen,
    maxWindows: flags.maxWindows,
    backend: flags.backend,
    threads: flags.threads,
    ...(flags.tp !== undefined && flags.tp !== 1 ? { tp: flags.tp } : {}),
    ...(flags.quantPolicy !== undefined ? { quantPolicy: Number(flags.quantPolicy) as 0 | 4 | 8 } : {}),
    ...(flags.kvCalibDir !== undefined ? { kvCalibDir: flags.kvCalibDir } : {}),
    native: io.native,
    log: (level, msg) => {
      if (level !== 'debug') io.stderr.write(`[${level}] ${msg}\n`);
    },
    onProgress: (done, total, info) => bar.update(done, total, `ppl≈${Math.exp(info.meanNll).toFixed(2)}`),
  });
  if (flags.json) {
    const { windowNlls, ...rest } = r;
    io.stdout.write(JSON.stringify({ model: modelDir, dataset: flags.dataset, ...rest, windowNlls }) + '\n');
  } else {
    io.stdout.write(
      `ppl ${r.ppl.toFixed(4)} (mean NLL ${r.meanNll.toFixed(5)}) over ${r.windows} windows of ${r.seqlen} tokens ` +
        `(${r.tokens} tokens in the dataset), ${r.seconds.toFixed(1)} s on ${r.backend}, KV cache ${r.kvCache}\n`,
    );
  }
}
