// Remote mode (`--api URL`): the commands run as jobs on an LMFleet platform, over its REST API only.
// Ctrl-C while waiting just exits; the job keeps running on the platform.
import { isBuiltinCalibDataset } from '@lmfleet/engine/quant/datasets';
import * as path from 'node:path';
import { CliExit, type CliIO } from './io';
import { ProgressBar } from './progress';

export type Fetch = typeof fetch;

export interface RemoteJob {
  id: string;
  type: string;
  status: string;
  progress: number;
  error: string | null;
  result: Record<string, unknown> | null;
  createdAt?: string;
}

export class ApiClient {
  constructor(
    readonly base: string,
    private readonly fetchFn: Fetch = fetch,
    /** Sent as `Authorization: Bearer` (a platform started with API_KEYS). */
    private readonly apiKey?: string,
  ) {}

  async request<T = any>(method: string, url: string, body?: unknown): Promise<{ status: number; body: T }> {
    let res: Response;
    try {
      res = await this.fetchFn(new URL(url.replace(/^\//, ''), this.base.endsWith('/') ? this.base : `${this.base}/`), {
        method,
        headers: {
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...(this.apiKey ? { authorization: `Bearer ${this.apiKey}` } : {}),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new CliExit(1, `error: cannot reach the LMFleet API at ${this.base}: ${(e as Error).message}`);
    }
    const text = await res.text();
    let parsed: any = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      /* not JSON */
    }
    return { status: res.status, body: parsed as T };
  }

  /** Like request, but a non-2xx answer (other than those in `allow`) exits 1 with the API's message. */
  async call<T = any>(method: string, url: string, body?: unknown, allow: number[] = []): Promise<{ status: number; body: T }> {
    const r = await this.request<T>(method, url, body);
    if ((r.status < 200 || r.status >= 300) && !allow.includes(r.status)) throw new CliExit(1, apiErrorMessage(method, url, r.status, r.body));
    return r;
  }
}

export function apiErrorMessage(method: string, url: string, status: number, body: any): string {
  const msg = body && typeof body === 'object' ? (Array.isArray(body.message) ? body.message.join('; ') : body.message) : body;
  const details = body?.details ? ` ${JSON.stringify(body.details)}` : '';
  return `error: ${method} ${url}: ${status}${body?.error ? ` ${body.error}` : ''}: ${msg ?? '(no message)'}${details}`;
}

/** Registers MODEL_DIR (or finds it when already registered) and returns its base version id. */
export async function resolveVersion(api: ApiClient, modelDir: string | undefined, versionId: string | undefined): Promise<string> {
  if (versionId) return versionId;
  if (!modelDir) throw new CliExit(2, 'error: give a model directory or --version-id');
  const abs = path.resolve(modelDir);
  const r = await api.call('POST', '/models', { path: abs }, [409]);
  let modelId: string;
  if (r.status === 409) {
    const list = await api.call<{ items: Array<{ id: string; sourcePath: string }> }>('GET', '/models?limit=200');
    const m = list.body.items.find((x) => x.sourcePath === abs || path.resolve(x.sourcePath) === abs);
    if (!m) throw new CliExit(1, `error: ${abs} is registered but not found in GET /models?limit=200`);
    modelId = m.id;
  } else {
    if (r.body?.version?.id && r.body.version.parentVersionId === null) return r.body.version.id as string;
    modelId = r.body.model.id;
  }
  const versions = (await api.call<Array<{ id: string; parentVersionId: string | null }>>('GET', `/models/${modelId}/versions`)).body;
  const base = versions.find((v) => v.parentVersionId === null);
  if (!base) throw new CliExit(1, `error: model ${modelId} has no base version`);
  return base.id;
}

export interface RunJobOptions {
  pollMs?: number;
  json?: boolean;
  label: string;
}

/** Submits a job, shows its progress on stderr until it finishes, prints result/artifacts; throws CliExit on failure. */
export async function runRemoteJob(io: CliIO, api: ApiClient, type: string, params: Record<string, unknown>, o: RunJobOptions): Promise<RemoteJob> {
  const created = (await api.call<RemoteJob>('POST', '/jobs', { type, params })).body;
  io.stderr.write(`submitted ${type} job ${created.id} to ${api.base} (Ctrl-C stops waiting; the job keeps running)\n`);
  const bar = new ProgressBar(io.stderr, o.label);
  let job = created;
  for (;;) {
    job = (await api.call<RemoteJob>('GET', `/jobs/${created.id}`)).body;
    if (['completed', 'failed', 'cancelled'].includes(job.status)) break;
    bar.update(Math.round((job.progress ?? 0) * 1000), 1000, job.status);
    await new Promise((r) => setTimeout(r, o.pollMs ?? 500));
  }
  if (job.status !== 'completed') throw new CliExit(1, `error: ${type} job ${job.id} ${job.status}: ${job.error ?? '(no error message)'}`);
  bar.update(1000, 1000, 'completed');
  const artifacts = (await api.call<Array<Record<string, unknown>>>('GET', `/jobs/${job.id}/artifacts`)).body ?? [];
  printJobResult(io, job, artifacts, !!o.json);
  return job;
}

export function printJobResult(io: CliIO, job: RemoteJob, artifacts: Array<Record<string, unknown>>, json: boolean): void {
  const newVersion = job.type !== 'eval' && typeof job.result?.versionId === 'string' ? (job.result.versionId as string) : undefined;
  if (json) {
    io.stdout.write(JSON.stringify({ jobId: job.id, type: job.type, status: job.status, result: job.result, artifacts, ...(newVersion ? { versionId: newVersion } : {}) }) + '\n');
    return;
  }
  io.stdout.write(`job ${job.id} (${job.type}) ${job.status}\n`);
  io.stdout.write(`result: ${JSON.stringify(job.result)}\n`);
  for (const a of artifacts) io.stdout.write(`artifact ${a.id}: ${a.kind ?? ''} ${a.name ?? a.path ?? ''} ${a.sizeBytes ?? a.size ?? ''}\n`.replace(/ +\n$/, '\n'));
  if (newVersion) io.stdout.write(`new version: ${newVersion}\n`);
}

// ---- flag → params mapping (LMDeploy flags to the platform's job params) ----

/** A built-in calibration set travels by name; a file by its absolute path. */
function datasetParam(d: string): string {
  return isBuiltinCalibDataset(d) ? d : path.resolve(d);
}

export function calibrateParams(versionId: string, f: { calibDataset: string; calibSamples: number; calibSeqlen: number }): Record<string, unknown> {
  return { versionId, calibDataset: datasetParam(f.calibDataset), calibSamples: f.calibSamples, calibSeqlen: f.calibSeqlen };
}

export function autoAwqParams(
  versionId: string,
  f: { calibDataset: string; calibSamples: number; calibSeqlen: number; wBits: number; wGroupSize: number; wSym?: boolean; searchScale: boolean; searchClip: boolean },
): Record<string, unknown> {
  if (f.wSym) throw new CliExit(2, 'lmfleet lite auto_awq: --w-sym is not supported: the AutoAWQ GEMM layout is asymmetric (zero points)');
  return {
    versionId,
    calibDataset: datasetParam(f.calibDataset),
    calibSamples: f.calibSamples,
    calibSeqlen: f.calibSeqlen,
    wBits: f.wBits,
    wGroupSize: f.wGroupSize,
    searchScale: f.searchScale,
    searchClip: f.searchClip,
  };
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * --quant-policy and --kv-calib-dir as job params. On the platform the calibration can be a directory the workers can
 * read (under the platform's MODEL_ROOTS, sent as an absolute path) or a `lite calibrate --api` job's id.
 */
export function kvQuantParams(f: { quantPolicy?: string; kvCalibDir?: string }): Record<string, unknown> {
  return {
    ...(f.quantPolicy !== undefined ? { quantPolicy: Number(f.quantPolicy) } : {}),
    ...(f.kvCalibDir !== undefined ? (UUID_RE.test(f.kvCalibDir) ? { kvCalibJobId: f.kvCalibDir } : { kvCalibDir: path.resolve(f.kvCalibDir) }) : {}),
  };
}

export function convertParams(versionId: string, f: { tp: number; modelFormat?: string; quantPolicy?: string; kvCalibDir?: string }): Record<string, unknown> {
  if (f.tp !== 1) throw new CliExit(2, `lmfleet convert: --tp ${f.tp}: tensor parallelism is not supported yet (use --tp 1)`);
  return { versionId, format: 'workspace', ...kvQuantParams(f) };
}

export function evalParams(versionId: string, f: { dataset: string; seqlen: number; maxWindows?: number; quantPolicy?: string; kvCalibDir?: string }): Record<string, unknown> {
  return { versionId, datasetFile: path.resolve(f.dataset), seqlen: f.seqlen, ...(f.maxWindows !== undefined ? { maxWindows: f.maxWindows } : {}), ...kvQuantParams(f) };
}

export async function listJobs(io: CliIO, api: ApiClient, json: boolean): Promise<void> {
  const r = (await api.call<{ items: RemoteJob[]; total: number }>('GET', '/jobs?limit=50')).body;
  if (json) {
    io.stdout.write(JSON.stringify(r) + '\n');
    return;
  }
  for (const j of r.items) io.stdout.write(`${j.id}  ${j.type.padEnd(9)} ${j.status.padEnd(9)} ${Math.round((j.progress ?? 0) * 100)}%  ${j.createdAt ?? ''}\n`);
  io.stdout.write(`${r.items.length} of ${r.total} jobs\n`);
}

export async function showJob(io: CliIO, api: ApiClient, id: string, json: boolean): Promise<void> {
  const job = (await api.call<RemoteJob>('GET', `/jobs/${id}`)).body;
  const artifacts = (await api.call<Array<Record<string, unknown>>>('GET', `/jobs/${id}/artifacts`)).body ?? [];
  if (json) io.stdout.write(JSON.stringify({ ...job, artifacts }) + '\n');
  else {
    io.stdout.write(`job ${job.id} (${job.type}) ${job.status} ${Math.round((job.progress ?? 0) * 100)}%${job.error ? `: ${job.error}` : ''}\n`);
    io.stdout.write(`result: ${JSON.stringify(job.result)}\n`);
    for (const a of artifacts) io.stdout.write(`artifact ${a.id}: ${a.kind ?? ''} ${a.name ?? ''}\n`);
  }
}
