export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v >= 100 || i === 0 ? 0 : 1)} ${units[i]}`;
}

export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** A job's running time: finished - started, or now - started while it runs. */
export function jobDuration(j: { startedAt: string | null; finishedAt: string | null }, now = Date.now()): number | null {
  if (!j.startedAt) return null;
  const end = j.finishedAt ? Date.parse(j.finishedAt) : now;
  return Math.max(0, end - Date.parse(j.startedAt));
}

export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '—';
  const s = Math.round((now - Date.parse(iso)) / 1000);
  if (s < 5) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(iso).toLocaleString();
}

export function num(n: number | null | undefined, digits = 2): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  return n.toLocaleString(undefined, { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

export function shortId(id: string | null | undefined): string {
  return id ? id.slice(0, 8) : '—';
}

export function versionLabel(v: { format: string; dtype: string; quantization: Record<string, unknown> | null }): string {
  const q = v.quantization;
  const bits = q && (q.bits ?? q.w_bit ?? q.wBits);
  const group = q && (q.group_size ?? q.q_group_size ?? q.wGroupSize);
  if (v.format === 'hf') return `${v.dtype} (HF)`;
  if (v.format === 'autoawq') return `AWQ W${bits ?? 4}${group ? ` g${group}` : ''}`;
  return `workspace${bits ? ` W${bits}${group ? ` g${group}` : ''}` : ` ${v.dtype}`}`;
}
