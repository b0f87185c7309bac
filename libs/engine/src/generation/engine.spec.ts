// The engine's TypeScript logic over a scripted fake native module (see testing/fake-native.ts). The same behaviours
// run against the real CPU backend in engine.e2e.spec.ts.
import * as path from 'node:path';
import { BackendUnavailableError, DisposedError, EngineError, OutOfKvCacheError } from '../errors';
import { createFakeNative } from '../testing/fake-native';
import { makeTempDir } from '../testing/tmp-dir';
import { writeTinyModel, type TinyModelInfo } from '../testing/tiny-model';
import { selectBackend } from './backend';
import { Engine } from './engine';
import type { StreamOutput } from './types';

async function collect(it: AsyncIterable<StreamOutput>): Promise<StreamOutput[]> {
  const outs: StreamOutput[] = [];
  for await (const o of it) outs.push(o);
  return outs;
}

describe('Engine over a fake native module', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  let info: TinyModelInfo;
  beforeAll(() => {
    tmp = makeTempDir();
    info = writeTinyModel(path.join(tmp.dir, 'qwen2'), { arch: 'qwen2' });
  });
  afterAll(() => tmp.cleanup());

  async function engineWith(opts: Parameters<typeof createFakeNative>[0] = {}, cfg: Record<string, unknown> = {}) {
    const fake = createFakeNative(opts);
    const engine = await Engine.fromPretrained(info.dir, { native: fake.native, ...cfg });
    return { engine, fake };
  }

  it('passes the canonical config and tensors to native code and sizes the cpu KV cache', async () => {
    const { engine, fake } = await engineWith({}, { sessionLen: 256, maxBatchSize: 2, blockSize: 32 });
    const cfg = fake.log.configs[0];
    expect(cfg).toMatchObject({ backend: 'cpu', dtype: 'f16', hiddenSize: 64, numHeads: 4, numKvHeads: 2, headDim: 16, vocabSize: info.vocabSize });
    expect(cfg.tensors.find((t) => t.name === 'layers.1.v.bias')).toBeDefined();
    expect(fake.log.engineOptions[0]).toEqual({ maxBatchSize: 2, blockSize: 32, sessionLen: 256, numBlocks: 16 });
    await engine.dispose();
  });

  it('streams text deltas that concatenate to the decoded tokens, then finish with usage', async () => {
    const { engine } = await engineWith();
    const text = 'héllo 世界 🙂';
    const inputIds = engine.tokenizer.encode(text);
    const outs = await collect(engine.createInstance().streamInfer({ inputIds, maxNewTokens: inputIds.length, stopIds: [] }));
    expect(outs.map((o) => o.text).join('')).toBe(text);
    expect(outs.flatMap((o) => o.tokenIds)).toEqual(inputIds);
    expect(outs.every((o) => !o.text.includes('\uFFFD'))).toBe(true);
    const last = outs[outs.length - 1];
    expect(last.finishReason).toBe('length');
    expect(last.usage).toMatchObject({ promptTokens: inputIds.length, completionTokens: inputIds.length, totalTokens: 2 * inputIds.length });
    await engine.dispose();
  });

  it('finishes with "stop" on a stop id (default: eos ids)', async () => {
    const { engine } = await engineWith({ script: () => [...engine.tokenizer.encode('ab'), info.eosId, 5, 6] });
    const [r] = await engine.generate(['x'], { maxNewTokens: 10 });
    expect(r.finishReason).toBe('stop');
    expect(r.text).toBe('ab');
    expect(r.tokenIds).toEqual(engine.tokenizer.encode('ab')); // the stop token is not streamed
    expect(r.usage.completionTokens).toBe(engine.tokenizer.encode('ab').length + 1); // but it is counted
    await engine.dispose();
  });

  it('cuts at a stop word, cancels the native request and never streams the stop word', async () => {
    const { engine, fake } = await engineWith({ script: () => engine.tokenizer.encode('one two STOP three four') });
    const outs = await collect(engine.createInstance().streamInfer({ inputIds: [5], maxNewTokens: 50, stopWords: ['STOP'] }));
    const last = outs[outs.length - 1];
    expect(outs.map((o) => o.text).join('')).toBe('one two ');
    expect(last).toMatchObject({ finishReason: 'stop', stopWord: 'STOP' });
    expect(fake.log.cancelled).toContain(fake.log.submitted[0].id);
    expect(last.usage!.completionTokens).toBeLessThan(engine.tokenizer.encode('one two STOP three four').length);
    await engine.dispose();
  });

  it('abort via AbortSignal cancels the native request and ends with "cancelled"', async () => {
    const { engine, fake } = await engineWith({ script: () => [10, 11, 12] });
    const ac = new AbortController();
    const outs: StreamOutput[] = [];
    for await (const o of engine.createInstance().streamInfer({ inputIds: [5], maxNewTokens: 400, signal: ac.signal, stopIds: [] })) {
      outs.push(o);
      if (outs.length === 3) ac.abort();
    }
    expect(outs[outs.length - 1].finishReason).toBe('cancelled');
    expect(outs.length).toBeLessThan(10);
    expect(fake.log.cancelled).toEqual([fake.log.submitted[0].id]);
    const pre = new AbortController();
    pre.abort();
    const early = await collect(engine.createInstance().streamInfer({ inputIds: [5], maxNewTokens: 5, signal: pre.signal }));
    expect(early).toEqual([expect.objectContaining({ finishReason: 'cancelled' })]);
    expect(fake.log.submitted).toHaveLength(1);
    await engine.dispose();
  });

  it('cancels the native request when the consumer stops iterating', async () => {
    const { engine, fake } = await engineWith({ script: () => [10, 11] });
    for await (const o of engine.createInstance().streamInfer({ inputIds: [5], maxNewTokens: 400, stopIds: [] })) {
      expect(o.tokenIds).toEqual([10]);
      break;
    }
    expect(fake.log.cancelled).toEqual([fake.log.submitted[0].id]);
    await engine.dispose();
  });

  it('routes interleaved events of concurrent requests to their own streams', async () => {
    const { engine } = await engineWith();
    const prompts = ['alpha beta', 'gamma', 'δέλτα ✓', 'the end is near'];
    const results = await engine.generate(prompts, { maxNewTokens: 64, ignoreEos: true });
    // the fake echoes the prompt (cycling) until maxNewTokens
    results.forEach((r, i) => {
      expect(r.finishReason).toBe('length');
      expect(r.tokenIds).toHaveLength(64);
      expect(r.text.startsWith(prompts[i] + prompts[i])).toBe(true);
    });
    await engine.dispose();
  });

  it('requests made in one tick reach native code in one submit; one it refuses fails alone', async () => {
    const { engine, fake } = await engineWith({ refuseFirstId: 99 });
    const results = await engine.generate(['alpha', 'beta', 'gamma'], { maxNewTokens: 4, ignoreEos: true });
    expect(results.map((r) => r.finishReason)).toEqual(['length', 'length', 'length']);
    expect(fake.log.submitCalls).toEqual([3]);
    const inst = engine.createInstance();
    const ok = collect(inst.streamInfer({ inputIds: [5], maxNewTokens: 2, stopIds: [] }));
    const bad = collect(inst.streamInfer({ inputIds: [99], maxNewTokens: 2, stopIds: [] }));
    await expect(bad).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });
    expect((await ok).at(-1)?.finishReason).toBe('length');
    expect(fake.log.submitCalls).toEqual([3, 2, 1, 1]); // the pair refused as a whole, then each alone
    expect(fake.log.cancelled).toEqual([]);
    await engine.dispose();
  });

  it('a request aborted in the tick it was made is cancelled once submitted', async () => {
    const { engine, fake } = await engineWith({ script: () => [10, 11, 12] });
    const ac = new AbortController();
    const run = collect(engine.createInstance().streamInfer({ inputIds: [5], maxNewTokens: 400, signal: ac.signal, stopIds: [] }));
    expect(fake.log.submitCalls).toEqual([]); // the stream has started; its request waits for the end of the tick
    ac.abort();
    const outs = await run;
    expect(outs.at(-1)?.finishReason).toBe('cancelled');
    expect(fake.log.cancelled).toEqual([fake.log.submitted[0].id]);
    await engine.dispose();
  });

  it('renders chat prompts with the template and stops on the end-of-turn token', async () => {
    const { engine, fake } = await engineWith({ script: () => [...engine.tokenizer.encode('Hi!'), info.imEndId, 7] });
    const [r] = await engine.generate([[{ role: 'user', content: 'hello' }]], { maxNewTokens: 10 });
    expect(engine.tokenizer.decode(fake.log.submitted[0].inputIds, { skipSpecialTokens: false })).toBe(
      '<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n',
    );
    expect(fake.log.submitted[0].stopIds).toEqual(expect.arrayContaining([info.eosId, info.imEndId]));
    expect(r).toMatchObject({ text: 'Hi!', finishReason: 'stop' });
    await engine.dispose();
  });

  it('rejects prompt + maxNewTokens > sessionLen with both numbers', async () => {
    const { engine } = await engineWith({}, { sessionLen: 16 });
    const it = engine.createInstance().streamInfer({ inputIds: new Array(10).fill(5), maxNewTokens: 7 });
    await expect(collect(it)).rejects.toThrow(/prompt of 10 tokens \+ maxNewTokens 7 = 17 exceeds sessionLen 16/);
    await expect(collect(engine.createInstance().streamInfer({ inputIds: [], maxNewTokens: 1 }))).rejects.toThrow(/inputIds is empty/);
    await expect(collect(engine.createInstance().streamInfer({ inputIds: [1e6], maxNewTokens: 1 }))).rejects.toThrow(/outside the vocabulary/);
    await engine.dispose();
  });

  it('maps native error events to engine error classes', async () => {
    const { engine } = await engineWith({ failOn: { firstId: 9, code: 'E_OUT_OF_KV_CACHE', message: 'no free blocks' } });
    await expect(collect(engine.createInstance().streamInfer({ inputIds: [9, 1], maxNewTokens: 3 }))).rejects.toBeInstanceOf(OutOfKvCacheError);
    await engine.dispose();
  });

  it('keeps sessions: a chat sends only the new turn and tracks the session length', async () => {
    const { engine, fake } = await engineWith({ script: () => [...engine.tokenizer.encode('ok'), info.imEndId] });
    const chat = engine.createChat({ sessionId: 7 });
    const r1 = await collect(chat.send('first', { maxNewTokens: 8 }));
    expect(r1.map((o) => o.text).join('')).toBe('ok');
    await collect(chat.send('second', { maxNewTokens: 8 }));
    expect(fake.log.submitted.map((r) => r.sessionId)).toEqual([7, 7]);
    expect(engine.tokenizer.decode(fake.log.submitted[1].inputIds, { skipSpecialTokens: false })).toBe(
      '\n<|im_start|>user\nsecond<|im_end|>\n<|im_start|>assistant\n',
    );
    expect(chat.messages).toEqual([
      { role: 'user', content: 'first' }, { role: 'assistant', content: 'ok' },
      { role: 'user', content: 'second' }, { role: 'assistant', content: 'ok' },
    ]);
    const first = fake.log.submitted[0].inputIds.length + 3;
    expect(engine.sessionLength(7)).toBe(first + fake.log.submitted[1].inputIds.length + 3);
    chat.reset();
    expect(fake.log.endedSessions).toContain(7);
    expect(engine.sessionLength(7)).toBe(0);
    await engine.dispose();
  });

  it('refuses a second request on a busy session', async () => {
    const { engine } = await engineWith({ script: () => [10] });
    const inst = engine.createInstance();
    const a = inst.streamInfer({ sessionId: 3, inputIds: [5], maxNewTokens: 50, stopIds: [] });
    await a.next();
    await expect(collect(inst.streamInfer({ sessionId: 3, inputIds: [5], maxNewTokens: 1 }))).rejects.toThrow(/already has a request running/);
    await a.return(undefined);
    await engine.dispose();
  });

  it('dispose is idempotent, fails running streams and refuses later use', async () => {
    const { engine, fake } = await engineWith({ script: () => [10] });
    const s = engine.createInstance().streamInfer({ inputIds: [5], maxNewTokens: 400, stopIds: [] });
    await s.next();
    await Promise.all([engine.dispose(), engine.dispose()]);
    await expect(s.next()).rejects.toBeInstanceOf(DisposedError);
    await engine.dispose();
    expect(fake.log.disposedEngines).toBe(1);
    expect(fake.log.disposedModels).toBe(1);
    expect(() => engine.createInstance()).toThrow(DisposedError);
    await expect(engine.generate(['x'])).rejects.toBeInstanceOf(DisposedError);
  });

  it('backend auto falls back to cpu and logs why; cuda alone throws BackendUnavailableError', async () => {
    const fake = createFakeNative({ unavailable: { cuda: 'no CUDA device visible' } });
    const logs: string[] = [];
    const mod = await selectBackend('auto', (_l, m) => logs.push(m), fake.loader);
    expect(mod.backend).toBe('cpu');
    expect(logs.join('\n')).toMatch(/falling back to cpu: no CUDA device visible/);
    await expect(selectBackend('cuda', () => {}, fake.loader)).rejects.toBeInstanceOf(BackendUnavailableError);
    await expect(selectBackend('cuda', () => {}, fake.loader)).rejects.toThrow(/backend "cuda" is unavailable: no CUDA device visible/);
  });

  it('EngineError carries a stable code', () => {
    expect(new EngineError('x').code).toBe('E_ENGINE');
  });
});
