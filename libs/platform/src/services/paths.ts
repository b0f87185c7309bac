import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { InvalidInputError } from '../errors';

/**
 * Why a user-given path is refused before touching the filesystem, or null when it is acceptable:
 * absolute, no `..` segment, no NUL, inside one of `roots` lexically.
 */
export function pathSyntaxProblem(input: string, roots: string[]): string | null {
  if (typeof input !== 'string' || !input.length) return 'path is empty';
  if (input.includes('\0')) return 'path contains a NUL byte';
  if (!path.isAbsolute(input)) return 'path must be absolute';
  if (input.split(/[\\/]+/).includes('..')) return 'path must not contain ".." segments';
  if (!roots.length) return 'no model roots are configured (MODEL_ROOTS)';
  const normalized = path.resolve(input);
  if (!roots.some((r) => isInside(normalized, r))) return `path is outside the allowed roots (${roots.join(', ')})`;
  return null;
}

/** True when `p` is `root` or below it (both absolute). */
export function isInside(p: string, root: string): boolean {
  const rel = path.relative(path.resolve(root), path.resolve(p));
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/**
 * Resolves a user-given path under the allowed roots and returns its real path (symlinks resolved).
 * Refuses, with the reason, anything outside the roots, with `..`, or whose symlinks lead out of them.
 */
export async function resolveUnderRoots(input: string, roots: string[], expect: 'directory' | 'file', field = 'path'): Promise<string> {
  const problem = pathSyntaxProblem(input, roots);
  if (problem) throw new InvalidInputError(`${field}: ${problem}`, { field, reason: problem });
  let real: string;
  try {
    real = await fs.realpath(input);
  } catch {
    throw new InvalidInputError(`${field}: ${input} does not exist`, { field, reason: 'not found' });
  }
  const realRoots = await Promise.all(roots.map((r) => fs.realpath(r).catch(() => path.resolve(r))));
  if (!realRoots.some((r) => isInside(real, r))) {
    const reason = `resolves through a symlink to ${real}, outside the allowed roots`;
    throw new InvalidInputError(`${field}: ${reason}`, { field, reason });
  }
  const st = await fs.stat(real);
  if (expect === 'directory' ? !st.isDirectory() : !st.isFile()) {
    throw new InvalidInputError(`${field}: ${input} is not a ${expect}`, { field, reason: `not a ${expect}` });
  }
  return real;
}
