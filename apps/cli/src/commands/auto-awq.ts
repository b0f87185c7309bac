import { autoAwq } from '@lmfleet/engine';
import { CliExit, type CliIO } from '../io';
import { backendForDevice, progressBar, stderrLog } from './calibrate';

export interface AutoAwqFlags {
  calibDataset: string;
  calibSamples: number;
  calibSeqlen: number;
  workDir: string;
  wBits: number;
  wGroupSize: number;
  wSym: boolean;
  searchScale: boolean;
  searchClip: boolean;
  device: 'cuda' | 'cpu';
}

/** `--search-scale false` style switches: a bare flag is true. */
export function parseBool(name: string): (v: string) => boolean {
  return (v) => {
    if (/^(true|1|yes)$/i.test(v)) return true;
    if (/^(false|0|no)$/i.test(v)) return false;
    throw new CliExit(2, `${name} must be true or false, got ${JSON.stringify(v)}`);
  };
}

export async function autoAwqCommand(io: CliIO, modelDir: string, flags: AutoAwqFlags): Promise<void> {
  if (flags.wSym) throw new CliExit(2, 'lmfleet lite auto_awq: --w-sym is not supported: the AutoAWQ GEMM layout is asymmetric (zero points)');
  const r = await autoAwq(modelDir, {
    wBits: flags.wBits,
    wGroupSize: flags.wGroupSize,
    workDir: flags.workDir,
    searchScale: flags.searchScale,
    searchClip: flags.searchClip,
    calibDataset: flags.calibDataset,
    calibSamples: flags.calibSamples,
    calibSeqlen: flags.calibSeqlen,
    backend: backendForDevice(flags.device),
    native: io.native,
    log: stderrLog(io),
    onProgress: progressBar(io, 'auto_awq'),
  });
  const what = r.searchScale || r.searchClip
    ? `AWQ (${[r.searchScale && 'scale search', r.searchClip && 'clip search'].filter(Boolean).join(' + ')})`
    : 'round-to-nearest';
  io.stdout.write(`W${r.wBits} g${r.wGroupSize} ${what}: AutoAWQ checkpoint written to ${r.dstDir} in ${r.seconds.toFixed(1)} s\n`);
}
