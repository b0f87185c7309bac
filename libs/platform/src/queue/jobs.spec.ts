import { buildQuantizeFlow, bullJobId, inferQueueName, JOB_NAMES, JOB_QUEUE, JobName, parseBullJobId, QUANT_JOBS, INFER_JOBS, QueueName } from './jobs';

const ID = '3f2b7c1e-8a9d-4e5f-9b0a-1c2d3e4f5a6b';

describe('queue/jobs', () => {
  it('bullJobId is deterministic, colon-free and reversible', () => {
    for (const name of JOB_NAMES) {
      const id = bullJobId(name, ID);
      expect(id).toBe(bullJobId(name, ID.toUpperCase()));
      expect(id).not.toContain(':');
      expect(parseBullJobId(id)).toEqual({ name, dbId: ID });
    }
    expect(bullJobId(JobName.AutoAwq, ID)).toBe(`auto_awq-${ID}`);
  });

  it('bullJobId refuses ids that are not uuids', () => {
    expect(() => bullJobId(JobName.Eval, 'a:b')).toThrow(/invalid job db id/);
    expect(() => bullJobId(JobName.Eval, '')).toThrow();
    expect(parseBullJobId('nope-123')).toBeNull();
  });

  it('queue names: quant, and infer-<deployment> without colons', () => {
    expect(QueueName.Quant).toBe('quant');
    expect(inferQueueName('default')).toBe('infer-default');
    expect(() => inferQueueName('a:b')).toThrow(/invalid deployment id/);
    expect(() => inferQueueName('')).toThrow();
  });

  it('every job name has a queue; quant and infer split them', () => {
    expect(Object.keys(JOB_QUEUE).sort()).toEqual([...JOB_NAMES].sort());
    expect([...QUANT_JOBS].sort()).toEqual(['auto_awq', 'calibrate', 'convert', 'eval']);
    expect(INFER_JOBS).toEqual(['infer']);
  });

  it('the quantize flow has eval as root and calibrate as the deepest child', () => {
    const ids = { calibrate: '00000000-0000-0000-0000-000000000001', autoAwq: '00000000-0000-0000-0000-000000000002', convert: '00000000-0000-0000-0000-000000000003', eval: '00000000-0000-0000-0000-000000000004' };
    const flow = buildQuantizeFlow(ids, { attempts: 3, backoffMs: 1000 });
    const chain: string[] = [];
    let node: typeof flow | undefined = flow;
    while (node) {
      chain.push(node.name);
      expect(node.queueName).toBe('quant');
      expect(node.children?.length ?? 0).toBeLessThanOrEqual(1);
      if (node !== flow) expect(node.opts?.failParentOnFailure).toBe(true);
      node = node.children?.[0];
    }
    expect(chain).toEqual(['eval', 'convert', 'auto_awq', 'calibrate']);
    expect(flow.opts?.jobId).toBe(`eval-${ids.eval}`);
    expect(flow.data).toEqual({ jobId: ids.eval });
    expect(flow.opts?.attempts).toBe(3);
    expect(flow.opts?.backoff).toEqual({ type: 'exponential', delay: 1000 });
  });
});
