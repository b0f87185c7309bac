// Mistral: the Llama function under another name, with sessions capped at its sliding window. Parity with transformers
// itself: the golden case test/fixtures/golden/mistral (engine.e2e.spec.ts, block-forward.spec.ts).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Engine } from '../generation/engine';
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

  it('parses Mistral config.json: a sliding window below the context becomes the session cap; none or a larger one, no cap', () => {
    expect(mistral.parseConfig(CFG, F)).toMatchObject({ arch: 'mistral', hfArchitecture: 'MistralForCausalLM', numKvHeads: 8, headDim: 128, slidingWindow: 4096, qkvBias: false });
    expect(mistral.parseConfig({ ...CFG, sliding_window: null }, F).slidingWindow).toBeUndefined();
    expect(mistral.parseConfig({ ...CFG, sliding_window: 32768 }, F).slidingWindow).toBeUndefined();
    // Mistral-Nemo: an explicit head_dim (q is 32 x 128 = 4096 wide over a 5120 hidden size)
    expect(mistral.parseConfig({ ...CFG, hidden_size: 5120, head_dim: 128 }, F)).toMatchObject({ headDim: 128, hiddenSize: 5120 });
    expect(() => mistral.parseConfig({ ...CFG, attention_bias: true }, F)).toThrow(/attention_bias/);
  });

  (native ? it : it.skip)('computes the Llama function of the same weights; sessions are capped at the window', async () => {
    const opts = { hiddenSize: 64, numHeads: 4, numKvHeads: 2, numLayers: 2, intermediateSize: 96, seed: 11 } as const;
    const ldir = path.join(tmp.dir, 'llama');
    const mdir = path.join(tmp.dir, 'mistral');
    writeTinyModel(ldir, { arch: 'llama', ...opts });
    writeTinyModel(mdir, { arch: 'mistral', slidingWindow: 96, maxPositionEmbeddings: 512, ...opts });
    expect(loadModelSpec(mdir).arch.key).toBe('mistral');
    // the same random weights under both names (the writer draws them in the same order)
    expect(fs.readFileSync(path.join(mdir, 'model.safetensors')).equals(fs.readFileSync(path.join(ldir, 'model.safetensors')))).toBe(true);
    const ids = Int32Array.from({ length: 20 }, (_, i) => (i * 13 + 7) % 200);
    const logits = [await cpuLogits(native!, ldir, ids), await cpuLogits(native!, mdir, ids)];
    expect(Array.from(logits[1])).toEqual(Array.from(logits[0]));
    const engine = await Engine.fromPretrained(mdir, { native: native!, backend: 'cpu' });
    try {
      expect(engine.sessionLen).toBe(96);
    } finally {
      await engine.dispose();
    }
    await expect(Engine.fromPretrained(mdir, { native: native!, backend: 'cpu', sessionLen: 200 })).rejects.toThrow(/longer than the model's sliding_window 96/);
  });
});
