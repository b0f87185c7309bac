import { useEffect, useRef, useState } from 'react';
import { Bar, CartesianGrid, ComposedChart, Legend, Line, LineChart, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import { authHeaders, getApiKey } from '../api';
import { Card, Empty, ErrorNote, Progress, Stat, StatusBadge } from '../components';
import { ago, bytes, duration, jobDuration, num, shortId } from '../format';
import { useNow, useResource } from '../hooks';
import { useJobEvents } from '../live';
import { Link, navigate } from '../router';
import type { Artifact, CalibStats, JobDetail } from '../types';
import { JobActions } from './Jobs';

const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#4b5563', '#ca8a04'];

async function download(a: Artifact) {
  // With an API key the download needs the Authorization header, which a plain link cannot send.
  const res = await fetch(`/artifacts/${a.id}/download`, { headers: authHeaders() });
  if (!res.ok) throw new Error(`download: HTTP ${res.status}`);
  const url = URL.createObjectURL(await res.blob());
  const link = document.createElement('a');
  link.href = url;
  link.download = a.name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function Artifacts({ items }: { items: Artifact[] }) {
  const [error, setError] = useState<string>();
  if (!items.length) return <Empty>No artifact.</Empty>;
  return (
    <>
      <ErrorNote error={error} />
      <div className="table-wrap">
        <table aria-label="Artifacts">
          <thead>
            <tr>
              <th scope="col">File</th>
              <th scope="col">Kind</th>
              <th scope="col">Size</th>
              <th scope="col">sha256</th>
            </tr>
          </thead>
          <tbody>
            {items.map((a) => (
              <tr key={a.id}>
                <td>
                  {getApiKey() ? (
                    <button type="button" className="link" onClick={() => download(a).catch((e: Error) => setError(e.message))} aria-label={`Download ${a.name}`}>
                      {a.name}
                    </button>
                  ) : (
                    <a href={`/artifacts/${a.id}/download`} download={a.name} aria-label={`Download ${a.name}`}>
                      {a.name}
                    </a>
                  )}
                </td>
                <td>{a.kind}</td>
                <td>{bytes(a.bytes)}</td>
                <td className="mono truncate" title={a.sha256}>
                  {a.sha256.slice(0, 16)}…
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}

function CalibrationCharts({ jobId }: { jobId: string }) {
  const stats = useResource<CalibStats>(`/jobs/${jobId}/calibration`);
  if (stats.error) return <ErrorNote error={stats.error} />;
  const s = stats.data;
  if (!s) return <p className="muted">Loading calibration statistics…</p>;
  const absmax = s.layers.map((l) => ({ layer: `L${l.layer}`, ...Object.fromEntries(s.linearNames.map((n) => [n, l.linears[n]?.absmax ?? null])) }));
  const absmean = s.layers.map((l) => ({ layer: `L${l.layer}`, ...Object.fromEntries(s.linearNames.map((n) => [n, l.linears[n]?.absmean ?? null])) }));
  const kv = s.layers
    .filter((l) => l.k || l.v)
    .map((l) => ({
      layer: `L${l.layer}`,
      kMin: l.k ? Math.min(...l.k.min) : null,
      kMax: l.k ? Math.max(...l.k.max) : null,
      vMin: l.v ? Math.min(...l.v.min) : null,
      vMax: l.v ? Math.max(...l.v.max) : null,
    }));
  const outliers = s.layers.flatMap((l) =>
    Object.entries(l.linears).map(([name, v]) => ({ layer: l.layer, name, ratio: v.absmean > 0 ? v.absmax / v.absmean : 0, top: v.topChannels })),
  );
  outliers.sort((a, b) => b.ratio - a.ratio);
  return (
    <div className="charts" data-testid="calibration-charts">
      <figure className="chart" aria-label="Activation absmax per layer">
        <figcaption>Input activation absmax per layer and linear</figcaption>
        <ResponsiveContainer width="100%" height={240}>
          <LineChart data={absmax} margin={{ top: 8, right: 8, bottom: 8, left: 0 }}>
            <CartesianGrid strokeDasharray="3 3" />
            <XAxis dataKey="layer" tick={{ fontSize: 11 }} />
            <YAxis tick={{ fontSize: 11 }} width={56} />
            <Tooltip formatter={(v) => num(Number(v), 4)} />
            <Legend wrapperStyle={{ fontSize: 11 }} />
            {s.linearNames.map((n, i) => (
              <Line key={n} type="monotone" dataKey={n} stroke={COLORS[i % COLORS.length]} dot isAnimationActive={false} />
            ))}
          </LineChart>
        </ResponsiveContainer>
      </figure>
      <figure className="chart" aria-label="Activation mean absolute value per layer">
        <figcaption>Input activation mean |x| per layer and linear</figcaption>
        <ResponsiveContainer width="100%" height={240}>
          <LineChart data={absmean} margin={{ top: 8, right: 8, bottom: 8, left: 0 }}>
            <CartesianGrid strokeDasharray="3 3" />
            <XAxis dataKey="layer" tick={{ fontSize: 11 }} />
            <YAxis tick={{ fontSize: 11 }} width={56} />
            <Tooltip formatter={(v) => num(Number(v), 4)} />
            <Legend wrapperStyle={{ fontSize: 11 }} />
            {s.linearNames.map((n, i) => (
              <Line key={n} type="monotone" dataKey={n} stroke={COLORS[i % COLORS.length]} dot isAnimationActive={false} />
            ))}
          </LineChart>
        </ResponsiveContainer>
      </figure>
      <figure className="chart" aria-label="K and V ranges per layer">
        <figcaption>K / V cache ranges per layer (min and max over heads)</figcaption>
        {kv.length ? (
          <ResponsiveContainer width="100%" height={240}>
            <ComposedChart data={kv} margin={{ top: 8, right: 8, bottom: 8, left: 0 }}>
              <CartesianGrid strokeDasharray="3 3" />
              <XAxis dataKey="layer" tick={{ fontSize: 11 }} />
              <YAxis tick={{ fontSize: 11 }} width={56} />
              <Tooltip formatter={(v) => num(Number(v), 4)} />
              <Legend wrapperStyle={{ fontSize: 11 }} />
              <Bar dataKey="kMin" name="K min" fill="#93c5fd" isAnimationActive={false} />
              <Bar dataKey="kMax" name="K max" fill="#2563eb" isAnimationActive={false} />
              <Bar dataKey="vMin" name="V min" fill="#fca5a5" isAnimationActive={false} />
              <Bar dataKey="vMax" name="V max" fill="#dc2626" isAnimationActive={false} />
            </ComposedChart>
          </ResponsiveContainer>
        ) : (
          <Empty>No K/V statistics in this calibration.</Empty>
        )}
      </figure>
      <figure className="chart" aria-label="Outlier channels">
        <figcaption>Largest absmax / mean |x| ratios (outlier channels AWQ protects)</figcaption>
        <div className="table-wrap">
          <table aria-label="Outlier channels">
            <thead>
              <tr>
                <th scope="col">Layer</th>
                <th scope="col">Linear</th>
                <th scope="col">absmax / mean</th>
                <th scope="col">Top channels</th>
              </tr>
            </thead>
            <tbody>
              {outliers.slice(0, 6).map((o) => (
                <tr key={`${o.layer}.${o.name}`}>
                  <td>{o.layer}</td>
                  <td>{o.name}</td>
                  <td>{num(o.ratio, 1)}</td>
                  <td className="mono">{o.top.slice(0, 3).map((c) => `#${c.channel}`).join(' ')}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </figure>
    </div>
  );
}

export function JobDetailPage({ id }: { id: string }) {
  const detail = useResource<JobDetail>(`/jobs/${id}/detail`);
  const now = useNow(1000);
  const pending = useRef<ReturnType<typeof setTimeout> | null>(null);
  useJobEvents((job) => {
    if (job.id !== id && !(detail.data?.job.flowId && job.flowId === detail.data.job.flowId)) return;
    // the event carries the row; the log and artifacts come with a (throttled) reload
    detail.setData((d) => (d && job.id === id ? { ...d, job } : d));
    if (!pending.current) pending.current = setTimeout(() => ((pending.current = null), detail.reload()), 700);
  });
  useEffect(() => () => void (pending.current && clearTimeout(pending.current)), []);
  const logBox = useRef<HTMLDivElement>(null);
  useEffect(() => {
    // follow the tail of the log inside its box (not the page)
    if (logBox.current) logBox.current.scrollTop = logBox.current.scrollHeight;
  }, [detail.data?.log.length]);
  const d = detail.data;
  const j = d?.job;
  return (
    <>
      <p className="crumbs">
        <Link to="/jobs">Jobs</Link> / {j ? `${j.type} ${shortId(j.id)}` : shortId(id)}
      </p>
      <ErrorNote error={detail.error} />
      {j && d && (
        <>
          <div className="title-row">
            <h1>
              {j.type} <span className="mono muted">{shortId(j.id)}</span>
            </h1>
            <StatusBadge status={j.status} />
            <JobActions
              job={j}
              onDone={(r) => {
                const res = r as { jobs?: Array<{ id: string; type: string }> };
                const again = res.jobs?.find((x) => x.type === j.type);
                if (again) navigate(`/jobs/${again.id}`);
                else detail.reload();
              }}
            />
          </div>
          <Progress value={j.progress} label="Job progress" />
          <div className="split">
            <Card title="Summary" id="summary">
              <dl className="stats">
                <Stat label="Worker" value={d.worker ? `${d.worker.name} (${d.worker.host})` : '—'} />
                <Stat label="Attempts" value={j.attempts} />
                <Stat label="Queue" value={<span className="mono">{j.queueName}</span>} />
                <Stat label="Created" value={`${new Date(j.createdAt).toLocaleString()} (${ago(j.createdAt, now)})`} />
                <Stat label="Waited in queue" value={duration(d.timings.queuedMs ?? (j.startedAt ? null : now - Date.parse(j.createdAt)))} />
                <Stat label="Ran for" value={duration(d.timings.runMs ?? jobDuration(j, now))} />
                <Stat label="Total" value={duration(d.timings.totalMs)} />
                {j.versionId && <Stat label="Input version" value={<span className="mono">{shortId(j.versionId)}</span>} />}
              </dl>
              {j.error && (
                <div className="error-box" role="alert">
                  <strong>Error</strong>
                  <pre>{j.error}</pre>
                </div>
              )}
            </Card>
            <Card title="Parameters" id="params">
              <pre className="code">{JSON.stringify(j.params, null, 2)}</pre>
              {j.result && (
                <>
                  <h3>Result</h3>
                  <pre className="code">{JSON.stringify(j.result, null, 2)}</pre>
                </>
              )}
            </Card>
          </div>
          {d.flow.length > 0 && (
            <Card title="Pipeline" id="flow">
              <ol className="steps" aria-label="Pipeline steps">
                {d.flow.map((s) => (
                  <li key={s.id} className={`step${s.id === j.id ? ' current' : ''}`} data-status={s.status}>
                    <Link to={`/jobs/${s.id}`} className="step-name" aria-current={s.id === j.id ? 'page' : undefined}>
                      {s.type}
                    </Link>
                    <StatusBadge status={s.status} />
                    <Progress value={s.progress} label={`${s.type} progress`} />
                    <span className="muted">{duration(s.durationMs ?? jobDuration(s, now))}</span>
                  </li>
                ))}
              </ol>
            </Card>
          )}
          <Card title="Log" id="log">
            <div className="log" role="log" aria-live="polite" aria-label="Job log" ref={logBox} tabIndex={0}>
              {d.log.map((l, i) => (
                <div key={i} className={`log-line log-${l.level}`}>
                  <time dateTime={l.at}>{new Date(l.at).toLocaleTimeString()}</time>
                  <span className="log-source">{l.source}</span>
                  <span className="log-msg">{l.message}</span>
                </div>
              ))}
            </div>
          </Card>
          {(j.type === 'calibrate' || j.type === 'auto_awq') && j.status === 'completed' && (
            <Card title="Calibration statistics" id="calibration">
              <CalibrationCharts jobId={j.id} />
            </Card>
          )}
          <Card title="Artifacts" id="artifacts">
            <Artifacts items={d.artifacts} />
          </Card>
        </>
      )}
    </>
  );
}
