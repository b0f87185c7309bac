// The transformers golden fixtures (test/fixtures/golden/<case>/: config.json, model.safetensors, golden.json), made on
// the GPU machine by test/fixtures/golden/make_golden.py.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO_ROOT } from './shared-model';

export const GOLDEN_DIR = path.join(REPO_ROOT, 'test', 'fixtures', 'golden');

/**
 * The golden case names. `dense` leaves out the mixture-of-experts cases, for the path that refuses them (the native
 * layer session of calibrate and auto_awq).
 */
export function goldenCases(which: 'all' | 'dense' = 'all'): string[] {
  if (!fs.existsSync(GOLDEN_DIR)) return [];
  return fs
    .readdirSync(GOLDEN_DIR)
    .filter((d) => fs.existsSync(path.join(GOLDEN_DIR, d, 'golden.json')))
    .filter((d) => which === 'all' || JSON.parse(fs.readFileSync(path.join(GOLDEN_DIR, d, 'config.json'), 'utf8')).num_experts_per_tok === undefined)
    .sort();
}
