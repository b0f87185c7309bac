// The lineage tree the dashboard draws: versions (fp16 → AWQ → workspace) plus the calibration each AWQ
// version was searched on, as its own node between the two (LMDeploy's calibrate → auto_awq), so the
// tree reads fp16 → calibrated → AWQ → workspace. Pure: rows in, nodes out.

export interface TreeVersion {
  id: string;
  parentVersionId: string | null;
  createdByJobId: string | null;
  createdAt: Date | string;
}

export interface TreeJob {
  id: string;
  type: string;
  status: string;
  parentJobId: string | null;
  result: Record<string, unknown> | null;
  startedAt: Date | string | null;
  finishedAt: Date | string | null;
}

export interface TreeNode {
  kind: 'version' | 'calibration';
  /** version id, or the calibrate job's id */
  id: string;
  /** node id of the parent in the drawn tree */
  parentId: string | null;
  depth: number;
  /** the job that made it (for a calibration node: the calibrate job itself) */
  jobId: string | null;
}

/**
 * Orders nodes depth-first (children after their parent, oldest first). A calibrate job becomes a node when
 * it ran on one of these versions; an AWQ version made by an auto_awq job whose flow child is that
 * calibrate job hangs under the calibration node instead of directly under the fp16 version.
 */
export function buildTree(versions: TreeVersion[], jobs: TreeJob[]): TreeNode[] {
  const versionIds = new Set(versions.map((v) => v.id));
  const jobById = new Map(jobs.map((j) => [j.id, j]));
  const calibrations = jobs.filter((j) => j.type === 'calibrate' && typeof j.result?.versionId === 'string' && versionIds.has(j.result.versionId as string));
  const parentOf = new Map<string, string | null>();
  const kindOf = new Map<string, TreeNode['kind']>();
  const jobOf = new Map<string, string | null>();
  const created = new Map<string, number>();
  for (const c of calibrations) {
    parentOf.set(c.id, c.result!.versionId as string);
    kindOf.set(c.id, 'calibration');
    jobOf.set(c.id, c.id);
    created.set(c.id, new Date(c.finishedAt ?? c.startedAt ?? 0).getTime());
  }
  const calibIds = new Set(calibrations.map((c) => c.id));
  for (const v of versions) {
    let parent = v.parentVersionId && versionIds.has(v.parentVersionId) ? v.parentVersionId : null;
    const maker = v.createdByJobId ? jobById.get(v.createdByJobId) : undefined;
    if (maker?.type === 'auto_awq') {
      // the calibrate step of its flow is the job whose BullMQ parent is this auto_awq job
      const calib = calibrations.find((c) => c.parentJobId === maker.id && calibIds.has(c.id));
      if (calib) parent = calib.id;
    }
    parentOf.set(v.id, parent);
    kindOf.set(v.id, 'version');
    jobOf.set(v.id, v.createdByJobId);
    created.set(v.id, new Date(v.createdAt).getTime());
  }
  const children = new Map<string | null, string[]>();
  for (const [id, p] of parentOf) {
    const key = p !== null && parentOf.has(p) ? p : null;
    if (!children.has(key)) children.set(key, []);
    children.get(key)!.push(id);
  }
  for (const list of children.values()) list.sort((a, b) => created.get(a)! - created.get(b)! || a.localeCompare(b));
  const out: TreeNode[] = [];
  const seen = new Set<string>();
  const walk = (id: string, depth: number) => {
    if (seen.has(id)) return;
    seen.add(id);
    const p = parentOf.get(id) ?? null;
    out.push({ kind: kindOf.get(id)!, id, parentId: p !== null && parentOf.has(p) ? p : null, depth, jobId: jobOf.get(id) ?? null });
    for (const c of children.get(id) ?? []) walk(c, depth + 1);
  };
  for (const root of children.get(null) ?? []) walk(root, 0);
  // anything left is on a cycle (corrupt data): show it at the top level rather than drop it
  for (const id of parentOf.keys()) walk(id, 0);
  return out;
}
