import { useEffect, useState, type FormEvent } from 'react';
import { api, ApiError, post } from '../api';
import { Card, Empty, ErrorNote, Field, Progress, StatusBadge } from '../components';
import { ago, bytes, num, shortId } from '../format';
import { useNow, useResource } from '../hooks';
import { useWorkerEvents } from '../live';
import { Link } from '../router';
import type { Deployment, DeploymentStats, Worker } from '../types';

const KV_POLICIES = ['fp16', 'int8', 'int4', 'auto'];

/** The ranks a worker runs a deployment on: "tp 2 on cuda:0, cuda:1" ("on cpu" for cpu ranks, which are threads). */
function devicesText(devices: string[]): string {
  const uniq = [...new Set(devices)];
  return `tp ${devices.length} on ${uniq.join(', ')}`;
}

function DeployForm({ onDone }: { onDone: () => void }) {
  const [name, setName] = useState('');
  const [versionId, setVersionId] = useState('');
  const [kvPolicy, setKvPolicy] = useState('fp16');
  const [maxBatchSize, setMaxBatchSize] = useState('8');
  const [sessionLen, setSessionLen] = useState('');
  const [tp, setTp] = useState('1');
  const [prefixCaching, setPrefixCaching] = useState(false);
  const [reasoningParser, setReasoningParser] = useState('');
  const [draftTokens, setDraftTokens] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await post('/deployments', {
        name: name.trim(),
        versionId: versionId.trim(),
        kvPolicy,
        maxBatchSize: Number(maxBatchSize),
        ...(sessionLen.trim() ? { sessionLen: Number(sessionLen) } : {}),
        ...(Number(tp) > 1 ? { tp: Number(tp) } : {}),
        ...(prefixCaching ? { enablePrefixCaching: true } : {}),
        ...(reasoningParser ? { reasoningParser } : {}),
        ...(Number(draftTokens) > 0 ? { speculative: { method: 'ngram', numDraftTokens: Number(draftTokens) } } : {}),
      });
      setName('');
      onDone();
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="form-grid" onSubmit={submit} aria-label="Deploy a version">
      <Field label="Name (the OpenAI model id)">
        <input required value={name} onChange={(e) => setName(e.target.value)} aria-label="Deployment name" placeholder="qwen2-awq" />
      </Field>
      <Field label="Version id" hint="from a model's lineage (a workspace or HF version)">
        <input required value={versionId} onChange={(e) => setVersionId(e.target.value)} aria-label="Deployment version id" placeholder="uuid" />
      </Field>
      <Field label="KV cache">
        <select value={kvPolicy} onChange={(e) => setKvPolicy(e.target.value)} aria-label="KV cache policy">
          {KV_POLICIES.map((k) => (
            <option key={k}>{k}</option>
          ))}
        </select>
      </Field>
      <Field label="Max batch size">
        <input type="number" min={1} value={maxBatchSize} onChange={(e) => setMaxBatchSize(e.target.value)} aria-label="Max batch size" />
      </Field>
      <Field label="Session length (optional)">
        <input type="number" min={16} value={sessionLen} onChange={(e) => setSessionLen(e.target.value)} aria-label="Session length" />
      </Field>
      <Field label="Tensor parallel (--tp)" hint="GPUs of one worker's host the model is sharded over">
        <input type="number" min={1} max={64} value={tp} onChange={(e) => setTp(e.target.value)} aria-label="Tensor parallel degree" />
      </Field>
      <Field label="Prefix caching" hint="requests reuse the KV cache of prompt prefixes shared with earlier ones">
        <input type="checkbox" checked={prefixCaching} onChange={(e) => setPrefixCaching(e.target.checked)} aria-label="Enable prefix caching" />
      </Field>
      <Field label="Reasoning parser" hint="reasoning models: the <think> block of chat replies comes back as reasoning_content">
        <select value={reasoningParser} onChange={(e) => setReasoningParser(e.target.value)} aria-label="Reasoning parser">
          <option value="">none</option>
          <option value="qwen3">qwen3 (the reply opens with &lt;think&gt;)</option>
          <option value="deepseek_r1">deepseek_r1 (the prompt opens it: R1, QwQ, *-Thinking)</option>
        </select>
      </Field>
      <Field label="Speculative draft tokens (optional)" hint="n-gram drafts per step (1-15; empty or 0: off): same output, faster when replies repeat their input">
        <input type="number" min={0} max={15} value={draftTokens} onChange={(e) => setDraftTokens(e.target.value)} aria-label="Speculative draft tokens" placeholder="off" />
      </Field>
      <div className="form-actions">
        <button type="submit" className="primary" disabled={busy}>
          {busy ? 'Deploying…' : 'Deploy'}
        </button>
      </div>
      <ErrorNote error={error} />
    </form>
  );
}

function Deployments() {
  const deps = useResource<Deployment[]>('/deployments', 2000);
  const stats = useResource<{ windowMinutes: number; deployments: DeploymentStats[] }>('/dashboard/deployment-stats', 5000);
  const statsOf = (name: string) => stats.data?.deployments.find((x) => x.deploymentName === name);
  const [error, setError] = useState<string>();
  if (deps.error instanceof ApiError && deps.error.status === 404) {
    return <Empty>This API has no deployments endpoint; loaded deployments are listed on each worker above.</Empty>;
  }
  const undeploy = async (d: Deployment) => {
    setError(undefined);
    try {
      await api('DELETE', `/deployments/${encodeURIComponent(d.name)}`);
      deps.reload();
    } catch (err) {
      setError((err as Error).message);
    }
  };
  return (
    <>
      <ErrorNote error={deps.error ?? error} />
      {deps.data && !deps.data.length && <Empty>No deployment: deploy a version below, then chat with it in the Playground.</Empty>}
      <div className="grid">
        {(deps.data ?? []).map((d) => (
          <article key={d.id} className="worker" aria-label={`Deployment ${d.name}`} data-deployment={d.name}>
            <header>
              <h3>{d.name}</h3>
              <span className="actions">
                <Link to={`/playground?model=${encodeURIComponent(d.name)}`}>chat</Link>
                <button type="button" onClick={() => undeploy(d)} aria-label={`Undeploy ${d.name}`}>
                  Undeploy
                </button>
              </span>
            </header>
            <dl className="kv">
              <div className="kv-row"><dt>version</dt><dd className="mono">{shortId(d.versionId)}</dd></div>
              <div className="kv-row"><dt>KV cache</dt><dd>{d.kvPolicy}{d.cacheMaxEntryCount != null ? ` · ${num(d.cacheMaxEntryCount * 100, 0)} % of free memory` : ''}{d.enablePrefixCaching ? ' · prefix caching' : ''}</dd></div>
              {d.reasoningParser && <div className="kv-row"><dt>Reasoning parser</dt><dd>{d.reasoningParser}</dd></div>}
              {d.speculative && (
                <div className="kv-row" data-testid="deployment-speculative">
                  <dt>speculative</dt>
                  <dd>
                    {d.speculative.method} ×{d.speculative.numDraftTokens}
                    {d.speculative.promptLookupMax != null || d.speculative.promptLookupMin != null
                      ? ` · n-grams ${d.speculative.promptLookupMin ?? 1}-${d.speculative.promptLookupMax ?? 4}`
                      : ''}
                  </dd>
                </div>
              )}
              <div className="kv-row"><dt>batch</dt><dd>max {d.maxBatchSize} · queue {d.maxPending}{d.sessionLen ? ` · session ${d.sessionLen}` : ''}</dd></div>
              <div className="kv-row" data-testid="deployment-tp"><dt>tensor parallel</dt><dd>tp {d.tp ?? 1}</dd></div>
              {(() => {
                const st = statsOf(d.name);
                return (
                  <div className="kv-row" data-testid="deployment-stats">
                    <dt>last {stats.data?.windowMinutes ?? 60} min</dt>
                    <dd>
                      {st ? (
                        <>
                          {st.requests} request{st.requests === 1 ? '' : 's'}
                          {st.errors ? <span className="warn"> ({st.errors} failed)</span> : ''} · TTFT p50 {num(st.ttftMsP50, 1)} ms (p95 {num(st.ttftMsP95, 1)}) · decode p50{' '}
                          {num(st.decodeTokensPerSecondP50, 0)} tok/s · {num(st.promptTokens, 0)} in{st.cachedPromptTokens ? ` (${num(st.cachedPromptTokens, 0)} from the prefix cache)` : ''} / {num(st.completionTokens, 0)} out tokens
                        </>
                      ) : (
                        'no request yet'
                      )}
                    </dd>
                  </div>
                );
              })()}
              {d.workers.length === 0 && <div className="kv-row"><dt>workers</dt><dd className="warn">none online serves it</dd></div>}
              {d.workers.map((w) => {
                const used = w.engine ? w.engine.blocksTotal - w.engine.blocksFree : null;
                return (
                  <div className="kv-row" key={w.workerId} data-worker-state={w.state}>
                    <dt>{w.workerName}</dt>
                    <dd>
                      <StatusBadge status={w.state ?? 'unknown'} /> {w.activeRequests ?? 0} running
                      {w.devices && w.devices.length > 0 && <span data-testid="deployment-devices"> · {devicesText(w.devices)}</span>}
                      {w.engine && (
                        <>
                          {' '}· {w.engine.waiting} waiting · KV {used}/{w.engine.blocksTotal} blocks
                          {w.engine.blocksCached ? ` (${w.engine.blocksCached} holding cached prefixes)` : ''}
                          {w.engine.specDraftTokens !== undefined && (
                            <span data-testid="deployment-acceptance">
                              {w.engine.specDraftTokens > 0
                                ? ` · drafts accepted ${num((100 * (w.engine.specAcceptedTokens ?? 0)) / w.engine.specDraftTokens, 0)} % (${num(w.engine.specAcceptedTokens ?? 0, 0)} of ${num(w.engine.specDraftTokens, 0)})`
                                : ' · no drafts yet'}
                            </span>
                          )}
                          <Progress value={w.engine.blocksTotal ? (used ?? 0) / w.engine.blocksTotal : 0} label={`${d.name} KV cache use on ${w.workerName}`} />
                        </>
                      )}
                      {w.error && <span className="error inline"> {w.error}</span>}
                    </dd>
                  </div>
                );
              })}
            </dl>
          </article>
        ))}
      </div>
      <h3>Deploy a version</h3>
      <DeployForm onDone={deps.reload} />
    </>
  );
}

export function WorkersPage() {
  const res = useResource<Worker[]>('/workers');
  const [workers, setWorkers] = useState<Worker[]>();
  const now = useNow(1000);
  useEffect(() => {
    setWorkers(res.data);
  }, [res.data]);
  useWorkerEvents(setWorkers);
  const online = (workers ?? []).filter((w) => w.status === 'online').length;
  return (
    <>
      <h1>Workers</h1>
      <Card title={`Workers${workers ? ` (${online} online of ${workers.length})` : ''}`} id="workers">
        <ErrorNote error={res.error} />
        {workers && workers.length === 0 && <Empty>No worker has registered. Start worker-quant or worker-infer.</Empty>}
        <div className="grid">
          {(workers ?? []).map((w) => {
            const age = now - Date.parse(w.lastHeartbeatAt);
            return (
              <article key={w.id} className={`worker worker-${w.status}`} aria-label={`Worker ${w.name}`} data-worker-kind={w.kind}>
                <header>
                  <h3>{w.name}</h3>
                  <StatusBadge status={w.status} />
                </header>
                <dl className="kv">
                  <div className="kv-row"><dt>kind</dt><dd>{w.kind}</dd></div>
                  <div className="kv-row"><dt>host</dt><dd>{w.host} · pid {w.pid}</dd></div>
                  <div className="kv-row"><dt>GPU</dt><dd>{w.gpu ? `${w.gpu} (${bytes(w.gpuMemoryBytes)})` : 'none (CPU)'}</dd></div>
                  <div className="kv-row"><dt>memory</dt><dd>{bytes(w.memoryBytes)}</dd></div>
                  <div className="kv-row"><dt>load</dt><dd>{w.activeJobs} active job{w.activeJobs === 1 ? '' : 's'}</dd></div>
                  <div className="kv-row">
                    <dt>heartbeat</dt>
                    <dd className={age > 15000 && w.status === 'online' ? 'warn' : ''}>{ago(w.lastHeartbeatAt, now)}</dd>
                  </div>
                  <div className="kv-row"><dt>queues</dt><dd className="mono">{w.queues.join(', ') || '—'}</dd></div>
                  <div className="kv-row">
                    <dt>deployments</dt>
                    <dd>
                      {w.loadedDeployments.length
                        ? w.loadedDeployments.map((d) => (
                            <span key={d.deploymentId} className="tag" title={d.error ?? undefined}>
                              {d.name ?? d.deploymentId} · {d.state ?? 'loaded'}
                              {d.devices && d.devices.length > 0 ? ` · ${devicesText(d.devices)}` : ''}
                              {d.activeRequests ? ` · ${d.activeRequests} running` : ''}
                            </span>
                          ))
                        : '—'}
                    </dd>
                  </div>
                  <div className="kv-row"><dt>jobs</dt><dd><Link to={`/jobs`}>see jobs</Link></dd></div>
                </dl>
              </article>
            );
          })}
        </div>
      </Card>
      <Card title="Deployments" id="deployments">
        <Deployments />
      </Card>
    </>
  );
}
