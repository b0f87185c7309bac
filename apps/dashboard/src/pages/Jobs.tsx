import { useEffect, useMemo, useState, type FormEvent } from 'react';
import { post } from '../api';
import { Card, Empty, ErrorNote, Field, Progress, StatusBadge } from '../components';
import { ago, duration, jobDuration, shortId } from '../format';
import { useNow, useResource } from '../hooks';
import { useJobEvents, useWorkerEvents } from '../live';
import { Link, navigate } from '../router';
import type { Job, JobStatus, JobType, Page, Worker } from '../types';

const STATUSES: JobStatus[] = ['queued', 'running', 'completed', 'failed', 'cancelled'];
const TYPES: JobType[] = ['calibrate', 'auto_awq', 'convert', 'eval', 'infer'];
const PAGE = 50;

const TEMPLATES: Record<JobType, object> = {
  calibrate: { calibDataset: '/models/calib.txt', calibSamples: 4, calibSeqlen: 128 },
  auto_awq: { calibDataset: '/models/calib.txt', wGroupSize: 128, searchScale: true, searchClip: false },
  convert: { format: 'workspace' },
  eval: { datasetFile: '/models/eval.txt', seqlen: 128, maxWindows: 4 },
  infer: { prompts: ['Hello'], maxNewTokens: 32, temperature: 0 },
};

export function JobActions({ job, onDone }: { job: Pick<Job, 'id' | 'status' | 'type'>; onDone?: (result: unknown) => void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const act = async (what: 'cancel' | 'retry') => {
    setBusy(true);
    setError(undefined);
    try {
      const r = await post(`/jobs/${job.id}/${what}`);
      onDone?.(r);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };
  const finished = job.status === 'completed' || job.status === 'failed' || job.status === 'cancelled';
  return (
    <span className="actions">
      {!finished && (
        <button type="button" disabled={busy} onClick={() => act('cancel')} aria-label={`Cancel ${job.type} job ${shortId(job.id)}`}>
          Cancel
        </button>
      )}
      {(job.status === 'failed' || job.status === 'cancelled') && (
        <button type="button" disabled={busy} onClick={() => act('retry')} aria-label={`Retry ${job.type} job ${shortId(job.id)}`}>
          Retry
        </button>
      )}
      {error && (
        <span className="error inline" role="alert">
          {error}
        </span>
      )}
    </span>
  );
}

function SubmitJob() {
  const [type, setType] = useState<JobType>('eval');
  const [versionId, setVersionId] = useState('');
  const [params, setParams] = useState(JSON.stringify(TEMPLATES.eval, null, 2));
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(undefined);
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(params || '{}');
    } catch (err) {
      setError(`params: not JSON (${(err as Error).message})`);
      return;
    }
    setBusy(true);
    try {
      const job = await post<Job>('/jobs', { type, params: { ...parsed, versionId: versionId.trim() } });
      navigate(`/jobs/${job.id}`);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="form-grid" onSubmit={submit} aria-label="Submit a job">
      <Field label="Job type">
        <select
          value={type}
          onChange={(e) => {
            const t = e.target.value as JobType;
            setType(t);
            setParams(JSON.stringify(TEMPLATES[t], null, 2));
          }}
          aria-label="Job type"
        >
          {TYPES.map((t) => (
            <option key={t}>{t}</option>
          ))}
        </select>
      </Field>
      <Field label="Version id" hint="from a model's lineage">
        <input required value={versionId} onChange={(e) => setVersionId(e.target.value)} aria-label="Version id" placeholder="uuid" />
      </Field>
      <Field label="Parameters (JSON)">
        <textarea rows={5} value={params} onChange={(e) => setParams(e.target.value)} aria-label="Job parameters" className="mono" />
      </Field>
      <div className="form-actions">
        <button type="submit" className="primary" disabled={busy}>
          {busy ? 'Submitting…' : 'Submit job'}
        </button>
      </div>
      <ErrorNote error={error} />
    </form>
  );
}

export function JobsPage() {
  const [status, setStatus] = useState<string>('');
  const [type, setType] = useState<string>('');
  const query = `/jobs?limit=${PAGE}${status ? `&status=${status}` : ''}${type ? `&type=${type}` : ''}`;
  const jobs = useResource<Page<Job>>(query);
  const workers = useResource<Worker[]>('/workers');
  const [names, setNames] = useState<Record<string, string>>({});
  const now = useNow(1000);
  useEffect(() => {
    if (workers.data) setNames(Object.fromEntries(workers.data.map((w) => [w.id, w.name])));
  }, [workers.data]);
  useWorkerEvents((ws) => setNames(Object.fromEntries(ws.map((w) => [w.id, w.name]))));
  useJobEvents((job) => {
    jobs.setData((page) => {
      if (!page) return page;
      const matches = (!status || job.status === status) && (!type || job.type === type);
      const i = page.items.findIndex((j) => j.id === job.id);
      if (i >= 0) {
        const items = [...page.items];
        if (matches) items[i] = job;
        else items.splice(i, 1);
        return { ...page, items };
      }
      if (!matches) return page;
      return { ...page, items: [job, ...page.items].slice(0, PAGE), total: page.total + 1 };
    });
  });
  const counts = useMemo(() => {
    const c: Record<string, number> = {};
    for (const j of jobs.data?.items ?? []) c[j.status] = (c[j.status] ?? 0) + 1;
    return c;
  }, [jobs.data]);
  return (
    <>
      <h1>Jobs</h1>
      <Card
        title={`Jobs${jobs.data ? ` (${jobs.data.total})` : ''}`}
        id="jobs"
        actions={
          <div className="filters">
            <label>
              <span className="sr-only">Status</span>
              <select value={status} onChange={(e) => setStatus(e.target.value)} aria-label="Filter by status">
                <option value="">any status</option>
                {STATUSES.map((s) => (
                  <option key={s}>{s}</option>
                ))}
              </select>
            </label>
            <label>
              <span className="sr-only">Type</span>
              <select value={type} onChange={(e) => setType(e.target.value)} aria-label="Filter by type">
                <option value="">any type</option>
                {TYPES.map((s) => (
                  <option key={s}>{s}</option>
                ))}
              </select>
            </label>
          </div>
        }
      >
        <p className="muted summary">
          {STATUSES.filter((s) => counts[s]).map((s) => `${counts[s]} ${s}`).join(' · ') || ' '}
        </p>
        <ErrorNote error={jobs.error} />
        {jobs.data && jobs.data.items.length === 0 && <Empty>No job yet.</Empty>}
        {jobs.data && jobs.data.items.length > 0 && (
          <div className="table-wrap">
            <table aria-label="Jobs" className="jobs-table">
              <thead>
                <tr>
                  <th scope="col">Job</th>
                  <th scope="col">Status</th>
                  <th scope="col">Progress</th>
                  <th scope="col">Worker</th>
                  <th scope="col">Duration</th>
                  <th scope="col">Created</th>
                  <th scope="col">
                    <span className="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {jobs.data.items.map((j) => (
                  <tr key={j.id} data-job-id={j.id} data-status={j.status}>
                    <td>
                      <Link to={`/jobs/${j.id}`}>
                        <strong>{j.type}</strong> <span className="mono muted">{shortId(j.id)}</span>
                      </Link>
                      {j.flowId && <span className="tag" title={`pipeline ${j.flowId}`}>pipeline</span>}
                    </td>
                    <td>
                      <StatusBadge status={j.status} />
                      {j.attempts > 1 && <span className="muted"> ×{j.attempts}</span>}
                    </td>
                    <td className="progress-cell">
                      <Progress value={j.progress} label={`${j.type} ${shortId(j.id)} progress`} />
                    </td>
                    <td>{j.workerId ? names[j.workerId] ?? shortId(j.workerId) : '—'}</td>
                    <td>{duration(jobDuration(j, now))}</td>
                    <td>{ago(j.createdAt, now)}</td>
                    <td>
                      <JobActions job={j} onDone={() => jobs.reload()} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Card>
      <Card title="Submit a single job" id="submit">
        <SubmitJob />
      </Card>
    </>
  );
}
