// Loading an engine workspace (see convert.ts): the same LoadedModelSpec + canonical TensorSources a Hugging Face
// directory gives, with every tensor a memory-mappable range of weights.bin.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ModelFormatError } from '../errors';
import { readJson } from '../io/json';
import { loadModelSpec, loadModelWeights, type LoadedModelSpec } from '../models/load';
import { getArchitecture } from '../models/registry';
import type { TensorSource } from '../native';
import { WORKSPACE_ALIGNMENT, WORKSPACE_FILE, WORKSPACE_FORMAT, type WorkspaceManifest } from './convert';

/** True when `dir` is an engine workspace (holds lmfleet.json). */
export function isWorkspace(dir: string): boolean {
  return fs.existsSync(path.join(path.resolve(dir), WORKSPACE_FILE));
}

export function readWorkspaceManifest(dir: string): WorkspaceManifest {
  const file = path.join(path.resolve(dir), WORKSPACE_FILE);
  const m = readJson<WorkspaceManifest>(file);
  if (m?.format !== WORKSPACE_FORMAT) {
    throw new ModelFormatError('not an engine workspace manifest', { file, expected: `format "${WORKSPACE_FORMAT}"`, found: JSON.stringify(m?.format) });
  }
  return m;
}

/** A workspace → spec and tensors (validated against weights.bin's size and alignment). */
export function loadWorkspace(dir: string): { loaded: LoadedModelSpec; tensors: TensorSource[]; kvCache: WorkspaceManifest['kvCache'] } {
  const abs = path.resolve(dir);
  const m = readWorkspaceManifest(abs);
  const file = path.join(abs, WORKSPACE_FILE);
  const arch = getArchitecture(m.architecture, file);
  const spec = arch.parseConfig(m.hfConfig, file);
  spec.dtype = m.dtype;
  const weightsFile = path.join(abs, m.weights.file);
  if (!fs.existsSync(weightsFile)) throw new ModelFormatError('workspace weights are missing', { file: weightsFile });
  const size = fs.statSync(weightsFile).size;
  const tensors: TensorSource[] = m.weights.tensors.map((t) => {
    if (t.offset % WORKSPACE_ALIGNMENT !== 0 || t.offset + t.bytes > size) {
      throw new ModelFormatError('workspace tensor lies outside weights.bin or is misaligned', {
        file: weightsFile, tensor: t.name, expected: `64-byte aligned range within ${size} bytes`, found: `[${t.offset}, ${t.offset + t.bytes})`,
      });
    }
    return { name: t.name, dtype: t.dtype, shape: [...t.shape], file: weightsFile, offset: t.offset, ...(t.add ? { add: t.add } : {}) };
  });
  return { loaded: { dir: abs, config: m.hfConfig, arch, spec }, tensors, kvCache: m.kvCache ?? { dtype: m.dtype } };
}

/** A Hugging Face directory or an engine workspace → spec and canonical tensors. */
export function loadModelOrWorkspace(dir: string): { loaded: LoadedModelSpec; tensors: TensorSource[] } {
  if (isWorkspace(dir)) return loadWorkspace(dir);
  const loaded = loadModelSpec(dir);
  return { loaded, tensors: loadModelWeights(loaded).tensors };
}
