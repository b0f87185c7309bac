// SmolLM3: the Llama function with NoPE layers. Parity with transformers itself: the golden case
// test/fixtures/golden/smollm3 (engine.e2e.spec.ts, block-forward.spec.ts, awq-session.spec.ts).
import * as path from 'node:path';
import { Engine } from '../generation/engine';
import { expectLlamaTwin } from '../testing/llama-twin';
import { cpuLogits, nativeCpuOrReport } from '../testing/native-cpu';
import { makeTempDir } from '../testing/tmp-dir';
import { writeTinyModel } from '../testing/tiny-model';
import { F } from './testing-configs';
import { loadModelSpec } from './load';
import { smollm3 } from './smollm3';

const native = nativeCpuOrReport('smollm3');

const CFG = {
  architectures: ['SmolLM3ForCausalLM'], model_type: 'smollm3', hidden_size: 2048, intermediate_size: 11008, num_attention_heads: 16,
  num_key_value_heads: 4, num_hidden_layers: 36, rms_norm_eps: 1e-6, max_position_embeddings: 65536, vocab_size: 128256, rope_theta: 5000000.0,
  no_rope_layer_interval: 4, use_sliding_window: false, sliding_window: null, tie_word_embeddings: true, torch_dtype: 'bfloat16', hidden_act: 'silu',
};

describe('smollm3', () => {
  const tmp = makeTempDir('lmfleet-smollm3-');
  afterAll(() => tmp.cleanup());

  it('parses SmolLM3 config.json: every 4th layer without RoPE, or no_rope_layers; sliding NoPE layers', () => {
    const s = smollm3.parseConfig(CFG, F);
    expect(s).toMatchObject({ arch: 'smollm3', headDim: 128, numKvHeads: 4, tieWordEmbeddings: true, rope: { type: 'default', theta: 5e6 } });
    expect(s.noRopeLayers).toEqual([3, 7, 11, 15, 19, 23, 27, 31, 35]);
    expect(s.layerWindows).toBeUndefined();
    const { rope_theta: _, ...noTheta } = CFG;
    expect(smollm3.parseConfig(noTheta, F).rope.theta).toBe(2e6);  // transformers' default for SmolLM3
    const flags = Array.from({ length: 36 }, (_, i) => (i % 2 ? 0 : 1));
    expect(smollm3.parseConfig({ ...CFG, no_rope_layers: flags }, F).noRopeLayers).toEqual(flags.flatMap((f, i) => (f ? [] : [i])));
    expect(smollm3.parseConfig({ ...CFG, no_rope_layers: new Array(36).fill(1) }, F).noRopeLayers).toBeUndefined();
    // use_sliding_window: the NoPE layers slide
    const w = smollm3.parseConfig({ ...CFG, use_sliding_window: true, sliding_window: 4096 }, F).layerWindows!;
    expect(w.flatMap((x, i) => (x ? [i] : []))).toEqual(s.noRopeLayers);
    expect(() => smollm3.parseConfig({ ...CFG, no_rope_layers: [1, 0] }, F)).toThrow(/no_rope_layers must hold a 1 \(RoPE\) or 0 \(NoPE\) per layer/);
    expect(() => smollm3.parseConfig({ ...CFG, mlp_bias: true }, F)).toThrow(/mlp_bias/);
  });

  (native ? it : it.skip)('with RoPE on every layer it is the Llama function; a NoPE layer ignores positions', async () => {
    const opts = { hiddenSize: 64, numHeads: 4, numKvHeads: 2, numLayers: 2, intermediateSize: 96, seed: 13 } as const;
    await expectLlamaTwin(native!, tmp.dir, 'smollm3-rope', 'smollm3', { arch: 'smollm3', noRopeLayers: [1, 1], ...opts });
    // one layer, no RoPE: the last position attends to a set of keys, so permuting the tokens before it leaves its
    // logits unchanged (up to the order of the sums); with RoPE they change
    const one = { ...opts, numLayers: 1 } as const;
    const ndir = path.join(tmp.dir, 'smollm3-nope1');
    const r1dir = path.join(tmp.dir, 'smollm3-rope1');
    writeTinyModel(ndir, { arch: 'smollm3', noRopeLayers: [0], ...one });
    writeTinyModel(r1dir, { arch: 'smollm3', noRopeLayers: [1], ...one });
    const V = loadModelSpec(ndir).spec.vocabSize;
    const a = [5, 17, 99, 42, 7, 150, 63];
    const b = [150, 99, 5, 7, 42, 17, 63];  // the first six permuted, the last the same
    const last = (x: Float32Array) => Array.from(x.subarray((a.length - 1) * V, a.length * V));
    const [na, nb] = [last(await cpuLogits(native!, ndir, a)), last(await cpuLogits(native!, ndir, b))];
    for (let v = 0; v < V; v++) expect(nb[v]).toBeCloseTo(na[v], 4);
    const [ra, rb] = [last(await cpuLogits(native!, r1dir, a)), last(await cpuLogits(native!, r1dir, b))];
    expect(Math.max(...ra.map((x, v) => Math.abs(x - rb[v])))).toBeGreaterThan(1e-3);
  });

  (native ? it : it.skip)('paged decoding with a NoPE layer agrees with the whole-sequence forward', async () => {
    const dir = path.join(tmp.dir, 'smollm3-mixed');
    writeTinyModel(dir, { arch: 'smollm3', noRopeLayers: [1, 0, 1], hiddenSize: 64, numHeads: 4, numKvHeads: 2, numLayers: 3, intermediateSize: 96, seed: 3 });
    expect(loadModelSpec(dir).spec.noRopeLayers).toEqual([1]);
    const V = loadModelSpec(dir).spec.vocabSize;
    const prompt = [3, 44, 91, 12, 7, 160, 33, 8, 71];
    const engine = await Engine.fromPretrained(dir, { native: native!, backend: 'cpu', blockSize: 4, maxBatchSize: 2 });
    try {
      const outs: number[] = [];
      for await (const o of engine.createInstance().streamInfer({ inputIds: prompt, maxNewTokens: 12, stopIds: [], sampling: { temperature: 0 } })) {
        outs.push(...o.tokenIds);
      }
      const full = await cpuLogits(native!, dir, prompt.concat(outs));
      for (let i = 0; i < outs.length; i++) {
        const r = Array.from(full.subarray((prompt.length - 1 + i) * V, (prompt.length + i) * V));
        expect(r.indexOf(Math.max(...r))).toBe(outs[i]);
      }
    } finally {
      await engine.dispose();
    }
  });
});
