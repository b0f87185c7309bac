import * as fs from 'node:fs';
import { ModelFormatError } from '../errors';

/** Reads a JSON file; a missing file gives `undefined` when optional, a ModelFormatError otherwise. */
export function readJson<T = Record<string, unknown>>(file: string, optional: true): T | undefined;
export function readJson<T = Record<string, unknown>>(file: string, optional?: false): T;
export function readJson<T>(file: string, optional = false): T | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if (optional && (e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ModelFormatError('cannot read file', { file }, { cause: e });
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new ModelFormatError(`invalid JSON: ${(e as Error).message}`, { file }, { cause: e });
  }
}
