import { rng } from '../../testing/tiny-model';
import { byteLevelAlphabet } from '../../tokenizer/byte-level';
import type { GrammarVocab } from './grammar-service';
import { UTF8_START, Utf8Guard, utf8Step } from './utf8-guard';

const fatal = new TextDecoder('utf-8', { fatal: true });
const decodes = (b: Uint8Array): boolean => {
  try {
    fatal.decode(b);
    return true;
  } catch {
    return false;
  }
};
const walk = (b: Uint8Array): number => {
  let s = UTF8_START;
  for (const x of b) if ((s = utf8Step(s, x)) < 0) return -1;
  return s;
};

describe('utf8Step', () => {
  it('accepts exactly the byte strings that decode as UTF-8 (all 1- and 2-byte strings, random 3- and 4-byte ones)', () => {
    for (let a = 0; a < 256; a++) {
      expect(walk(Uint8Array.of(a)) === 0).toBe(decodes(Uint8Array.of(a)));
      for (let b = 0; b < 256; b++) expect(walk(Uint8Array.of(a, b)) === 0).toBe(decodes(Uint8Array.of(a, b)));
    }
    const r = rng(5);
    // lead bytes and the edges of every continuation range, so most strings are near-valid
    const pick = [0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff];
    for (let i = 0; i < 20000; i++) {
      const b = Uint8Array.from({ length: 3 + (i % 4) }, () => pick[Math.floor(r() * pick.length)]);
      expect(walk(b) === 0).toBe(decodes(b));
    }
  });
});

describe('Utf8Guard', () => {
  const alphabet = byteLevelAlphabet();
  // A byte-level vocabulary: the 256 single bytes (id = byte), then a few merges, a special token ('') and padding.
  const text = (bytes: number[]): string => bytes.map((b) => alphabet[b]).join('');
  const vocab: GrammarVocab = {
    vocab: [...Array(256).keys()].map((b) => alphabet[b]).concat([text([0x61, 0x62]), text([0xf0, 0x9f, 0x98, 0x80]), text([0x98, 0x80]), text([0xed, 0xa0]), '', '']),
    vocabType: 'byte_level',
    prependSpace: false,
  };
  const guard = new Utf8Guard(vocab);
  const ids = (mask: Int32Array): number[] => [...Array(mask.length * 32).keys()].filter((t) => (mask[t >>> 5] >>> (t & 31)) & 1);
  const all = (): Int32Array => new Int32Array(Math.ceil(vocab.vocab.length / 32)).fill(-1);

  it('between characters: ASCII, lead bytes and whole characters; no stray continuation bytes, C0, C1 or F5-FF', () => {
    const m = all();
    guard.restrict(m, UTF8_START);
    const ok = new Set(ids(m));
    for (const b of [0x20, 0x7f, 0xc2, 0xe0, 0xed, 0xf0, 0xf4]) expect(ok.has(b)).toBe(true);
    for (const b of [0x80, 0xbf, 0xc0, 0xc1, 0xf5, 0xff]) expect(ok.has(b)).toBe(false);
    expect(ok.has(256)).toBe(true); // "ab"
    expect(ok.has(257)).toBe(true); // U+1F600 whole
    expect(ok.has(258)).toBe(false); // two continuation bytes
    expect(ok.has(259)).toBe(false); // ED A0: a surrogate
    expect(ok.has(260) && ok.has(261)).toBe(true); // '' tokens: xgrammar's call
  });

  it('after a lead byte only its continuation range; a token may finish the character', () => {
    const f0 = guard.after(UTF8_START, 0xf0);
    const m = all();
    guard.restrict(m, f0);
    const ok = ids(m).filter((t) => t < 256);
    expect(Math.min(...ok)).toBe(0x90); // F0 80-8F would be overlong
    expect(Math.max(...ok)).toBe(0xbf);
    expect(guard.after(guard.after(f0, 0x9f), 258)).toBe(UTF8_START); // F0 9F + "98 80" = U+1F600
    const f4 = guard.after(UTF8_START, 0xf4);
    const m4 = all();
    guard.restrict(m4, f4);
    expect(Math.max(...ids(m4).filter((t) => t < 256))).toBe(0x8f); // past U+10FFFF otherwise
    expect(guard.after(UTF8_START, 259)).toBe(-1);
  });

  it('leaves a mask alone when it would clear every token', () => {
    const m = new Int32Array(all().length);
    m[0x80 >>> 5] = 1 << (0x80 & 31); // only a stray continuation byte
    guard.restrict(m, UTF8_START);
    expect(ids(m)).toEqual([0x80]);
  });
});
