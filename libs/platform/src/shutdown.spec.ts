// closeOnSignals in a real child process (it calls process.exit): a clean close exits 0; a close that never ends is
// cut at the deadline with exit 1 and a log line naming the phase it was stuck in.
import { spawn } from 'node:child_process';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '../../..');

function runChild(closeNeverEnds: boolean): Promise<{ code: number | null; out: string }> {
  const script = `
    const { closeOnSignals, noteShutdownPhase } = require(${JSON.stringify(path.join(ROOT, 'libs/platform/src/shutdown.ts'))});
    const app = { close: () => { noteShutdownPhase('closing the test queue'); return ${closeNeverEnds} ? new Promise(() => {}) : Promise.resolve(); } };
    closeOnSignals(app, 'test', 300);
    setInterval(() => {}, 1000);
    process.stdout.write('ready\\n');
  `;
  const child = spawn(process.execPath, ['--require', path.join(ROOT, 'test/e2e/register.js'), '-e', script], { cwd: ROOT, env: { ...process.env, NO_COLOR: '1' } });
  let out = '';
  child.stdout.on('data', (d) => {
    out += d;
    if (String(d).includes('ready')) child.kill('SIGTERM');
  });
  child.stderr.on('data', (d) => (out += d));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, out })));
}

describe('closeOnSignals', () => {
  it('SIGTERM closes the app and exits 0', async () => {
    expect((await runChild(false)).code).toBe(0);
  });

  it('a shutdown stuck past its deadline exits 1 and says where it was stuck', async () => {
    const r = await runChild(true);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/shutdown did not finish within 300 ms \(stuck closing the test queue\); exiting/);
  });
});
