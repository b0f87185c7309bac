import * as fs from 'node:fs';
import * as path from 'node:path';
import { ModelFormatError } from '../errors';
import { makeTempDir } from '../testing/tmp-dir';
import { sharedModelDir } from '../testing/shared-model';
import { writeTinyModel } from '../testing/tiny-model';
import { IncrementalDetokenizer } from './detokenizer';
import { Tokenizer } from './tokenizer';

const MULTIBYTE = 'héllo wörld — 世界 🙂 naïve';

/** Streams ids one at a time through the detokenizer, returning each delta. */
function stream(tok: Tokenizer, ids: number[]): string[] {
  const d = tok.createDetokenizer();
  const deltas = ids.map((id) => d.push([id]));
  deltas.push(d.flush());
  return deltas;
}

describe('tokenizer (tiny generated model)', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  beforeAll(() => (tmp = makeTempDir()));
  afterAll(() => tmp.cleanup());

  it('round-trips multi-byte text and reads special tokens (eos list from generation_config)', () => {
    const info = writeTinyModel(path.join(tmp.dir, 'q'), { arch: 'qwen2' });
    const tok = Tokenizer.fromDir(info.dir);
    const ids = tok.encode(MULTIBYTE);
    expect(tok.decode(ids)).toBe(MULTIBYTE);
    expect(tok.special.eosIds.sort()).toEqual([info.eosId, info.imEndId].sort());
    expect(tok.special.bosId).toBe(info.bosId);
    expect(tok.special.addBos).toBe(false);
    expect(tok.encode('<|im_start|>user')[0]).toBe(info.imStartId);
    expect(tok.decode([info.imStartId, ...tok.encode('hi')])).toBe('hi');
    expect(tok.decode([info.imStartId, ...tok.encode('hi')], { skipSpecialTokens: false })).toBe('<|im_start|>hi');
    expect(tok.isSpecial(info.imEndId)).toBe(true);
  });

  it('adds BOS for a Llama-style tokenizer only when asked', () => {
    const info = writeTinyModel(path.join(tmp.dir, 'l'), { arch: 'llama' });
    const tok = Tokenizer.fromDir(info.dir);
    expect(tok.special.addBos).toBe(true);
    expect(tok.encode('the')[0]).toBe(info.bosId);
    expect(tok.encode('the', { addSpecialTokens: false })[0]).not.toBe(info.bosId);
  });

  it('streams multi-byte text without ever emitting a broken character', () => {
    const tok = Tokenizer.fromDir(writeTinyModel(path.join(tmp.dir, 's'), { arch: 'qwen2' }).dir);
    const ids = tok.encode(MULTIBYTE);
    expect(ids.length).toBeGreaterThan([...MULTIBYTE].length); // byte-level: several tokens per CJK char / emoji
    const deltas = stream(tok, ids);
    expect(deltas.join('')).toBe(MULTIBYTE);
    for (const d of deltas) expect(d).not.toContain('\uFFFD');
    // the emoji (4 bytes) is held back until its last byte arrives, then emitted whole
    expect(deltas.some((d) => d.includes('🙂'))).toBe(true);
    expect(deltas.filter((d) => d === '').length).toBeGreaterThan(0);
  });

  it('flush releases an incomplete trailing character as U+FFFD', () => {
    const tok = Tokenizer.fromDir(writeTinyModel(path.join(tmp.dir, 'f'), { arch: 'qwen2' }).dir);
    const ids = tok.encode('a世');
    const d = tok.createDetokenizer();
    expect(d.push(ids.slice(0, 1))).toBe('a');
    expect(d.push(ids.slice(1, -1))).toBe('');
    expect(d.flush()).toBe('\uFFFD');
    expect(d.text).toBe('a\uFFFD');
  });

  it('a corrupt tokenizer.model and a missing tokenizer give ModelFormatError', () => {
    const dir = path.join(tmp.dir, 'sp');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'tokenizer.model'), Buffer.from([0x0a, 0xff, 0xff]));
    expect(() => Tokenizer.fromDir(dir)).toThrow(ModelFormatError);
    expect(() => Tokenizer.fromDir(dir)).toThrow(/cannot parse SentencePiece model/);
    expect(() => Tokenizer.fromDir(tmp.dir)).toThrow(/no tokenizer found/);
  });
});

describe('IncrementalDetokenizer', () => {
  it('uses left context so context-dependent decoders (leading-space stripping) stream correctly', () => {
    // A toy SentencePiece-like decoder: "▁" → space, and a leading space of the whole decode is stripped.
    const vocab = ['▁Hello', '▁world', '!'];
    const decode = (ids: number[]) => ids.map((i) => vocab[i]).join('').replace(/▁/g, ' ').replace(/^ /, '');
    const d = new IncrementalDetokenizer(decode);
    expect([d.push([0]), d.push([1]), d.push([2]), d.flush()]).toEqual(['Hello', ' world', '!', '']);
    expect(d.text).toBe('Hello world!');
  });
});

describe('IncrementalDetokenizer on invalid UTF-8', () => {
  // byte tokens: id i is byte i; the decoder turns bytes into text as UTF-8 with U+FFFD for invalid sequences
  const decode = (ids: number[]) => Buffer.from(ids).toString('utf8');

  it('a run of bytes that never forms a character streams with U+FFFD instead of holding everything to the end', () => {
    const d = new IncrementalDetokenizer(decode);
    const bad = Array.from({ length: 200 }, () => 0x80); // lone continuation bytes
    const deltas = bad.map((b) => d.push([b]));
    expect(deltas.slice(20).every((x) => x.length > 0 || x === '')).toBe(true);
    expect(deltas.join('').length).toBeGreaterThan(150); // came out along the way, not at flush
    expect((d as unknown as { ids: number[]; readOffset: number }).ids.length - (d as unknown as { readOffset: number }).readOffset).toBeLessThanOrEqual(9);
    d.flush();
    expect(d.text).toBe(decode(bad));
  });

  it('characters split over byte tokens still come out whole, also after an invalid run', () => {
    const text = 'a世🙂é';
    const bytes = [...Buffer.from(text)];
    const d = new IncrementalDetokenizer(decode);
    const bad = Array.from({ length: 12 }, () => 0xff);
    const deltas = [...bad, ...bytes].map((b) => d.push([b]));
    deltas.push(d.flush());
    expect(deltas.join('')).toBe(decode([...bad, ...bytes]));
    expect(deltas.join('').endsWith(text)).toBe(true);
    for (const x of deltas) expect(x).not.toMatch(/[\uD800-\uDBFF]$/); // never half a surrogate pair
  });
});

describe('tokenizer (shared model)', () => {
  const dir = sharedModelDir('tiny-qwen2-pydocs');
  it('loads tokenizer.json, round-trips eval.txt and gives 116 windows of 512', () => {
    if (!dir) {
      console.log('not run: no shared model');
      return;
    }
    const tok = Tokenizer.fromDir(dir);
    const text = fs.readFileSync(path.join(dir, 'eval.txt'), 'utf8');
    const ids = tok.encode(text, { addSpecialTokens: false });
    expect(Math.floor(ids.length / 512)).toBe(116);
    expect(tok.decode(ids)).toBe(text);
    expect(tok.special.eosIds).toEqual([0]);
    const deltas = stream(tok, tok.encode(MULTIBYTE, { addSpecialTokens: false }));
    expect(deltas.join('')).toBe(MULTIBYTE);
    for (const d of deltas) expect(d).not.toContain('\uFFFD');
  });
});
