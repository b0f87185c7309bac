// The dashboard in a real browser (Debian's chromium via playwright-core) against the running platform:
// API + worker-quant + worker-infer as processes on real Postgres/Redis, the real engine on a tiny model.
// From the UI: register a model, run the quantize pipeline and watch it progress live (no reload), see the
// new versions in the lineage tree with their metrics, evaluate the fp16 version as a single job, cancel and
// retry a job, read a job's log, artifacts and calibration charts, see the workers, deploy the quantized
// workspace and chat with it in the playground (streamed), and the API-key prompt when API_KEYS is on.
// Screenshots of each page go to var/test-artifacts/dashboard/.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Page } from 'playwright-core';
import { writeTinyModel } from '@lmfleet/engine';
import { client } from '../integration/support/http';
import { createTestEnv, waitFor, type TestEnv } from '../integration/support/test-env';
import { ensureDashboardBuilt, launchBrowser } from './support/browser';
import { freePort, noteFailures, startApp, stopApps, type AppProcess } from './support/processes';

jest.setTimeout(300_000);

const SHOTS = path.resolve(__dirname, '../../var/test-artifacts/dashboard');

describe('e2e: dashboard in headless chromium', () => {
  let env: TestEnv;
  let logDir: string;
  let base: string;
  let http: ReturnType<typeof client>;
  const procs: AppProcess[] = [];
  let browser: Awaited<ReturnType<typeof launchBrowser>>;
  let page: Page;
  let modelDir: string;
  let dataset: string;
  let modelId: string;
  const run = noteFailures();
  const consoleErrors: string[] = [];

  const shot = async (name: string) => {
    await page.waitForTimeout(300); // let charts lay out
    await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
  };
  /** Controls without an accessible name (label, aria-label, aria-labelledby, or text for buttons and links). */
  const unlabeled = (p: Page = page) =>
    p.evaluate(() => {
      const doc = (globalThis as any).document;
      const out: string[] = [];
      for (const el of doc.querySelectorAll('input, select, textarea, button, a[href]')) {
        const named =
          el.getAttribute('aria-label') ||
          el.getAttribute('aria-labelledby') ||
          (el.labels && el.labels.length > 0) ||
          ((el.tagName === 'BUTTON' || el.tagName === 'A') && el.textContent.trim());
        if (!named) out.push(el.outerHTML.slice(0, 120));
      }
      return out as string[];
    });
  const go = async (hash: string) => {
    await page.evaluate((h) => ((globalThis as any).location.hash = h), hash);
  };
  /** The playground's reply has finished streaming: Stop is disabled again. */
  const streamEnded = () =>
    page.waitForFunction(() => (globalThis as any).document.querySelector('button[aria-label="Stop generating"]')?.disabled === true, undefined, { timeout: 60_000 });
  /** The playground on `deployment`, its conversation cleared, temperature 0. */
  const openPlayground = async (deployment: string) => {
    await go('/playground');
    await page.getByRole('heading', { name: 'Playground', level: 1 }).waitFor();
    await page.waitForFunction((d) => [...(globalThis as any).document.querySelectorAll('select[aria-label="Deployment"] option')].some((o: any) => o.value === d), deployment, { timeout: 10_000 });
    await page.getByLabel('Deployment', { exact: true }).selectOption(deployment);
    await page.getByRole('button', { name: 'Clear conversation' }).click().catch(() => undefined);
    await page.getByLabel('Temperature').fill('0');
  };

  beforeAll(async () => {
    ensureDashboardBuilt();
    fs.mkdirSync(SHOTS, { recursive: true });
    env = await createTestEnv({ ENGINE_BACKEND: 'cpu', WORKER_CONCURRENCY: '1', LOCK_DURATION_MS: '10000', HEARTBEAT_TIMEOUT_MS: '10000' });
    logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmfleet-e2e-dash-'));
    modelDir = path.join(env.modelRoot, 'tiny-qwen2');
    writeTinyModel(modelDir, { arch: 'qwen2', seed: 11, hiddenSize: 128, numLayers: 2, intermediateSize: 256 });
    dataset = path.join(env.modelRoot, 'corpus.txt');
    const words = ['the', 'fleet', 'serves', 'quantized', 'models', 'with', 'low', 'latency', 'and', 'the', 'dashboard', 'shows', 'it'];
    let text = '';
    for (let i = 0; text.length < 120_000; i++) text += words[(i * 5 + (i >> 2)) % words.length] + (i % 9 === 8 ? '.\n' : ' ');
    fs.writeFileSync(dataset, text);

    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    const penv = { ...env.env, PORT: String(port) };
    procs.push(startApp('api', 'api', penv, logDir));
    http = client(base);
    await waitFor(async () => (await http('GET', '/health')).body?.status === 'ok', 'api health', 60_000, 250);
    procs.push(startApp('worker-quant', 'worker-quant', { ...penv, WORKER_NAME: 'quant-1' }, logDir));
    procs.push(startApp('worker-infer', 'worker-infer', { ...penv, WORKER_NAME: 'infer-1' }, logDir));
    await waitFor(async () => ((await http('GET', '/workers')).body as Array<{ status: string }>).filter((w) => w.status === 'online').length === 2, '2 workers online', 60_000, 250);

    browser = await launchBrowser();
    page = await browser.context.newPage();
    page.on('console', (m) => (m.type() === 'error' || m.type() === 'warning') && consoleErrors.push(m.text().slice(0, 1500)));
    page.on("pageerror", (e) => consoleErrors.push(`pageerror: ${e.stack ?? e.message}`));
  });

  afterAll(async () => {
    await browser?.close();
    await stopApps(procs, { failed: run.failed, logDir });
    if (consoleErrors.length) console.log(`browser console errors:\n${consoleErrors.join('\n')}`);
    await env?.cleanup();
  });

  it('serves the SPA at / without shadowing the API, and bull-board at /admin/queues', async () => {
    const html = { accept: 'text/html,application/xhtml+xml' };
    const root = await fetch(`${base}/`, { headers: html });
    expect(root.status).toBe(200);
    expect(await root.text()).toContain('<div id="root">');
    const deep = await fetch(`${base}/some/spa/path`, { headers: html });
    expect(deep.status).toBe(200);
    expect(await deep.text()).toContain('<div id="root">');
    // API routes answer as the API even for a browser's Accept header
    const jobs = await fetch(`${base}/jobs`, { headers: html });
    expect(jobs.headers.get('content-type')).toMatch(/application\/json/);
    expect(await jobs.json()).toMatchObject({ items: [], total: 0 });
    expect(((await (await fetch(`${base}/health`, { headers: html })).json()) as { status: string }).status).toBe('ok');
    expect(await (await fetch(`${base}/docs`, { headers: html })).text()).toMatch(/swagger/i);
    expect((await fetch(`${base}/nope-api-json`)).status).toBe(404);
    // the live feed is text/event-stream and greets with a ping
    const ctl = new AbortController();
    const events = await fetch(`${base}/events`, { signal: ctl.signal });
    expect(events.headers.get('content-type')).toMatch(/text\/event-stream/);
    const first = new TextDecoder().decode((await events.body!.getReader().read()).value);
    expect(first).toMatch(/^event: ping$/m);
    ctl.abort();
    const queues = await fetch(`${base}/admin/queues`, { headers: html });
    expect(queues.status).toBe(200);
    const board = await queues.text();
    expect(board).toMatch(/LMFleet queues/);
    expect(board).not.toContain('<div id="root"></div>\n    <script type="module" src="/assets');
    const q = await fetch(`${base}/admin/queues/api/queues?activeQueue=quant&status=latest&page=1&jobsPerPage=10`);
    expect(q.status).toBe(200);
    const names = ((await q.json()) as { queues: Array<{ name: string }> }).queues.map((x) => x.name);
    expect(names).toEqual(expect.arrayContaining(['quant', 'infer-default']));
  });

  it('registers a model from the UI', async () => {
    await page.goto(`${base}/`);
    await page.getByRole('heading', { name: 'Models', level: 1 }).waitFor();
    await shot('models-empty');
    await page.getByLabel('Model directory').fill(modelDir);
    await page.getByLabel('Model name').fill('tiny-qwen2');
    await page.getByRole('button', { name: 'Register model' }).click();
    await page.waitForURL(/#\/models\/[0-9a-f-]{36}$/);
    modelId = /#\/models\/([0-9a-f-]{36})$/.exec(page.url())![1];
    await page.locator('[data-kind="version"][data-format="hf"]').waitFor();
    expect(await page.locator('.tree-item').count()).toBe(1);
  });

  it('runs the quantize pipeline from the UI and shows its progress live, then the new versions with their metrics', async () => {
    await page.evaluate(() => ((globalThis as any).__noReload = true));
    await page.getByLabel('Calibration text').fill(dataset);
    await page.getByLabel('Calibration samples').fill('4');
    await page.getByLabel('Calibration sample length').fill('64');
    await page.getByLabel('Eval window length').fill('64');
    // enough eval windows (~a few seconds of CPU) that the page sees eval's progress move, not just its end
    await page.getByLabel('Eval windows').fill('60');
    await page.getByRole('button', { name: 'Run quantize pipeline' }).click();
    const steps = page.locator('ol[aria-label="Pipeline progress"] li');
    await steps.first().waitFor();
    expect(await steps.count()).toBe(4);

    // Sample what the page shows while the pipeline runs: statuses and progress come in over SSE.
    const seen: string[] = [];
    const deadline = Date.now() + 180_000;
    for (;;) {
      const snap = await page.$$eval('ol[aria-label="Pipeline progress"] li', (lis) =>
        lis.map((li) => `${li.getAttribute('data-type')}:${li.getAttribute('data-status')}:${li.querySelector('[role=progressbar]')?.getAttribute('aria-valuenow')}`).join(' '),
      );
      if (seen[seen.length - 1] !== snap) seen.push(snap);
      if (/eval:(completed|failed|cancelled)/.test(snap) || /:failed:/.test(snap)) break;
      if (Date.now() > deadline) throw new Error(`pipeline did not finish; page showed:\n${seen.join('\n')}`);
      await page.waitForTimeout(100);
    }
    await shot('pipeline-running');
    const last = seen[seen.length - 1];
    expect(last).toBe('calibrate:completed:100 auto_awq:completed:100 convert:completed:100 eval:completed:100');
    // the page went from all-queued through running states to all-completed, with no reload in between
    expect(seen[0]).toMatch(/calibrate:(queued|running)/);
    expect(seen.some((s) => /:running:/.test(s))).toBe(true);
    // each step's start and end reached the page as it happened (the tiny model runs each step in well under
    // a second, so fractional progress is watched on a longer job below)
    for (const step of ['calibrate', 'auto_awq', 'convert', 'eval']) {
      const running = seen.findIndex((s) => s.includes(`${step}:running`));
      const done = seen.findIndex((s) => s.includes(`${step}:completed`));
      expect(done).toBeGreaterThan(-1);
      if (running >= 0) expect(running).toBeLessThan(done);
    }
    expect(seen.length).toBeGreaterThanOrEqual(4);
    expect(await page.evaluate(() => (globalThis as any).__noReload)).toBe(true);

    // the tree reloads by itself: fp16 → calibrated → AWQ → workspace, with size and perplexity
    await page.locator('[data-kind="version"][data-format="workspace"]').waitFor({ timeout: 15_000 });
    const tree = await page.$$eval('.tree-item', (items) =>
      items.map((li) => {
        const node = li.querySelector('.node')!;
        return {
          kind: node.getAttribute('data-kind'),
          format: node.getAttribute('data-format'),
          depth: Number((globalThis as any).getComputedStyle(li).getPropertyValue('--depth')),
          ppl: node.querySelector('[data-metric="ppl"]')?.textContent ?? null,
          size: node.querySelector('[data-metric="size"]')?.textContent ?? null,
        };
      }),
    );
    expect(tree.map((n) => `${n.kind}/${n.format ?? '-'}@${n.depth}`)).toEqual(['version/hf@0', 'calibration/-@1', 'version/autoawq@2', 'version/workspace@3']);
    const ws = tree[3];
    expect(ws.ppl).toMatch(/^\d[\d,.]*$/);
    expect(ws.size).toMatch(/KiB|MiB/);
    expect(await unlabeled()).toEqual([]);
    await shot('model-lineage');
  });

  it('evaluates the fp16 version as a single job from the Jobs page, and compares the versions with charts', async () => {
    const tree = (await http('GET', `/models/${modelId}/tree`)).body as { nodes: Array<{ kind: string; id: string; version?: { format: string } }> };
    const fp16 = tree.nodes.find((n) => n.version?.format === 'hf')!;
    await go('/jobs');
    await page.getByRole('heading', { name: 'Jobs', level: 1 }).waitFor();
    await page.getByLabel('Job type').selectOption('eval');
    await page.getByLabel('Version id').fill(fp16.id);
    await page.getByLabel('Job parameters').fill(JSON.stringify({ datasetFile: dataset, seqlen: 64, maxWindows: 6 }));
    await page.getByRole('button', { name: 'Submit job' }).click();
    await page.waitForURL(/#\/jobs\/[0-9a-f-]{36}$/);
    await page.locator('.badge[data-status="completed"]').first().waitFor({ timeout: 120_000 });
    await page.getByRole('log', { name: 'Job log' }).getByText(/completed in/).waitFor({ timeout: 10_000 });
    const log = await page.getByRole('log', { name: 'Job log' }).innerText();
    expect(log).toMatch(/queued on quant/);
    expect(log).toMatch(/started on quant-1/);
    expect(await page.getByRole('link', { name: 'Download eval.json' }).count()).toBe(1);

    await go(`/models/${modelId}`);
    await page.locator('[data-format="hf"] [data-metric="ppl"]').filter({ hasText: /^\d/ }).waitFor({ timeout: 15_000 });
    const compare = page.getByRole('table', { name: 'Version comparison' });
    await compare.waitFor();
    expect(await compare.locator('tbody tr').count()).toBe(3);
    expect(await page.locator('figure.chart svg.recharts-surface').count()).toBeGreaterThanOrEqual(3);
    await page.locator('#compare-title').scrollIntoViewIfNeeded();
    await shot('model-compare');
  });

  it('lists jobs live, with a job detail that has log lines, artifacts and the calibration charts', async () => {
    await go('/jobs');
    const rows = page.locator('table[aria-label="Jobs"] tbody tr');
    await rows.nth(4).waitFor();
    expect(await rows.count()).toBe(5);
    expect(await page.locator('table[aria-label="Jobs"] tbody tr[data-status="completed"]').count()).toBe(5);
    await page.waitForFunction(() => {
      const cells = [...(globalThis as any).document.querySelectorAll('table[aria-label="Jobs"] tbody tr td:nth-child(4)')] as Array<{ textContent: string }>;
      return cells.length === 5 && cells.every((c) => c.textContent === 'quant-1');
    }, undefined, { timeout: 10_000 });
    expect(await unlabeled()).toEqual([]);
    await shot('jobs');

    await page.locator('table[aria-label="Jobs"] tbody tr').filter({ hasText: 'calibrate' }).getByRole('link').first().click();
    await page.getByRole('heading', { name: /calibrate/ }).waitFor();
    await page.locator('[data-testid="calibration-charts"] svg.recharts-surface').first().waitFor({ timeout: 15_000 });
    expect(await page.locator('[data-testid="calibration-charts"] .recharts-wrapper').count()).toBe(3);
    // two decoder layers on the x axis of the activation chart
    const ticks = await page.locator('figure[aria-label="Activation absmax per layer"] .recharts-cartesian-axis-tick-value').allTextContents();
    expect(ticks).toEqual(expect.arrayContaining(['L0', 'L1']));
    expect(await page.getByRole('link', { name: /Download calib_stats.safetensors/ }).count()).toBe(1);
    const steps = await page.locator('ol[aria-label="Pipeline steps"] li').count();
    expect(steps).toBe(4);
    expect(await unlabeled()).toEqual([]);
    await shot('job-calibrate');

    // the engine's own lines reach the job's log: auto_awq's scale search per layer
    await page.getByRole('link', { name: 'auto_awq' }).click();
    await page.getByRole('heading', { name: /auto_awq/ }).waitFor();
    await page.getByRole('log', { name: 'Job log' }).getByText(/layer 0: best alpha/).waitFor({ timeout: 10_000 });
  });

  it('shows a long job progress moving in the jobs list, cancels a job and retries it from the UI', async () => {
    const tree = (await http('GET', `/models/${modelId}/tree`)).body as { nodes: Array<{ id: string; version?: { format: string } }> };
    const fp16 = tree.nodes.find((n) => n.version?.format === 'hf')!;
    // a long eval (every window of the text) keeps the worker busy; its progress bar moves without a reload
    await go('/jobs');
    await page.getByRole('table', { name: 'Jobs' }).waitFor();
    const longText = path.join(env.modelRoot, 'long.txt');
    fs.writeFileSync(longText, fs.readFileSync(dataset, 'utf8').repeat(8));
    const long = (await http('POST', '/jobs', { type: 'eval', params: { versionId: fp16.id, datasetFile: longText, seqlen: 64, maxWindows: 100000 } })).body as { id: string };
    const bar = page.locator(`tr[data-job-id="${long.id}"] [role=progressbar]`);
    await bar.waitFor({ timeout: 10_000 });
    const values = new Set<number>();
    const until = Date.now() + 60_000;
    let shotTaken = false;
    while (values.size < 3 && Date.now() < until) {
      const v = Number(await bar.getAttribute('aria-valuenow'));
      if (v > 0 && v < 100) {
        values.add(v);
        if (!shotTaken) await shot('jobs-running');
        shotTaken = true;
      }
      if ((await page.locator(`tr[data-job-id="${long.id}"]`).getAttribute('data-status')) === 'completed') break;
      await page.waitForTimeout(100);
    }
    expect(values.size).toBeGreaterThanOrEqual(1);
    // the next job waits in the queue behind it and is cancelled there
    const queued = (await http('POST', '/jobs', { type: 'eval', params: { versionId: fp16.id, datasetFile: dataset, seqlen: 64, maxWindows: 2 } })).body as { id: string };
    await go(`/jobs/${queued.id}`);
    await page.getByRole('button', { name: /^Cancel eval job/ }).click();
    await page.locator('.title-row .badge[data-status="cancelled"]').waitFor({ timeout: 10_000 });
    // (the long eval may have finished by now: then there is nothing to cancel)
    expect([200, 409]).toContain((await http('POST', `/jobs/${long.id}/cancel`)).status);
    await page.getByRole('button', { name: /^Retry eval job/ }).click();
    await page.waitForURL((u) => /#\/jobs\/[0-9a-f-]{36}$/.test(u.toString()) && !u.toString().endsWith(queued.id));
    const retriedId = /#\/jobs\/([0-9a-f-]{36})$/.exec(page.url())![1];
    await page.locator('.title-row .badge[data-status="completed"]').waitFor({ timeout: 120_000 });
    const log = await page.getByRole('log', { name: 'Job log' }).innerText();
    expect(log).toContain(`retry of eval job ${queued.id}`);
    const retried = (await http('GET', `/jobs/${retriedId}`)).body as { params: Record<string, unknown>; status: string };
    expect(retried).toMatchObject({ status: 'completed', params: { versionId: fp16.id, datasetFile: dataset, seqlen: 64, maxWindows: 2 } });
    // the API refuses to retry what did not fail
    expect((await http('POST', `/jobs/${retriedId}/retry`)).status).toBe(409);
  });

  it('retries a cancelled pipeline step by re-running its whole pipeline', async () => {
    const tree = (await http('GET', `/models/${modelId}/tree`)).body as { nodes: Array<{ id: string; version?: { format: string } }> };
    const fp16 = tree.nodes.find((n) => n.version?.format === 'hf')!;
    const body = {
      versionId: fp16.id,
      calibrate: { calibDataset: dataset, calibSamples: 2, calibSeqlen: 32 },
      autoAwq: { wGroupSize: 64, searchScale: false },
      eval: { datasetFile: dataset, seqlen: 32, maxWindows: 2 },
    };
    const flow = (await http('POST', '/pipelines/quantize', body)).body as { flowId: string; jobs: Array<{ id: string; type: string }> };
    const calibrate = flow.jobs.find((j) => j.type === 'calibrate')!;
    // cancelling any step cancels the flow (unless a step already finished: then the later ones are cancelled)
    expect((await http('POST', `/jobs/${flow.jobs.find((j) => j.type === 'eval')!.id}/cancel`)).status).toBe(200);
    await go(`/jobs/${calibrate.id}`);
    await page.locator('ol[aria-label="Pipeline steps"] li[data-status="cancelled"]').first().waitFor({ timeout: 10_000 });
    const evalRow = (await http('GET', `/jobs/${flow.jobs.find((j) => j.type === 'eval')!.id}`)).body as { status: string };
    expect(evalRow.status).toBe('cancelled');
    await page.waitForFunction(() => (globalThis as any).document.querySelector('.title-row .badge')?.dataset.status !== 'running', undefined, { timeout: 30_000 });
    const status = await page.locator('.title-row .badge').getAttribute('data-status');
    if (status === 'completed') {
      // calibrate finished before the cancel reached it: retry a cancelled later step instead
      await go(`/jobs/${flow.jobs.find((j) => j.type === 'eval')!.id}`);
    }
    await page.getByRole('button', { name: /^Retry / }).click();
    await page.waitForURL((u) => /#\/jobs\/[0-9a-f-]{36}$/.test(u.toString()) && !flow.jobs.some((j) => u.toString().endsWith(j.id)));
    const newId = /#\/jobs\/([0-9a-f-]{36})$/.exec(page.url())![1];
    const again = (await http('GET', `/jobs/${newId}`)).body as { flowId: string };
    expect(again.flowId).not.toBe(flow.flowId);
    const steps = ((await http('GET', `/jobs?flowId=${again.flowId}`)).body as { items: Array<{ id: string; type: string; params: Record<string, unknown> }> }).items;
    expect(steps.map((j) => j.type).sort()).toEqual(['auto_awq', 'calibrate', 'convert', 'eval']);
    expect(steps.find((j) => j.type === 'calibrate')!.params).toMatchObject({ versionId: fp16.id, calibDataset: dataset, calibSamples: 2, calibSeqlen: 32 });
    expect(steps.find((j) => j.type === 'auto_awq')!.params).toMatchObject({ wGroupSize: 64, searchScale: false });
    const newEval = steps.find((j) => j.type === 'eval')!;
    await waitFor(async () => ((await http('GET', `/jobs/${newEval.id}`)).body as { status: string }).status === 'completed', 'retried pipeline done', 120_000, 250);
  });

  it('shows the workers with heartbeat and load, deploys the quantized workspace from the UI', async () => {
    await go('/workers');
    await page.getByRole('article', { name: 'Worker quant-1' }).waitFor();
    await page.getByRole('article', { name: 'Worker infer-1' }).waitFor();
    const quant = await page.getByRole('article', { name: 'Worker quant-1' }).innerText();
    expect(quant).toMatch(/online/);
    expect(quant).toMatch(/none \(CPU\)/);
    expect(quant).toMatch(/quant/);

    const tree = (await http('GET', `/models/${modelId}/tree`)).body as { nodes: Array<{ id: string; version?: { format: string } }> };
    const workspace = tree.nodes.find((n) => n.version?.format === 'workspace')!;
    await page.getByLabel('Deployment name').fill('tiny-awq');
    await page.getByLabel('Deployment version id').fill(workspace.id);
    await page.getByLabel('Session length').fill('1024'); // room for a tool list in the prompt (the playground's tools test)
    await page.getByLabel('Enable prefix caching').check();
    await page.getByLabel('Speculative draft tokens').fill('4');
    await page.getByRole('button', { name: 'Deploy', exact: true }).click();
    // the card appears and its worker reports the load state by heartbeat
    await page.locator('[data-deployment="tiny-awq"] [data-worker-state="ready"]').waitFor({ timeout: 90_000 });
    expect(await page.locator('[data-deployment="tiny-awq"] [data-testid="deployment-speculative"]').innerText()).toMatch(/^speculative\s+ngram ×4$/);
    await page.getByRole('article', { name: 'Worker infer-1' }).getByText(/tiny-awq · ready/).waitFor({ timeout: 10_000 });
    // tensor parallelism: the deployment's tp and the ranks the worker runs it on (one cpu rank here)
    expect(await page.locator('[data-deployment="tiny-awq"] [data-testid="deployment-tp"]').innerText()).toMatch(/tp 1\b/);
    expect(await page.locator('[data-deployment="tiny-awq"]').innerText()).toMatch(/KV cache\s+\w+ · prefix caching/);
    await page.locator('[data-deployment="tiny-awq"] [data-testid="deployment-devices"]').getByText('tp 1 on cpu').waitFor({ timeout: 10_000 });
    expect(await unlabeled()).toEqual([]);
    await shot('workers');
  });

  it('chats with the deployment in the playground and shows the answer streaming in', async () => {
    await page.locator('[data-deployment="tiny-awq"]').getByRole('link', { name: 'chat' }).click();
    await page.getByRole('heading', { name: 'Playground', level: 1 }).waitFor();
    const select = page.getByLabel('Deployment', { exact: true });
    await page.waitForFunction(() => ((globalThis as any).document.querySelector('select[aria-label="Deployment"]')?.value ?? '') === 'tiny-awq', undefined, { timeout: 10_000 });
    expect(await select.inputValue()).toBe('tiny-awq');
    await page.getByLabel('Temperature').fill('0');
    await page.getByLabel('Max new tokens').fill('200');
    await page.getByLabel('Seed').fill('7');
    // all 200 tokens (the random tiny model would stop early): long enough for the stream to arrive in pieces
    await page.getByLabel(/ignore EOS/).check();
    // record every text the assistant bubble shows while it streams
    await page.evaluate(() => {
      const g = globalThis as any;
      g.__texts = [];
      const chat = g.document.querySelector('[aria-label="Conversation"]');
      new g.MutationObserver(() => {
        const bubbles = chat.querySelectorAll('[data-role="assistant"] .msg-text');
        const t = bubbles.length ? bubbles[bubbles.length - 1].textContent : '';
        if (t && t !== '…' && g.__texts[g.__texts.length - 1] !== t) g.__texts.push(t);
      }).observe(chat, { subtree: true, childList: true, characterData: true });
    });
    // The page's downloads throttled while the answer streams (Chrome's network emulation): the SSE events then reach
    // the page over many reads whatever the machine's load. Unthrottled, a loaded CI machine once delivered the whole
    // answer in one read, which React rendered once, so "shown as it came" could not be told from "shown at the end".
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 20, downloadThroughput: 16 * 1024, uploadThroughput: -1 });
    await page.getByRole('textbox', { name: 'Message' }).fill('Hello, who are you?');
    await page.getByRole('button', { name: 'Send' }).click();
    await page.locator('[data-role="assistant"] .msg-stats').waitFor({ timeout: 60_000 });
    // the stream has ended when Stop is disabled again
    await streamEnded();
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
    await cdp.detach();
    const texts = (await page.evaluate(() => (globalThis as any).__texts)) as string[];
    const answer = await page.locator('[data-role="assistant"] .msg-text').last().innerText();
    const stats = await page.locator('[data-role="assistant"] .msg-stats').innerText();
    expect(answer.length).toBeGreaterThan(0);
    expect(texts[texts.length - 1]).toBe(answer);
    // streamed: several chunks, shown as they came (each text a prefix of the next)
    expect(Number(/^(\d+) chunks/.exec(stats)![1])).toBeGreaterThanOrEqual(2);
    expect(texts.length).toBeGreaterThanOrEqual(2);
    for (let i = 1; i < texts.length; i++) expect(texts[i].startsWith(texts[i - 1])).toBe(true);
    expect(stats).toMatch(/first token \d+ ms/);
    expect(stats).toMatch(/^\d+ chunks .* · length$/);
    expect(await page.locator('[role=alert]').count()).toBe(0);
    expect(await unlabeled()).toEqual([]);
    await shot('playground');

    // the finished request shows up in the deployment's serving figures (request_timings)
    await go('/workers');
    await page.locator('[data-deployment="tiny-awq"] [data-testid="deployment-stats"]').getByText(/^1 request · TTFT p50 [\d.,]+ ms/).waitFor({ timeout: 20_000 });
    // speculative decoding: the share of drafts accepted, from the worker's engine stats (heartbeat)
    await page.locator('[data-deployment="tiny-awq"] [data-testid="deployment-acceptance"]').getByText(/^ · drafts accepted \d+ % \(\d+ of \d+\)$/).waitFor({ timeout: 20_000 });
    // and in the version's speed figures on its model page
    await go(`/models/${modelId}`);
    await page.locator('[data-format="workspace"] [data-metric="serving"]').getByText(/^[\d,]+ tok\/s · TTFT [\d,]+ ms$/).waitFor({ timeout: 10_000 });
  });

  it('the playground asks for JSON that fits a schema (response_format) and shows it; a schema that is not JSON is refused in the page', async () => {
    await go('/playground');
    await page.getByRole('heading', { name: 'Playground', level: 1 }).waitFor();
    await page.waitForFunction(() => ((globalThis as any).document.querySelector('select[aria-label="Deployment"]')?.value ?? '') !== '', undefined, { timeout: 10_000 });
    await page.getByLabel('Deployment', { exact: true }).selectOption('tiny-awq');
    await page.getByLabel('Temperature').fill('0');
    await page.getByLabel('Response format').selectOption('json_schema');
    await page.getByLabel('JSON schema').fill('{"type": ');
    await page.getByRole('textbox', { name: 'Message' }).fill('Is the fleet up?');
    await page.getByRole('button', { name: 'Send' }).click();
    await page.locator('[role=alert]').getByText(/^JSON schema: /).waitFor({ timeout: 5_000 });
    expect(await page.locator('[data-role="assistant"]').count()).toBe(0); // nothing was sent
    const schema = { type: 'object', properties: { up: { type: 'boolean' }, load: { enum: ['low', 'high'] } }, required: ['up', 'load'] };
    await page.getByLabel('JSON schema').fill(JSON.stringify(schema));
    await page.getByRole('button', { name: 'Send' }).click();
    await page.locator('[data-role="assistant"] .msg-stats').waitFor({ timeout: 60_000 });
    await streamEnded();
    const answer = JSON.parse(await page.locator('[data-role="assistant"] .msg-text').last().innerText());
    expect(Object.keys(answer).sort()).toEqual(['load', 'up']);
    expect(typeof answer.up).toBe('boolean');
    expect(await page.locator('[data-role="assistant"] .msg-stats').innerText()).toMatch(/ · stop$/); // the grammar ended it
    expect(await page.locator('[role=alert]').count()).toBe(0);
    expect(await unlabeled()).toEqual([]);
    await shot('playground-json');
    // vLLM's guided_choice: the answer is exactly one of the lines
    await page.getByLabel('Response format').selectOption('choice');
    await page.getByLabel('Choices').fill('the fleet is up\nthe fleet is down');
    await page.getByRole('textbox', { name: 'Message' }).fill('And now?');
    await page.getByRole('button', { name: 'Send' }).click();
    await page.waitForFunction(() => (globalThis as any).document.querySelectorAll('[data-role="assistant"] .msg-stats').length === 2, undefined, { timeout: 60_000 });
    await streamEnded();
    expect(['the fleet is up', 'the fleet is down']).toContain((await page.locator('[data-role="assistant"] .msg-text').last().innerText()).trim());
    expect(await page.locator('[role=alert]').count()).toBe(0);
    // vLLM's guided_regex, sampled hot with min-p: the whole answer matches the pattern
    await page.getByLabel('Response format').selectOption('regex');
    await page.getByLabel('Regular expression').fill('(up|down), [a-z]{1,5}\\.');
    await page.getByLabel('Temperature').fill('1.2');
    await page.getByLabel('Min p').fill('0.1');
    await page.getByRole('textbox', { name: 'Message' }).fill('Status?');
    await page.getByRole('button', { name: 'Send' }).click();
    await page.waitForFunction(() => (globalThis as any).document.querySelectorAll('[data-role="assistant"] .msg-stats').length === 3, undefined, { timeout: 60_000 });
    await streamEnded();
    expect((await page.locator('[data-role="assistant"] .msg-text').last().innerText()).trim()).toMatch(/^(up|down), [a-z]{1,5}\.$/);
    expect(await page.locator('[role=alert]').count()).toBe(0);
    expect(await unlabeled()).toEqual([]);
    await page.getByLabel('Min p').fill('0');
    await page.getByLabel('Temperature').fill('0');
    await page.getByLabel('Response format').selectOption('text');
  });

  it('the playground sends tools and shows the call the model makes (tool_choice required)', async () => {
    await openPlayground('tiny-awq');
    await page.getByLabel('Response format').selectOption('text');
    await page.getByLabel('Tools').fill('[1, 2');
    await page.getByRole('textbox', { name: 'Message' }).fill('Weather in Paris?');
    await page.getByRole('button', { name: 'Send' }).click();
    await page.locator('[role=alert]').getByText(/^Tools: /).waitFor({ timeout: 5_000 });
    const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 10 } }, required: ['city'], additionalProperties: false } } }];
    await page.getByLabel('Tools').fill(JSON.stringify(tools));
    await page.getByLabel('Tool choice').selectOption('required');
    await page.getByLabel('several tool calls in one reply').uncheck(); // one call: a random model could list calls until max tokens
    await page.getByRole('button', { name: 'Send' }).click();
    await page.locator('[data-role="assistant"] [data-testid="tool-call"]').waitFor({ timeout: 60_000 });
    await streamEnded();
    const call = await page.locator('[data-role="assistant"] [data-testid="tool-call"]').first().innerText();
    const m = /^get_weather\((.*)\)$/s.exec(call.trim());
    expect(m).not.toBeNull();
    expect(Object.keys(JSON.parse(m![1]))).toEqual(['city']);
    expect(await page.locator('[data-role="assistant"] .msg-stats').last().innerText()).toMatch(/ · tool_calls$/);
    expect(await page.locator('[role=alert]').count()).toBe(0);
    expect(await unlabeled()).toEqual([]);
    await page.getByLabel('Tools').fill('');
    await shot('playground-tools');
  });

  it("deploys with a reasoning parser from the UI, and the playground shows the model's thinking apart from the answer", async () => {
    await go('/workers');
    const versionId = (await http('GET', '/deployments/tiny-awq')).body.versionId as string;
    await page.getByLabel('Deployment name').fill('tiny-think');
    await page.getByLabel('Deployment version id').fill(versionId);
    await page.getByLabel('Session length').fill('256');
    await page.getByLabel('Enable prefix caching').uncheck();
    // deepseek_r1: the prompt opened the think block, so this random model's whole reply is thinking (no </think>)
    await page.getByLabel('Reasoning parser').selectOption('deepseek_r1');
    await page.getByRole('button', { name: 'Deploy', exact: true }).click();
    await page.locator('[data-deployment="tiny-think"] [data-worker-state="ready"]').waitFor({ timeout: 90_000 });
    expect(await page.locator('[data-deployment="tiny-think"]').innerText()).toMatch(/Reasoning parser\s+deepseek_r1/);
    await openPlayground('tiny-think');
    await page.getByLabel('Max new tokens').fill('12');
    await page.getByLabel('Tools').fill('');
    await page.getByLabel('Response format').selectOption('text');
    await page.getByRole('textbox', { name: 'Message' }).fill('Think it over');
    await page.getByRole('button', { name: 'Send' }).click();
    await streamEnded();
    const thinking = page.locator('[data-role="assistant"] [data-testid="reasoning"]').last();
    await thinking.waitFor({ timeout: 10_000 });
    const api = await http('POST', '/v1/chat/completions', { model: 'tiny-think', messages: [{ role: 'user', content: 'Think it over' }], max_tokens: 12, temperature: 0, ignore_eos: true });
    // the page shows the same thinking the API returns (the page's request may stop at EOS: a prefix of it)
    // (collapsed once the answer is in: textContent, which innerText of a closed <details> is not)
    const shown = ((await thinking.locator('.msg-text').textContent()) ?? '').trim();
    expect(shown.length).toBeGreaterThan(0);
    expect(api.body.choices[0].message.reasoning_content.startsWith(shown)).toBe(true);
    expect(await page.locator('[data-role="assistant"] > .msg-text').last().innerText()).toBe('');
    expect(await unlabeled()).toEqual([]);
  });

  it('is usable on a phone-sized screen: no sideways scrolling, a menu button for the navigation', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    try {
      for (const [hash, name] of [[`/models/${modelId}`, 'mobile-model'], ['/jobs', 'mobile-jobs'], ['/playground', 'mobile-playground']] as const) {
        // a fresh load at phone size, as a phone would (not a desktop layout squeezed after the fact)
        await page.goto(`${base}/#${hash}`);
        await page.reload();
        await page.locator('main h1').waitFor();
        // charts re-measure their container after the resize (ResizeObserver): let the layout settle
        await page.waitForFunction(() => {
          const d = (globalThis as any).document.documentElement;
          return d.scrollWidth <= d.clientWidth;
        }, undefined, { timeout: 5_000 }).catch(() => undefined);
        // elements that stick out to the right of the viewport (inside a scroll box is fine)
        const wide = await page.evaluate(() => {
          const doc = (globalThis as any).document;
          const w = doc.documentElement.clientWidth;
          const out: string[] = [];
          for (const el of doc.querySelectorAll('body *')) {
            const r = el.getBoundingClientRect();
            if (r.right <= w + 1 || r.width === 0) continue;
            let clipped = false;
            const pos = (globalThis as any).getComputedStyle(el).position;
            // an absolutely positioned element is clipped only by scroll boxes from its containing block up
            const from = pos === 'absolute' ? el.offsetParent : pos === 'fixed' ? null : el.parentElement;
            for (let p = from; p && p !== doc.body; p = p.parentElement) {
              const ov = (globalThis as any).getComputedStyle(p).overflowX;
              if (ov === 'auto' || ov === 'scroll' || ov === 'hidden') clipped = true;
            }
            if (!clipped) out.push(`${el.tagName.toLowerCase()}.${el.className} ${pos} "${String(el.textContent).slice(0, 20)}" right=${Math.round(r.right)}`);
          }
          out.sort((a, b) => Number(b.split('right=')[1]) - Number(a.split('right=')[1]));
          return { sideways: doc.documentElement.scrollWidth - w, out: out.slice(0, 8) };
        });
        await shot(name);
        expect(wide).toEqual({ sideways: 0, out: [] });
      }
      const menu = page.getByRole('button', { name: 'Menu' });
      expect(await page.getByRole('navigation', { name: 'Main' }).isVisible()).toBe(false);
      await menu.click();
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Workers' }).click();
      await page.getByRole('heading', { name: 'Workers', level: 1 }).waitFor();
      expect(await page.getByRole('navigation', { name: 'Main' }).isVisible()).toBe(false);
    } finally {
      await page.setViewportSize({ width: 1400, height: 900 });
    }
  });

  it('asks for an API key when the API has keys on, and sends it as a Bearer token', async () => {
    const port = await freePort();
    const keyed = startApp('api', 'api-keys', { ...env.env, PORT: String(port), API_KEYS: 'sk-dashboard-e2e-key', RUN_MIGRATIONS: 'false' }, logDir);
    procs.push(keyed);
    const url = `http://127.0.0.1:${port}`;
    await waitFor(async () => (await fetch(`${url}/health`).catch(() => null))?.ok, 'keyed api health', 60_000, 250);
    expect((await fetch(`${url}/models`)).status).toBe(401);
    // bull-board answers only with a key (HTTP Basic, the key as password, is what a browser can send)
    expect((await fetch(`${url}/admin/queues`)).status).toBe(401);
    const basic = `Basic ${Buffer.from('ops:sk-dashboard-e2e-key').toString('base64')}`;
    expect((await fetch(`${url}/admin/queues`, { headers: { authorization: basic } })).status).toBe(200);

    const p2 = await browser.context.newPage();
    await p2.goto(`${url}/#/models`);
    await p2.getByRole('heading', { name: 'API key required' }).waitFor({ timeout: 10_000 });
    await shot2(p2, 'api-key-prompt');
    await p2.getByRole('textbox', { name: 'API key' }).fill('sk-dashboard-e2e-key');
    await p2.getByRole('button', { name: 'Use key' }).click();
    await p2.getByRole('table', { name: 'Models' }).getByRole('link', { name: 'tiny-qwen2' }).waitFor({ timeout: 10_000 });
    await p2.locator('.live-on').waitFor({ timeout: 10_000 }); // the SSE stream got in with the key too
    await p2.close();
  });
});

async function shot2(p: Page, name: string): Promise<void> {
  await p.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}
