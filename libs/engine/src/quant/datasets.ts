// Calibration text: built-in sets shipped with the project (selected by name, work offline) or the user's own file
// (.txt as is, .jsonl with a "text" field per line, either optionally gzipped). LMDeploy's names (ptb, wikitext2, c4,
// pileval...) download from the Hugging Face hub; we ship none of them and say so rather than reuse their names for
// other text.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { InvalidArgumentError } from '../errors';

export interface BuiltinCalibDataset {
  name: string;
  /** File in libs/engine/data/calib. */
  file: string;
  description: string;
  source: string;
  license: string;
}

/** The built-in calibration sets; provenance and licence texts are in libs/engine/data/calib/NOTICE. */
export const BUILTIN_CALIB_DATASETS: readonly BuiltinCalibDataset[] = [
  {
    name: 'cmake-docs',
    file: 'cmake-docs.txt.gz',
    description: "CMake 3.25's reStructuredText manuals, command, policy, release-note and CPack pages (1.7 MB of English technical prose with code)",
    source: "Debian package cmake-data 3.25.1-1, /usr/share/cmake-3.25/Help (rebuilt by make-cmake-docs.sh)",
    license: 'BSD-3-Clause (Kitware, Inc. and contributors)',
  },
];

/** LMDeploy's dataset names, which fetch from the network there; named in the error so users know why. */
const LMDEPLOY_NAMES = ['ptb', 'wikitext2', 'c4', 'pileval', 'gsm8k', 'neuralmagic_calibration', 'open-platypus'];

export function builtinCalibDataset(name: string): BuiltinCalibDataset | undefined {
  return BUILTIN_CALIB_DATASETS.find((d) => d.name === name);
}

/** True for a built-in name (platform and CLI keep it as a name instead of resolving it as a path). */
export function isBuiltinCalibDataset(name: string): boolean {
  return builtinCalibDataset(name) !== undefined;
}

/** libs/engine/data/calib, found by walking up from this file (works from the sources and from dist/). */
export function calibDataDir(): string {
  let dir = __dirname;
  for (;;) {
    const candidate = path.join(dir, 'libs', 'engine', 'data', 'calib');
    if (fs.existsSync(candidate)) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return path.resolve(__dirname, '..', '..', 'data', 'calib');
}

function unknownName(dataset: string): InvalidArgumentError {
  const names = BUILTIN_CALIB_DATASETS.map((d) => d.name).join(', ');
  const lm = LMDEPLOY_NAMES.includes(dataset) ? ` ("${dataset}" is one of LMDeploy's hub datasets, which are not shipped: there is no offline copy)` : '';
  return new InvalidArgumentError(
    `unknown calibration dataset "${dataset}"${lm}: built-in datasets: ${names}; ` +
      'or pass a text file (.txt) or a JSON-lines file (.jsonl with a "text" field), optionally gzipped (.gz)',
  );
}

function readMaybeGzip(file: string): string {
  const raw = fs.readFileSync(file);
  if (!file.endsWith('.gz')) return raw.toString('utf8');
  try {
    return zlib.gunzipSync(raw).toString('utf8');
  } catch (e) {
    throw new InvalidArgumentError(`calibration dataset ${file}: not a valid gzip file: ${(e as Error).message}`);
  }
}

/**
 * Reads the calibration text: a built-in name; else a file: .txt as is, .jsonl's "text" fields joined by blank
 * lines (both may end in .gz).
 */
export function readCalibText(dataset: string): string {
  const builtin = builtinCalibDataset(dataset);
  if (builtin) {
    const file = path.join(calibDataDir(), builtin.file);
    if (!fs.existsSync(file)) throw new InvalidArgumentError(`built-in calibration dataset "${dataset}" is missing from this installation (expected ${file})`);
    return readMaybeGzip(file);
  }
  if (!fs.existsSync(dataset)) {
    if (!/[./\\]/.test(dataset)) throw unknownName(dataset);
    throw new InvalidArgumentError(`calibration dataset file not found: ${dataset}`);
  }
  if (fs.statSync(dataset).isDirectory()) throw new InvalidArgumentError(`calibration dataset ${dataset} is a directory, not a .txt or .jsonl file`);
  const raw = readMaybeGzip(dataset);
  if (!/\.jsonl(\.gz)?$/.test(dataset)) return raw;
  const texts: string[] = [];
  raw.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch (e) {
      throw new InvalidArgumentError(`${dataset}:${i + 1}: not valid JSON: ${(e as Error).message}`);
    }
    const t = (row as { text?: unknown })?.text;
    if (typeof t !== 'string') throw new InvalidArgumentError(`${dataset}:${i + 1}: no string "text" field`);
    texts.push(t);
  });
  return texts.join('\n\n');
}

/** What the manifest records: the name for a built-in set, else the absolute path. */
export function calibDatasetLabel(dataset: string): string {
  return isBuiltinCalibDataset(dataset) ? dataset : path.resolve(dataset);
}
