// The scheduler the vLLM way: plain structs in and out through a native harness, no kernels. Each test
// drives schedule() / update(sampled tokens) by hand and checks who runs, how many tokens, and the blocks.
import { binaryPath } from '../index';

interface Scheduled { id: number; start: number; count: number; sample: boolean; blocks: number; blockIds: number[] }
interface Ev { type: string; id: number; tokens?: number[]; finishReason?: string; code?: string; cachedTokens?: number }
interface Harness {
  add(r: { id: number; inputIds: number[]; maxNewTokens: number; sessionId?: number; stopIds?: number[] }): void;
  schedule(): { seqs: Scheduled[]; numTokens: number; events: Ev[] };
  update(sampled: number[]): Ev[];
  cancel(id: number): Ev[];
  endSession(sid: number): void;
  stats(): { running: number; waiting: number; sessions: number; blocksFree: number; blocksTotal: number; cachedBlocks: number };
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
const addon = require(binaryPath('cpu')!) as { createSchedulerHarness(o: object): Harness };
const harness = (o: { numBlocks: number; blockSize: number; maxBatchSize?: number; sessionLen?: number; maxPrefillTokens?: number; enablePrefixCaching?: boolean }) =>
  addon.createSchedulerHarness(o);
const ids = (n: number, base = 1) => Array.from({ length: n }, (_, i) => base + i);

/** Runs one step, sampling token 7 for everyone who samples. */
function step(h: Harness, tok = 7) {
  const out = h.schedule();
  const events = [...out.events, ...h.update(out.seqs.filter((s) => s.sample).map(() => tok))];
  return { out, events };
}

describe('scheduler', () => {
  it('requests join and leave the running batch every step (continuous batching)', () => {
    const h = harness({ numBlocks: 64, blockSize: 4, maxBatchSize: 2 });
    h.add({ id: 1, inputIds: ids(5), maxNewTokens: 1 });
    h.add({ id: 2, inputIds: ids(3), maxNewTokens: 3 });
    h.add({ id: 3, inputIds: ids(2), maxNewTokens: 2 });
    let { out, events } = step(h);
    expect(out.seqs.map((s) => [s.id, s.start, s.count, s.sample])).toEqual([[1, 0, 5, true], [2, 0, 3, true]]);
    expect(events).toEqual(expect.arrayContaining([expect.objectContaining({ type: 'done', id: 1, finishReason: 'length' })]));
    expect(h.stats()).toMatchObject({ running: 1, waiting: 1 });
    ({ out } = step(h)); // 2 decodes, 3 joins with its prefill in the same step
    expect(out.seqs.map((s) => [s.id, s.start, s.count])).toEqual([[2, 3, 1], [3, 0, 2]]);
    step(h);
    ({ out, events } = step(h));
    expect(h.stats()).toMatchObject({ running: 0, waiting: 0, blocksFree: 64 });
  });

  it('chunked prefill: at most maxPrefillTokens per step, running sequences first', () => {
    const h = harness({ numBlocks: 64, blockSize: 4, maxPrefillTokens: 4 });
    h.add({ id: 1, inputIds: ids(10), maxNewTokens: 2 });
    expect(step(h).out.seqs).toEqual([expect.objectContaining({ id: 1, start: 0, count: 4, sample: false })]);
    h.add({ id: 2, inputIds: ids(3), maxNewTokens: 1 });
    expect(step(h).out.seqs).toEqual([expect.objectContaining({ id: 1, start: 4, count: 4, sample: false })]);
    const s3 = step(h).out.seqs;
    expect(s3.map((s) => [s.id, s.start, s.count, s.sample])).toEqual([[1, 8, 2, true], [2, 0, 2, false]]);
  });

  it('out of blocks: the most recently admitted sequence is preempted, then recomputed from the start', () => {
    const h = harness({ numBlocks: 4, blockSize: 4, maxBatchSize: 4 });
    h.add({ id: 1, inputIds: ids(7), maxNewTokens: 6 }); // 2 blocks, grows to 4 at 13 tokens
    h.add({ id: 2, inputIds: ids(7), maxNewTokens: 6 });
    step(h); // both prefilled: 7 computed + 1 sampled each, 2 blocks each
    step(h); // 8 computed each: still 2 blocks each
    expect(h.stats().blocksFree).toBe(0);
    const { out } = step(h); // both need a 3rd block: 2 is preempted so 1 can grow
    expect(out.seqs.map((s) => s.id)).toEqual([1]);
    expect(h.stats()).toMatchObject({ running: 1, waiting: 1 });
    let seqs: Scheduled[] = [];
    for (let i = 0; i < 10 && !seqs.some((s) => s.id === 2); i++) seqs = step(h).out.seqs;
    expect(seqs.find((s) => s.id === 2)).toMatchObject({ start: 0, count: 9 }); // 7 prompt + 2 generated, recomputed
    expect(h.stats().running).toBe(1); // 1 finished first (it needed the whole cache)
  });

  it('a request that can never fit gets E_OUT_OF_KV_CACHE; one longer than sessionLen E_INVALID_ARGUMENT', () => {
    const h = harness({ numBlocks: 2, blockSize: 4, sessionLen: 16 });
    h.add({ id: 1, inputIds: ids(5), maxNewTokens: 10 });
    h.add({ id: 2, inputIds: ids(17), maxNewTokens: 1 });
    h.add({ id: 3, inputIds: ids(3), maxNewTokens: 2 });
    const { out } = step(h);
    expect(out.events).toEqual([
      expect.objectContaining({ type: 'error', id: 1, code: 'E_OUT_OF_KV_CACHE' }),
      expect.objectContaining({ type: 'error', id: 2, code: 'E_INVALID_ARGUMENT' }),
    ]);
    expect(out.seqs.map((s) => s.id)).toEqual([3]);
  });

  it('stop ids end a request with "stop" and are not emitted', () => {
    const h = harness({ numBlocks: 8, blockSize: 4 });
    h.add({ id: 1, inputIds: ids(2), maxNewTokens: 5, stopIds: [9] });
    expect(step(h, 5).events).toEqual([{ type: 'tokens', id: 1, tokens: [5] }]);
    const { events } = step(h, 9);
    expect(events).toEqual([expect.objectContaining({ type: 'done', id: 1, finishReason: 'stop', completionTokens: 2 })]);
  });

  it('cancel frees blocks at once, waiting or running', () => {
    const h = harness({ numBlocks: 16, blockSize: 4, maxBatchSize: 1 });
    h.add({ id: 1, inputIds: ids(9), maxNewTokens: 50 });
    h.add({ id: 2, inputIds: ids(9), maxNewTokens: 50 });
    step(h);
    expect(h.stats().blocksFree).toBe(13);
    expect(h.cancel(2)).toEqual([expect.objectContaining({ type: 'done', id: 2, finishReason: 'cancelled' })]);
    expect(h.cancel(1)).toEqual([expect.objectContaining({ type: 'done', id: 1, finishReason: 'cancelled' })]);
    expect(h.stats()).toMatchObject({ running: 0, waiting: 0, blocksFree: 16 });
  });

  it('sessions keep their blocks between turns; the next turn starts after the cached tokens', () => {
    const h = harness({ numBlocks: 16, blockSize: 4 });
    h.add({ id: 1, sessionId: 5, inputIds: ids(6), maxNewTokens: 2 });
    step(h);
    step(h); // done: 6 prompt + 2 generated, 7 computed (the last sampled token is not yet in the cache)
    expect(h.stats()).toMatchObject({ sessions: 1, running: 0, blocksFree: 14 });
    h.add({ id: 2, sessionId: 5, inputIds: ids(3, 50), maxNewTokens: 1 });
    expect(step(h).out.seqs).toEqual([expect.objectContaining({ id: 2, start: 7, count: 4, sample: true })]);
    h.endSession(5);
    expect(h.stats()).toMatchObject({ sessions: 0, blocksFree: 16 });
  });

  it('cancelling a queued turn of a session leaves the running turn and the session alone', () => {
    const h = harness({ numBlocks: 16, blockSize: 4 });
    h.add({ id: 1, sessionId: 3, inputIds: ids(5), maxNewTokens: 2 });
    h.add({ id: 2, sessionId: 3, inputIds: ids(2), maxNewTokens: 2 }); // waits: the session is busy
    expect(step(h).out.seqs.map((s) => s.id)).toEqual([1]);
    expect(h.cancel(2)).toEqual([expect.objectContaining({ id: 2, finishReason: 'cancelled' })]);
    step(h); // 1 finishes and keeps the session
    expect(h.stats()).toMatchObject({ sessions: 1, running: 0, waiting: 0 });
    expect(h.stats().blocksFree).toBeLessThan(16);
  });

  it('idle sessions are evicted when a waiting request needs their blocks (recomputed on their next turn)', () => {
    const h = harness({ numBlocks: 4, blockSize: 4 });
    h.add({ id: 1, sessionId: 9, inputIds: ids(8), maxNewTokens: 1 });
    step(h);
    expect(h.stats()).toMatchObject({ sessions: 1, blocksFree: 2 }); // the session keeps 2 blocks
    h.add({ id: 2, inputIds: ids(10), maxNewTokens: 2 }); // needs 3
    expect(step(h).out.seqs).toEqual([expect.objectContaining({ id: 2, start: 0, count: 10 })]);
    step(h);
    h.add({ id: 3, sessionId: 9, inputIds: ids(2, 30), maxNewTokens: 1 });
    expect(step(h).out.seqs).toEqual([expect.objectContaining({ id: 3, start: 0, count: 11 })]);
  });

  describe('prefix caching', () => {
    /** Runs steps until request `id` is done; returns its done event. */
    function runToEnd(h: Harness, id: number): Ev {
      for (let i = 0; i < 100; i++) {
        const done = step(h).events.find((e) => e.type === 'done' && e.id === id);
        if (done) return done;
      }
      throw new Error(`request ${id} did not finish`);
    }

    it('a later request starts after the full blocks of a finished one that share its prompt, and says how many tokens it was spared', () => {
      const h = harness({ numBlocks: 16, blockSize: 4, enablePrefixCaching: true });
      h.add({ id: 1, inputIds: ids(10), maxNewTokens: 2 });
      const first = step(h).out.seqs[0];
      expect(first).toMatchObject({ start: 0, count: 10 });
      expect(runToEnd(h, 1)).toMatchObject({ cachedTokens: 0 });
      expect(h.stats()).toMatchObject({ cachedBlocks: 2, blocksFree: 16 }); // cached blocks count as free (evictable)
      h.add({ id: 2, inputIds: [...ids(8), 50, 51, 52], maxNewTokens: 2 });
      const second = step(h).out.seqs[0];
      expect(second).toMatchObject({ id: 2, start: 8, count: 3, sample: true });
      expect(second.blockIds.slice(0, 2)).toEqual(first.blockIds.slice(0, 2));
      expect(runToEnd(h, 2)).toMatchObject({ cachedTokens: 8 });
    });

    it('never the whole prompt: the last prompt token is computed, in a block of its own', () => {
      const h = harness({ numBlocks: 16, blockSize: 4, enablePrefixCaching: true });
      h.add({ id: 1, inputIds: ids(8), maxNewTokens: 1 });
      runToEnd(h, 1);
      h.add({ id: 2, inputIds: ids(8), maxNewTokens: 1 });
      const s = step(h).out.seqs[0];
      expect(s).toMatchObject({ start: 4, count: 4, sample: true }); // block 1 (tokens 4..7) is recomputed into a new block
    });

    it('a running request shares the blocks it has computed; both hold them, and they are freed only when neither does', () => {
      const h = harness({ numBlocks: 16, blockSize: 4, maxPrefillTokens: 64, enablePrefixCaching: true });
      h.add({ id: 1, inputIds: ids(9), maxNewTokens: 20 });
      const a = step(h).out.seqs[0]; // prefilled: blocks 0 and 1 full, registered after the step
      h.add({ id: 2, inputIds: [...ids(8), 70, 71], maxNewTokens: 20 });
      const { out } = step(h);
      const b = out.seqs.find((s) => s.id === 2)!;
      expect(b).toMatchObject({ start: 8, count: 2 });
      expect(b.blockIds.slice(0, 2)).toEqual(a.blockIds.slice(0, 2));
      expect(h.stats().blocksFree).toBe(16 - 3 - 1); // 1: 3 blocks; 2: the 2 shared + 1 of its own
      expect(h.cancel(1)).toEqual([expect.objectContaining({ id: 1, finishReason: 'cancelled' })]);
      expect(h.stats().blocksFree).toBe(16 - 3); // 2 still holds the shared blocks
      h.cancel(2);
      expect(h.stats()).toMatchObject({ blocksFree: 16, running: 0 });
    });

    it('the match follows the chain: a block with the same tokens after a different first block is not a hit', () => {
      const h = harness({ numBlocks: 16, blockSize: 4, enablePrefixCaching: true });
      h.add({ id: 1, inputIds: [1, 2, 3, 4, 5, 6, 7, 8, 9], maxNewTokens: 1 });
      runToEnd(h, 1);
      h.add({ id: 2, inputIds: [9, 9, 9, 9, 5, 6, 7, 8, 9], maxNewTokens: 2 });
      expect(step(h).out.seqs[0]).toMatchObject({ start: 0, count: 9 });
      runToEnd(h, 2);
      h.add({ id: 3, inputIds: [1, 2, 3, 4, 0, 6, 7, 8, 9], maxNewTokens: 1 });
      expect(step(h).out.seqs[0]).toMatchObject({ start: 4, count: 5 }); // the first block only
    });

    it('cached blocks no one holds are evicted (least recently used first) when a grow needs them', () => {
      const h = harness({ numBlocks: 6, blockSize: 4, enablePrefixCaching: true });
      h.add({ id: 1, inputIds: ids(9, 100), maxNewTokens: 1 }); // caches 2 blocks
      runToEnd(h, 1);
      h.add({ id: 2, inputIds: ids(9, 200), maxNewTokens: 1 }); // 2 more
      runToEnd(h, 2);
      expect(h.stats()).toMatchObject({ cachedBlocks: 4, blocksFree: 6 });
      h.add({ id: 3, inputIds: ids(16, 300), maxNewTokens: 2 }); // needs 5 blocks: 2 free + 3 evicted (1's first)
      expect(step(h).out.seqs[0]).toMatchObject({ start: 0, count: 16 });
      runToEnd(h, 3);
      h.add({ id: 4, inputIds: ids(9, 100), maxNewTokens: 2 });
      expect(step(h).out.seqs[0]).toMatchObject({ start: 0 }); // 1's blocks are gone
      runToEnd(h, 4);
      h.add({ id: 5, inputIds: ids(9, 300), maxNewTokens: 1 });
      expect(step(h).out.seqs[0]).toMatchObject({ start: 8 }); // 3's first blocks were cached again after 4 ran
    });

    it('a preempted request finds its own computed blocks in the cache when it comes back', () => {
      const h = harness({ numBlocks: 4, blockSize: 4, maxBatchSize: 4, enablePrefixCaching: true });
      h.add({ id: 1, inputIds: ids(7), maxNewTokens: 6 });
      h.add({ id: 2, inputIds: ids(7, 40), maxNewTokens: 6 });
      step(h);
      step(h);
      // 2 is preempted with two full blocks cached; 1 takes the tail one (evicted first), and needs no more
      expect(step(h).out.seqs.map((s) => s.id)).toEqual([1]);
      let back: Scheduled | undefined;
      for (let i = 0; i < 10 && !back; i++) back = step(h).out.seqs.find((s) => s.id === 2);
      expect(back).toMatchObject({ start: 4, count: 5 }); // 7 prompt + 2 generated: its first block still cached
    });

    it('off by default, and never for sessions', () => {
      const off = harness({ numBlocks: 16, blockSize: 4 });
      off.add({ id: 1, inputIds: ids(9), maxNewTokens: 1 });
      runToEnd(off, 1);
      off.add({ id: 2, inputIds: ids(9), maxNewTokens: 1 });
      expect(step(off).out.seqs[0]).toMatchObject({ start: 0, count: 9 });
      expect(off.stats().cachedBlocks).toBe(0);
      const on = harness({ numBlocks: 16, blockSize: 4, enablePrefixCaching: true });
      on.add({ id: 1, inputIds: ids(9), maxNewTokens: 1 });
      runToEnd(on, 1);
      on.add({ id: 2, sessionId: 4, inputIds: ids(9), maxNewTokens: 1 });
      expect(step(on).out.seqs[0]).toMatchObject({ start: 0, count: 9 });
    });
  });
});

describe('scheduler: speculative decoding (n-gram drafts)', () => {
  interface SpecSeq extends Scheduled { draft: number[] }
  interface SpecEv extends Ev { draftTokens?: number; acceptedTokens?: number }
  type SpecHarness = Omit<Harness, 'schedule' | 'update' | 'stats'> & {
    schedule(): { seqs: SpecSeq[]; numTokens: number; events: SpecEv[] };
    update(sampled: number[]): SpecEv[];
    stats(): { running: number; specDraftTokens: number; specAcceptedTokens: number };
  };
  const spec = (o: object = {}) => addon.createSchedulerHarness({ numBlocks: 64, blockSize: 4, specDraftTokens: 3, ...o }) as unknown as SpecHarness;
  /** Prefills [5 6 7 8 9 5 6] and samples 7: the last three tokens "5 6 7" occurred at 0, followed by 8 9 5. */
  const prefilled = (h: SpecHarness, req: object = {}) => {
    h.add({ id: 1, inputIds: [5, 6, 7, 8, 9, 5, 6], maxNewTokens: 10, ...req });
    const out = h.schedule();
    expect(out.seqs).toEqual([expect.objectContaining({ start: 0, count: 7, sample: true, draft: [] })]); // no drafts in a prefill
    expect(h.update([7])).toEqual([expect.objectContaining({ type: 'tokens', tokens: [7] })]);
  };

  it('drafts what followed the earlier occurrence of the last tokens; tokens come out while each equals the draft before it', () => {
    const h = spec();
    prefilled(h);
    let out = h.schedule();
    expect(out.seqs).toEqual([expect.objectContaining({ start: 7, count: 4, sample: true, draft: [8, 9, 5] })]);
    expect(out.numTokens).toBe(4);
    // the sampled rows agree with 8 and 9 and then say 1, not 5: 8 9 1 come out; the rows after 7, 8, 9 are kept
    expect(h.update([8, 9, 1, 42])).toEqual([expect.objectContaining({ type: 'tokens', id: 1, tokens: [8, 9, 1] })]);
    out = h.schedule();
    expect(out.seqs[0]).toMatchObject({ start: 10 }); // 7 + the last token + 2 accepted drafts
    expect(h.stats()).toMatchObject({ specDraftTokens: 3, specAcceptedTokens: 2 });
  });

  it('every draft accepted: 1 + drafts tokens in one step; a rejected first draft still gives one token', () => {
    const h = spec();
    prefilled(h);
    h.schedule();
    expect(h.update([8, 9, 5, 6])).toEqual([expect.objectContaining({ tokens: [8, 9, 5, 6] })]);
    let out = h.schedule(); // 5 6 7 8 9 5 6 7 8 9 5 6: "9 5 6" last seen at 3..5 (and "5 6" everywhere) -> 7 8 9
    expect(out.seqs[0]).toMatchObject({ start: 11, count: 4, draft: [7, 8, 9] });
    expect(h.update([3, 0, 0, 0])).toEqual([expect.objectContaining({ tokens: [3] })]);
    out = h.schedule();
    expect(out.seqs[0]).toMatchObject({ start: 12 });
    expect(h.stats()).toMatchObject({ specDraftTokens: 6, specAcceptedTokens: 3 });
  });

  it('a stop id among the accepted tokens ends the request there; maxNewTokens caps the drafts; done reports them', () => {
    let h = spec();
    prefilled(h, { stopIds: [9] });
    h.schedule();
    const ev = h.update([8, 9, 5, 6]);
    expect(ev).toEqual([
      expect.objectContaining({ type: 'tokens', tokens: [8] }),
      expect.objectContaining({ type: 'done', finishReason: 'stop', completionTokens: 3, draftTokens: 3, acceptedTokens: 1 }),
    ]);
    expect(h.stats().running).toBe(0);

    h = spec();
    prefilled(h, { maxNewTokens: 3 }); // 1 generated: at most 2 more, so 1 draft
    expect(h.schedule().seqs[0]).toMatchObject({ count: 2, draft: [8] });
    expect(h.update([8, 9])).toEqual([
      expect.objectContaining({ type: 'tokens', tokens: [8, 9] }),
      expect.objectContaining({ type: 'done', finishReason: 'length', completionTokens: 3 }),
    ]);
  });

  it('no earlier occurrence: a plain decode step; the longest n-gram wins over a later shorter one', () => {
    const h = spec();
    h.add({ id: 1, inputIds: [1, 2, 3], maxNewTokens: 4 });
    h.schedule();
    h.update([4]);
    expect(h.schedule().seqs[0]).toMatchObject({ count: 1, draft: [] });
    h.update([5]);

    const g = spec({ specDraftTokens: 2, specNgramMax: 3 });
    // "... 1 2 3 20 21 ... 3 30 31 ... 2 3": the 3-gram "1 2 3" at 0 beats the more recent "3" alone and "2 3"
    g.add({ id: 2, inputIds: [1, 2, 3, 20, 21, 9, 3, 30, 31, 8, 1, 2], maxNewTokens: 4 });
    g.schedule();
    g.update([3]);
    expect(g.schedule().seqs[0]).toMatchObject({ draft: [20, 21] });
  });

  it('bad settings are refused', () => {
    expect(() => spec({ specDraftTokens: 16 })).toThrow(/numDraftTokens must be in \[0, 15\]/);
    expect(() => spec({ specNgramMin: 3, specNgramMax: 2 })).toThrow(/promptLookupMin/);
  });
});
