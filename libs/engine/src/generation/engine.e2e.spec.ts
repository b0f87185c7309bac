// End to end on the real CPU backend: parity with transformers on the golden fixtures (logits and greedy tokens),
// and the generation API (streaming, stop words, abort, sessions) on a generated tiny model.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO_ROOT } from '../testing/shared-model';
import { nativeCpuOrReport } from '../testing/native-cpu';
import { makeTempDir } from '../testing/tmp-dir';
import { writeTinyModel, writeTinyTokenizer, type TinyModelInfo } from '../testing/tiny-model';
import { Engine } from './engine';
import { PretrainedModel } from './pretrained';
import type { StreamOutput } from './types';

const GOLDEN = path.join(REPO_ROOT, 'test', 'fixtures', 'golden');
const native = nativeCpuOrReport('engine e2e');
/** Loads an Engine, or reports "not run" while the addon has no batch engine yet (createEngine not bound). */
async function engineOrReport(dir: string, cfg: Parameters<typeof Engine.fromPretrained>[1]): Promise<Engine | undefined> {
  try {
    return await Engine.fromPretrained(dir, cfg);
  } catch (e) {
    if (/createEngine is not a function/.test(String((e as Error)?.message))) {
      console.log(`engine e2e: not run: the native addon has no createEngine yet`);
      return undefined;
    }
    throw e;
  }
}

interface Golden {
  case: string;
  prompt_ids: number[];
  greedy_ids: number[];
  logits: number[][];
  min_margin: number;
  vocab_size: number;
}

async function collect(it: AsyncIterable<StreamOutput>): Promise<StreamOutput[]> {
  const outs: StreamOutput[] = [];
  for await (const o of it) outs.push(o);
  return outs;
}

/** A golden case as a loadable model directory: its files plus a tiny tokenizer sized to its vocabulary. */
function goldenModelDir(tmp: string, name: string, copyName = name): { dir: string; golden: Golden } {
  const src = path.join(GOLDEN, name);
  const dir = path.join(tmp, copyName);
  fs.mkdirSync(dir, { recursive: true });
  for (const f of ['config.json', 'model.safetensors']) fs.symlinkSync(path.join(src, f), path.join(dir, f));
  const golden = JSON.parse(fs.readFileSync(path.join(src, 'golden.json'), 'utf8')) as Golden;
  writeTinyTokenizer(dir, { arch: name.startsWith('llama') ? 'llama' : 'qwen2', vocabSize: golden.vocab_size });
  return { dir, golden };
}

const goldenCases = fs.existsSync(GOLDEN) ? fs.readdirSync(GOLDEN).filter((d) => fs.existsSync(path.join(GOLDEN, d, 'golden.json'))) : [];

describe('golden parity with transformers (cpu)', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  beforeAll(() => (tmp = makeTempDir()));
  afterAll(() => tmp.cleanup());

  it.each(goldenCases)('%s: forward logits match', async (name) => {
    if (!native) return;
    const { dir, golden } = goldenModelDir(tmp.dir, name);
    const pm = await PretrainedModel.load(dir, { native });
    try {
      const logits = await pm.forward(golden.prompt_ids);
      const V = golden.vocab_size;
      expect(logits.length).toBe(golden.prompt_ids.length * V);
      let maxErr = 0;
      let maxRef = 0;
      for (let t = 0; t < golden.prompt_ids.length; t++) {
        for (let v = 0; v < V; v++) {
          maxErr = Math.max(maxErr, Math.abs(logits[t * V + v] - golden.logits[t][v]));
          maxRef = Math.max(maxRef, Math.abs(golden.logits[t][v]));
        }
      }
      console.log(`${name}: max |logit - golden| = ${maxErr.toExponential(2)} (max |golden| ${maxRef.toFixed(2)})`);
      expect(maxErr).toBeLessThan(Math.max(1e-2, golden.min_margin / 2));
    } finally {
      pm.dispose();
    }
  });

  it.each(goldenCases)('%s: greedy tokens match', async (name) => {
    if (!native) return;
    const { dir, golden } = goldenModelDir(tmp.dir, name, name + '-greedy');
    const engine = await engineOrReport(dir, { native, maxBatchSize: 2 });
    if (!engine) return;
    try {
      const outs = await collect(
        engine.createInstance().streamInfer({ inputIds: golden.prompt_ids, maxNewTokens: golden.greedy_ids.length, stopIds: [], sampling: { temperature: 0 } }),
      );
      expect(outs.flatMap((o) => o.tokenIds)).toEqual(golden.greedy_ids);
      expect(outs[outs.length - 1].finishReason).toBe('length');
    } finally {
      await engine.dispose();
    }
  });
});

describe('generation API on a tiny generated model (cpu)', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  let info: TinyModelInfo;
  let engine: Engine | undefined;
  beforeAll(async () => {
    tmp = makeTempDir();
    info = writeTinyModel(path.join(tmp.dir, 'tiny'), { arch: 'qwen2', seed: 7, weightStd: 0.2 });
    if (native) engine = await engineOrReport(info.dir, { native, maxBatchSize: 4, sessionLen: 256 });
  });
  afterAll(async () => {
    await engine?.dispose();
    tmp.cleanup();
  });
  const greedy = { temperature: 0 };

  it('generate: greedy is deterministic, streamed text equals the decoded tokens', async () => {
    if (!engine) return;
    const [a, b] = await engine.generate(['the cat', 'the cat'], { maxNewTokens: 24, temperature: 0, ignoreEos: true });
    expect(a.tokenIds).toEqual(b.tokenIds);
    expect(a.tokenIds).toHaveLength(24);
    expect(a.text).toBe(engine.tokenizer.decode(a.tokenIds));
    expect(a.usage).toMatchObject({ promptTokens: engine.encodePrompt('the cat').length, completionTokens: 24 });
  });

  it('sampling with a seed is reproducible', async () => {
    if (!engine) return;
    const g = { maxNewTokens: 16, temperature: 1, topK: 20, topP: 0.9, seed: 1234, ignoreEos: true };
    const [a] = await engine.generate(['hello'], g);
    const [b] = await engine.generate(['hello'], g);
    expect(a.tokenIds).toEqual(b.tokenIds);
  });

  it('stop words cut the text and end the request', async () => {
    if (!engine) return;
    const [full] = await engine.generate(['on the'], { maxNewTokens: 32, temperature: 0, ignoreEos: true });
    const word = full.text.slice(6, 8);
    if (word.length < 2) return;
    const [cut] = await engine.generate(['on the'], { maxNewTokens: 32, temperature: 0, ignoreEos: true, stopWords: [word] });
    expect(cut.finishReason).toBe('stop');
    expect(cut.text).toBe(full.text.slice(0, full.text.indexOf(word)));
    // cancellation is asynchronous: a fast model may have generated everything before the cancel lands
    expect(cut.usage.completionTokens).toBeLessThanOrEqual(32);
  });

  it('abort cancels a running request', async () => {
    if (!engine) return;
    const ac = new AbortController();
    const outs: StreamOutput[] = [];
    for await (const o of engine.createInstance().streamInfer({ inputIds: engine.encodePrompt('x'), maxNewTokens: 200, stopIds: [], sampling: greedy, signal: ac.signal })) {
      outs.push(o);
      if (outs.length === 2) ac.abort();
    }
    expect(outs[outs.length - 1].finishReason).toBe('cancelled');
    expect(outs.flatMap((o) => o.tokenIds).length).toBeLessThan(200);
    expect(engine.stats().running).toBe(0);
  });

  it('a session continues from its KV cache exactly like the full sequence', async () => {
    if (!engine) return;
    const inst = engine.createInstance();
    const sid = 41;
    const p1 = engine.tokenizer.encode('first turn');
    const t1 = (await collect(inst.streamInfer({ sessionId: sid, inputIds: p1, maxNewTokens: 8, stopIds: [], sampling: greedy }))).flatMap((o) => o.tokenIds);
    const p2 = engine.tokenizer.encode(' and then');
    const t2 = (await collect(inst.streamInfer({ sessionId: sid, inputIds: p2, maxNewTokens: 8, stopIds: [], sampling: greedy }))).flatMap((o) => o.tokenIds);
    // Same tokens without a session: the whole history as one prompt.
    const ref = (await collect(inst.streamInfer({ inputIds: [...p1, ...t1, ...p2], maxNewTokens: 8, stopIds: [], sampling: greedy }))).flatMap((o) => o.tokenIds);
    expect(t2).toEqual(ref);
    expect(engine.sessionLength(sid)).toBe(p1.length + 8 + p2.length + 8);
    inst.endSession(sid);
    expect(engine.sessionLength(sid)).toBe(0);
  });

  it('returns log-probs of the sampled tokens with top alternatives', async () => {
    if (!engine) return;
    const outs = await collect(engine.createInstance().streamInfer({ inputIds: engine.encodePrompt('the'), maxNewTokens: 6, stopIds: [], sampling: greedy, logprobs: 3 }));
    const lps = outs.flatMap((o) => o.logprobs ?? []);
    expect(lps).toHaveLength(6);
    for (const lp of lps) {
      expect(lp.logprob).toBeLessThanOrEqual(0);
      expect(lp.top).toHaveLength(3);
      // greedy: the sampled token is the most likely one
      expect(lp.top[0].tokenId).toBe(lp.tokenId);
      expect(lp.top[0].logprob).toBeCloseTo(lp.logprob, 4);
    }
  });

  it('a request larger than the whole KV cache fails with a clear error', async () => {
    if (!engine) return;
    const small = await engineOrReport(info.dir, { native, maxBatchSize: 1, sessionLen: 256, numBlocks: 2, blockSize: 16 });
    if (!small) return;
    try {
      const run = collect(small.createInstance().streamInfer({ inputIds: new Array(100).fill(40), maxNewTokens: 10, stopIds: [] }));
      await expect(run).rejects.toMatchObject({ code: expect.stringMatching(/E_OUT_OF_KV_CACHE|E_INVALID_ARGUMENT/) });
    } finally {
      await small.dispose();
    }
  });

  it("backend 'cuda' without a GPU throws BackendUnavailableError with the reason", async () => {
    if (!engine) return;
    if (fs.existsSync('/dev/nvidia0')) return;
    await expect(Engine.fromPretrained(info.dir, { backend: 'cuda' })).rejects.toThrow(/backend "cuda" is unavailable: .*(GPU|cuda)/i);
    const auto = await Engine.fromPretrained(info.dir, { backend: 'auto', log: () => {} });
    expect(auto.backend).toBe('cpu');
    await auto.dispose();
  });

  it('many concurrent requests each get their own tokens', async () => {
    if (!engine) return;
    const prompts = ['a', 'the dog', 'in the house', 'é世🙂', 'one', 'two'];
    const batched = await engine.generate(prompts, { maxNewTokens: 12, temperature: 0, ignoreEos: true });
    for (let i = 0; i < prompts.length; i++) {
      const [single] = await engine.generate([prompts[i]], { maxNewTokens: 12, temperature: 0, ignoreEos: true });
      expect(batched[i].tokenIds).toEqual(single.tokenIds);
    }
  });
});
