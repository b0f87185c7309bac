import { useEffect, useState } from 'react';
import { ApiError } from '../api';
import { Card, Empty, ErrorNote, StatusBadge } from '../components';
import { ago, bytes, num, shortId } from '../format';
import { useNow, useResource } from '../hooks';
import { useWorkerEvents } from '../live';
import { Link } from '../router';
import type { Worker } from '../types';

/** A deployment as the serving API reports it: the fields we know, the rest shown as metrics. */
type Deployment = Record<string, unknown> & { id?: string; deploymentId?: string; status?: string; versionId?: string; metrics?: Record<string, unknown> };

function isNumberLike(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

function Deployments() {
  const deps = useResource<Deployment[] | { items: Deployment[] }>('/deployments', 5000);
  if (deps.error instanceof ApiError && deps.error.status === 404) {
    return <Empty>This API has no deployments endpoint yet; loaded deployments are listed on each worker above.</Empty>;
  }
  if (deps.error) return <ErrorNote error={deps.error} />;
  const list = Array.isArray(deps.data) ? deps.data : deps.data?.items ?? [];
  if (!deps.data) return <p className="muted">Loading…</p>;
  if (!list.length) return <Empty>No deployment.</Empty>;
  return (
    <div className="grid">
      {list.map((d, i) => {
        const id = String(d.id ?? d.deploymentId ?? i);
        const metrics = Object.entries({ ...(d.metrics ?? {}), ...Object.fromEntries(Object.entries(d).filter(([, v]) => isNumberLike(v))) }).filter(([, v]) => isNumberLike(v));
        return (
          <article key={id} className="worker" aria-label={`Deployment ${id}`}>
            <header>
              <h3>{id}</h3>
              {d.status && <StatusBadge status={String(d.status)} />}
            </header>
            <dl className="kv">
              {d.versionId && (
                <>
                  <dt>version</dt>
                  <dd className="mono">{shortId(String(d.versionId))}</dd>
                </>
              )}
              {Object.entries(d)
                .filter(([k, v]) => !['id', 'deploymentId', 'status', 'versionId', 'metrics'].includes(k) && (typeof v === 'string' || typeof v === 'boolean'))
                .slice(0, 6)
                .map(([k, v]) => (
                  <div key={k} className="kv-row">
                    <dt>{k}</dt>
                    <dd>{String(v)}</dd>
                  </div>
                ))}
              {metrics.map(([k, v]) => (
                <div key={k} className="kv-row">
                  <dt>{k}</dt>
                  <dd>{num(v as number, 2)}</dd>
                </div>
              ))}
            </dl>
          </article>
        );
      })}
    </div>
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
                            <span key={d.deploymentId} className="tag">
                              {d.deploymentId} <span className="mono">{shortId(d.versionId)}</span>
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
