// The layering rules of STYLE.md, checked on the sources (we have no lint step yet): the engine is reached
// only through engine/engine.adapter.ts; apps never import each other; the API never imports the engine.
import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '../../..');

function tsFiles(dir: string): string[] {
  const abs = path.join(ROOT, dir);
  if (!fs.existsSync(abs)) return [];
  return fs.readdirSync(abs, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts')).map((f) => path.join(dir, f));
}

function imports(file: string): string[] {
  const src = fs.readFileSync(path.join(ROOT, file), 'utf8');
  const out: string[] = [];
  for (const m of src.matchAll(/(?:from\s+|require\(\s*|import\(\s*)['"]([^'"]+)['"]/g)) out.push(m[1]);
  return out;
}

describe('layers', () => {
  it('libs/platform reaches the engine only through engine/engine.adapter.ts (and the process it runs long calls in), and never the addon', () => {
    const offenders = tsFiles('libs/platform/src')
      .filter((f) => !f.endsWith('engine/engine.adapter.ts') && !f.endsWith('engine/engine-process.ts'))
      .flatMap((f) => imports(f).filter((i) => /^@lmfleet\/(engine|native)/.test(i) || /libs\/(engine|native)/.test(i)).map((i) => `${f}: ${i}`));
    expect(offenders).toEqual([]);
    expect(imports('libs/platform/src/engine/engine.adapter.ts').filter((i) => i.startsWith('@lmfleet/native'))).toEqual([]);
  });

  it('apps never import another app, and the API never imports the engine', () => {
    const apps = ['api', 'worker-quant', 'worker-infer'];
    const offenders: string[] = [];
    for (const app of apps) {
      for (const f of tsFiles(`apps/${app}/src`)) {
        for (const i of imports(f)) {
          if (apps.some((other) => other !== app && i.includes(`apps/${other}`))) offenders.push(`${f}: ${i}`);
          if (app === 'api' && /^@lmfleet\/(engine|native)/.test(i)) offenders.push(`${f}: ${i}`);
        }
      }
    }
    expect(offenders).toEqual([]);
  });

  it('only config.ts reads process.env in libs/platform', () => {
    const readers = tsFiles('libs/platform/src')
      .filter((f) => !f.endsWith('.spec.ts') && !f.endsWith('config.ts'))
      .filter((f) => /process\.env\b/.test(fs.readFileSync(path.join(ROOT, f), 'utf8').replace(/\/\/.*$/gm, '')));
    expect(readers).toEqual([]);
  });
});
