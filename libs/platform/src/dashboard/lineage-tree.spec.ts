import { buildTree, type TreeJob, type TreeVersion } from './lineage-tree';

const t = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s));

describe('buildTree', () => {
  const base: TreeVersion = { id: 'fp16', parentVersionId: null, createdByJobId: null, createdAt: t(0) };
  const awq: TreeVersion = { id: 'awq', parentVersionId: 'fp16', createdByJobId: 'j-awq', createdAt: t(20) };
  const ws: TreeVersion = { id: 'ws', parentVersionId: 'awq', createdByJobId: 'j-conv', createdAt: t(30) };
  const jobs: TreeJob[] = [
    { id: 'j-cal', type: 'calibrate', status: 'completed', parentJobId: 'j-awq', result: { versionId: 'fp16' }, startedAt: t(1), finishedAt: t(10) },
    { id: 'j-awq', type: 'auto_awq', status: 'completed', parentJobId: 'j-conv', result: { versionId: 'awq' }, startedAt: t(11), finishedAt: t(20) },
    { id: 'j-conv', type: 'convert', status: 'completed', parentJobId: null, result: { versionId: 'ws' }, startedAt: t(21), finishedAt: t(30) },
  ];

  it('reads fp16 → calibrated → AWQ → workspace, depth-first', () => {
    const nodes = buildTree([ws, awq, base], jobs);
    expect(nodes.map((n) => [n.kind, n.id, n.parentId, n.depth, n.jobId])).toEqual([
      ['version', 'fp16', null, 0, null],
      ['calibration', 'j-cal', 'fp16', 1, 'j-cal'],
      ['version', 'awq', 'j-cal', 2, 'j-awq'],
      ['version', 'ws', 'awq', 3, 'j-conv'],
    ]);
  });

  it('hangs an AWQ version under its version parent when its calibration is unknown, and keeps siblings in time order', () => {
    const conv2: TreeVersion = { id: 'ws-fp16', parentVersionId: 'fp16', createdByJobId: 'j-c2', createdAt: t(5) };
    const nodes = buildTree([base, awq, conv2], []);
    expect(nodes.map((n) => `${n.id}<${n.parentId}@${n.depth}`)).toEqual(['fp16<null@0', 'ws-fp16<fp16@1', 'awq<fp16@1']);
  });

  it('shows every node once even on a parent cycle or a missing parent', () => {
    const a: TreeVersion = { id: 'a', parentVersionId: 'b', createdByJobId: null, createdAt: t(1) };
    const b: TreeVersion = { id: 'b', parentVersionId: 'a', createdByJobId: null, createdAt: t(2) };
    const orphan: TreeVersion = { id: 'o', parentVersionId: 'gone', createdByJobId: null, createdAt: t(3) };
    const nodes = buildTree([a, b, orphan], []);
    expect(nodes.map((n) => n.id).sort()).toEqual(['a', 'b', 'o']);
    expect(nodes.find((n) => n.id === 'o')!.parentId).toBeNull();
  });
});
