import { makeTempDir } from '../testing/tmp-dir';
import { writeTinyModel } from '../testing/tiny-model';
import { LLAMA2_CONFIG, LLAMA31_CONFIG, F } from './testing-configs';
import { llama } from './llama';
import { loadModelSpec, loadModelWeights } from './load';
import { toNativeArchConfig } from './spec';

describe('llama', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  beforeEach(() => (tmp = makeTempDir()));
  afterEach(() => tmp.cleanup());

  it('parses Llama 2 (classic rope form, MHA, fp16)', () => {
    const s = llama.parseConfig(LLAMA2_CONFIG, F);
    expect(toNativeArchConfig(s)).toEqual({
      dtype: 'f16', vocabSize: 32000, hiddenSize: 4096, intermediateSize: 11008, numLayers: 32, numHeads: 32, numKvHeads: 32,
      headDim: 128, rmsNormEps: 1e-5, maxPositionEmbeddings: 4096, rope: { type: 'default', theta: 10000 },
      tieWordEmbeddings: false, hiddenAct: 'silu',
    });
    expect(s.qkvBias).toBe(false);
    expect(llama.defaultChatTemplate(s)).toContain('[INST]');
  });

  it('parses Llama 3.1 llama3 rope scaling, GQA and bf16', () => {
    const s = llama.parseConfig(LLAMA31_CONFIG, F);
    expect(s.dtype).toBe('bf16');
    expect(s.numKvHeads).toBe(8);
    expect(s.rope).toEqual({ type: 'llama3', theta: 500000, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 });
    expect(llama.defaultChatTemplate(s)).toContain('<|start_header_id|>');
  });

  it('maps a tiny bf16 Llama with tied embeddings (no lm_head)', () => {
    writeTinyModel(tmp.dir, { arch: 'llama', dtype: 'bf16', tieWordEmbeddings: true });
    const loaded = loadModelSpec(tmp.dir);
    const { tensors } = loadModelWeights(loaded);
    expect(loaded.spec.dtype).toBe('bf16');
    expect(tensors.map((t) => t.name)).not.toContain('lm_head.weight');
    expect(tensors.every((t) => t.dtype === 'bf16')).toBe(true);
  });
});
