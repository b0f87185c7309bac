import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeTempDir } from '../testing/tmp-dir';
import {
  PieceType, SP_SPACE, bpeMergesFromPieces, encodeSentencePieceModel, parseSentencePieceModel, type SentencePiece, type SentencePieceModel,
} from './sentencepiece';
import { Tokenizer } from './tokenizer';

const S = SP_SPACE;

/** A tiny Llama-style BPE SentencePiece model: <unk> <s> </s>, 256 byte pieces, chars, then merged pieces by score. */
function tinyBpeModel(): SentencePieceModel {
  const pieces: SentencePiece[] = [
    { piece: '<unk>', score: 0, type: PieceType.Unknown },
    { piece: '<s>', score: 0, type: PieceType.Control },
    { piece: '</s>', score: 0, type: PieceType.Control },
  ];
  for (let b = 0; b < 256; b++) pieces.push({ piece: `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, score: 0, type: PieceType.Byte });
  const merged = ['ll', 'he', `${S}he`, 'llo', `${S}hello`, `${S}w`, 'or'];
  merged.forEach((p, i) => pieces.push({ piece: p, score: -1 - i, type: PieceType.Normal }));
  [S, 'h', 'e', 'l', 'o', 'w', 'r', 'd'].forEach((c, i) => pieces.push({ piece: c, score: -100 - i, type: PieceType.Normal }));
  pieces.push({ piece: '<|im_start|>', score: 0, type: PieceType.UserDefined });
  return { pieces, modelType: 2, byteFallback: true, addDummyPrefix: true, removeExtraWhitespaces: false, unkId: 0, bosId: 1, eosId: 2 };
}

/** What the real sentencepiece library encodes (fixtures/make_sentencepiece.py). */
const FIXTURES = path.join(__dirname, 'fixtures');
const expected = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'sentencepiece-expected.json'), 'utf8')) as Record<
  string,
  Array<{ text: string; ids: number[]; decoded: string }>
>;

describe.each(Object.keys(expected))('SentencePiece %s (trained with the sentencepiece library)', (name) => {
  let tok: Tokenizer;
  let tmp: ReturnType<typeof makeTempDir>;
  beforeAll(() => {
    tmp = makeTempDir();
    fs.copyFileSync(path.join(FIXTURES, `${name}.model`), path.join(tmp.dir, 'tokenizer.model'));
    fs.writeFileSync(path.join(tmp.dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<s>', eos_token: '</s>' }));
    tok = Tokenizer.fromDir(tmp.dir);
  });
  afterAll(() => tmp.cleanup());

  it.each(expected[name].map((e) => [JSON.stringify(e.text), e] as const))('encodes %s like sentencepiece', (_t, e) => {
    expect(tok.encode(e.text, { addSpecialTokens: false })).toEqual(e.ids);
    if (!e.ids.includes(0)) expect(tok.decode(e.ids)).toBe(e.decoded); // sentencepiece renders <unk> as " ⁇ "
  });

  it('prepends BOS by default (add_bos_token)', () => {
    expect(tok.encode('Hello')[0]).toBe(1);
    expect(tok.special).toMatchObject({ bosId: 1, eosIds: [2] });
  });
});

describe('SentencePiece tokenizer.model', () => {
  it('round-trips the ModelProto fields through the wire format', () => {
    const m = tinyBpeModel();
    const back = parseSentencePieceModel(encodeSentencePieceModel(m));
    expect(back).toEqual(m);
  });

  it('derives BPE merges from piece scores (hand-computed)', () => {
    expect(bpeMergesFromPieces(tinyBpeModel().pieces)).toEqual([
      ['l', 'l'], ['h', 'e'], [S, 'he'], ['ll', 'o'], [`${S}he`, 'llo'], [S, 'w'], ['o', 'r'],
    ]);
  });

  it('encodes like SentencePiece: dummy prefix, merges by score, byte fallback, BOS, user-defined pieces', () => {
    const tmp = makeTempDir();
    try {
      const m = tinyBpeModel();
      fs.writeFileSync(path.join(tmp.dir, 'tokenizer.model'), encodeSentencePieceModel(m));
      fs.writeFileSync(path.join(tmp.dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<s>', eos_token: '</s>', add_bos_token: true }));
      const tok = Tokenizer.fromDir(tmp.dir);
      const id = (p: string) => m.pieces.findIndex((x) => x.piece === p);
      const ids = tok.encode('hello world é');
      expect(ids).toEqual([
        1, id(`${S}hello`), id(`${S}w`), id('or'), id('l'), id('d'), id(S), 3 + 0xc3, 3 + 0xa9,
      ]);
      expect(tok.decode(ids)).toBe('hello world é');
      expect(tok.special).toMatchObject({ bosId: 1, eosIds: [2], addBos: true });
      expect(tok.encode('<|im_start|>hello', { addSpecialTokens: false })[0]).toBe(id('<|im_start|>'));
      // streaming: the dummy-prefix space is stripped only at the start, multi-byte fallback is held until complete
      const d = tok.createDetokenizer();
      const deltas = ids.slice(1).map((i) => d.push([i]));
      expect(deltas.join('') + d.flush()).toBe('hello world é');
      for (const x of deltas) expect(x).not.toContain('\uFFFD');
    } finally {
      tmp.cleanup();
    }
  });
});
