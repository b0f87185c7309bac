import { useMemo, useState, type FormEvent } from 'react';
import { Bar, BarChart, CartesianGrid, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import { post } from '../api';
import { Card, Empty, ErrorNote, Field, Progress, StatusBadge } from '../components';
import { ago, bytes, duration, jobDuration, num, shortId, versionLabel } from '../format';
import { useNow, useResource } from '../hooks';
import { useJobEvents } from '../live';
import { Link } from '../router';
import type { Job, ModelTree, TreeNode, Version } from '../types';

const FORMAT_LABEL: Record<string, string> = { hf: 'fp16 / HF', autoawq: 'AWQ', workspace: 'workspace' };
const FORMAT_SHORT: Record<string, string> = { hf: 'fp16', autoawq: 'AWQ', workspace: 'ws' };

function NodeCard({ node, selected, onToggle }: { node: TreeNode; selected: boolean; onToggle: (id: string) => void }) {
  if (node.kind === 'calibration') {
    const c = node.calibration!;
    return (
      <div className="node node-calibration" data-kind="calibration">
        <div className="node-head">
          <span className="node-kind">calibrated</span>
          {node.job && <StatusBadge status={node.job.status} />}
        </div>
        <dl className="node-stats">
          <div><dt>samples</dt><dd>{c.samples ?? '—'} × {c.seqlen ?? '—'}</dd></div>
          <div><dt>tokens</dt><dd>{num(c.tokens, 0)}</dd></div>
          <div><dt>made by</dt><dd>{node.jobId ? <Link to={`/jobs/${node.jobId}`}>calibrate {shortId(node.jobId)}</Link> : '—'}</dd></div>
        </dl>
      </div>
    );
  }
  const v = node.version!;
  const ppl = v.metrics.ppl ?? v.measurements.ppl?.value;
  return (
    <div className={`node node-${v.format}`} data-kind="version" data-format={v.format} data-version-id={v.id}>
      <div className="node-head">
        <label className="node-select">
          <input type="checkbox" checked={selected} onChange={() => onToggle(v.id)} aria-label={`Compare ${versionLabel(v)} ${shortId(v.id)}`} />
          <span className="node-kind">{FORMAT_LABEL[v.format] ?? v.format}</span>
        </label>
        <span className="node-title">{versionLabel(v)}</span>
        <span className="mono muted">{shortId(v.id)}</span>
      </div>
      <dl className="node-stats">
        <div><dt>size</dt><dd data-metric="size">{bytes(v.sizeBytes)}</dd></div>
        <div><dt>perplexity</dt><dd data-metric="ppl">{num(ppl, 3)}</dd></div>
        <div><dt>eval speed</dt><dd data-metric="tps">{v.derived.tokensPerSecond ? `${num(v.derived.tokensPerSecond, 0)} tok/s` : '—'}</dd></div>
        {v.derived.serving && (
          <div>
            <dt>serving</dt>
            <dd data-metric="serving" title={`${v.derived.serving.requests} requests served by its deployments`}>
              {num(v.derived.serving.decodeTokensPerSecondP50, 0)} tok/s · TTFT {num(v.derived.serving.ttftMsP50, 0)} ms
            </dd>
          </div>
        )}
        <div>
          <dt>made by</dt>
          <dd>
            {node.job ? (
              <Link to={`/jobs/${node.job.id}`}>
                {node.job.type} {shortId(node.job.id)}
              </Link>
            ) : (
              'registered'
            )}
            {node.job?.durationMs != null && <span className="muted"> · {duration(node.job.durationMs)}</span>}
          </dd>
        </div>
      </dl>
    </div>
  );
}

function LineageTree({ nodes, selected, onToggle }: { nodes: TreeNode[]; selected: Set<string>; onToggle: (id: string) => void }) {
  if (!nodes.length) return <Empty>No version.</Empty>;
  return (
    <ol className="tree" aria-label="Version lineage">
      {nodes.map((n) => (
        <li key={n.id} className="tree-item" style={{ ['--depth' as string]: n.depth }} aria-level={n.depth + 1}>
          {n.depth > 0 && <span className="tree-branch" aria-hidden="true">└─</span>}
          <NodeCard node={n} selected={selected.has(n.id)} onToggle={onToggle} />
        </li>
      ))}
    </ol>
  );
}

function Compare({ versions }: { versions: Version[] }) {
  if (versions.length === 0) return <Empty>Tick versions in the tree to compare them.</Empty>;
  const rows = versions.map((v) => ({
    name: `${FORMAT_SHORT[v.format] ?? v.format} ${v.id.slice(0, 4)}`,
    label: `${versionLabel(v)} ${shortId(v.id)}`,
    ppl: v.metrics.ppl ?? v.measurements.ppl?.value ?? null,
    sizeMiB: v.sizeBytes / 2 ** 20,
    tps: v.derived.tokensPerSecond,
  }));
  const base = rows[0];
  const charts: Array<{ key: 'ppl' | 'sizeMiB' | 'tps'; title: string; color: string; unit: string }> = [
    { key: 'ppl', title: 'Perplexity (lower is better)', color: '#dc2626', unit: '' },
    { key: 'sizeMiB', title: 'Size on disk (MiB)', color: '#2563eb', unit: ' MiB' },
    { key: 'tps', title: 'Eval speed (scored tokens/s)', color: '#16a34a', unit: ' tok/s' },
  ];
  return (
    <>
      <div className="table-wrap">
        <table aria-label="Version comparison">
          <thead>
            <tr>
              <th scope="col">Version</th>
              <th scope="col">Format</th>
              <th scope="col">Size</th>
              <th scope="col">× size of first</th>
              <th scope="col">Perplexity</th>
              <th scope="col">Δ ppl vs first</th>
              <th scope="col">Eval speed</th>
              <th scope="col">Serving decode p50</th>
              <th scope="col">Serving TTFT p50</th>
            </tr>
          </thead>
          <tbody>
            {versions.map((v, i) => {
              const r = rows[i];
              return (
                <tr key={v.id}>
                  <td>{r.label}</td>
                  <td>{FORMAT_LABEL[v.format]}</td>
                  <td>{bytes(v.sizeBytes)}</td>
                  <td>{num(r.sizeMiB / base.sizeMiB, 3)}</td>
                  <td>{num(r.ppl, 3)}</td>
                  <td>{r.ppl != null && base.ppl != null ? `${r.ppl >= base.ppl ? '+' : ''}${num(((r.ppl - base.ppl) / base.ppl) * 100, 2)} %` : '—'}</td>
                  <td>{r.tps ? `${num(r.tps, 0)} tok/s` : '—'}</td>
                  <td>{v.derived.serving ? `${num(v.derived.serving.decodeTokensPerSecondP50, 0)} tok/s` : '—'}</td>
                  <td>{v.derived.serving ? `${num(v.derived.serving.ttftMsP50, 1)} ms (${v.derived.serving.requests} req)` : '—'}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      <div className="charts">
        {charts.map((c) => (
          <figure key={c.key} className="chart" aria-label={c.title}>
            <figcaption>{c.title}</figcaption>
            <ResponsiveContainer width="100%" height={220}>
              <BarChart data={rows} margin={{ top: 8, right: 8, bottom: 8, left: 0 }}>
                <CartesianGrid strokeDasharray="3 3" vertical={false} />
                <XAxis dataKey="name" tick={{ fontSize: 11 }} interval={0} />
                <YAxis tick={{ fontSize: 11 }} width={56} />
                <Tooltip formatter={(val) => `${num(Number(val), 3)}${c.unit}`} labelFormatter={(_, p) => (p?.[0]?.payload as { label?: string } | undefined)?.label ?? ''} />
                <Bar dataKey={c.key} fill={c.color} isAnimationActive={false} />
              </BarChart>
            </ResponsiveContainer>
          </figure>
        ))}
      </div>
    </>
  );
}

interface PipelineForm {
  versionId: string;
  calibDataset: string;
  calibSamples: string;
  calibSeqlen: string;
  wGroupSize: string;
  searchScale: boolean;
  searchClip: boolean;
  datasetFile: string;
  seqlen: string;
  maxWindows: string;
}

const intOrUndef = (s: string) => (s.trim() ? Number(s) : undefined);

function QuantizeForm({ versions, onSubmitted }: { versions: Version[]; onSubmitted: (flowId: string, jobs: Job[]) => void }) {
  const hf = versions.filter((v) => v.format === 'hf');
  const [f, setF] = useState<PipelineForm>({
    versionId: hf[0]?.id ?? '',
    calibDataset: '',
    calibSamples: '4',
    calibSeqlen: '128',
    wGroupSize: '128',
    searchScale: true,
    searchClip: false,
    datasetFile: '',
    seqlen: '128',
    maxWindows: '4',
  });
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const set = <K extends keyof PipelineForm>(k: K, v: PipelineForm[K]) => setF((o) => ({ ...o, [k]: v }));
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const body = {
        versionId: f.versionId || hf[0]?.id,
        calibrate: { calibDataset: f.calibDataset.trim(), calibSamples: intOrUndef(f.calibSamples), calibSeqlen: intOrUndef(f.calibSeqlen) },
        autoAwq: { wBits: 4, wGroupSize: intOrUndef(f.wGroupSize), searchScale: f.searchScale, searchClip: f.searchClip },
        convert: {},
        eval: { datasetFile: (f.datasetFile || f.calibDataset).trim(), seqlen: intOrUndef(f.seqlen), maxWindows: intOrUndef(f.maxWindows) },
      };
      const r = await post<{ flowId: string; jobs: Job[] }>('/pipelines/quantize', body);
      onSubmitted(r.flowId, r.jobs);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };
  if (!hf.length) return <Empty>No fp16/bf16 version to quantize.</Empty>;
  return (
    <form className="form-grid" onSubmit={submit} aria-label="Quantize pipeline">
      <Field label="Version to quantize">
        <select value={f.versionId} onChange={(e) => set('versionId', e.target.value)} aria-label="Version to quantize">
          {hf.map((v) => (
            <option key={v.id} value={v.id}>
              {versionLabel(v)} {shortId(v.id)}
            </option>
          ))}
        </select>
      </Field>
      <Field label="Calibration text" hint=".txt or .jsonl under MODEL_ROOTS">
        <input required value={f.calibDataset} onChange={(e) => set('calibDataset', e.target.value)} aria-label="Calibration text" placeholder="/models/calib.txt" />
      </Field>
      <Field label="Calibration samples">
        <input type="number" min={1} value={f.calibSamples} onChange={(e) => set('calibSamples', e.target.value)} aria-label="Calibration samples" />
      </Field>
      <Field label="Sample length (tokens)">
        <input type="number" min={16} value={f.calibSeqlen} onChange={(e) => set('calibSeqlen', e.target.value)} aria-label="Calibration sample length" />
      </Field>
      <Field label="Weight group size (--w-group-size)">
        <select value={f.wGroupSize} onChange={(e) => set('wGroupSize', e.target.value)} aria-label="Weight group size">
          {['32', '64', '128'].map((g) => (
            <option key={g}>{g}</option>
          ))}
        </select>
      </Field>
      <div className="checks" role="group" aria-label="AWQ search">
        <label>
          <input type="checkbox" checked={f.searchScale} onChange={(e) => set('searchScale', e.target.checked)} /> search scales
        </label>
        <label>
          <input type="checkbox" checked={f.searchClip} onChange={(e) => set('searchClip', e.target.checked)} /> search clipping
        </label>
      </div>
      <Field label="Eval text (perplexity)" hint="defaults to the calibration text">
        <input value={f.datasetFile} onChange={(e) => set('datasetFile', e.target.value)} aria-label="Eval text" placeholder="/models/eval.txt" />
      </Field>
      <Field label="Eval window (tokens)">
        <input type="number" min={8} value={f.seqlen} onChange={(e) => set('seqlen', e.target.value)} aria-label="Eval window length" />
      </Field>
      <Field label="Eval windows (max)">
        <input type="number" min={1} value={f.maxWindows} onChange={(e) => set('maxWindows', e.target.value)} aria-label="Eval windows" />
      </Field>
      <div className="form-actions">
        <button type="submit" className="primary" disabled={busy}>
          {busy ? 'Submitting…' : 'Run quantize pipeline'}
        </button>
        <span className="muted">calibrate → auto_awq (W4) → convert → eval</span>
      </div>
      <ErrorNote error={error} />
    </form>
  );
}

function PipelineProgress({ jobs }: { jobs: Job[] }) {
  useNow(1000);
  const ordered = ['calibrate', 'auto_awq', 'convert', 'eval'].map((t) => jobs.find((j) => j.type === t)).filter((j): j is Job => !!j);
  return (
    <ol className="steps" aria-label="Pipeline progress">
      {ordered.map((j) => (
        <li key={j.id} className="step" data-job-id={j.id} data-type={j.type} data-status={j.status}>
          <Link to={`/jobs/${j.id}`} className="step-name">
            {j.type}
          </Link>
          <StatusBadge status={j.status} />
          <Progress value={j.progress} label={`${j.type} progress`} />
          <span className="muted">{duration(jobDuration(j))}</span>
        </li>
      ))}
    </ol>
  );
}

export function ModelDetailPage({ id }: { id: string }) {
  const tree = useResource<ModelTree>(`/models/${id}/tree`);
  const [selected, setSelected] = useState<Set<string> | null>(null);
  const [pipeline, setPipeline] = useState<{ flowId: string; jobs: Job[] } | null>(null);
  const versions = useMemo(() => (tree.data?.nodes ?? []).filter((n) => n.version).map((n) => n.version!), [tree.data]);
  const sel = selected ?? new Set(versions.map((v) => v.id));
  const toggle = (vid: string) => {
    const next = new Set(sel);
    if (next.has(vid)) next.delete(vid);
    else next.add(vid);
    setSelected(next);
  };
  useJobEvents((job) => {
    if (pipeline && job.flowId === pipeline.flowId) {
      setPipeline((p) => (p ? { ...p, jobs: p.jobs.map((j) => (j.id === job.id ? job : j)) } : p));
      if (job.status === 'completed' || job.status === 'failed') tree.reload();
    } else if (job.status === 'completed' && (job.versionId && versions.some((v) => v.id === job.versionId))) {
      tree.reload();
    }
  });
  const m = tree.data?.model;
  return (
    <>
      <p className="crumbs">
        <Link to="/models">Models</Link> / {m?.name ?? '…'}
      </p>
      <h1>{m?.name ?? 'Model'}</h1>
      <ErrorNote error={tree.error} />
      {m && (
        <p className="muted">
          {m.architecture} · {num(m.numParams / 1e6, 1)} M parameters · context {m.contextLength ?? '—'} · registered {ago(m.createdAt)} ·{' '}
          <span className="mono">{m.sourcePath}</span>
        </p>
      )}
      <div className="split">
        <Card title="Lineage" id="lineage">
          <LineageTree nodes={tree.data?.nodes ?? []} selected={sel} onToggle={toggle} />
        </Card>
        <Card title="Quantize" id="quantize">
          {tree.data && <QuantizeForm versions={versions} onSubmitted={(flowId, jobs) => setPipeline({ flowId, jobs })} />}
          {pipeline && (
            <div className="pipeline" aria-live="polite">
              <h3>
                Pipeline <span className="mono">{shortId(pipeline.flowId)}</span>
              </h3>
              <PipelineProgress jobs={pipeline.jobs} />
            </div>
          )}
        </Card>
      </div>
      <Card title="Compare versions" id="compare">
        <Compare versions={versions.filter((v) => sel.has(v.id))} />
      </Card>
    </>
  );
}
