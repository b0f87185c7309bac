// Headless Chromium for the dashboard's e2e: Debian's `chromium` (apt) driven by playwright-core, with a
// fresh profile per run. scripts/test.sh installs chromium where it is missing.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execSync } from 'node:child_process';
import { chromium, type BrowserContext } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export async function launchBrowser(): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: install it with \`apt-get install -y chromium\` (scripts/test.sh does)`);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'lmfleet-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    viewport: { width: 1400, height: 900 },
  });
  return {
    context,
    async close() {
      await context.close().catch(() => undefined);
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

const ROOT = path.resolve(__dirname, '../../..');

/** Builds the dashboard when its build is missing or older than a source file. */
export function ensureDashboardBuilt(): string {
  const dir = path.join(ROOT, 'dist/dashboard');
  const index = path.join(dir, 'index.html');
  const newest = (d: string): number =>
    fs.readdirSync(d, { withFileTypes: true }).reduce((m, e) => Math.max(m, e.isDirectory() ? newest(path.join(d, e.name)) : fs.statSync(path.join(d, e.name)).mtimeMs), 0);
  const src = Math.max(newest(path.join(ROOT, 'apps/dashboard/src')), fs.statSync(path.join(ROOT, 'apps/dashboard/index.html')).mtimeMs);
  if (!fs.existsSync(index) || fs.statSync(index).mtimeMs < src) {
    execSync('npm run -s build:dashboard', { cwd: ROOT, stdio: 'inherit' });
  }
  return dir;
}
