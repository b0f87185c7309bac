// `lmfleet deploy MODEL_DIR|--version-id ID --name NAME --api URL`: puts a version behind the platform's OpenAI API
// and waits until a worker-infer reports it ready. `lmfleet deployments` lists them; `lmfleet undeploy NAME` removes one.
import type { SpeculativeConfig } from '@lmfleet/engine';
import { CliExit, type CliIO } from '../io';
import { resolveVersion, type ApiClient } from '../remote';

export interface DeployFlags {
  name: string;
  versionId?: string;
  sessionLen?: number;
  cacheMaxEntryCount?: number;
  maxBatchSize?: number;
  maxPending?: number;
  quantPolicy?: number;
  /** LMDeploy's --tp: each worker shards the model over this many GPUs of its host. */
  tp?: number;
  /** LMDeploy's --enable-prefix-caching. */
  enablePrefixCaching?: boolean;
  /** vLLM's / LMDeploy's --reasoning-parser (normalized by the option parser). */
  reasoningParser?: string;
  /** --speculative-algorithm ngram and its counts (options.ts speculativeFromFlags). */
  speculative?: SpeculativeConfig;
  wait: boolean;
  timeout: number;
  json: boolean;
}

interface DeploymentView {
  id: string;
  name: string;
  versionId: string;
  kvPolicy: string;
  maxBatchSize: number;
  maxPending: number;
  sessionLen: number | null;
  tp?: number;
  speculative?: { method: string; numDraftTokens: number } | null;
  workers: Array<{ workerName: string; state?: string; error?: string; activeRequests?: number; sessionLen?: number; devices?: string[] }>;
}

/** LMDeploy's --quant-policy (0: fp16 KV, 8: int8, 4: int4) to our kvPolicy. */
export function kvPolicyOf(quantPolicy: number | undefined): string | undefined {
  if (quantPolicy === undefined) return undefined;
  const p = ({ 0: 'fp16', 8: 'int8', 4: 'int4' } as Record<number, string>)[quantPolicy];
  if (!p) throw new CliExit(2, `lmfleet deploy: --quant-policy ${quantPolicy}: use 0 (fp16 KV), 8 (int8) or 4 (int4)`);
  return p;
}

export function deployBody(versionId: string, f: DeployFlags): Record<string, unknown> {
  const kvPolicy = kvPolicyOf(f.quantPolicy);
  return {
    name: f.name,
    versionId,
    ...(kvPolicy ? { kvPolicy } : {}),
    ...(f.sessionLen !== undefined ? { sessionLen: f.sessionLen } : {}),
    ...(f.cacheMaxEntryCount !== undefined ? { cacheMaxEntryCount: f.cacheMaxEntryCount } : {}),
    ...(f.maxBatchSize !== undefined ? { maxBatchSize: f.maxBatchSize } : {}),
    ...(f.maxPending !== undefined ? { maxPending: f.maxPending } : {}),
    ...(f.tp !== undefined && f.tp !== 1 ? { tp: f.tp } : {}),
    ...(f.enablePrefixCaching ? { enablePrefixCaching: true } : {}),
    ...(f.reasoningParser ? { reasoningParser: f.reasoningParser } : {}),
    ...(f.speculative ? { speculative: f.speculative } : {}),
  };
}

export async function deployCommand(io: CliIO, api: ApiClient, modelDir: string | undefined, f: DeployFlags, pollMs: number): Promise<void> {
  const versionId = await resolveVersion(api, modelDir, f.versionId);
  const created = (await api.call<DeploymentView>('POST', '/deployments', deployBody(versionId, f))).body;
  io.stderr.write(`deployment ${created.name} (${created.id}) created for version ${versionId}\n`);
  let view = created;
  if (f.wait) {
    const end = Date.now() + f.timeout * 1000;
    for (;;) {
      view = (await api.call<DeploymentView>('GET', `/deployments/${created.id}`)).body;
      const failed = view.workers.find((w) => w.state === 'failed');
      if (failed) throw new CliExit(1, `error: worker ${failed.workerName} could not load ${view.name}: ${failed.error ?? 'unknown error'}`);
      if (view.workers.some((w) => w.state === 'ready')) break;
      if (Date.now() > end) throw new CliExit(1, `error: no worker-infer reported ${view.name} ready within ${f.timeout} s (is one running?)`);
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }
  if (f.json) {
    io.stdout.write(JSON.stringify(view) + '\n');
    return;
  }
  io.stdout.write(describe(view));
  io.stdout.write(`try: curl ${api.base.replace(/\/$/, '')}/v1/chat/completions -H 'content-type: application/json' -d '{"model":"${view.name}","messages":[{"role":"user","content":"Hi"}]}'\n`);
}

export async function listDeployments(io: CliIO, api: ApiClient, json: boolean): Promise<void> {
  const all = (await api.call<DeploymentView[]>('GET', '/deployments')).body;
  if (json) {
    io.stdout.write(JSON.stringify(all) + '\n');
    return;
  }
  for (const d of all) io.stdout.write(describe(d));
  io.stdout.write(`${all.length} deployment(s)\n`);
}

export async function undeployCommand(io: CliIO, api: ApiClient, name: string): Promise<void> {
  const d = (await api.call<DeploymentView>('DELETE', `/deployments/${encodeURIComponent(name)}`)).body;
  io.stdout.write(`undeployed ${d.name} (${d.id})\n`);
}

function describe(d: DeploymentView): string {
  const workers = d.workers.length
    ? d.workers
        .map((w) => `${w.workerName}:${w.state ?? '?'}${w.devices && w.devices.length > 1 ? `[${w.devices.join(',')}]` : ''}${w.activeRequests ? `(${w.activeRequests} running)` : ''}`)
        .join(', ')
    : 'no worker yet';
  return `${d.name}  version=${d.versionId}  kv=${d.kvPolicy}  maxBatchSize=${d.maxBatchSize}  maxPending=${d.maxPending}  sessionLen=${d.sessionLen ?? 'default'}${(d.tp ?? 1) > 1 ? `  tp=${d.tp}` : ''}${d.speculative ? `  speculative=${d.speculative.method}x${d.speculative.numDraftTokens}` : ''}  workers: ${workers}\n`;
}
