import * as fs from 'node:fs';
import * as path from 'node:path';
import { decodeHalf, encodeHalf } from '../io/half';
import { writeSafetensors, type WritableTensor } from '../io/safetensors';
import { makeTempDir } from '../testing/tmp-dir';
import { internlm2, packWqkv, splitWqkv, splitWqkvColumns } from './internlm2';
import { loadModelSpec, loadModelWeights } from './load';

describe('internlm2', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  beforeEach(() => (tmp = makeTempDir()));
  afterEach(() => tmp.cleanup());

  it('splits InternLM2 wqkv per KV group (hand-computed)', () => {
    // 4 heads, 2 kv heads (G = 2), headDim 1, one byte per row: rows are [q0 q1 k0 v0 | q2 q3 k1 v1].
    const packed = new Uint8Array([10, 11, 20, 30, 12, 13, 21, 31]);
    const { q, k, v } = splitWqkv(packed, { numHeads: 4, numKvHeads: 2, headDim: 1, rowBytes: 1 });
    expect(Array.from(q)).toEqual([10, 11, 12, 13]);
    expect(Array.from(k)).toEqual([20, 21]);
    expect(Array.from(v)).toEqual([30, 31]);
    // headDim 2, rowBytes 2, MHA-like G = 1: [q0(2 rows) k0(2) v0(2)]
    const p2 = new Uint8Array(Array.from({ length: 12 }, (_, i) => i));
    const s2 = splitWqkv(p2, { numHeads: 1, numKvHeads: 1, headDim: 2, rowBytes: 2 });
    expect(Array.from(s2.q)).toEqual([0, 1, 2, 3]);
    expect(Array.from(s2.k)).toEqual([4, 5, 6, 7]);
    expect(Array.from(s2.v)).toEqual([8, 9, 10, 11]);
    expect(() => splitWqkv(new Uint8Array(7), { numHeads: 4, numKvHeads: 2, headDim: 1, rowBytes: 1 })).toThrow(/expected 8/);
  });

  it('packWqkv inverts splitWqkv; splitWqkvColumns splits AWQ columns per row (hand-computed)', () => {
    const l = { numHeads: 4, numKvHeads: 2, headDim: 1, rowBytes: 1 };
    const packed = new Uint8Array([10, 11, 20, 30, 12, 13, 21, 31]);
    const { q, k, v } = splitWqkv(packed, l);
    expect(Array.from(packWqkv(q, k, v, l))).toEqual(Array.from(packed));
    expect(internlm2.packedLinears!({ numHeads: 4, numKvHeads: 2, headDim: 1 } as never, 3)[0].hfPrefix).toBe('model.layers.3.attention.wqkv');
    expect(() => packWqkv(q, k, new Uint8Array(3), l)).toThrow(/expected 4\/2\/2/);
    // 2 rows of columns [q0 q1 k0 v0 | q2 q3 k1 v1], one byte per column
    const cols = new Uint8Array([10, 11, 20, 30, 12, 13, 21, 31, 50, 51, 60, 70, 52, 53, 61, 71]);
    const s = splitWqkvColumns(cols, 2, { numHeads: 4, numKvHeads: 2, headCols: 1, elemBytes: 1 });
    expect(Array.from(s.q)).toEqual([10, 11, 12, 13, 50, 51, 52, 53]);
    expect(Array.from(s.k)).toEqual([20, 21, 60, 61]);
    expect(Array.from(s.v)).toEqual([30, 31, 70, 71]);
  });

  it('maps a generated InternLM2 checkpoint: canonical q/k/v rows match the packed layout', () => {
    const hidden = 8, heads = 4, kv = 2, hd = 2, ff = 16, vocab = 10;
    const cfg = {
      architectures: ['InternLM2ForCausalLM'], model_type: 'internlm2', hidden_size: hidden, intermediate_size: ff,
      num_attention_heads: heads, num_key_value_heads: kv, num_hidden_layers: 1, vocab_size: vocab, rms_norm_eps: 1e-5,
      max_position_embeddings: 64, rope_theta: 1e6, bias: true, torch_dtype: 'float16', hidden_act: 'silu',
    };
    fs.writeFileSync(path.join(tmp.dir, 'config.json'), JSON.stringify(cfg));
    const t = (name: string, shape: number[], fill: (i: number) => number): WritableTensor => {
      const n = shape.reduce((a, b) => a * b, 1);
      return { name, dtype: 'F16', shape, data: encodeHalf(Array.from({ length: n }, (_, i) => fill(i)), 'f16') };
    };
    const rows = (heads + 2 * kv) * hd;
    // wqkv[r][c] = r (the packed row index), bias[r] = 100 + r.
    writeSafetensors(path.join(tmp.dir, 'model.safetensors'), [
      t('model.tok_embeddings.weight', [vocab, hidden], () => 0.5),
      t('model.norm.weight', [hidden], () => 1),
      t('output.weight', [vocab, hidden], () => 0.25),
      t('model.layers.0.attention_norm.weight', [hidden], () => 1),
      t('model.layers.0.ffn_norm.weight', [hidden], () => 1),
      t('model.layers.0.attention.wqkv.weight', [rows, hidden], (i) => Math.floor(i / hidden)),
      t('model.layers.0.attention.wqkv.bias', [rows], (i) => 100 + i),
      t('model.layers.0.attention.wo.weight', [hidden, heads * hd], () => 0),
      t('model.layers.0.attention.wo.bias', [hidden], () => 0),
      t('model.layers.0.feed_forward.w1.weight', [ff, hidden], () => 1),
      t('model.layers.0.feed_forward.w3.weight', [ff, hidden], () => 3),
      t('model.layers.0.feed_forward.w2.weight', [hidden, ff], () => 2),
    ]);
    const loaded = loadModelSpec(tmp.dir);
    const { tensors } = loadModelWeights(loaded);
    const get = (n: string) => tensors.find((x) => x.name === n)!;
    // Packed rows per group g (G = 2, hd = 2): q rows 8g..8g+3, k rows 8g+4..8g+5, v rows 8g+6..8g+7.
    const rowIds = (n: string) => {
      const vals = decodeHalf(get(n).data!, 'f16');
      const width = get(n).shape.length === 2 ? hidden : 1;
      return Array.from({ length: vals.length / width }, (_, r) => vals[r * width]);
    };
    expect(get('layers.0.q.weight').shape).toEqual([heads * hd, hidden]);
    expect(rowIds('layers.0.q.weight')).toEqual([0, 1, 2, 3, 8, 9, 10, 11]);
    expect(rowIds('layers.0.k.weight')).toEqual([4, 5, 12, 13]);
    expect(rowIds('layers.0.v.weight')).toEqual([6, 7, 14, 15]);
    expect(rowIds('layers.0.q.bias')).toEqual([100, 101, 102, 103, 108, 109, 110, 111]);
    expect(rowIds('layers.0.v.bias')).toEqual([106, 107, 114, 115]);
    expect(get('layers.0.gate.weight').file).toBeDefined();
    expect(get('lm_head.weight').shape).toEqual([vocab, hidden]);
    expect(internlm2.awqScaleGroups(loaded.spec, 0).map((g) => `${g.prev}->${g.linears.join(',')}`)).toEqual([
      'model.layers.0.attention_norm->model.layers.0.attention.wqkv',
      'model.layers.0.attention.wqkv[v]->model.layers.0.attention.wo',
      'model.layers.0.ffn_norm->model.layers.0.feed_forward.w1,model.layers.0.feed_forward.w3',
      'model.layers.0.feed_forward.w3->model.layers.0.feed_forward.w2',
    ]);
  });
});
