// The dashboard's static files (Vite's build) at `/`, bull-board at /admin/queues. Mounted before Nest's
// routes, so neither may claim an API path: static files only answer for files that exist, and the SPA
// fallback answers only browser navigations (GET, Accept: text/html) outside the API's first segments.
import type { INestApplication } from '@nestjs/common';
import { Logger } from '@nestjs/common';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import type { NextFunction, Request, Response } from 'express';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ApiKeySet, inferQueueName, JobQueue, QueueName, WorkerRepository, type AppConfig } from '@lmfleet/platform';

/** First path segments that belong to the API: the SPA fallback never answers under them. */
export const API_SEGMENTS = [
  'v1', 'docs', 'docs-json', 'docs-yaml', 'metrics', 'health', 'models', 'versions', 'jobs', 'pipelines', 'artifacts',
  'workers', 'deployments', 'events', 'admin', 'dashboard',
];

export const QUEUES_PATH = '/admin/queues';

/** The project root (the nearest package.json above): the API runs from TypeScript sources or from dist/. */
function repoRoot(from = __dirname): string {
  let dir = from;
  for (let i = 0; i < 8; i++) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    dir = path.dirname(dir);
  }
  return process.cwd();
}

export function dashboardDir(): string {
  return path.join(repoRoot(), 'dist', 'dashboard');
}

const NOT_BUILT = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>LMFleet</title></head>
<body><h1>LMFleet</h1><p>The dashboard is not built. Run <code>npm run build:dashboard</code> (or <code>npm run build</code>)
and reload. The API is up: <a href="/docs">/docs</a>, <a href="${QUEUES_PATH}">queues</a>.</p></body></html>`;

export function wantsHtml(req: Request): boolean {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  const first = req.path.split('/')[1] ?? '';
  if (API_SEGMENTS.includes(first)) return false;
  return (req.headers.accept ?? '').includes('text/html');
}

/** bull-board over the quant queue and every infer queue a worker serves (refreshed as workers come). */
function mountQueues(app: INestApplication, config: AppConfig): void {
  const queues = app.get(JobQueue);
  const workers = app.get(WorkerRepository);
  const serverAdapter = new ExpressAdapter();
  serverAdapter.setBasePath(QUEUES_PATH);
  const names = new Set<string>([QueueName.Quant, ...config.worker.inferDeployments.map(inferQueueName)]);
  const board = createBullBoard({
    queues: [...names].map((n) => new BullMQAdapter(queues.queue(n))),
    serverAdapter,
    options: { uiConfig: { boardTitle: 'LMFleet queues' } },
  });
  // bull-board is mounted outside Nest's router, so the API-key guard does not cover it: with API_KEYS on it
  // asks for a key itself, as a Bearer token or as the password of HTTP Basic auth (what a browser can send).
  const keys = new ApiKeySet(config.apiKeys);
  if (keys.enabled) {
    app.use(QUEUES_PATH, (req: Request, res: Response, next: NextFunction) => {
      const basic = /^Basic\s+(\S+)$/i.exec(req.headers.authorization ?? '');
      const password = basic ? Buffer.from(basic[1], 'base64').toString('utf8').split(':').slice(1).join(':') : undefined;
      const why = keys.check(password !== undefined ? `Bearer ${password}` : req.headers.authorization);
      if (!why) return next();
      res.setHeader('WWW-Authenticate', 'Basic realm="LMFleet queues (password: an API key)", charset="UTF-8"');
      res.status(401).json({ statusCode: 401, error: 'Unauthorized', message: why });
    });
  }
  let refreshedAt = 0;
  app.use(QUEUES_PATH, (_req: Request, _res: Response, next: NextFunction) => {
    if (Date.now() - refreshedAt < 5000) return next();
    refreshedAt = Date.now();
    workers
      .list()
      .then((rows) => {
        for (const q of rows.flatMap((w) => w.queues)) {
          if (!names.has(q)) {
            names.add(q);
            board.addQueue(new BullMQAdapter(queues.queue(q)));
          }
        }
      })
      .catch((err) => new Logger('dashboard').warn(`queue list: ${(err as Error).message}`))
      .finally(() => next());
  });
  app.use(QUEUES_PATH, serverAdapter.getRouter());
}

export function mountDashboard(app: INestApplication, config: AppConfig, dir = dashboardDir()): void {
  mountQueues(app, config);
  const index = path.join(dir, 'index.html');
  const built = fs.existsSync(index);
  if (!built) new Logger('dashboard').warn(`dashboard not built (${index} missing): run npm run build:dashboard`);
  // express.static without importing express: Nest's adapter exposes it as useStaticAssets.
  if (built) (app as unknown as { useStaticAssets(dir: string, opts: object): void }).useStaticAssets(dir, { index: 'index.html', maxAge: '1h', setHeaders: noCacheIndex });
  app.use((req: Request, res: Response, next: NextFunction) => {
    if (!wantsHtml(req)) return next();
    res.setHeader('cache-control', 'no-cache');
    if (built) res.sendFile(index);
    else res.type('html').send(NOT_BUILT);
  });
}

function noCacheIndex(res: Response, file: string): void {
  if (file.endsWith('.html')) res.setHeader('cache-control', 'no-cache');
}
