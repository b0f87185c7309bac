// The dashboard's build: `npm run build:dashboard` writes dist/dashboard/, which the API serves at `/`.
// `npx vite --config apps/dashboard/vite.config.ts` serves it with hot reload, proxying the API (API_URL).
import { defineConfig } from 'vite';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

const api = process.env.API_URL ?? 'http://127.0.0.1:3000';
const apiPaths = ['/models', '/versions', '/jobs', '/pipelines', '/artifacts', '/workers', '/deployments', '/events', '/health', '/v1', '/admin', '/docs', '/metrics'];

export default defineConfig({
  root: here,
  base: '/',
  // React's automatic JSX runtime through Vite's own transform (no Babel plugin needed for a production build).
  oxc: { jsx: { runtime: 'automatic' } },
  build: {
    outDir: path.resolve(here, '../../dist/dashboard'),
    emptyOutDir: true,
    sourcemap: true,
    chunkSizeWarningLimit: 1200,
  },
  server: { proxy: Object.fromEntries(apiPaths.map((p) => [p, { target: api, changeOrigin: true }])) },
});
