// calibrate / auto_awq on Gemma 1, 2 and 3. Their norms load as 1 + w (TensorSource.add); AWQ divides that by s, and the
// writer stores w' = (1 + w) / s - 1, as AutoAWQ does for Gemma. Their layers run in TypeScript (the native layer session
// runs none of gelu_tanh, sandwich norms, attention soft-capping or a local rope). Checked here, for each generation:
//  - the TypeScript path is taken and said; session: true is refused with the reason;
//  - RTN writes every norm's own w back (within f16 rounding), no lm_head (tied), and reloads with add 1;
//  - AWQ with search: the written norms read back (1 + w') as the in-memory norms the search went on with, and the written
//    directory computes the in-memory quantized model (native decoder vs BlockForward on the in-memory weights; Gemma 2's
//    soft-capped attention inside the search);
// and for Gemma 3: a Gemma3ForConditionalGeneration checkpoint keeps its own tensor names (text only) and computes its
// CausalLM twin; the writer's rule on a known s: w' = (1 + w) / s - 1 within f16 rounding.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decodeHalf, roundHalf } from '../io/half';
import { readSafetensorsDir, readTensorBytes } from '../io/safetensors';
import { loadModelSpec, loadModelWeights } from '../models/load';
import { canonicalWeights } from '../testing/canonical-weights';
import { cpuLogits, nativeCpuOrReport } from '../testing/native-cpu';
import { makeTempDir } from '../testing/tmp-dir';
import { writeTinyModel, type TinyModelOptions } from '../testing/tiny-model';
import { clearAutoAwqWrites, lastAutoAwqWrite } from '../testing/awq-writes';
import { writeAutoAwqDir } from './autoawq';
import { autoAwq } from './awq';
import { BlockForward } from './block-forward';
import { calibrate } from './calibrate';
import { dequantizeLinear, quantizeLinear } from './pack';

jest.mock('./autoawq', () => jest.requireActual('../testing/awq-writes').recordingAutoawq(jest.requireActual('./autoawq')));

const native = nativeCpuOrReport('gemma auto_awq');

interface GemmaCase {
  name: string;
  /** MHA (v → o is searched too) */
  tiny: TinyModelOptions;
  /** [canonical, HF module under model.layers.{i}] of each layer's norms */
  norms: Array<[string, string]>;
  /** config.json's activation field as the writer must keep it */
  activation: Record<string, string>;
  /** why the native layer session does not run it (nativeSessionRefusal) */
  refusal: string;
}
const SANDWICH: Array<[string, string]> = [
  ['input_norm', 'input_layernorm'], ['attn_out_norm', 'post_attention_layernorm'], ['post_norm', 'pre_feedforward_layernorm'],
  ['mlp_out_norm', 'post_feedforward_layernorm'],
];
const CASES: GemmaCase[] = [
  {
    name: 'Gemma 3', tiny: { arch: 'gemma3', hiddenSize: 64, numHeads: 4, numKvHeads: 4, numLayers: 3, intermediateSize: 128, seed: 21 },  // layers 0 and 2 slide
    norms: [...SANDWICH, ['q_norm', 'self_attn.q_norm'], ['k_norm', 'self_attn.k_norm']], activation: { hidden_activation: 'gelu_pytorch_tanh' },
    refusal: 'a model with sandwich norms, a gelu_tanh MLP, a local RoPE on its sliding layers',
  },
  {
    name: 'Gemma 2', tiny: { arch: 'gemma2', hiddenSize: 64, numHeads: 4, numKvHeads: 4, numLayers: 3, intermediateSize: 128, seed: 22 },  // softcaps 0.5 / 1.5
    norms: SANDWICH, activation: { hidden_activation: 'gelu_pytorch_tanh' },
    refusal: 'a model with sandwich norms, a gelu_tanh MLP, attention logit soft-capping',
  },
  {
    name: 'Gemma', tiny: { arch: 'gemma', hiddenSize: 64, numHeads: 4, numKvHeads: 4, numLayers: 2, intermediateSize: 128, seed: 23 },
    norms: [['input_norm', 'input_layernorm'], ['post_norm', 'post_attention_layernorm']], activation: { hidden_act: 'gelu_pytorch_tanh' },
    refusal: 'a model with a gelu_tanh MLP',
  },
];
const hfArch = (c: GemmaCase) => ({ gemma: 'GemmaForCausalLM', gemma2: 'Gemma2ForCausalLM', gemma3: 'Gemma3ForCausalLM' }[c.tiny.arch as string]!);

/** The f16 values of an HF tensor of a directory. */
function hfValues(dir: string, name: string): Float32Array {
  const t = readSafetensorsDir(dir).tensors.get(name);
  if (!t) throw new Error(`${dir} has no ${name}`);
  return decodeHalf(readTensorBytes(t), 'f16');
}

/** One f16 step at x (the spacing of f16 values around it). */
const f16Ulp = (x: number) => 2 ** (Math.max(Math.floor(Math.log2(Math.abs(x) || 2 ** -24)), -14) - 10);

(native ? describe : describe.skip)('calibrate and auto_awq on Gemma', () => {
  const tmp = makeTempDir('lmfleet-gemma-awq-');
  const text = path.join(tmp.dir, 'calib.txt');
  const srcOf = (c: GemmaCase) => path.join(tmp.dir, `src-${c.tiny.arch}`);
  beforeAll(() => {
    for (const c of CASES) writeTinyModel(srcOf(c), c.tiny);
    fs.writeFileSync(text, Array.from({ length: 60 }, (_, i) => `line ${i}: the cache holds ${i * 13} blocks and the scheduler runs ${i * 7} steps.`).join('\n'));
  });
  afterAll(() => tmp.cleanup());

  describe.each(CASES)('$name', (c) => {
    const work = (what: string) => path.join(tmp.dir, `${c.tiny.arch}-${what}`);
    const layers = c.tiny.numLayers!;
    const hfNorms = () => ['model.norm.weight', ...Array.from({ length: layers }, (_, i) => c.norms.map(([, hf]) => `model.layers.${i}.${hf}.weight`)).flat()];

    it('runs its layers in TypeScript and says so; session: true is refused with the reason', async () => {
      const src = srcOf(c);
      const logs: string[] = [];
      await calibrate(src, { dataset: text, samples: 2, seqlen: 32, workDir: work('calib'), native: native!, log: (_l, m) => logs.push(m) });
      expect(logs.join('\n')).toContain(`${hfArch(c)} is ${c.refusal}: calibration runs layer by layer in TypeScript`);
      await expect(calibrate(src, { dataset: text, samples: 2, seqlen: 32, workDir: work('refused'), session: true, native: native! }))
        .rejects.toThrow(`${hfArch(c)} is ${c.refusal}: calibrate runs its layers in TypeScript (session: false)`);
      await expect(autoAwq(src, { workDir: work('refused2'), wGroupSize: 32, calibDataset: text, session: true, native: native! }))
        .rejects.toThrow(/: auto_awq runs its layers in TypeScript/);
      expect(fs.existsSync(work('refused'))).toBe(false);
      expect(fs.existsSync(work('refused2'))).toBe(false);
    });

    it('RTN writes each norm\'s own w back, no lm_head (tied), AWQ linears; the result reloads with add 1 and runs', async () => {
      const src = srcOf(c);
      const out = work('rtn');
      await autoAwq(src, { workDir: out, wGroupSize: 32, searchScale: false, searchClip: false, native: native! });
      const cfg = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
      expect(cfg).toMatchObject({ architectures: [hfArch(c)], ...c.activation, quantization_config: { quant_method: 'awq', bits: 4, group_size: 32 } });
      const names = [...readSafetensorsDir(out).tensors.keys()];
      expect(names).not.toContain('lm_head.weight');
      expect(names).toContain(`model.layers.${layers - 1}.mlp.down_proj.qweight`);
      // (1 + w) in f32 and back: exact unless 0 < w < 2^-13, then within one f16 step
      let steps = 0;
      for (const name of hfNorms()) {
        const [w, back] = [hfValues(src, name), hfValues(out, name)];
        steps = Math.max(steps, ...w.map((x, j) => Math.abs(back[j] - x) / f16Ulp(x)));
      }
      expect(steps).toBeLessThanOrEqual(1);
      const loaded = loadModelSpec(out);
      expect(loaded.spec.quant).toEqual({ method: 'awq', bits: 4, groupSize: 32 });
      const tensors = loadModelWeights(loaded).tensors;
      expect(tensors.filter((t) => t.add === 1).length).toBe(c.norms.length * layers + 1);
      const [fp, q] = [canonicalWeights(src), canonicalWeights(out)];
      const expected = dequantizeLinear(quantizeLinear(fp.get('layers.1.gate.weight')!, 128, 64, 4, 32)).map((x) => roundHalf(x, 'f16'));
      expect(Math.max(...q.get('layers.1.gate.weight')!.map((v, j) => Math.abs(v - expected[j])))).toBe(0);
      const ids = Int32Array.from({ length: 12 }, (_, i) => (i * 29 + 3) % 250);
      expect((await cpuLogits(native!, out, ids)).every(Number.isFinite)).toBe(true);
    });

    it('AWQ: the written norms read back as the in-memory 1 + w\' the search went on with, and the directory computes the in-memory quantized model', async () => {
      const src = srcOf(c);
      const out = work('awq');
      // (no clip search: slow in TypeScript, and it touches no norm)
      const res = await autoAwq(src, { workDir: out, wGroupSize: 32, calibDataset: text, calibSamples: 4, calibSeqlen: 48, searchClip: false, native: native! });
      expect(Object.values(res.layers[0].alphas).some((a) => a !== undefined && a > 0)).toBe(true);
      const [loaded, , weights] = lastAutoAwqWrite();
      let moved = 0;
      for (let i = 0; i < layers; i++) {
        for (const [canon, hf] of c.norms) {
          const name = `model.layers.${i}.${hf}.weight`;
          const inMemory = weights.get(`layers.${i}.${canon}.weight`)!;
          const back = hfValues(out, name).map((x) => Math.fround(1 + x));
          expect({ name, same: Array.from(back) }).toEqual({ name, same: Array.from(inMemory) });
          const orig = hfValues(src, name);
          moved = Math.max(moved, ...orig.map((x, j) => Math.abs(Math.fround(1 + x) - inMemory[j])));
        }
      }
      expect(moved).toBeGreaterThan(1e-2);  // the scale search did scale input_norm / post_norm
      const ids = Int32Array.from({ length: 24 }, (_, i) => (i * 31 + 9) % 250);
      // (the loader keeps the dequantized linears in f16: so does the in-memory model here)
      const asLoaded = new Map([...weights].map(([k, v]) => [k, /^layers\.\d+\.(q|k|v|o|gate|up|down)\.weight$/.test(k) ? v.map((x) => roundHalf(x, 'f16')) : v]));
      const inMemory = await new BlockForward(native!, loaded.spec, asLoaded).forward(ids);
      const written = await cpuLogits(native!, out, ids);
      let err = 0;
      for (let i = 0; i < written.length; i++) err = Math.max(err, Math.abs(written[i] - inMemory[i]));
      expect(err).toBeLessThan(1e-4);  // Gemma 3 / 2 / 1: 1.8e-6 / 2.0e-6 / 1.2e-6 (cpu)
    }, 60_000);
  });

  describe('Gemma 3\'s image-text checkpoint and the writer\'s rule', () => {
    const src = () => srcOf(CASES[0]);
    it('a Gemma3ForConditionalGeneration checkpoint is written in its own names, text tensors only, and reloads', async () => {
      const mm = path.join(tmp.dir, 'mm');
      writeTinyModel(mm, { ...CASES[0].tiny, gemma3: { multimodal: 'language_model.model' } });
      const out = path.join(tmp.dir, 'mm-rtn');
      await autoAwq(mm, { workDir: out, wGroupSize: 32, searchScale: false, searchClip: false, native: native! });
      const names = [...readSafetensorsDir(out).tensors.keys()];
      expect(names).toContain('language_model.model.layers.0.self_attn.q_proj.qweight');
      expect(names).toContain('language_model.model.layers.0.pre_feedforward_layernorm.weight');
      expect(names.filter((n) => !n.startsWith('language_model.model.'))).toEqual([]);
      // the same weights as `src` (same seed): the same quantized model as src's RTN
      const ref = path.join(tmp.dir, 'mm-ref');
      await autoAwq(src(), { workDir: ref, wGroupSize: 32, searchScale: false, searchClip: false, native: native! });
      const ids = Int32Array.from({ length: 12 }, (_, i) => (i * 29 + 3) % 250);
      expect(Array.from(await cpuLogits(native!, out, ids))).toEqual(Array.from(await cpuLogits(native!, ref, ids)));
    });

    it('the writer stores a norm scaled by s as (1 + w) / s - 1 (within f16 rounding)', async () => {
      await autoAwq(src(), { workDir: path.join(tmp.dir, 'rtn2'), wGroupSize: 32, searchScale: false, searchClip: false, native: native! });
      const [loaded, sources, weights, quantized] = lastAutoAwqWrite();
      const w = hfValues(src(), 'model.layers.1.pre_feedforward_layernorm.weight');
      const s = Float32Array.from(w, (_, c) => 0.25 + c / 16);
      const scaled = new Map(weights);
      scaled.set('layers.1.post_norm.weight', Float32Array.from(w, (x, c) => (1 + x) / s[c]));
      const dst = path.join(tmp.dir, 'scaled');
      await writeAutoAwqDir(loaded, sources, scaled, quantized, { dstDir: dst, groupSize: 32 });
      const back = hfValues(dst, 'model.layers.1.pre_feedforward_layernorm.weight');
      const want = Array.from(w, (x, c) => (1 + x) / s[c] - 1);
      expect(Math.max(...want.map((x, c) => Math.abs(back[c] - x) / f16Ulp(x)))).toBeLessThanOrEqual(1);
      expect(Math.max(...want.map((x, c) => Math.abs(back[c] - x)))).toBeGreaterThan(0);  // (not trivially: s moved them)
      expect(Math.max(...w.map((x, c) => Math.abs(back[c] - x)))).toBeGreaterThan(0.1);
    });
  });
});
