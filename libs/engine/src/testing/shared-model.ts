import * as fs from 'node:fs';
import * as path from 'node:path';

/** The repository root (this file is libs/engine/src/testing/shared-model.ts). */
export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..', '..');

/**
 * A model from the shared folder beside the repository (`<repo>/../shared/models/<name>`, as on developer machines
 * and CI), or undefined when it is not there.
 */
export function sharedModelDir(name: string): string | undefined {
  const dir = path.resolve(REPO_ROOT, '..', 'shared', 'models', name);
  return fs.existsSync(path.join(dir, 'config.json')) ? dir : undefined;
}
