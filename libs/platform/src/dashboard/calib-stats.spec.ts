import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readF32Tensors, summarizeCalibStats } from './calib-stats';
import { flowOrder } from './dashboard.service';

/** A safetensors file written by hand (8-byte header length, JSON header, little-endian data). */
function writeSafetensors(file: string, tensors: Record<string, number[]>, extra: Record<string, unknown> = {}): void {
  const header: Record<string, unknown> = { __metadata__: { format: 'lmfleet-calib-v1' }, ...extra };
  const chunks: Buffer[] = [];
  let offset = 0;
  for (const [name, values] of Object.entries(tensors)) {
    const b = Buffer.from(new Float32Array(values).buffer);
    header[name] = { dtype: 'F32', shape: [values.length], data_offsets: [offset, offset + b.length] };
    chunks.push(b);
    offset += b.length;
  }
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  fs.writeFileSync(file, Buffer.concat([len, json, ...chunks]));
}

describe('calibration statistics', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'calib-stats-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('summarizes each layer: linear input ranges (with outlier channels) and per-head K/V ranges', async () => {
    const file = path.join(dir, 'calib_stats.safetensors');
    writeSafetensors(file, {
      'layers.1.q.absmax': [1, 9, 3],
      'layers.1.q.absmean': [0.5, 1.5, 1],
      'layers.1.q.min': [-1, -9, -2],
      'layers.1.q.max': [1, 8, 3],
      'layers.0.down.absmax': [2, 4],
      'layers.0.k_cache.absmax': [3, 5],
      'layers.0.k_cache.min': [-3, -5],
      'layers.0.k_cache.max': [2, 4],
    });
    const { tensors, metadata } = await readF32Tensors(file);
    const s = summarizeCalibStats(tensors, metadata, 2);
    expect(s.metadata.format).toBe('lmfleet-calib-v1');
    expect(s.linearNames).toEqual(['down', 'q']);
    expect(s.layers.map((l) => l.layer)).toEqual([0, 1]);
    expect(s.layers[1].linears.q).toEqual({ absmax: 9, absmean: 1, min: -9, max: 8, channels: 3, topChannels: [{ channel: 1, absmax: 9 }, { channel: 2, absmax: 3 }] });
    expect(s.layers[0].k).toEqual({ absmax: [3, 5], min: [-3, -5], max: [2, 4] });
    expect(s.layers[0].v).toBeUndefined();
  });

  it('refuses a truncated file with a reason', async () => {
    const file = path.join(dir, 'bad.safetensors');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(1000n);
    fs.writeFileSync(file, Buffer.concat([len, Buffer.from('{}')]));
    await expect(readF32Tensors(file)).rejects.toThrow(/bad safetensors header length 1000/);
  });
});

describe('flowOrder', () => {
  it('orders a pipeline from its deepest child to its root', () => {
    const steps = [
      { id: 'eval', parentJobId: null },
      { id: 'cal', parentJobId: 'awq' },
      { id: 'conv', parentJobId: 'eval' },
      { id: 'awq', parentJobId: 'conv' },
    ];
    expect(flowOrder(steps).map((s) => s.id)).toEqual(['cal', 'awq', 'conv', 'eval']);
  });
});
