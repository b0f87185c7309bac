import { calibrate } from '@lmfleet/engine';
import type { CliIO } from '../io';
import { ProgressBar } from '../progress';

export interface CalibrateFlags {
  calibDataset: string;
  calibSamples: number;
  calibSeqlen: number;
  workDir: string;
  batchSize: number;
  device: 'cuda' | 'cpu';
}

/** LMDeploy's --device: cpu runs on the cpu backend; cuda (its default) tries CUDA and falls back to cpu, logged. */
export function backendForDevice(device: 'cuda' | 'cpu'): 'cpu' | 'auto' {
  return device === 'cpu' ? 'cpu' : 'auto';
}

export function stderrLog(io: CliIO): (level: string, msg: string) => void {
  return (level, msg) => {
    if (level !== 'debug') io.stderr.write(`[${level}] ${msg}\n`);
  };
}

/** A 0..1 progress callback drawn as a bar on stderr. */
export function progressBar(io: CliIO, label: string): (fraction: number, message: string) => void {
  const bar = new ProgressBar(io.stderr, label);
  return (f, m) => bar.update(Math.round(f * 1000), 1000, m);
}

export async function calibrateCommand(io: CliIO, modelDir: string, flags: CalibrateFlags): Promise<void> {
  const r = await calibrate(modelDir, {
    dataset: flags.calibDataset,
    samples: flags.calibSamples,
    seqlen: flags.calibSeqlen,
    workDir: flags.workDir,
    batchTokens: Math.max(1, flags.batchSize) * flags.calibSeqlen,
    backend: backendForDevice(flags.device),
    native: io.native,
    log: stderrLog(io),
    onProgress: progressBar(io, 'calibrate'),
  });
  io.stdout.write(
    `calibration of ${r.manifest.architecture} on ${r.manifest.samples} samples x ${r.manifest.seqlen} tokens saved in ${flags.workDir}\n`,
  );
}
