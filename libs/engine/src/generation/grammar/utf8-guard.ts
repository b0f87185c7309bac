// Guided outputs must be valid UTF-8. xgrammar matches byte-level vocabularies byte by byte but lets through byte
// sequences that no UTF-8 text has: lead bytes C0, C1 and F5-FF, and second bytes outside the lead's range (overlong
// forms after E0 / F0, surrogates after ED, code points past U+10FFFF after F4). A weak or sampled model then writes
// them inside JSON strings, and the decoded text holds U+FFFD where the bytes were (so maxLength, counted in code
// points, no longer holds). Utf8Guard follows each guide's UTF-8 state over the tokens it accepts and clears, from
// xgrammar's mask, the tokens whose bytes are not valid UTF-8 from that state.
import { byteLevelAlphabet } from '../../tokenizer/byte-level';
import type { GrammarVocab } from './grammar-service';

/**
 * The UTF-8 states: 0 between characters; otherwise continuation bytes still needed and the range the next one must
 * be in (RFC 3629's table): 1 = one more [80, BF]; 2 = two more, [80, BF] next; 3 = two more, [A0, BF] next (after E0);
 * 4 = two more, [80, 9F] next (after ED); 5 = three more, [80, BF] next; 6 = three more, [90, BF] next (after F0);
 * 7 = three more, [80, 8F] next (after F4).
 */
export const UTF8_START = 0;
const NEXT_RANGE: ReadonlyArray<readonly [number, number, number]> = [
  [0, 0, 0], // state 0 reads a lead byte (below)
  [0x80, 0xbf, 0],
  [0x80, 0xbf, 1],
  [0xa0, 0xbf, 1],
  [0x80, 0x9f, 1],
  [0x80, 0xbf, 2],
  [0x90, 0xbf, 2],
  [0x80, 0x8f, 2],
];

/** The state after `byte` from `state`, or -1 where no UTF-8 text continues that way. */
export function utf8Step(state: number, byte: number): number {
  if (state !== 0) {
    const [lo, hi, next] = NEXT_RANGE[state];
    return byte >= lo && byte <= hi ? next : -1;
  }
  if (byte < 0x80) return 0;
  if (byte >= 0xc2 && byte <= 0xdf) return 1;
  if (byte === 0xe0) return 3;
  if (byte === 0xed) return 4;
  if (byte >= 0xe1 && byte <= 0xef) return 2;
  if (byte === 0xf0) return 6;
  if (byte >= 0xf1 && byte <= 0xf3) return 5;
  if (byte === 0xf4) return 7;
  return -1; // continuation bytes with nothing to continue, C0, C1, F5-FF
}

/** The bytes each token stands for (undefined: '' tokens, which xgrammar never treats as text). */
function tokenBytes(v: GrammarVocab): Array<Uint8Array | undefined> {
  const alphabet = v.vocabType === 'byte_level' ? new Map(byteLevelAlphabet().map((c, b) => [c, b])) : undefined;
  return v.vocab.map((t) => {
    if (!t) return undefined;
    if (alphabet) {
      const out: number[] = [];
      for (const c of t) {
        const b = alphabet.get(c);
        if (b !== undefined) out.push(b);
        else out.push(...Buffer.from(c, 'utf8'));
      }
      return Uint8Array.from(out);
    }
    if (v.vocabType === 'byte_fallback') {
      const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(t);
      if (m) return Uint8Array.of(parseInt(m[1], 16));
      return new Uint8Array(Buffer.from(t.replace(/\u2581/g, ' '), 'utf8'));
    }
    return new Uint8Array(Buffer.from(t, 'utf8'));
  });
}

export class Utf8Guard {
  private readonly bytes: Array<Uint8Array | undefined>;
  /** Per state: bit t set where token t's bytes are valid UTF-8 from it ('' tokens always). Built on first use. */
  private readonly valid = new Map<number, Int32Array>();

  constructor(vocab: GrammarVocab) {
    this.bytes = tokenBytes(vocab);
    this.validFrom(UTF8_START); // the state of nearly every step: built with the vocabulary, not on a request's first mask
  }

  /** The state after `token` from `state`; -1 if its bytes are not valid UTF-8 there. */
  after(state: number, token: number): number {
    const b = this.bytes[token];
    if (!b) return state;
    let s = state;
    for (let i = 0; i < b.length && s >= 0; i++) s = utf8Step(s, b[i]);
    return s;
  }

  /** Clears, in place, the tokens of `mask` that are not valid UTF-8 from `state`; leaves the mask as it was if
   *  that would clear every token (xgrammar's word then stands: a vocabulary without the needed byte tokens). */
  restrict(mask: Int32Array, state: number): void {
    const valid = this.validFrom(state);
    let any = 0;
    for (let w = 0; w < mask.length; w++) any |= mask[w] & valid[w];
    if (any === 0) return;
    for (let w = 0; w < mask.length; w++) mask[w] &= valid[w];
  }

  private validFrom(state: number): Int32Array {
    let v = this.valid.get(state);
    if (!v) {
      v = new Int32Array(Math.ceil(this.bytes.length / 32));
      for (let t = 0; t < this.bytes.length; t++) if (this.after(state, t) >= 0) v[t >>> 5] |= 1 << (t & 31);
      this.valid.set(state, v);
    }
    return v;
  }
}
