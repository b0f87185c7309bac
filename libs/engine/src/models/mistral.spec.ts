// Mistral: the Llama function under another name, with sliding-window attention on every layer. Parity with
// transformers itself: the golden cases test/fixtures/golden/mistral and mistral-swa (a window of 6 under a 44-token
// sequence; engine.e2e.spec.ts, block-forward.spec.ts).
import * as path from 'node:path';
import { Engine } from '../generation/engine';
import { expectLlamaTwin } from '../testing/llama-twin';
import { cpuLogits, nativeCpuOrReport } from '../testing/native-cpu';
import { makeTempDir } from '../testing/tmp-dir';
import { writeTinyModel } from '../testing/tiny-model';
import { F } from './testing-configs';
import { loadModelSpec } from './load';
import { mistral } from './mistral';

const native = nativeCpuOrReport('mistral');

const CFG = {
  architectures: ['MistralForCausalLM'], model_type: 'mistral', hidden_size: 4096, intermediate_size: 14336, num_attention_heads: 32,
  num_key_value_heads: 8, num_hidden_layers: 32, rms_norm_eps: 1e-5, max_position_embeddings: 32768, vocab_size: 32000, rope_theta: 10000.0,
  sliding_window: 4096, tie_word_embeddings: false, torch_dtype: 'bfloat16', hidden_act: 'silu',
};

describe('mistral', () => {
  const tmp = makeTempDir('lmfleet-mistral-');
  afterAll(() => tmp.cleanup());

  it('parses Mistral config.json: a sliding window below the context on every layer; none or a larger one, full attention', () => {
    const spec = mistral.parseConfig(CFG, F);
    expect(spec).toMatchObject({ arch: 'mistral', hfArchitecture: 'MistralForCausalLM', numKvHeads: 8, headDim: 128, qkvBias: false });
    expect(spec.layerWindows).toEqual(new Array(32).fill(4096));
    expect(mistral.parseConfig({ ...CFG, sliding_window: null }, F).layerWindows).toBeUndefined();
    expect(mistral.parseConfig({ ...CFG, sliding_window: 32768 }, F).layerWindows).toBeUndefined();
    // transformers' own per-layer list wins where config.json has one
    const types = Array.from({ length: 32 }, (_, i) => (i % 2 ? 'full_attention' : 'sliding_attention'));
    expect(mistral.parseConfig({ ...CFG, layer_types: types }, F).layerWindows).toEqual(types.map((t) => (t === 'full_attention' ? 0 : 4096)));
    expect(() => mistral.parseConfig({ ...CFG, layer_types: ['full_attention'] }, F)).toThrow(/layer_types must list one attention type per layer/);
    // Mistral-Nemo: an explicit head_dim (q is 32 x 128 = 4096 wide over a 5120 hidden size)
    expect(mistral.parseConfig({ ...CFG, hidden_size: 5120, head_dim: 128 }, F)).toMatchObject({ headDim: 128, hiddenSize: 5120 });
    expect(() => mistral.parseConfig({ ...CFG, attention_bias: true }, F)).toThrow(/attention_bias/);
  });

  (native ? it : it.skip)('computes the Llama function of the same weights while a sequence fits the window', async () => {
    const { dir: mdir } = await expectLlamaTwin(native!, tmp.dir, 'mistral', 'mistral', {
      arch: 'mistral', slidingWindow: 96, maxPositionEmbeddings: 512, hiddenSize: 64, numHeads: 4, numKvHeads: 2, numLayers: 2, intermediateSize: 96, seed: 11,
    });
    // sessions are no longer capped at the window: the whole context
    const engine = await Engine.fromPretrained(mdir, { native: native!, backend: 'cpu', sessionLen: 512 });
    try {
      expect(engine.sessionLen).toBe(512);
    } finally {
      await engine.dispose();
    }
  });

  (native ? it : it.skip)('the native config refuses layerWindows of the wrong length or a negative window', () => {
    const base = {
      backend: 'cpu' as const, dtype: 'f16' as const, vocabSize: 8, hiddenSize: 8, intermediateSize: 8, numLayers: 2, numHeads: 2, numKvHeads: 1, headDim: 4,
      rmsNormEps: 1e-6, maxPositionEmbeddings: 16, rope: { type: 'default' as const, theta: 1e4 }, tieWordEmbeddings: true, hiddenAct: 'silu' as const, tensors: [],
    };
    expect(() => native!.createModel({ ...base, layerWindows: [4] })).toThrow(/layerWindows must have numLayers \(2\) entries, got 1/);
    expect(() => native!.createModel({ ...base, layerWindows: [4, -1] })).toThrow(/layerWindows holds -1/);
  });

  (native ? it : it.skip)('attends to the last `sliding_window` positions only, in the forward and in paged decoding', async () => {
    // two layers, window 4: position p's logits depend on tokens p - 6 .. p only (each layer reaches 3 back), so
    // changing token 0 leaves positions >= 7 bit-identical and changes the earlier ones; full attention changes all
    const W = 4;
    const opts = { hiddenSize: 64, numHeads: 4, numKvHeads: 2, numLayers: 2, intermediateSize: 96, seed: 5 } as const;
    const mdir = path.join(tmp.dir, 'mistral-w4');
    const ldir = path.join(tmp.dir, 'llama-w4');
    writeTinyModel(mdir, { arch: 'mistral', slidingWindow: W, maxPositionEmbeddings: 512, ...opts });
    writeTinyModel(ldir, { arch: 'llama', ...opts });
    const V = loadModelSpec(mdir).spec.vocabSize;
    const a = Int32Array.from({ length: 24 }, (_, i) => (i * 29 + 3) % 200);
    const b = Int32Array.from(a);
    b[0] = (a[0] + 77) % 200;
    const row = (x: Float32Array, p: number) => Array.from(x.subarray(p * V, (p + 1) * V));
    const [ma, mb] = [await cpuLogits(native!, mdir, a), await cpuLogits(native!, mdir, b)];
    const [la, lb] = [await cpuLogits(native!, ldir, a), await cpuLogits(native!, ldir, b)];
    const reach = 2 * (W - 1);
    for (let p = 0; p < a.length; p++) {
      if (p > reach) expect(row(mb, p)).toEqual(row(ma, p));
      else expect(row(mb, p)).not.toEqual(row(ma, p));
      expect(row(lb, p)).not.toEqual(row(la, p));
    }
    // the engine's paged decode (blocks of 4: the window crosses block boundaries) against the whole-sequence forward:
    // each greedy token is the argmax of the forward over the prompt and the tokens before it
    const engine = await Engine.fromPretrained(mdir, { native: native!, backend: 'cpu', blockSize: 4, maxBatchSize: 2 });
    try {
      const outs: number[] = [];
      for await (const o of engine.createInstance().streamInfer({ inputIds: Array.from(a.subarray(0, 9)), maxNewTokens: 16, stopIds: [], sampling: { temperature: 0 } })) {
        outs.push(...o.tokenIds);
      }
      expect(outs).toHaveLength(16);
      const seq = Array.from(a.subarray(0, 9)).concat(outs);
      const full = await cpuLogits(native!, mdir, seq);
      for (let i = 0; i < outs.length; i++) {
        const r = row(full, 8 + i);
        expect(r.indexOf(Math.max(...r))).toBe(outs[i]);
      }
    } finally {
      await engine.dispose();
    }
  });
});
