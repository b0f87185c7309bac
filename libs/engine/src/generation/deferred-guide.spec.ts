// DeferredGuide (engine.ts): a reasoning model's response_format starts after its thinking. Over a fake inner guide
// (the grammar's GuideHandle) and a fake decode, so every mask it hands the native engine can be checked exactly.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeTempDir } from '../testing/tmp-dir';
import { writeTinyTokenizer } from '../testing/tiny-model';
import { Tokenizer } from '../tokenizer/tokenizer';
import { DeferredGuide } from './engine';
import type { GuideHandle } from './grammar';

const WORDS = 2; // a 64-token vocabulary
// token id -> text
const TEXT: Record<number, string> = { 1: '{', 2: '}', 3: '<think>', 4: 'hmm', 5: '</think>', 6: '\n\n', 7: '"a"', 8: ':', 40: '</', 41: 'think>' };
const decode = (ids: number[]) => ids.map((id) => TEXT[id] ?? '?').join('');
const OPENER = new Set([3]);

const maskOf = (...ids: number[]) => {
  const m = new Uint32Array(WORDS);
  for (const id of ids) m[id >> 5] |= 1 << (id & 31);
  return m;
};
const idsOf = (m: Uint32Array) => [...Array(m.length * 32).keys()].filter((id) => (m[id >> 5] >>> (id & 31)) & 1);

/** A grammar that starts with '{' (id 1) and then allows ids 2, 7, 8; it records what it was fed. */
function fakeInner(): GuideHandle & { fed: number[][]; closed: boolean } {
  const inner = {
    mask: maskOf(1),
    fed: [] as number[][],
    closed: false,
    accept: async (tokens: number[]) => {
      inner.fed.push(tokens);
      return maskOf(2, 7, 8);
    },
    close: () => {
      inner.closed = true;
    },
  };
  return inner;
}

describe('DeferredGuide', () => {
  it('without an opener (deepseek_r1: the prompt opened the block): free until the marker, then the grammar', async () => {
    const inner = fakeInner();
    const g = new DeferredGuide(inner, '</think>', WORDS, decode);
    expect(idsOf(g.mask)).toHaveLength(64); // all allowed
    expect(idsOf((await g.accept([4]))!)).toHaveLength(64);
    expect(idsOf((await g.accept([40]))!)).toHaveLength(64); // half a marker
    expect(await g.accept([41])).toBe(inner.mask); // '</' + 'think>': the grammar's first mask
    expect(inner.fed).toEqual([]);
    expect(idsOf((await g.accept([1]))!)).toEqual([2, 7, 8]);
    expect(inner.fed).toEqual([[1]]);
    g.close();
    expect(inner.closed).toBe(true);
  });

  it('with an opener: the first mask is the grammar\'s first mask plus the opener ids', () => {
    const inner = fakeInner();
    const g = new DeferredGuide(inner, '</think>', WORDS, decode, new Set([3, 33, 63]));
    expect(idsOf(g.mask)).toEqual([1, 3, 33, 63]);
    expect(idsOf(inner.mask)).toEqual([1]); // the grammar's own mask is left as it was
  });

  it('opener path: the first token opens the think block, free until </think>, then the grammar', async () => {
    const inner = fakeInner();
    const g = new DeferredGuide(inner, '</think>', WORDS, decode, OPENER);
    expect(idsOf((await g.accept([3]))!)).toHaveLength(64);
    expect(idsOf((await g.accept([4, 6]))!)).toHaveLength(64);
    expect(await g.accept([5])).toBe(inner.mask);
    expect(idsOf((await g.accept([6, 1]))!)).toEqual([2, 7, 8]); // the grammar takes it from here
    expect(inner.fed).toEqual([[6, 1]]);
  });

  it('opener path with several tokens in one step: what follows </think> goes to the grammar', async () => {
    const inner = fakeInner();
    const g = new DeferredGuide(inner, '</think>', WORDS, decode, OPENER);
    expect(idsOf((await g.accept([3, 4, 5, 1]))!)).toEqual([2, 7, 8]);
    expect(inner.fed).toEqual([[1]]);
  });

  it('direct-answer path: a first token that is not an opener goes to the grammar, which guides from then on', async () => {
    const inner = fakeInner();
    const g = new DeferredGuide(inner, '</think>', WORDS, decode, OPENER);
    expect(idsOf((await g.accept([1]))!)).toEqual([2, 7, 8]);
    expect(inner.fed).toEqual([[1]]);
    // a later <think> or </think> is the grammar's business, not a switch
    await g.accept([3]);
    await g.accept([5]);
    expect(inner.fed).toEqual([[1], [3], [5]]);
  });

  it('a step with no tokens changes nothing', async () => {
    const inner = fakeInner();
    const g = new DeferredGuide(inner, '</think>', WORDS, decode, OPENER);
    expect(await g.accept([])).toBe(g.mask);
    expect(idsOf((await g.accept([1]))!)).toEqual([2, 7, 8]);
  });

  it('no opener in the vocabulary (an empty set): the grammar from the first token', async () => {
    const inner = fakeInner();
    const g = new DeferredGuide(inner, '</think>', WORDS, decode, new Set());
    expect(g.mask).toBe(inner.mask);
    expect(idsOf((await g.accept([1]))!)).toEqual([2, 7, 8]);
    expect(inner.fed).toEqual([[1]]);
  });
});

describe('DeferredGuide.openerIds', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  beforeAll(() => {
    tmp = makeTempDir();
  });
  afterAll(() => tmp.cleanup());

  /** The tiny byte-level BPE with Qwen3's <think> / </think> added (not special, as Qwen3's are), and two more. */
  function tokenizerWithThink(): { tok: Tokenizer; ids: Record<string, number> } {
    const dir = path.join(tmp.dir, 'tok');
    const { vocabSize } = writeTinyTokenizer(dir);
    const file = path.join(dir, 'tokenizer.json');
    const json = JSON.parse(fs.readFileSync(file, 'utf8'));
    const ids: Record<string, number> = {};
    ['<think>', '</think>', '\n<think>', '<think>x'].forEach((content, k) => {
      ids[content] = vocabSize + k;
      json.added_tokens.push({ id: vocabSize + k, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: false });
    });
    return { tok: new Tokenizer(json, JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8'))), ids };
  }

  it('finds the tokens whose text, leading whitespace trimmed, is the opener; once per tokenizer', () => {
    const { tok, ids } = tokenizerWithThink();
    expect(tok.encode('<think>', { addSpecialTokens: false })).toEqual([ids['<think>']]); // one token, as in Qwen3
    const spy = jest.spyOn(tok, 'idToToken');
    const found = DeferredGuide.openerIds(tok, '<think>', tok.vocabSize + 16);
    expect([...found].sort((a, b) => a - b)).toEqual([ids['<think>'], ids['\n<think>']]);
    expect(spy).toHaveBeenCalled();
    spy.mockClear();
    expect(DeferredGuide.openerIds(tok, '<think>')).toBe(found); // cached
    expect(spy).not.toHaveBeenCalled();
  });

  it('a vocabulary without the opener: an empty set', () => {
    const dir = path.join(tmp.dir, 'plain');
    writeTinyTokenizer(dir);
    expect(DeferredGuide.openerIds(Tokenizer.fromDir(dir), '<think>').size).toBe(0);
  });
});
