// The transformers golden fixtures (test/fixtures/golden/<case>/: config.json, model.safetensors, golden.json), made on
// the GPU machine by test/fixtures/golden/make_golden.py.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { getArchitecture } from '../models/registry';
import { nativeSessionRefusal } from '../quant/awq-session';
import { REPO_ROOT } from './shared-model';

export const GOLDEN_DIR = path.join(REPO_ROOT, 'test', 'fixtures', 'golden');

/**
 * The golden case names. `session` leaves out the models the native layer session of calibrate and auto_awq does not run
 * (nativeSessionRefusal: mixtures of experts, Gemma).
 */
export function goldenCases(which: 'all' | 'session' = 'all'): string[] {
  if (!fs.existsSync(GOLDEN_DIR)) return [];
  const sessionRuns = (d: string) => {
    const file = path.join(GOLDEN_DIR, d, 'config.json');
    const cfg = JSON.parse(fs.readFileSync(file, 'utf8'));
    return nativeSessionRefusal(getArchitecture(cfg.architectures[0], file).parseConfig(cfg, file)) === undefined;
  };
  return fs
    .readdirSync(GOLDEN_DIR)
    .filter((d) => fs.existsSync(path.join(GOLDEN_DIR, d, 'golden.json')))
    .filter((d) => which === 'all' || sessionRuns(d))
    .sort();
}
